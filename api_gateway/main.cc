// api_gateway: HTTP/JSON to gRPC transcoding for any gRPC service with
// google.api.http rules (docs/gateway.md).
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "api_gateway/descriptors.h"
#include "api_gateway/gateway.h"
#include "api_gateway/http_server.h"
#include "api_gateway/route_table.h"
#include "api_gateway/taskmesh_descriptor_set.h"
#include "api_gateway/upstream.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/shutdown.h"

ABSL_FLAG(std::string, listen, "0.0.0.0:8080", "HTTP address (HOST:PORT; port 0 picks one)");
ABSL_FLAG(std::string, upstream, "127.0.0.1:50051",
          "gRPC target of every service: HOST:PORT, or dns:///NAME:PORT; a name's calls go "
          "round robin over all its addresses (re-resolved every 30 s and on failures)");
ABSL_FLAG(std::vector<std::string>, route, {},
          "Per-service upstream overrides, comma-separated: package.Service=TARGET,...");
ABSL_FLAG(std::vector<std::string>, descriptor_set, {},
          "Extra FileDescriptorSet files (protoc --include_imports --descriptor_set_out), "
          "comma-separated; their services with google.api.http rules are served too");
ABSL_FLAG(bool, taskmesh_protos, true,
          "Serve the compiled-in taskmesh.v1 API (turn off to serve only --descriptor_set)");
ABSL_FLAG(int32_t, io_threads, 0, "HTTP I/O threads (0: one per core)");
ABSL_FLAG(int32_t, upstream_channels, 0,
          "HTTP/2 connections per upstream address per I/O thread (0: one)");
ABSL_FLAG(absl::Duration, upstream_connect_timeout, absl::Seconds(5),
          "A TCP connect to an upstream address that takes longer fails; its calls move to "
          "another address, or fail with 503");
ABSL_FLAG(int64_t, max_body_bytes, 1 << 20, "Largest request body (413 beyond)");
ABSL_FLAG(int64_t, max_header_bytes, 60 * 1024, "Largest request header section (431 beyond)");
ABSL_FLAG(int32_t, max_headers, 100, "Most request header fields (431 beyond)");
ABSL_FLAG(int32_t, max_json_depth, 64,
          "Deepest JSON body nesting, checked by a linear pre-scan (400 beyond; at most 99)");
ABSL_FLAG(absl::Duration, header_timeout, absl::Seconds(10),
          "Time allowed to receive a request's headers once it has started");
ABSL_FLAG(absl::Duration, body_timeout, absl::Seconds(30), "Time allowed to receive a request body");
ABSL_FLAG(absl::Duration, idle_timeout, absl::Seconds(60),
          "A keep-alive connection with no request for this long is closed");
ABSL_FLAG(absl::Duration, write_timeout, absl::Seconds(30),
          "A client that does not take a response write within this long is dropped");
ABSL_FLAG(absl::Duration, default_deadline, absl::Seconds(30),
          "Deadline of a unary call when the request sets none (Grpc-Timeout, X-Timeout-Ms)");
ABSL_FLAG(absl::Duration, max_deadline, absl::Hours(1),
          "Cap on requested deadlines; also the deadline of a stream that sets none");
ABSL_FLAG(int32_t, max_concurrent_calls, 4096, "Upstream calls in flight beyond which requests get 429");
ABSL_FLAG(int32_t, max_connections, 10000, "Open client connections beyond which new ones are closed");
ABSL_FLAG(int32_t, max_response_bytes, 4 << 20, "Largest upstream response message");
ABSL_FLAG(std::vector<std::string>, cors_origins, {},
          "Origins allowed by CORS, comma-separated (* for any); empty: no CORS");
ABSL_FLAG(bool, json_use_proto_names, false, "JSON out with proto field names instead of lowerCamelCase");
ABSL_FLAG(bool, json_emit_defaults, false, "JSON out includes fields that hold default values");
ABSL_FLAG(bool, ignore_unknown_query_parameters, false,
          "Ignore query parameters that name no field instead of answering 400");
ABSL_FLAG(bool, ignore_unknown_json_fields, false,
          "Ignore JSON body fields the message lacks instead of answering 400");
ABSL_FLAG(absl::Duration, drain_timeout, absl::Seconds(10),
          "On SIGTERM, requests in progress may finish for this long");
ABSL_FLAG(bool, access_log, false, "Log one line per request");

