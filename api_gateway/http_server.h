// HttpServer: an asynchronous HTTP/1.1 server on Boost.Asio, parsing with
// Boost.Beast, with keep-alive, one I/O thread (and io_context) per core,
// and limits against slow or oversized clients. No thread ever blocks on a
// request: a handler answers whenever it likes, from any thread.
//
// What the server does itself, before a handler sees anything:
//   - header section larger than max_header_bytes or more than max_headers
//     fields: 431; body larger than max_body_bytes: 413 (before reading it
//     when Content-Length says so); malformed HTTP: 400. Each closes the
//     connection, answering through HttpHandler::ServerError().
//   - idle_timeout: a keep-alive connection with no request is closed;
//     header_timeout / body_timeout: a request whose headers / body do not
//     arrive in time is dropped (slowloris); write_timeout: a client that
//     does not read its response in time is dropped.
//   - max_connections: connections beyond it are closed at once.
//   - `Expect: 100-continue` is answered.
// Responses get Date, Content-Length (or chunked encoding for streams) and
// Connection headers from the server.
//
// Threading: each connection lives on one I/O thread. HttpExchange methods
// may be called from any thread; they post to the connection's thread
// (Respond and OnClientGone, called on that thread, run at once).
// Handle() runs on that thread, whose io_context a handler may use for its
// own asynchronous work (the gateway's upstream calls run there).
//
// Example:
//   class Hello : public HttpHandler {
//     void Handle(std::shared_ptr<HttpExchange> ex) override {
//       ex->Respond({200, {{"Content-Type", "text/plain"}}, "hello"});
//     }
//     ...
//   };
//   HttpServer server(options, &hello);
//   RETURN_IF_ERROR(server.Start());
//   ...
//   server.Shutdown(absl::Seconds(10), [] {});
#ifndef TASKMESH_API_GATEWAY_HTTP_SERVER_H_
#define TASKMESH_API_GATEWAY_HTTP_SERVER_H_

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "boost/beast/http/message.hpp"
#include "boost/beast/http/string_body.hpp"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace taskmesh::gateway {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;

struct HttpResponse {
  int status = 200;
  // The server adds Date, Content-Length / Transfer-Encoding and Connection;
  // a header holding CR, LF or NUL is dropped.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // ignored by StartStream()
  bool close_connection = false;
};

class Connection;

// One request and its response. Answer exactly once: Respond(), or
// StartStream() + WriteChunk()* + EndStream(). An exchange destroyed
// unanswered answers 500 itself. Thread-safe.
class HttpExchange {
 public:
  HttpExchange(std::shared_ptr<Connection> connection, HttpRequest request, std::string peer);
  ~HttpExchange();
  HttpExchange(const HttpExchange&) = delete;
  HttpExchange& operator=(const HttpExchange&) = delete;

  const HttpRequest& request() const { return request_; }
  // The client's IP address.
  const std::string& peer() const { return peer_; }
  std::chrono::steady_clock::time_point start_time() const { return start_; }
  // The event loop of the connection's I/O thread (the thread Handle() runs on).
  boost::asio::io_context& io_context() const;

  // Before answering: `on_client_gone` runs (on the I/O thread) if the
  // client closes the connection while the request is being handled. Not
  // after the response is complete.
  void OnClientGone(std::function<void()> on_client_gone);

  void Respond(HttpResponse response);

  // Sends the status line and headers; the body follows in chunks
  // (`Transfer-Encoding: chunked`). The server then watches the connection:
  // if the client goes away, `on_client_gone` runs (on the I/O thread).
  void StartStream(HttpResponse head, std::function<void()> on_client_gone);
  // Sends one chunk; `done(ok)` runs on the I/O thread once it is written
  // (ok) or can never be (the client is gone). One chunk may be queued
  // while another is being written.
  void WriteChunk(std::string data, std::function<void(bool ok)> done);
  // Ends the body (the terminating chunk); the connection goes on with the
  // next request if keep-alive allows.
  void EndStream();

 private:
  std::shared_ptr<Connection> connection_;
  const HttpRequest request_;
  const std::string peer_;
  const std::chrono::steady_clock::time_point start_;
  std::atomic<bool> answered_{false};
};

class HttpHandler {
 public:
  virtual ~HttpHandler() = default;
  // Runs on an I/O thread and must not block; answers through `exchange`,
  // now or later, from any thread.
  virtual void Handle(std::shared_ptr<HttpExchange> exchange) = 0;
  // The response for an error the server detected itself (431, 413, 400).
  virtual HttpResponse ServerError(int http_status, int grpc_code, absl::string_view message) = 0;
};

struct HttpServerOptions {
  std::string listen = "0.0.0.0:8080";  // HOST:PORT; port 0 picks a free one
  int io_threads = 2;
  size_t max_header_bytes = 60 * 1024;
  int max_headers = 100;
  size_t max_body_bytes = 1 << 20;
  absl::Duration idle_timeout = absl::Seconds(60);
  absl::Duration header_timeout = absl::Seconds(10);
  absl::Duration body_timeout = absl::Seconds(30);
  absl::Duration write_timeout = absl::Seconds(30);
  int max_connections = 10000;
};

class HttpServer {
 public:
  // `handler` must outlive the server.
  HttpServer(HttpServerOptions options, HttpHandler* handler);
  ~HttpServer();  // Shutdown(0) if still running

  // Binds and starts the I/O threads. INVALID_ARGUMENT for a bad address,
  // UNAVAILABLE when it cannot bind.
  absl::Status Start();
  int port() const { return port_; }

  // Stops accepting and closes idle connections; exchanges in progress may
  // finish for `grace`. Then `cancel_in_flight` runs (it should make every
  // pending exchange answer soon, e.g. by cancelling upstream calls), a short
  // while is given for those answers, and everything closes.
  void Shutdown(absl::Duration grace, const std::function<void()>& cancel_in_flight);

  bool draining() const;
  // Exchanges created and not yet destroyed.
  int active_exchanges() const;
  int open_connections() const;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

}  // namespace taskmesh::gateway

#endif  // TASKMESH_API_GATEWAY_HTTP_SERVER_H_
