#include "api_gateway/http_server.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <optional>
#include <thread>
#include <unordered_set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/dispatch.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/write.hpp"
#include "boost/beast/core/flat_buffer.hpp"
#include "boost/beast/http/error.hpp"
#include "boost/beast/http/parser.hpp"
#include "common/logging.h"

namespace taskmesh::gateway {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

namespace {

const char* Reason(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 499: return "Client Closed Request";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
  }
}

// The Date header, formatted at most once a second per thread.
absl::string_view HttpDate() {
  thread_local time_t last = 0;
  thread_local char buf[64];
  thread_local size_t len = 0;
  const time_t now = time(nullptr);
  if (now != last) {
    struct tm tm;
    gmtime_r(&now, &tm);
    len = strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    last = now;
  }
  return absl::string_view(buf, len);
}

bool SafeHeaderText(absl::string_view s) {
  for (char c : s) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return true;
}

// Status line and headers. `body_size` < 0: chunked.
void AppendHead(const HttpResponse& r, long body_size, bool keep_alive, std::string* out) {
  absl::StrAppend(out, "HTTP/1.1 ", r.status, " ", Reason(r.status), "\r\nDate: ", HttpDate(),
                  "\r\n");
  for (const auto& [name, value] : r.headers) {
    if (!SafeHeaderText(name) || !SafeHeaderText(value) || name.empty()) continue;
    absl::StrAppend(out, name, ": ", value, "\r\n");
  }
  if (body_size >= 0) {
    absl::StrAppend(out, "Content-Length: ", body_size, "\r\n");
  } else {
    out->append("Transfer-Encoding: chunked\r\n");
  }
  out->append(keep_alive ? "\r\n" : "Connection: close\r\n\r\n");
}

std::chrono::steady_clock::duration ToChrono(absl::Duration d) {
  return absl::ToChronoNanoseconds(d);
}

constexpr size_t kReadChunk = 16 * 1024;

}  // namespace

// ---- server internals ------------------------------------------------------

struct IoWorker {
  asio::io_context ioc{1};
  std::unordered_set<Connection*> connections;  // touched on this worker's thread only
  std::thread thread;
};

class HttpServer::Impl {
 public:
  Impl(HttpServerOptions options, HttpHandler* handler)
      : options_(std::move(options)),
        handler_(handler),
        min_timeout_(std::clamp(std::min({options_.idle_timeout, options_.header_timeout,
                                          options_.body_timeout, options_.write_timeout}),
                                absl::Milliseconds(1), absl::Hours(1))) {}

  HttpServerOptions options_;
  HttpHandler* handler_;
  const absl::Duration min_timeout_;  // the shortest of the connection timeouts
  std::vector<std::unique_ptr<IoWorker>> workers_;
  std::unique_ptr<tcp::acceptor> acceptor_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guards_[64];
  size_t next_worker_ = 0;
  std::atomic<bool> draining_{false};
  std::atomic<int> active_exchanges_{0};
  std::atomic<int> connections_{0};
  bool running_ = false;

  void Accept();
};