namespace taskmesh {
namespace {

[[noreturn]] void Fail(const std::string& message) {
  std::fprintf(stderr, "ERROR: %s\n", message.c_str());
  std::exit(2);
}

int Main() {
  log::SetComponent("api_gateway");
  // Debian's Abseil checks every Mutex acquisition for lock-order cycles
  // (a debug aid that cost ~4% of the gateway's CPU).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  using namespace gateway;  // NOLINT

  std::vector<std::string> files;
  std::vector<absl::string_view> sets;
  if (absl::GetFlag(FLAGS_taskmesh_protos)) sets.push_back(embedded::kTaskmeshDescriptorSet);
  for (const std::string& path : absl::GetFlag(FLAGS_descriptor_set)) {
    std::ifstream in(path, std::ios::binary);
    if (!in) Fail(absl::StrCat("--descriptor_set: cannot read ", path));
    std::stringstream buffer;
    buffer << in.rdbuf();
    files.push_back(buffer.str());
  }
  for (const std::string& f : files) sets.push_back(f);
  if (sets.empty()) Fail("no descriptors: give --descriptor_set or keep --taskmesh_protos");
  absl::StatusOr<std::unique_ptr<ApiDescriptors>> api = ApiDescriptors::Load(sets);
  if (!api.ok()) Fail(absl::StrCat("--descriptor_set: ", api.status().message()));
  absl::StatusOr<std::shared_ptr<const RouteTable>> table = RouteTable::Build((*api)->services());
  if (!table.ok()) Fail(std::string(table.status().message()));
  if ((*table)->routes().empty()) Fail("no method has a google.api.http rule: nothing to serve");
  for (const std::string& skipped : (*table)->skipped()) log::Info("not routed", {{"method", skipped}});

  UpstreamOptions upstream_options;
  upstream_options.default_target = absl::GetFlag(FLAGS_upstream);
  for (const std::string& r : absl::GetFlag(FLAGS_route)) {
    std::vector<std::string> parts = absl::StrSplit(r, absl::MaxSplits('=', 1));
    if (parts.size() != 2 || parts[0].empty() || parts[1].empty()) {
      Fail(absl::StrCat("--route: '", r, "' is not package.Service=TARGET"));
    }
    upstream_options.service_targets[parts[0]] = parts[1];
  }
  const int io_threads = absl::GetFlag(FLAGS_io_threads) > 0
                             ? absl::GetFlag(FLAGS_io_threads)
                             : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  upstream_options.connections_per_address = std::max(1, absl::GetFlag(FLAGS_upstream_channels));
  upstream_options.connect_timeout = absl::GetFlag(FLAGS_upstream_connect_timeout);
  if (upstream_options.connect_timeout <= absl::ZeroDuration()) {
    Fail("--upstream_connect_timeout must be positive");
  }
  upstream_options.max_receive_message_bytes = absl::GetFlag(FLAGS_max_response_bytes);
  absl::StatusOr<std::unique_ptr<Upstream>> upstream =
      Upstream::Create(upstream_options, (*table)->service_names());
  if (!upstream.ok()) Fail(std::string(upstream.status().message()));

  const int depth = absl::GetFlag(FLAGS_max_json_depth);
  if (depth < 1 || depth > 99) Fail("--max_json_depth must be 1-99 (protobuf stops at 100)");
  if (absl::GetFlag(FLAGS_max_body_bytes) < 0 || absl::GetFlag(FLAGS_max_header_bytes) < 1024) {
    Fail("--max_body_bytes must be >= 0 and --max_header_bytes >= 1024");
  }
  GatewayOptions options;
  options.request.max_json_depth = depth;
  options.request.ignore_unknown_query_parameters =
      absl::GetFlag(FLAGS_ignore_unknown_query_parameters);
  options.request.ignore_unknown_json_fields = absl::GetFlag(FLAGS_ignore_unknown_json_fields);
  options.response.use_proto_names = absl::GetFlag(FLAGS_json_use_proto_names);
  options.response.emit_defaults = absl::GetFlag(FLAGS_json_emit_defaults);
  options.default_deadline = absl::GetFlag(FLAGS_default_deadline);
  options.max_deadline = absl::GetFlag(FLAGS_max_deadline);
  options.max_concurrent_calls = absl::GetFlag(FLAGS_max_concurrent_calls);
  options.cors_origins = absl::GetFlag(FLAGS_cors_origins);
  options.access_log = absl::GetFlag(FLAGS_access_log);

  HttpServerOptions server_options;
  server_options.listen = absl::GetFlag(FLAGS_listen);
  server_options.io_threads = io_threads;
  server_options.max_body_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_max_body_bytes));
  server_options.max_header_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_max_header_bytes));
  server_options.max_headers = absl::GetFlag(FLAGS_max_headers);
  server_options.header_timeout = absl::GetFlag(FLAGS_header_timeout);
  server_options.body_timeout = absl::GetFlag(FLAGS_body_timeout);
  server_options.idle_timeout = absl::GetFlag(FLAGS_idle_timeout);
  server_options.write_timeout = absl::GetFlag(FLAGS_write_timeout);
  server_options.max_connections = absl::GetFlag(FLAGS_max_connections);

  BlockShutdownSignals();
  Gateway gateway(*table, api->get(), upstream->get(), options);
  HttpServer server(server_options, &gateway);
  gateway.set_server(&server);
  if (absl::Status s = server.Start(); !s.ok()) Fail(absl::StrCat("--listen: ", s.message()));

  std::vector<std::string> targets;
  for (const std::string& service : (*table)->service_names()) {
    targets.push_back(absl::StrCat(service, "=", (*upstream)->TargetFor(service)));
  }
  log::Info("serving", {{"listen", server_options.listen},
                        {"port", absl::StrCat(server.port())},
                        {"routes", absl::StrCat((*table)->routes().size())},
                        {"upstreams", absl::StrJoin(targets, ",")},
                        {"io_threads", absl::StrCat(server_options.io_threads)}});

  const int sig = WaitForShutdownSignal();
  log::Info("draining", {{"signal", absl::StrCat(sig)},
                         {"in_flight", absl::StrCat(server.active_exchanges())}});
  server.Shutdown(absl::GetFlag(FLAGS_drain_timeout), [&] { (*upstream)->CancelAll(); });
  (*upstream)->CancelAll();
  (*upstream)->WaitIdle(absl::Seconds(5));
  log::Info("stopped");
  return 0;
}

}  // namespace
}  // namespace taskmesh

int main(int argc, char** argv) {
  taskmesh::ParseFlags(argc, argv,
                       "api_gateway: HTTP/JSON to gRPC transcoding from google.api.http rules.\n\n"
                       "Usage: api_gateway --listen=HOST:PORT --upstream=HOST:PORT "
                       "[--route=pkg.Service=HOST:PORT] [--descriptor_set=FILE]");
  return taskmesh::Main();
}
