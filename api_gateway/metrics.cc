#include "api_gateway/metrics.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace taskmesh::gateway {
namespace {

size_t StatusIndex(int status) {
  for (size_t i = 0; i + 1 < GatewayMetrics::kStatuses.size(); ++i) {
    if (GatewayMetrics::kStatuses[i] == status) return i;
  }
  return GatewayMetrics::kStatuses.size() - 1;  // other
}

std::string Escape(const std::string& label) {
  return absl::StrReplaceAll(label, {{"\\", "\\\\"}, {"\"", "\\\""}, {"\n", "\\n"}});
}

}  // namespace

GatewayMetrics::GatewayMetrics(std::vector<std::string> route_labels)
    : labels_(std::move(route_labels)) {
  labels_.push_back("unmatched");
  labels_.push_back("builtin");
  labels_.push_back("rejected");
  counters_ = std::make_unique<RouteCounters[]>(labels_.size());
}

void GatewayMetrics::Record(int route, int http_status, absl::Duration latency) {
  if (route < 0 || route >= static_cast<int>(labels_.size())) route = unmatched();
  RouteCounters& c = counters_[route];
  c.by_status[StatusIndex(http_status)].fetch_add(1, std::memory_order_relaxed);
  const double seconds = absl::ToDoubleSeconds(latency);
  size_t b = 0;
  while (b < kBuckets.size() && seconds > kBuckets[b]) ++b;
  c.buckets[b].fetch_add(1, std::memory_order_relaxed);
  c.count.fetch_add(1, std::memory_order_relaxed);
  c.sum_micros.fetch_add(static_cast<uint64_t>(absl::ToInt64Microseconds(latency)),
                         std::memory_order_relaxed);
}

void GatewayMetrics::StreamMessage(int route) {
  if (route < 0 || route >= static_cast<int>(labels_.size())) return;
  counters_[route].stream_messages.fetch_add(1, std::memory_order_relaxed);
}

std::string GatewayMetrics::Render(int upstream_in_flight, int open_connections) const {
  std::string out;
  out +=
      "# HELP taskmesh_gateway_requests_total HTTP requests by route and status code.\n"
      "# TYPE taskmesh_gateway_requests_total counter\n";
  for (size_t r = 0; r < labels_.size(); ++r) {
    for (size_t s = 0; s < kStatuses.size(); ++s) {
      const uint64_t n = counters_[r].by_status[s].load(std::memory_order_relaxed);
      if (n == 0) continue;
      const std::string code = kStatuses[s] > 0 ? absl::StrCat(kStatuses[s]) : "other";
      absl::StrAppend(&out, "taskmesh_gateway_requests_total{route=\"", Escape(labels_[r]),
                      "\",code=\"", code, "\"} ", n, "\n");
    }
  }
  out +=
      "# HELP taskmesh_gateway_request_duration_seconds Time from a request's headers to the "
      "end of its response.\n"
      "# TYPE taskmesh_gateway_request_duration_seconds histogram\n";
  for (size_t r = 0; r < labels_.size(); ++r) {
    const RouteCounters& c = counters_[r];
    const uint64_t count = c.count.load(std::memory_order_relaxed);
    if (count == 0) continue;
    const std::string label = Escape(labels_[r]);
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= kBuckets.size(); ++b) {
      cumulative += c.buckets[b].load(std::memory_order_relaxed);
      const std::string le = b < kBuckets.size() ? absl::StrCat(kBuckets[b]) : "+Inf";
      absl::StrAppend(&out, "taskmesh_gateway_request_duration_seconds_bucket{route=\"", label,
                      "\",le=\"", le, "\"} ", cumulative, "\n");
    }
    absl::StrAppend(&out, "taskmesh_gateway_request_duration_seconds_sum{route=\"", label, "\"} ",
                    static_cast<double>(c.sum_micros.load(std::memory_order_relaxed)) / 1e6, "\n",
                    "taskmesh_gateway_request_duration_seconds_count{route=\"", label, "\"} ",
                    count, "\n");
  }
  out +=
      "# HELP taskmesh_gateway_stream_messages_total Messages sent on server streams.\n"
      "# TYPE taskmesh_gateway_stream_messages_total counter\n";
  for (size_t r = 0; r < labels_.size(); ++r) {
    const uint64_t n = counters_[r].stream_messages.load(std::memory_order_relaxed);
    if (n == 0) continue;
    absl::StrAppend(&out, "taskmesh_gateway_stream_messages_total{route=\"", Escape(labels_[r]),
                    "\"} ", n, "\n");
  }
  absl::StrAppend(
      &out,
      "# HELP taskmesh_gateway_requests_in_flight Requests being handled.\n"
      "# TYPE taskmesh_gateway_requests_in_flight gauge\n"
      "taskmesh_gateway_requests_in_flight ",
      in_flight(), "\n",
      "# HELP taskmesh_gateway_upstream_calls_in_flight gRPC calls to upstreams in progress.\n"
      "# TYPE taskmesh_gateway_upstream_calls_in_flight gauge\n"
      "taskmesh_gateway_upstream_calls_in_flight ",
      upstream_in_flight, "\n",
      "# HELP taskmesh_gateway_open_connections Open client connections.\n"
      "# TYPE taskmesh_gateway_open_connections gauge\n"
      "taskmesh_gateway_open_connections ",
      open_connections, "\n");
  return out;
}

}  // namespace taskmesh::gateway