// One client connection: reads requests one at a time, hands each to the
// handler as an HttpExchange, writes its response, and loops while
// keep-alive allows. Lives on one I/O thread; owned by the async operations
// and the current exchange (shared_ptr).
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, IoWorker* worker, HttpServer::Impl* server)
      : socket_(std::move(socket)), timer_(worker->ioc), worker_(worker), server_(server) {}

  void Start() {
    worker_->connections.insert(this);
    error_code ec;
    const tcp::endpoint remote = socket_.remote_endpoint(ec);
    peer_ = ec ? "unknown" : remote.address().to_string();
    socket_.non_blocking(true, ec);  // Flush()'s write_some must not block
    ReadRequest();
  }

  // --- called (posted) from HttpExchange, on this connection's thread
  void DoRespond(HttpResponse r) {
    if (closed_) return;
    keep_alive_ = keep_alive_ && !r.close_connection && !server_->draining_;
    AppendHead(r, static_cast<long>(r.body.size()), keep_alive_, &out_);
    out_ += r.body;
    finishing_ = true;
    Flush();
  }

  void DoWatch(std::function<void()> on_client_gone) {
    if (closed_) {
      if (on_client_gone) on_client_gone();
      return;
    }
    if (state_ != State::kHandling || finishing_) return;  // already answered
    on_client_gone_ = std::move(on_client_gone);
    if (peer_gone_) {
      Close();  // runs on_client_gone_
      return;
    }
    WantBytes();  // usually in flight already: it tells when the client leaves
  }

  void DoStartStream(HttpResponse head, std::function<void()> on_client_gone) {
    if (closed_) {
      if (on_client_gone) on_client_gone();
      return;
    }
    on_client_gone_ = std::move(on_client_gone);
    keep_alive_ = keep_alive_ && !head.close_connection && !server_->draining_;
    if (!chunked_) keep_alive_ = false;  // HTTP/1.0: the body ends when the connection does
    if (chunked_) {
      AppendHead(head, -1, keep_alive_, &out_);
    } else {
      absl::StrAppend(&out_, "HTTP/1.0 ", head.status, " ", Reason(head.status), "\r\n");
      for (const auto& [name, value] : head.headers) {
        if (SafeHeaderText(name) && SafeHeaderText(value)) absl::StrAppend(&out_, name, ": ", value, "\r\n");
      }
      out_ += "Connection: close\r\n\r\n";
    }
    streaming_ = true;
    Flush();
    if (peer_gone_) {
      Close();
      return;
    }
    WantBytes();
  }

  void DoWriteChunk(std::string data, std::function<void(bool)> done) {
    if (closed_) {
      if (done) done(false);
      return;
    }
    if (!data.empty()) {
      if (chunked_) {
        absl::StrAppend(&out_, absl::Hex(data.size()), "\r\n", data, "\r\n");
      } else {
        out_ += data;
      }
    }
    if (done) pending_callbacks_.push_back(std::move(done));
    Flush();
  }

  void DoEndStream() {
    if (closed_) return;
    if (chunked_) out_ += "0\r\n\r\n";
    finishing_ = true;
    Flush();
  }

  void DoDrain() {
    if (state_ == State::kIdle) {
      Close();
    } else {
      keep_alive_ = false;
    }
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    state_ = State::kClosed;
    worker_->connections.erase(this);
    server_->connections_.fetch_sub(1, std::memory_order_relaxed);
    error_code ec;
    timer_.cancel();
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
    auto callbacks = std::move(pending_callbacks_);
    for (auto& cb : callbacks) cb(false);
    for (auto& cb : inflight_callbacks_) cb(false);
    inflight_callbacks_.clear();
    if (on_client_gone_) {
      auto cb = std::move(on_client_gone_);
      on_client_gone_ = nullptr;
      cb();
    }
  }

  asio::io_context& ioc() { return worker_->ioc; }
  void ExchangeDestroyed() { server_->active_exchanges_.fetch_sub(1, std::memory_order_relaxed); }

 private:
  enum class State { kIdle, kReadingHeader, kReadingBody, kHandling, kClosed };

  const HttpServerOptions& options() const { return server_->options_; }

  // Timeouts: one deadline per connection, checked by a timer that is set
  // lazily. The timer is never set later than (the time it is set) + the
  // shortest timeout, so any new deadline (now + a timeout) is at or after
  // it: moving the deadline, several times per request, touches no timer;
  // the timer fires at most once per shortest timeout and is set again for
  // the current deadline.
  void Arm(absl::Duration timeout) {
    const auto now = std::chrono::steady_clock::now();
    const auto d = ToChrono(timeout);
    deadline_ = d >= kNoDeadline - now ? kNoDeadline : now + d;  // no overflow on "infinite"
    if (!timer_set_) SetTimer(now);
  }

  void Disarm() { deadline_ = kNoDeadline; }

  void SetTimer(std::chrono::steady_clock::time_point now) {
    timer_set_ = true;
    timer_.expires_at(std::min(deadline_, now + ToChrono(server_->min_timeout_)));
    timer_.async_wait([self = shared_from_this()](const error_code& ec) {
      self->timer_set_ = false;
      if (ec || self->closed_ || self->deadline_ == kNoDeadline) return;
      const auto now = std::chrono::steady_clock::now();
      if (now >= self->deadline_) {
        self->Close();  // too slow: drop the connection
        return;
      }
      self->SetTimer(now);
    });
  }

  // ---- reading
  //
  // Requests are parsed from the buffer right where the bytes arrive (not
  // with Beast's async_read_header / async_read, which complete through the
  // event loop's queue: two more trips per request). One read is in flight
  // at a time. While a request is handled, a read goes on only when nothing
  // is buffered: it tells when the client leaves, and the bytes of a
  // pipelined request wait in the buffer until the response is out.

  void WantBytes() {
    if (read_in_flight_ || closed_) return;
    if (state_ == State::kHandling && buffer_.size() > 0) return;
    read_in_flight_ = true;
    socket_.async_read_some(buffer_.prepare(kReadChunk),
                            [self = shared_from_this()](const error_code& ec, size_t n) {
                              self->OnRead(ec, n);
                            });
  }

  void OnRead(const error_code& ec, size_t n) {
    read_in_flight_ = false;
    buffer_.commit(n);
    if (closed_) return;
    if (ec) {  // end of stream, reset, or the socket was closed (timeout)
      OnPeerGone();
      return;
    }
    if (state_ != State::kHandling) Parse();
  }

  void OnPeerGone() {
    peer_gone_ = true;
    // A response that nobody watches for the client leaving still goes out
    // (to a client that only half-closed); the connection closes after it.
    if (state_ != State::kHandling || on_client_gone_ || streaming_) Close();
  }

  void ReadRequest() {
    if (closed_) return;
    if ((server_->draining_ || peer_gone_) && buffer_.size() == 0) {
      Close();
      return;
    }
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(options().max_header_bytes));
    parser_->body_limit(options().max_body_bytes);
    state_ = State::kIdle;
    if (buffer_.size() > 0) {
      Parse();
      return;
    }
    Arm(options().idle_timeout);
    WantBytes();
  }

  // Feeds the buffered bytes to the parser; on to the handler once the
  // request is complete, else waits for more.
  void Parse() {
    if (state_ == State::kIdle) {
      state_ = State::kReadingHeader;
      Arm(options().header_timeout);
    }
    while (buffer_.size() > 0) {
      error_code ec;
      const size_t used = parser_->put(buffer_.data(), ec);
      buffer_.consume(used);
      if (ec == http::error::need_more) break;
      if (ec) {
        OnReadError(ec);
        return;
      }
      if (state_ == State::kReadingHeader && parser_->is_header_done() && !OnHeader()) return;
      if (parser_->is_done()) {
        Dispatch();
        return;
      }
      if (used == 0) break;
    }
    if (peer_gone_) {  // the client left in the middle of a request
      Close();
      return;
    }
    WantBytes();
  }

  // The header is in. False: stop parsing (answered, or 100 Continue first).
  bool OnHeader() {
    state_ = State::kReadingBody;
    int fields = 0;
    for (auto it = parser_->get().begin(); it != parser_->get().end(); ++it) ++fields;
    if (fields > options().max_headers) {
      SendServerError(431, 8, absl::StrCat("more than ", options().max_headers, " header fields"));
      return false;
    }
    if (parser_->is_done()) return true;
    const auto expect = parser_->get().find(http::field::expect);
    if (expect != parser_->get().end() &&
        beast::iequals(expect->value(), std::string_view("100-continue"))) {
      continue_buffer_ = "HTTP/1.1 100 Continue\r\n\r\n";
      Arm(options().write_timeout);
      asio::async_write(socket_, asio::buffer(continue_buffer_),
                        [self = shared_from_this()](const error_code& ec, size_t) {
                          if (ec || self->closed_) {
                            self->Close();
                            return;
                          }
                          self->Arm(self->options().body_timeout);
                          self->Parse();
                        });
      return false;
    }
    Arm(options().body_timeout);
    return true;
  }

  void OnReadError(const error_code& ec) {
    if (closed_) return;
    if (ec == http::error::header_limit) {
      SendServerError(431, 8,
                      absl::StrCat("request headers exceed ", options().max_header_bytes, " bytes"));
    } else if (ec == http::error::body_limit) {
      SendServerError(413, 8,
                      absl::StrCat("request body exceeds ", options().max_body_bytes, " bytes"));
    } else if (ec == http::error::end_of_stream || ec == asio::error::eof ||
               ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
               ec == http::error::partial_message) {
      Close();  // the client left, or was too slow (the timer closed the socket)
    } else if (&ec.category() == &http::make_error_code(http::error::bad_target).category()) {
      SendServerError(400, 3, absl::StrCat("malformed HTTP request: ", ec.message()));
    } else {
      Close();
    }
  }

  void SendServerError(int http_status, int grpc_code, absl::string_view message) {
    HttpResponse r = server_->handler_->ServerError(http_status, grpc_code, message);
    keep_alive_ = false;  // the rest of the stream cannot be trusted
    state_ = State::kHandling;
    DoRespond(std::move(r));
  }

  void Dispatch() {
    Disarm();
    state_ = State::kHandling;
    HttpRequest request = parser_->release();
    keep_alive_ = request.keep_alive();
    chunked_ = request.version() >= 11;
    streaming_ = false;
    finishing_ = false;
    server_->active_exchanges_.fetch_add(1, std::memory_order_relaxed);
    auto exchange = std::make_shared<HttpExchange>(shared_from_this(), std::move(request), peer_);
    server_->handler_->Handle(std::move(exchange));
  }

  void Flush() {
    if (write_in_flight_ || closed_) return;
    if (out_.empty()) {
      if (finishing_) FinishExchange();
      return;
    }
    // Most responses fit in the socket's buffer: written at once, they need
    // no trip through the event loop. What does not fit goes out
    // asynchronously.
    error_code ec;
    const size_t n = socket_.write_some(asio::buffer(out_), ec);
    if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
      Close();
      return;
    }
    if (!ec && n == out_.size()) {
      out_.clear();
      auto callbacks = std::move(pending_callbacks_);
      pending_callbacks_.clear();
      for (auto& cb : callbacks) cb(true);  // they post, never write here
      if (closed_ || !finishing_) return;
      if (buffer_.size() > 0) {
        // A pipelined request: handled from the loop, not inside the
        // handler that answered this one.
        asio::post(worker_->ioc, [self = shared_from_this()] {
          if (!self->closed_ && self->finishing_ && !self->write_in_flight_ && self->out_.empty()) {
            self->FinishExchange();
          }
        });
        return;
      }
      FinishExchange();
      return;
    }
    if (!ec) out_.erase(0, n);
    writing_.swap(out_);
    out_.clear();
    inflight_callbacks_.swap(pending_callbacks_);
    write_in_flight_ = true;
    Arm(options().write_timeout);
    asio::async_write(socket_, asio::buffer(writing_),
                      [self = shared_from_this()](const error_code& ec, size_t) {
                        self->write_in_flight_ = false;
                        self->writing_.clear();
                        if (ec || self->closed_) {
                          self->Close();
                          return;
                        }
                        self->Disarm();
                        auto callbacks = std::move(self->inflight_callbacks_);
                        self->inflight_callbacks_.clear();
                        for (auto& cb : callbacks) cb(true);
                        self->Flush();
                      });
  }

  void FinishExchange() {
    finishing_ = false;
    streaming_ = false;
    on_client_gone_ = nullptr;
    if (!keep_alive_) {
      error_code ec;
      socket_.shutdown(tcp::socket::shutdown_send, ec);
      Close();
      return;
    }
    ReadRequest();
  }

  tcp::socket socket_;
  static constexpr std::chrono::steady_clock::time_point kNoDeadline =
      std::chrono::steady_clock::time_point::max();
  asio::steady_timer timer_;
  std::chrono::steady_clock::time_point deadline_ = kNoDeadline;
  bool timer_set_ = false;
  IoWorker* worker_;
  HttpServer::Impl* server_;
  std::string peer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  State state_ = State::kIdle;
  bool closed_ = false;
  bool keep_alive_ = true;
  bool chunked_ = true;
  bool streaming_ = false;
  bool finishing_ = false;  // the exchange ends once `out_` is written
  bool read_in_flight_ = false;
  bool peer_gone_ = false;       // the client closed (or reset) the connection
  bool write_in_flight_ = false;
  std::string out_;      // queued, not yet written
  std::string writing_;  // being written
  std::string continue_buffer_;
  std::vector<std::function<void(bool)>> pending_callbacks_;   // for bytes in out_
  std::vector<std::function<void(bool)>> inflight_callbacks_;  // for bytes in writing_
  std::function<void()> on_client_gone_;
};

