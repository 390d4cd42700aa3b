#include "api_gateway/gateway.h"

#include <algorithm>
#include <random>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"

namespace taskmesh::gateway {

namespace http = boost::beast::http;

struct Gateway::CallContext {
  std::string request_id;
  std::string cors_origin;  // echoed back when the origin is allowed
  int metric_route = 0;
  std::string method;
  std::string path;
};

namespace {

constexpr absl::string_view kJson = "application/json";

std::string NewRequestId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return absl::StrCat(absl::Hex(rng(), absl::kZeroPad16), absl::Hex(rng(), absl::kZeroPad16));
}

bool ValidRequestId(absl::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

absl::string_view Header(const HttpRequest& request, absl::string_view name) {
  auto it = request.find(std::string_view(name.data(), name.size()));
  if (it == request.end()) return {};
  const std::string_view v = it->value();
  return absl::string_view(v.data(), v.size());
}

// gRPC's timeout header: 1-8 digits and a unit (H, M, S, m, u, n).
bool ParseGrpcTimeout(absl::string_view v, absl::Duration* out) {
  if (v.size() < 2 || v.size() > 9) return false;
  int64_t n;
  if (!absl::SimpleAtoi(v.substr(0, v.size() - 1), &n) || n < 0) return false;
  switch (v.back()) {
    case 'H': *out = absl::Hours(n); return true;
    case 'M': *out = absl::Minutes(n); return true;
    case 'S': *out = absl::Seconds(n); return true;
    case 'm': *out = absl::Milliseconds(n); return true;
    case 'u': *out = absl::Microseconds(n); return true;
    case 'n': *out = absl::Nanoseconds(n); return true;
    default: return false;
  }
}

bool ValidMetadataKey(absl::string_view key) {
  if (key.empty()) return false;
  for (char c : key) {
    if (!(absl::ascii_isdigit(static_cast<unsigned char>(c)) || (c >= 'a' && c <= 'z') ||
          c == '-' || c == '_' || c == '.')) {
      return false;
    }
  }
  return !absl::StartsWith(key, "grpc-") && key != "te" && key != "content-type" &&
         key != "user-agent" && key != "host" && key != "connection";
}

bool ValidMetadataValue(absl::string_view value) {
  for (char c : value) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

bool IsJsonContentType(absl::string_view ct) {
  const size_t semi = ct.find(';');
  absl::string_view type = absl::StripAsciiWhitespace(ct.substr(0, semi));
  return absl::EqualsIgnoreCase(type, "application/json") ||
         (absl::StartsWithIgnoreCase(type, "application/") && absl::EndsWithIgnoreCase(type, "+json"));
}

void AppendMetadataHeaders(const Metadata& md, HttpResponse* r) {
  for (const auto& [key, value] : md) {
    if (absl::StartsWith(key, "grpc-")) continue;  // gRPC's own (status, details)
    const std::string name = absl::StrCat("Grpc-Metadata-", key);
    if (absl::EndsWith(key, "-bin")) {
      r->headers.emplace_back(name, absl::Base64Escape(value));
    } else if (ValidMetadataValue(value)) {
      r->headers.emplace_back(name, value);
    }
  }
}

}  // namespace

// Bridges one upstream server stream to one HTTP response (NDJSON or SSE).
// Deleted in OnDone(). Runs on the connection's I/O thread, as does the
// upstream call. The client-gone hook holds only the call's handle, which
// may be cancelled at any time, even after the call.
class StreamBridge final : public StreamObserver {
 public:
  StreamBridge(Gateway* gateway, std::shared_ptr<HttpExchange> exchange, const Route* route,
               Gateway::CallContext call, StreamFormat format)
      : gateway_(gateway),
        exchange_(std::move(exchange)),
        route_(route),
        call_(std::move(call)),
        format_(format) {}

  void Start(CallOptions options, std::string request) {
    call_handle_ = gateway_->upstream_->StartServerStream(
        exchange_->io_context(), *route_, std::move(options), std::move(request), this);
  }

  void OnMessage(ServerStream* stream, std::string message) override {
    std::string json;
    absl::Status s = gateway_->response_translator_.ToJson(*route_, message, &json);
    if (!s.ok()) {
      failure_ = s;
      stream->Abandon();
      return;
    }
    std::string frame;
    ResponseTranslator::AppendStreamMessage(format_, json, &frame);
    if (!started_) {
      started_ = true;
      HttpResponse head;
      head.status = 200;
      if (format_ == StreamFormat::kSse) {
        head.headers = {{"Content-Type", "text/event-stream"},
                        {"Cache-Control", "no-cache"},
                        {"X-Accel-Buffering", "no"}};
      } else {
        head.headers = {{"Content-Type", "application/x-ndjson"}};
      }
      gateway_->AddCommonHeaders(call_, &head);
      exchange_->StartStream(std::move(head), [handle = call_handle_] { handle->Cancel(); });
    }
    gateway_->metrics_.StreamMessage(route_->id);
    exchange_->WriteChunk(std::move(frame), [stream](bool ok) {
      if (ok) {
        stream->ReadNext();
      } else {
        stream->Abandon();  // the client is gone
      }
    });
  }

  void OnDone(const RpcStatus& status, const ResponseMetadata& metadata) override {
    int code = status.code;
    std::string message = status.message;
    std::string details = status.details;
    if (!failure_.ok()) {
      code = static_cast<int>(failure_.code());
      message = std::string(failure_.message());
      details.clear();
    }
    int http_status = 200;
    if (!started_) {
      // Nothing streamed yet: a plain response says it best.
      HttpResponse r;
      if (code == 0) {
        r.status = 200;
        r.headers = {{"Content-Type", format_ == StreamFormat::kSse ? "text/event-stream"
                                                                    : "application/x-ndjson"}};
        gateway_->AddCommonHeaders(call_, &r);
      } else {
        r = gateway_->ErrorResponse(call_, HttpStatusFromGrpc(code), code, message, details);
      }
      AppendMetadataHeaders(metadata.initial, &r);
      AppendMetadataHeaders(metadata.trailing, &r);
      http_status = r.status;
      gateway_->Finish(exchange_, call_, std::move(r));
    } else {
      if (code != 0) {
        // Never let a failed stream end like a clean one.
        std::string frame;
        ResponseTranslator::AppendStreamError(
            format_, gateway_->response_translator_.StatusJson(code, message, details), &frame);
        exchange_->WriteChunk(std::move(frame), nullptr);
        http_status = HttpStatusFromGrpc(code);
      }
      exchange_->EndStream();
      gateway_->metrics_.Record(route_->id, http_status,
                                absl::FromChrono(std::chrono::steady_clock::now() -
                                                 exchange_->start_time()));
      gateway_->metrics_.RequestFinished();
      if (gateway_->options_.access_log) {
        log::Info("request", {{"method", call_.method},
                              {"path", call_.path},
                              {"status", absl::StrCat(200)},
                              {"grpc_code", GrpcCodeName(code)},
                              {"request_id", call_.request_id}});
      }
    }
    delete this;
  }

 private:
  Gateway* gateway_;
  std::shared_ptr<HttpExchange> exchange_;
  const Route* route_;
  Gateway::CallContext call_;
  StreamFormat format_;
  std::shared_ptr<UpstreamCall> call_handle_;
  bool started_ = false;
  absl::Status failure_;       // a message we could not render
};

Gateway::Gateway(std::shared_ptr<const RouteTable> table, const ApiDescriptors* api,
                 Upstream* upstream, GatewayOptions options)
    : table_(std::move(table)),
      api_(api),
      upstream_(upstream),
      options_(std::move(options)),
      request_translator_(api, options_.request),
      response_translator_(api, options_.response),
      metrics_([&] {
        std::vector<std::string> labels;
        for (const Route& r : table_->routes()) labels.push_back(r.label);
        return labels;
      }()),
      openapi_(BuildOpenApi(*table_, options_.openapi)) {}

Gateway::~Gateway() = default;

bool Gateway::OriginAllowed(absl::string_view origin) const {
  for (const std::string& allowed : options_.cors_origins) {
    if (allowed == "*" || absl::EqualsIgnoreCase(allowed, origin)) return true;
  }
  return false;
}

void Gateway::AddCommonHeaders(const CallContext& call, HttpResponse* r) const {
  r->headers.emplace_back("X-Request-Id", call.request_id);
  if (!call.cors_origin.empty()) {
    r->headers.emplace_back("Access-Control-Allow-Origin", call.cors_origin);
    r->headers.emplace_back("Access-Control-Expose-Headers", "*");
    r->headers.emplace_back("Vary", "Origin");
  }
}

HttpResponse Gateway::ErrorResponse(const CallContext& call, int http_status, int grpc_code,
                                    absl::string_view message, absl::string_view details) const {
  HttpResponse r;
  r.status = http_status;
  r.headers.emplace_back("Content-Type", std::string(kJson));
  AddCommonHeaders(call, &r);
  r.body = response_translator_.StatusJson(grpc_code, message, details);
  return r;
}

HttpResponse Gateway::ServerError(int http_status, int grpc_code, absl::string_view message) {
  CallContext call;
  call.request_id = NewRequestId();
  metrics_.Record(metrics_.rejected(), http_status, absl::ZeroDuration());
  HttpResponse r = ErrorResponse(call, http_status, grpc_code, message);
  r.close_connection = true;
  return r;
}

void Gateway::Finish(const std::shared_ptr<HttpExchange>& exchange, const CallContext& call,
                     HttpResponse response) {
  const absl::Duration latency =
      absl::FromChrono(std::chrono::steady_clock::now() - exchange->start_time());
  metrics_.Record(call.metric_route, response.status, latency);
  metrics_.RequestFinished();
  if (options_.access_log) {
    log::Info("request", {{"method", call.method},
                          {"path", call.path},
                          {"status", absl::StrCat(response.status)},
                          {"duration_ms", absl::StrCat(absl::ToDoubleMilliseconds(latency))},
                          {"request_id", call.request_id}});
  }
  exchange->Respond(std::move(response));
}

void Gateway::Handle(std::shared_ptr<HttpExchange> exchange) {
  metrics_.RequestStarted();
  const HttpRequest& req = exchange->request();
  const std::string_view target = req.target();
  const size_t q = target.find('?');
  const absl::string_view path(target.data(), std::min(q, target.size()));
  const absl::string_view query =
      q == std::string_view::npos ? absl::string_view()
                                  : absl::string_view(target.data() + q + 1, target.size() - q - 1);
  const std::string_view method_sv = req.method_string();
  const absl::string_view method(method_sv.data(), method_sv.size());

  CallContext call;
  const absl::string_view incoming_id = Header(req, "X-Request-Id");
  call.request_id = ValidRequestId(incoming_id) ? std::string(incoming_id) : NewRequestId();
  const absl::string_view origin = Header(req, "Origin");
  if (!origin.empty() && OriginAllowed(origin)) call.cors_origin = std::string(origin);
  if (options_.access_log) {
    call.method = std::string(method);
    call.path = std::string(path);
  }
  call.metric_route = metrics_.unmatched();

  if (path == "/healthz" || path == "/readyz" || path == "/metrics" || path == "/openapi.json") {
    call.metric_route = metrics_.builtin();
    HandleBuiltin(std::move(exchange), &call, path);
    return;
  }
  if (method == "OPTIONS" && !Header(req, "Access-Control-Request-Method").empty()) {
    call.metric_route = metrics_.builtin();
    Preflight(std::move(exchange), &call, path);
    return;
  }

  RouteTable::Match match = table_->Lookup(method, path);
  switch (match.outcome) {
    case PathMatcher::Outcome::kMatched:
      break;
    case PathMatcher::Outcome::kBadPath:
      Finish(exchange, call, ErrorResponse(call, 400, 3, match.error));
      return;
    case PathMatcher::Outcome::kNotFound:
      Finish(exchange, call,
             ErrorResponse(call, 404, 5, absl::StrCat("no route for ", method, " ", path)));
      return;
    case PathMatcher::Outcome::kMethodNotAllowed: {
      HttpResponse r = ErrorResponse(
          call, 405, 12,
          absl::StrCat("method ", method, " is not allowed for ", path, "; allowed: ",
                       absl::StrJoin(match.allowed_methods, ", ")));
      r.headers.emplace_back("Allow", absl::StrJoin(match.allowed_methods, ", "));
      Finish(exchange, call, std::move(r));
      return;
    }
  }
  const Route& route = *match.route;
  call.metric_route = route.id;

  const std::string& body = req.body();
  if (!route.body.empty() && body.find_first_not_of(" \t\r\n") != std::string::npos) {
    const absl::string_view ct = Header(req, "Content-Type");
    if (!IsJsonContentType(ct)) {
      Finish(exchange, call,
             ErrorResponse(call, 415, 3,
                           absl::StrCat("unsupported content type '", ct,
                                        "': the body must be application/json")));
      return;
    }
  }

  absl::StatusOr<std::string> request_bytes =
      request_translator_.Translate(route, match.variable_values, query, body);
  if (!request_bytes.ok()) {
    Finish(exchange, call,
           ErrorResponse(call, 400, static_cast<int>(request_bytes.status().code()),
                         request_bytes.status().message()));
    return;
  }

  // The deadline: a requested timeout, capped; else the default.
  absl::Duration timeout = route.server_streaming ? options_.max_deadline : options_.default_deadline;
  const absl::string_view grpc_timeout = Header(req, "Grpc-Timeout");
  const absl::string_view timeout_ms = Header(req, "X-Timeout-Ms");
  if (!grpc_timeout.empty()) {
    if (!ParseGrpcTimeout(grpc_timeout, &timeout)) {
      Finish(exchange, call, ErrorResponse(call, 400, 3,
                                           absl::StrCat("malformed Grpc-Timeout '", grpc_timeout,
                                                        "' (e.g. 500m, 2S)")));
      return;
    }
  } else if (!timeout_ms.empty()) {
    int64_t ms;
    if (!absl::SimpleAtoi(timeout_ms, &ms) || ms < 0) {
      Finish(exchange, call, ErrorResponse(call, 400, 3,
                                           absl::StrCat("malformed X-Timeout-Ms '", timeout_ms,
                                                        "' (milliseconds)")));
      return;
    }
    timeout = absl::Milliseconds(ms);
  }
  timeout = std::min(timeout, options_.max_deadline);

  if (upstream_->in_flight() >= options_.max_concurrent_calls) {
    HttpResponse r = ErrorResponse(
        call, 429, 8,
        absl::StrCat("the gateway has ", options_.max_concurrent_calls,
                     " upstream calls in flight; retry later"));
    r.headers.emplace_back("Retry-After", "1");
    Finish(exchange, call, std::move(r));
    return;
  }

  CallOptions options;
  options.timeout = timeout;
  Metadata& metadata = options.metadata;
  const absl::string_view authorization = Header(req, "Authorization");
  if (!authorization.empty()) {
    if (!ValidMetadataValue(authorization)) {
      Finish(exchange, call, ErrorResponse(call, 400, 3, "malformed Authorization header"));
      return;
    }
    metadata.emplace_back("authorization", std::string(authorization));
  }
  for (const auto& field : req) {
    const std::string_view name_sv = field.name_string();
    const absl::string_view name(name_sv.data(), name_sv.size());
    if (name.size() <= 14 || !absl::StartsWithIgnoreCase(name, "Grpc-Metadata-")) continue;
    const std::string key = absl::AsciiStrToLower(name.substr(14));
    const std::string_view value_sv = field.value();
    const absl::string_view value(value_sv.data(), value_sv.size());
    if (!ValidMetadataKey(key)) {
      Finish(exchange, call, ErrorResponse(call, 400, 3,
                                           absl::StrCat("header '", name,
                                                        "' names a reserved or malformed key")));
      return;
    }
    if (absl::EndsWith(key, "-bin")) {
      std::string decoded;
      if (!absl::Base64Unescape(value, &decoded) && !absl::WebSafeBase64Unescape(value, &decoded)) {
        Finish(exchange, call, ErrorResponse(call, 400, 3,
                                             absl::StrCat("header '", name, "' is not base64")));
        return;
      }
      metadata.emplace_back(key, std::move(decoded));
    } else {
      if (!ValidMetadataValue(value)) {
        Finish(exchange, call, ErrorResponse(call, 400, 3,
                                             absl::StrCat("header '", name,
                                                          "' holds a non-printable character")));
        return;
      }
      metadata.emplace_back(key, std::string(value));
    }
  }
  metadata.emplace_back("x-request-id", call.request_id);
  const absl::string_view forwarded = Header(req, "X-Forwarded-For");
  if (!forwarded.empty() && ValidMetadataValue(forwarded)) {
    metadata.emplace_back("x-forwarded-for", absl::StrCat(forwarded, ", ", exchange->peer()));
  } else {
    metadata.emplace_back("x-forwarded-for", exchange->peer());
  }

  if (route.server_streaming) {
    const StreamFormat format = absl::StrContains(Header(req, "Accept"), "text/event-stream")
                                    ? StreamFormat::kSse
                                    : StreamFormat::kNdjson;
    auto* bridge = new StreamBridge(this, std::move(exchange), &route, std::move(call), format);
    bridge->Start(std::move(options), *std::move(request_bytes));
    return;
  }

  // The call and its completion run on this thread's event loop; a client
  // that leaves meanwhile cancels the call (RST_STREAM).
  HttpExchange& ex = *exchange;
  std::shared_ptr<UpstreamCall> handle = upstream_->CallUnary(
      ex.io_context(), route, std::move(options), *std::move(request_bytes),
      [this, exchange = std::move(exchange), route = &route, call = std::move(call)](
          const RpcStatus& status, std::string reply, const ResponseMetadata& md) mutable {
        HttpResponse r;
        if (status.ok()) {
          absl::Status s = response_translator_.ToJson(*route, reply, &r.body);
          if (s.ok()) {
            r.status = 200;
            r.headers.emplace_back("Content-Type", std::string(kJson));
            AddCommonHeaders(call, &r);
          } else {
            r = ErrorResponse(call, 500, 13, s.message());
          }
        } else {
          r = ErrorResponse(call, HttpStatusFromGrpc(status.code), status.code, status.message,
                            status.details);
        }
        AppendMetadataHeaders(md.initial, &r);
        AppendMetadataHeaders(md.trailing, &r);
        Finish(exchange, call, std::move(r));
      });
  ex.OnClientGone([handle = std::move(handle)] { handle->Cancel(); });
}

void Gateway::HandleBuiltin(std::shared_ptr<HttpExchange> exchange, CallContext* call,
                            absl::string_view path) {
  const std::string_view method = exchange->request().method_string();
  if (method != "GET") {
    HttpResponse r = ErrorResponse(*call, 405, 12, absl::StrCat(path, " answers GET only"));
    r.headers.emplace_back("Allow", "GET");
    Finish(exchange, *call, std::move(r));
    return;
  }
  HttpResponse r;
  r.status = 200;
  if (path == "/healthz") {
    r.headers.emplace_back("Content-Type", std::string(kJson));
    r.body = R"({"status":"SERVING"})";
  } else if (path == "/metrics") {
    r.headers.emplace_back("Content-Type", "text/plain; version=0.0.4");
    r.body = metrics_.Render(upstream_->in_flight(),
                             server_ != nullptr ? server_->open_connections() : 0);
  } else if (path == "/openapi.json") {
    r.headers.emplace_back("Content-Type", std::string(kJson));
    r.body = openapi_;
  } else {  // /readyz
    if (server_ != nullptr && server_->draining()) {
      Finish(exchange, *call, ErrorResponse(*call, 503, 14, "the gateway is shutting down"));
      return;
    }
    upstream_->CheckHealth(exchange->io_context(), options_.readiness_timeout,
                           [this, exchange, call = *call](bool ok, std::string detail) {
                             if (!ok) {
                               Finish(exchange, call,
                                      ErrorResponse(call, 503, 14,
                                                    absl::StrCat("upstream not ready: ", detail)));
                               return;
                             }
                             HttpResponse ready;
                             ready.status = 200;
                             ready.headers.emplace_back("Content-Type", std::string(kJson));
                             AddCommonHeaders(call, &ready);
                             ready.body = R"({"status":"SERVING"})";
                             Finish(exchange, call, std::move(ready));
                           });
    return;
  }
  AddCommonHeaders(*call, &r);
  Finish(exchange, *call, std::move(r));
}

void Gateway::Preflight(std::shared_ptr<HttpExchange> exchange, CallContext* call,
                        absl::string_view path) {
  const HttpRequest& req = exchange->request();
  const absl::string_view origin = Header(req, "Origin");
  if (call->cors_origin.empty()) {
    Finish(exchange, *call,
           ErrorResponse(*call, 403, 7,
                         absl::StrCat("CORS: origin '", origin, "' is not allowed")));
    return;
  }
  const absl::string_view requested = Header(req, "Access-Control-Request-Method");
  RouteTable::Match match = table_->Lookup(requested, path);
  if (match.outcome != PathMatcher::Outcome::kMatched) {
    Finish(exchange, *call,
           ErrorResponse(*call, 404, 5,
                         absl::StrCat("CORS: no route for ", requested, " ", path)));
    return;
  }
  HttpResponse r;
  r.status = 204;
  AddCommonHeaders(*call, &r);
  r.headers.emplace_back("Access-Control-Allow-Methods", std::string(requested));
  const absl::string_view headers = Header(req, "Access-Control-Request-Headers");
  r.headers.emplace_back("Access-Control-Allow-Headers",
                         headers.empty() ? "Authorization, Content-Type, X-Request-Id, "
                                           "Grpc-Timeout, X-Timeout-Ms"
                                         : std::string(headers));
  r.headers.emplace_back("Access-Control-Max-Age",
                         absl::StrCat(absl::ToInt64Seconds(options_.cors_max_age)));
  Finish(exchange, *call, std::move(r));
}

}  // namespace taskmesh::gateway
