#include "bench/loadgen/runner.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "bench/loadgen/http_target.h"
#include "gtest/gtest.h"

namespace taskmesh::bench {
namespace {

// Completes every request at once, on its own thread, with `code`.
class FakeTarget : public Target {
 public:
  explicit FakeTarget(int code_every_nth = 0) : nth_(code_every_nth) {}
  void Issue(Done done) override {
    const int64_t n = ++issued_;
    const int code = (nth_ > 0 && n % nth_ == 0) ? 14 : 0;
    std::thread([done = std::move(done), code] { done(code); }).detach();
  }
  int ItemsPerRequest() const override { return 10; }
  std::atomic<int64_t> issued_{0};

 private:
  const int nth_;
};

TEST(RunnerTest, ClosedLoopStopsAtTheRequestCount) {
  FakeTarget target;
  RunOptions o;
  o.concurrency = 4;
  o.requests = 200;
  o.duration = absl::Seconds(30);
  RunResult r = Runner(o).Run(target);
  EXPECT_EQ(r.issued, 200);
  EXPECT_EQ(r.ok, 200);
  EXPECT_EQ(r.items_ok, 2000);
  EXPECT_EQ(r.unfinished, 0);
  EXPECT_EQ(r.latency->count(), 200u);
  EXPECT_EQ(target.issued_.load(), 200);
}

TEST(RunnerTest, CountsErrorsByCode) {
  FakeTarget target(/*code_every_nth=*/4);
  RunOptions o;
  o.concurrency = 2;
  o.requests = 100;
  RunResult r = Runner(o).Run(target);
  EXPECT_EQ(r.ok, 75);
  EXPECT_EQ(r.codes[0], 75);
  EXPECT_EQ(r.codes[14], 25);
  const std::string json = r.ToJson("fake");
  EXPECT_TRUE(absl::StrContains(json, "\"UNAVAILABLE\":25")) << json;
  EXPECT_TRUE(absl::StrContains(json, "\"errors\":25")) << json;
}

TEST(RunnerTest, OpenLoopStartsRequestsAtTheRate) {
  FakeTarget target;
  RunOptions o;
  o.rate = 2000;
  o.duration = absl::Milliseconds(100);
  RunResult r = Runner(o).Run(target);
  // 2000/s for 0.1 s: 200 requests, whatever the machine's speed.
  EXPECT_EQ(r.issued, 200);
  EXPECT_EQ(r.ok, 200);
}

// A minimal HTTP/1.1 server: answers every request on a connection with
// 200 and a Content-Length body, and the 3rd request of each connection
// with 503 and a chunked body.
class TinyServer {
 public:
  TinyServer() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    socklen_t len = sizeof(a);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    listen(fd_, 16);
    thread_ = std::thread([this] {
      while (true) {
        int c = accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        conns_.emplace_back([c] {
          std::string in;
          char buf[4096];
          int n_req = 0;
          while (true) {
            ssize_t n = recv(c, buf, sizeof(buf), 0);
            if (n <= 0) break;
            in.append(buf, n);
            size_t end;
            while ((end = in.find("\r\n\r\n")) != std::string::npos) {
              size_t body = 0;
              size_t cl = in.find("Content-Length: ");
              if (cl != std::string::npos && cl < end) body = std::stoul(in.substr(cl + 16));
              if (in.size() < end + 4 + body) break;
              in.erase(0, end + 4 + body);
              ++n_req;
              std::string out =
                  n_req % 3 == 0
                      ? "HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                      : "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
              send(c, out.data(), out.size(), MSG_NOSIGNAL);
            }
          }
          close(c);
        });
      }
    });
  }
  ~TinyServer() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
    for (auto& t : conns_) t.detach();
  }
  int port() const { return port_; }

 private:
  int fd_;
  int port_;
  std::thread thread_;
  std::vector<std::thread> conns_;
};

TEST(HttpTargetTest, KeepAliveRequestsAndStatusCodes) {
  TinyServer server;
  HttpOptions h;
  h.port = server.port();
  h.method = "POST";
  h.path = "/v1/queues/q/tasks";
  h.body = R"({"type":"echo"})";
  h.connections = 1;
  HttpTarget target(h);
  ASSERT_TRUE(target.Start().ok());
  RunOptions o;
  o.concurrency = 1;
  o.requests = 9;
  RunResult r = Runner(o).Run(target);
  EXPECT_EQ(r.ok, 6);
  EXPECT_EQ(r.codes[1503], 3);
  EXPECT_EQ(r.unfinished, 0);
}

TEST(HttpTargetTest, RefusedConnectionFailsStart) {
  HttpOptions h;
  h.port = 1;  // nothing listens on port 1
  HttpTarget target(h);
  EXPECT_FALSE(target.Start().ok());
}

}  // namespace
}  // namespace taskmesh::bench
