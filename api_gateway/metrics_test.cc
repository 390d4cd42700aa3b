#include "api_gateway/metrics.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskmesh::gateway {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(GatewayMetricsTest, CountsByRouteAndCodeWithHistogram) {
  GatewayMetrics m({"GET /v1/{name=things/*}"});
  m.Record(0, 200, absl::Microseconds(300));
  m.Record(0, 200, absl::Milliseconds(7));
  m.Record(0, 404, absl::Milliseconds(1));
  m.Record(m.unmatched(), 404, absl::Microseconds(10));
  m.Record(m.rejected(), 418, absl::Microseconds(10));
  m.RequestStarted();
  const std::string text = m.Render(/*upstream_in_flight=*/2, /*open_connections=*/5);
  EXPECT_THAT(text, HasSubstr(
      "taskmesh_gateway_requests_total{route=\"GET /v1/{name=things/*}\",code=\"200\"} 2\n"));
  EXPECT_THAT(text, HasSubstr(
      "taskmesh_gateway_requests_total{route=\"GET /v1/{name=things/*}\",code=\"404\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("taskmesh_gateway_requests_total{route=\"unmatched\",code=\"404\"} 1"));
  EXPECT_THAT(text, HasSubstr("taskmesh_gateway_requests_total{route=\"rejected\",code=\"other\"} 1"));
  EXPECT_THAT(text, HasSubstr("_bucket{route=\"GET /v1/{name=things/*}\",le=\"0.0005\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("_bucket{route=\"GET /v1/{name=things/*}\",le=\"0.001\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("_bucket{route=\"GET /v1/{name=things/*}\",le=\"0.01\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("_bucket{route=\"GET /v1/{name=things/*}\",le=\"+Inf\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("_count{route=\"GET /v1/{name=things/*}\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("_sum{route=\"GET /v1/{name=things/*}\"} 0.0083\n"));
  EXPECT_THAT(text, HasSubstr("taskmesh_gateway_requests_in_flight 1\n"));
  EXPECT_THAT(text, HasSubstr("taskmesh_gateway_upstream_calls_in_flight 2\n"));
  EXPECT_THAT(text, HasSubstr("taskmesh_gateway_open_connections 5\n"));
  EXPECT_THAT(text, Not(HasSubstr("route=\"builtin\"")));  // nothing recorded there
}

}  // namespace
}  // namespace taskmesh::gateway