// ---- HttpExchange ----------------------------------------------------------

HttpExchange::HttpExchange(std::shared_ptr<Connection> connection, HttpRequest request,
                           std::string peer)
    : connection_(std::move(connection)),
      request_(std::move(request)),
      peer_(std::move(peer)),
      start_(std::chrono::steady_clock::now()) {}

HttpExchange::~HttpExchange() {
  connection_->ExchangeDestroyed();
  if (!answered_.exchange(true)) {
    // A handler lost the exchange: never leave the client hanging.
    HttpResponse r;
    r.status = 500;
    r.headers = {{"Content-Type", "application/json"}};
    r.body = R"({"code":13,"message":"the gateway dropped this request","details":[]})";
    asio::post(connection_->ioc(),
               [c = connection_, r = std::move(r)]() mutable { c->DoRespond(std::move(r)); });
  }
}

boost::asio::io_context& HttpExchange::io_context() const { return connection_->ioc(); }

// These two run at once when called on the connection's thread (the
// handler's usual case: a unary call completes on that thread's loop), and
// are posted to it otherwise.
void HttpExchange::OnClientGone(std::function<void()> on_client_gone) {
  asio::dispatch(connection_->ioc(), [c = connection_, cb = std::move(on_client_gone)]() mutable {
    c->DoWatch(std::move(cb));
  });
}

