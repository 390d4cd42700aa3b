#include "bench/loadgen/http_target.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <mutex>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace taskmesh::bench {
namespace {

int Connect(const std::string& host, int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1 ||
      connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

// Parses one response at the front of `buf`. Returns its length once
// complete (0: need more bytes, -1: malformed) and sets `status` and `close`.
long ParseResponse(absl::string_view buf, int* status, bool* close) {
  const size_t head_end = buf.find("\r\n\r\n");
  if (head_end == absl::string_view::npos) return buf.size() > 65536 ? -1 : 0;
  absl::string_view head = buf.substr(0, head_end);
  if (!absl::StartsWith(head, "HTTP/1.") || head.size() < 12) return -1;
  if (!absl::SimpleAtoi(head.substr(9, 3), status)) return -1;
  *close = absl::StartsWith(head, "HTTP/1.0");
  long content_length = -1;
  bool chunked = false;
  size_t pos = head.find("\r\n");
  while (pos != absl::string_view::npos && pos < head.size()) {
    size_t next = head.find("\r\n", pos + 2);
    absl::string_view line =
        head.substr(pos + 2, next == absl::string_view::npos ? absl::string_view::npos
                                                             : next - pos - 2);
    const size_t colon = line.find(':');
    if (colon != absl::string_view::npos) {
      std::string name = absl::AsciiStrToLower(line.substr(0, colon));
      absl::string_view value = absl::StripAsciiWhitespace(line.substr(colon + 1));
      if (name == "content-length") {
        if (!absl::SimpleAtoi(value, &content_length)) return -1;
      } else if (name == "transfer-encoding") {
        chunked = absl::StrContains(absl::AsciiStrToLower(value), "chunked");
      } else if (name == "connection") {
        if (absl::EqualsIgnoreCase(value, "close")) *close = true;
        if (absl::EqualsIgnoreCase(value, "keep-alive")) *close = false;
      }
    }
    pos = next;
  }
  size_t body = head_end + 4;
  if (chunked) {
    while (true) {
      const size_t line_end = buf.find("\r\n", body);
      if (line_end == absl::string_view::npos) return 0;
      unsigned long size = 0;
      absl::string_view hex = buf.substr(body, line_end - body);
      const size_t semi = hex.find(';');
      if (semi != absl::string_view::npos) hex = hex.substr(0, semi);
      if (!absl::SimpleHexAtoi(hex, &size)) return -1;
      body = line_end + 2;
      if (size == 0) {
        // Trailers (usually none) end with an empty line.
        const size_t end = buf.find("\r\n", body);
        if (end == absl::string_view::npos) return 0;
        if (end == body) return static_cast<long>(end + 2);
        const size_t trailers_end = buf.find("\r\n\r\n", body);
        if (trailers_end == absl::string_view::npos) return 0;
        return static_cast<long>(trailers_end + 4);
      }
      if (buf.size() < body + size + 2) return 0;
      body += size + 2;
    }
  }
  if (content_length < 0) {
    // No length: 204/304 have no body; anything else ends at close (unsupported).
    if (*status == 204 || *status == 304 || (*status >= 100 && *status < 200)) {
      return static_cast<long>(body);
    }
    return -1;
  }
  if (buf.size() < body + static_cast<size_t>(content_length)) return 0;
  return static_cast<long>(body + content_length);
}

}  // namespace

class HttpTarget::Loop {
 public:
  Loop(const HttpOptions& options, const std::string& request, int connections)
      : options_(options), request_(request), conns_(connections) {}

  ~Loop() {
    stop_ = true;
    Wake();
    if (thread_.joinable()) thread_.join();
    for (Conn& c : conns_) {
      if (c.fd >= 0) close(c.fd);
    }
    if (epfd_ >= 0) close(epfd_);
    if (evfd_ >= 0) close(evfd_);
  }

  absl::Status Start() {
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    evfd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = ~0ull;
    epoll_ctl(epfd_, EPOLL_CTL_ADD, evfd_, &ev);
    for (size_t i = 0; i < conns_.size(); ++i) {
      if (!Open(i)) {
        return absl::UnavailableError(absl::StrCat("cannot connect to ", options_.host, ":",
                                                   options_.port, ": ", strerror(errno)));
      }
    }
    thread_ = std::thread([this] { Run(); });
    return absl::OkStatus();
  }

