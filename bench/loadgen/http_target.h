// HttpTarget: an HTTP/1.1 keep-alive client for the Runner (for the
// api_gateway, or any HTTP server on loopback).
//
// `connections` sockets, spread over `threads` epoll loops; each connection
// carries one request at a time (no pipelining, as browsers and most
// clients). Requests beyond the free connections wait in a queue, so
// open-loop latency includes that wait. Responses are framed by
// Content-Length or chunked encoding; a 2xx counts as success, any other
// status as 1000 + status; a broken connection as kTransportError (and the
// connection is reopened).
//
// Thread-safe.
#ifndef TASKMESH_BENCH_LOADGEN_HTTP_TARGET_H_
#define TASKMESH_BENCH_LOADGEN_HTTP_TARGET_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "bench/loadgen/runner.h"

namespace taskmesh::bench {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string method = "GET";
  std::string path = "/";
  std::string body;
  std::vector<std::string> headers;  // "Name: value"
  int connections = 16;
  int threads = 1;
};

class HttpTarget : public Target {
 public:
  explicit HttpTarget(HttpOptions options);
  ~HttpTarget() override;
  // Opens the connections; fails if the server is not there.
  absl::Status Start();
  void Issue(Done done) override;

 private:
  class Loop;
  HttpOptions options_;
  std::string request_;
  std::vector<std::unique_ptr<Loop>> loops_;
  std::atomic<uint64_t> next_{0};
};

}  // namespace taskmesh::bench

#endif  // TASKMESH_BENCH_LOADGEN_HTTP_TARGET_H_