void HttpExchange::Respond(HttpResponse response) {
  if (answered_.exchange(true)) return;
  asio::dispatch(connection_->ioc(), [c = connection_, r = std::move(response)]() mutable {
    c->DoRespond(std::move(r));
  });
}

void HttpExchange::StartStream(HttpResponse head, std::function<void()> on_client_gone) {
  if (answered_.exchange(true)) return;
  asio::post(connection_->ioc(), [c = connection_, h = std::move(head),
                                  cb = std::move(on_client_gone)]() mutable {
    c->DoStartStream(std::move(h), std::move(cb));
  });
}

void HttpExchange::WriteChunk(std::string data, std::function<void(bool ok)> done) {
  asio::post(connection_->ioc(), [c = connection_, d = std::move(data),
                                  cb = std::move(done)]() mutable {
    c->DoWriteChunk(std::move(d), std::move(cb));
  });
}

void HttpExchange::EndStream() {
  asio::post(connection_->ioc(), [c = connection_] { c->DoEndStream(); });
}

// ---- HttpServer ------------------------------------------------------------

HttpServer::HttpServer(HttpServerOptions options, HttpHandler* handler)
    : impl_(std::make_unique<Impl>(std::move(options), handler)) {}

HttpServer::~HttpServer() {
  if (impl_->running_) Shutdown(absl::ZeroDuration(), [] {});
}