  void Issue(Done done) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      incoming_.push_back(std::move(done));
    }
    Wake();
  }

 private:
  struct Conn {
    int fd = -1;
    bool busy = false;
    size_t written = 0;
    std::string in;
    Done done;
  };

  void Wake() {
    uint64_t one = 1;
    (void)!write(evfd_, &one, sizeof(one));
  }

  bool Open(size_t i) {
    Conn& c = conns_[i];
    if (c.fd >= 0) {
      epoll_ctl(epfd_, EPOLL_CTL_DEL, c.fd, nullptr);
      close(c.fd);
    }
    c = Conn();
    c.fd = Connect(options_.host, options_.port);
    if (c.fd < 0) return false;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    epoll_ctl(epfd_, EPOLL_CTL_ADD, c.fd, &ev);
    if (std::find(idle_.begin(), idle_.end(), i) == idle_.end()) idle_.push_back(i);
    return true;
  }

  void Fail(size_t i, int code) {
    Done done = std::move(conns_[i].done);
    // Reopened lazily: a dead server must not spin this loop.
    if (!Open(i)) {
      conns_[i].fd = -1;
      broken_.push_back(i);
    }
    if (done) done(code);
  }

  void Send(size_t i) {
    Conn& c = conns_[i];
    while (c.written < request_.size()) {
      ssize_t n = ::send(c.fd, request_.data() + c.written, request_.size() - c.written,
                         MSG_NOSIGNAL);
      if (n > 0) {
        c.written += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        // Rare for small requests on loopback: finish it blocking.
        continue;
      }
      Fail(i, kTransportError);
      return;
    }
  }

  void Dispatch() {
    std::deque<Done> fresh;
    {
      std::lock_guard<std::mutex> lock(mu_);
      fresh.swap(incoming_);
    }
    for (Done& d : fresh) queued_.push_back(std::move(d));
    // Retry connections that failed to reopen, once per dispatch.
    if (!broken_.empty() && !queued_.empty()) {
      std::vector<size_t> broken;
      broken.swap(broken_);
      for (size_t i : broken) {
        if (!Open(i)) broken_.push_back(i);
      }
      if (idle_.empty()) {
        for (Done& d : queued_) d(kTransportError);
        queued_.clear();
        return;
      }
    }
    while (!queued_.empty() && !idle_.empty()) {
      size_t i = idle_.back();
      idle_.pop_back();
      Conn& c = conns_[i];
      c.busy = true;
      c.written = 0;
      c.done = std::move(queued_.front());
      queued_.pop_front();
      Send(i);
    }
  }

  void OnReadable(size_t i) {
    Conn& c = conns_[i];
    char buf[16384];
    while (true) {
      ssize_t n = recv(c.fd, buf, sizeof(buf), MSG_DONTWAIT);
      if (n > 0) {
        c.in.append(buf, static_cast<size_t>(n));
        if (static_cast<size_t>(n) < sizeof(buf)) break;
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
      Fail(i, kTransportError);  // closed or reset
      return;
    }
    if (!c.busy) {
      Fail(i, kTransportError);
      return;
    }
    int status = 0;
    bool close_after = false;
    const long len = ParseResponse(c.in, &status, &close_after);
    if (len == 0) return;
    if (len < 0) {
      Fail(i, kTransportError);
      return;
    }
    c.in.erase(0, static_cast<size_t>(len));
    Done done = std::move(c.done);
    c.busy = false;
    if (close_after) {
      Open(i);
    } else {
      idle_.push_back(i);
    }
    done(status >= 200 && status < 300 ? 0 : 1000 + status);
  }

  void Run() {
    epoll_event events[256];
    while (!stop_) {
      const int n = epoll_wait(epfd_, events, 256, 100);
      for (int k = 0; k < n; ++k) {
        if (events[k].data.u64 == ~0ull) {
          uint64_t v;
          (void)!read(evfd_, &v, sizeof(v));
          continue;
        }
        OnReadable(static_cast<size_t>(events[k].data.u64));
      }
      Dispatch();
    }
    for (Conn& c : conns_) {
      if (c.done) c.done(kTransportError);
    }
  }

  const HttpOptions& options_;
  const std::string& request_;
  std::vector<Conn> conns_;
  std::vector<size_t> idle_;
  std::vector<size_t> broken_;
  std::deque<Done> queued_;
  int epfd_ = -1;
  int evfd_ = -1;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::deque<Done> incoming_;
  std::thread thread_;
};

HttpTarget::HttpTarget(HttpOptions options) : options_(std::move(options)) {
  request_ = absl::StrCat(options_.method, " ", options_.path, " HTTP/1.1\r\nHost: ",
                          options_.host, ":", options_.port, "\r\n");
  for (const std::string& h : options_.headers) absl::StrAppend(&request_, h, "\r\n");
  if (!options_.body.empty() || options_.method == "POST" || options_.method == "PUT" ||
      options_.method == "PATCH") {
    bool has_type = false;
    for (const std::string& h : options_.headers) {
      if (absl::StartsWithIgnoreCase(h, "content-type:")) has_type = true;
    }
    if (!has_type) absl::StrAppend(&request_, "Content-Type: application/json\r\n");
    absl::StrAppend(&request_, "Content-Length: ", options_.body.size(), "\r\n");
  }
  absl::StrAppend(&request_, "\r\n", options_.body);
}

HttpTarget::~HttpTarget() { loops_.clear(); }

absl::Status HttpTarget::Start() {
  const int threads = std::max(1, options_.threads);
  const int conns = std::max(1, options_.connections);
  for (int t = 0; t < threads; ++t) {
    const int mine = conns / threads + (t < conns % threads ? 1 : 0);
    if (mine == 0) continue;
    loops_.push_back(std::make_unique<Loop>(options_, request_, mine));
    if (absl::Status s = loops_.back()->Start(); !s.ok()) return s;
  }
  return absl::OkStatus();
}

void HttpTarget::Issue(Done done) {
  loops_[next_.fetch_add(1, std::memory_order_relaxed) % loops_.size()]->Issue(std::move(done));
}

}  // namespace taskmesh::bench
