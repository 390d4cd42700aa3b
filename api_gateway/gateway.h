// Gateway: the HTTP handler that ties the pieces together. For each request
// it serves the built-in endpoints (/healthz, /readyz, /metrics,
// /openapi.json), answers CORS preflights, finds the route, translates the
// request to gRPC bytes, calls the upstream asynchronously with metadata and
// a deadline, and translates the reply (or status) back: a JSON body, an
// NDJSON or SSE stream, or a google.rpc.Status error.
//
// Headers in: Authorization and Grpc-Metadata-* become gRPC metadata;
// X-Request-Id (generated when absent or malformed) and X-Forwarded-For
// (with the client's address appended) are forwarded; Grpc-Timeout or
// X-Timeout-Ms set the deadline, capped by max_deadline.
// Headers out: X-Request-Id, the upstream's metadata as Grpc-Metadata-*,
// CORS headers for allowed origins.
//
// Thread-safe; Handle() never blocks.
//
// Example:
//   Gateway gateway(table, api.get(), upstream.get(), options);
//   HttpServer server(server_options, &gateway);
//   gateway.set_server(&server);
#ifndef TASKMESH_API_GATEWAY_GATEWAY_H_
#define TASKMESH_API_GATEWAY_GATEWAY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "api_gateway/descriptors.h"
#include "api_gateway/http_server.h"
#include "api_gateway/metrics.h"
#include "api_gateway/openapi.h"
#include "api_gateway/request_translator.h"
#include "api_gateway/response_translator.h"
#include "api_gateway/route_table.h"
#include "api_gateway/upstream.h"

namespace taskmesh::gateway {

struct GatewayOptions {
  RequestTranslatorOptions request;
  ResponseTranslatorOptions response;
  // Deadline of a unary call whose request names none.
  absl::Duration default_deadline = absl::Seconds(30);
  // Cap on any requested deadline; also the deadline of a stream whose
  // request names none.
  absl::Duration max_deadline = absl::Hours(1);
  // Upstream calls in flight beyond which requests get 429.
  int max_concurrent_calls = 4096;
  // Origins allowed by CORS ("*": any). Empty: no CORS headers at all.
  std::vector<std::string> cors_origins;
  absl::Duration cors_max_age = absl::Minutes(10);
  // /readyz waits this long for the upstreams' health answers.
  absl::Duration readiness_timeout = absl::Seconds(1);
  // One log line per request.
  bool access_log = false;
  OpenApiInfo openapi;
};

class Gateway : public HttpHandler {
 public:
  // `api` and `upstream` must outlive the gateway.
  Gateway(std::shared_ptr<const RouteTable> table, const ApiDescriptors* api, Upstream* upstream,
          GatewayOptions options);
  ~Gateway() override;

  // For /readyz (draining) and /metrics (connections). Optional.
  void set_server(const HttpServer* server) { server_ = server; }

  void Handle(std::shared_ptr<HttpExchange> exchange) override;
  HttpResponse ServerError(int http_status, int grpc_code, absl::string_view message) override;

  GatewayMetrics& metrics() { return metrics_; }
  const std::string& openapi() const { return openapi_; }

  // Shared with the per-call objects in gateway.cc.
  struct CallContext;

 private:
  void HandleBuiltin(std::shared_ptr<HttpExchange> exchange, CallContext* call,
                     absl::string_view path);
  void Preflight(std::shared_ptr<HttpExchange> exchange, CallContext* call,
                 absl::string_view path);
  void Finish(const std::shared_ptr<HttpExchange>& exchange, const CallContext& call,
              HttpResponse response);
  HttpResponse ErrorResponse(const CallContext& call, int http_status, int grpc_code,
                             absl::string_view message, absl::string_view details = {}) const;
  void AddCommonHeaders(const CallContext& call, HttpResponse* response) const;
  bool OriginAllowed(absl::string_view origin) const;

  const std::shared_ptr<const RouteTable> table_;
  const ApiDescriptors* api_;
  Upstream* upstream_;
  const GatewayOptions options_;
  const RequestTranslator request_translator_;
  const ResponseTranslator response_translator_;
  GatewayMetrics metrics_;
  const std::string openapi_;
  const HttpServer* server_ = nullptr;

  friend class StreamBridge;
};

}  // namespace taskmesh::gateway

#endif  // TASKMESH_API_GATEWAY_GATEWAY_H_