absl::Status HttpServer::Start() {
  const std::string& listen = impl_->options_.listen;
  const size_t colon = listen.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("'", listen, "' is not HOST:PORT"));
  }
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  error_code ec;
  const asio::ip::address address = asio::ip::make_address(host.empty() ? "0.0.0.0" : host, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("'", host, "' is not an IP address"));

  const int threads = std::max(1, std::min(64, impl_->options_.io_threads));
  for (int i = 0; i < threads; ++i) impl_->workers_.push_back(std::make_unique<IoWorker>());
  impl_->acceptor_ = std::make_unique<tcp::acceptor>(impl_->workers_[0]->ioc);
  const tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
  impl_->acceptor_->open(endpoint.protocol(), ec);
  if (!ec) impl_->acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl_->acceptor_->bind(endpoint, ec);
  if (!ec) impl_->acceptor_->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", listen, ": ", ec.message()));
  }
  port_ = impl_->acceptor_->local_endpoint().port();
  impl_->Accept();
  for (int i = 0; i < threads; ++i) {
    IoWorker* w = impl_->workers_[i].get();
    impl_->guards_[i].emplace(asio::make_work_guard(w->ioc));
    w->thread = std::thread([w] { w->ioc.run(); });
  }
  impl_->running_ = true;
  return absl::OkStatus();
}

