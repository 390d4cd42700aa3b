#include "common/metrics_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskmesh {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// One HTTP request over a fresh connection; returns the whole response.
std::string Fetch(int port, const std::string& request) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  EXPECT_EQ(send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
  std::string response;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) response.append(buf, n);
  close(fd);
  return response;
}

TEST(MetricsServerTest, ServesFreshPrometheusTextOnEveryScrape) {
  std::atomic<int> scrapes{0};
  auto server = MetricsServer::Start("127.0.0.1:0", [&] {
    return PrometheusFamily("taskmesh_test_total", "counter", "Scrapes so far.",
                            {{"kind=\"a\"", ++scrapes}, {"", 2.5}});
  });
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  ASSERT_GT(port, 0);
  std::string r = Fetch(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(r, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(r, HasSubstr("Content-Type: text/plain; version=0.0.4"));
  EXPECT_THAT(r, HasSubstr("# TYPE taskmesh_test_total counter\n"));
  EXPECT_THAT(r, HasSubstr("taskmesh_test_total{kind=\"a\"} 1\n"));
  EXPECT_THAT(r, HasSubstr("taskmesh_test_total 2.5\n"));
  r = Fetch(port, "GET /metrics HTTP/1.1\r\n\r\n");
  EXPECT_THAT(r, HasSubstr("taskmesh_test_total{kind=\"a\"} 2\n"));
}

TEST(MetricsServerTest, OtherPathsAreNotFound) {
  auto server = MetricsServer::Start("127.0.0.1:0", [] { return std::string(); });
  ASSERT_TRUE(server.ok());
  EXPECT_THAT(Fetch((*server)->port(), "GET / HTTP/1.1\r\n\r\n"),
              StartsWith("HTTP/1.1 404 Not Found\r\n"));
}

TEST(MetricsServerTest, RejectsBadAddresses) {
  for (const char* bad : {"", "9464", "localhost:9464", "0.0.0.0:99999", "[::]:9464"}) {
    EXPECT_EQ(MetricsServer::Start(bad, [] { return std::string(); }).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

}  // namespace
}  // namespace taskmesh