void HttpServer::Impl::Accept() {
  IoWorker* target = workers_[next_worker_++ % workers_.size()].get();
  acceptor_->async_accept(target->ioc, [this, target](const error_code& ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_->is_open()) return;
    if (!ec) {
      if (connections_.load(std::memory_order_relaxed) >= options_.max_connections || draining_) {
        error_code ignored;
        socket.close(ignored);
      } else {
        connections_.fetch_add(1, std::memory_order_relaxed);
        error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        auto connection = std::make_shared<Connection>(std::move(socket), target, this);
        asio::post(target->ioc, [connection] { connection->Start(); });
      }
    }
    Accept();
  });
}

void HttpServer::Shutdown(absl::Duration grace, const std::function<void()>& cancel_in_flight) {
  if (!impl_->running_) return;
  impl_->draining_ = true;
  asio::post(impl_->workers_[0]->ioc, [this] {
    error_code ec;
    impl_->acceptor_->close(ec);
  });
  for (auto& w : impl_->workers_) {
    asio::post(w->ioc, [w = w.get()] {
      std::vector<Connection*> all(w->connections.begin(), w->connections.end());
      for (Connection* c : all) c->DoDrain();
    });
  }
  auto wait_idle = [this](absl::Duration limit) {
    const absl::Time deadline = absl::Now() + limit;
    while (impl_->active_exchanges_.load() > 0 && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(10));
    }
  };
  wait_idle(grace);
  if (impl_->active_exchanges_.load() > 0) {
    cancel_in_flight();
    wait_idle(absl::Seconds(2));
  }
  // Close whatever is left, then stop the threads.
  for (auto& w : impl_->workers_) {
    asio::post(w->ioc, [w = w.get()] {
      std::vector<Connection*> all(w->connections.begin(), w->connections.end());
      for (Connection* c : all) c->Close();
    });
  }
  // Handlers posted so far (the closes above) run; then the loops stop.
  // (Other work on them, such as upstream connections, never runs out by
  // itself, so waiting for the loops to go idle would take the full 2 s.)
  auto passed = std::make_shared<std::atomic<int>>(0);
  for (auto& w : impl_->workers_) asio::post(w->ioc, [passed] { passed->fetch_add(1); });
  for (size_t i = 0; i < impl_->workers_.size(); ++i) impl_->guards_[i].reset();
  const absl::Time deadline = absl::Now() + absl::Seconds(2);
  while (passed->load() < static_cast<int>(impl_->workers_.size()) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(2));
  }
  for (auto& w : impl_->workers_) {
    w->ioc.stop();
    if (w->thread.joinable()) w->thread.join();
  }
  impl_->running_ = false;
}

bool HttpServer::draining() const { return impl_->draining_; }
int HttpServer::active_exchanges() const { return impl_->active_exchanges_.load(); }
int HttpServer::open_connections() const { return impl_->connections_.load(); }

}  // namespace taskmesh::gateway
