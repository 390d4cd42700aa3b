// The gateway through real HTTP and real gRPC on loopback: the HttpServer and
// Gateway in-process, in front of the in-process test backend
// (gatewaytest.v1.Transcoding), each on a free port.
#include "api_gateway/gateway.h"

#include <memory>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "api_gateway/descriptors.h"
#include "api_gateway/http_server.h"
#include "api_gateway/testdata/transcoding_descriptor_set.h"
#include "api_gateway/testing/http_client.h"
#include "api_gateway/testing/test_backend.h"
#include "api_gateway/upstream.h"
#include "gatewaytest/v1/transcoding.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace taskmesh::gateway {
namespace {

using ::taskmesh::gateway::testing::Headers;
using ::taskmesh::gateway::testing::HttpClient;
using ::taskmesh::gateway::testing::HttpReply;
using ::taskmesh::gateway::testing::TestBackend;
using ::testing::HasSubstr;
using ::testing::StartsWith;

bool PollUntil(absl::Duration timeout, const std::function<bool()>& condition) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return condition();
}

gatewaytest::v1::Echo ParseEcho(const std::string& json) {
  gatewaytest::v1::Echo echo;
  auto s = google::protobuf::util::JsonStringToMessage(json, &echo);
  EXPECT_TRUE(s.ok()) << s.ToString() << " in " << json;
  return echo;
}

// A gateway (HttpServer + Gateway + Upstream) in front of `upstream`.
class GatewayUnderTest {
 public:
  GatewayUnderTest(const std::string& upstream, GatewayOptions options = {},
                   HttpServerOptions server_options = {}) {
    api_ = ApiDescriptors::Load({embedded::kTranscodingDescriptorSet}).value();
    table_ = RouteTable::Build(api_->services()).value();
    UpstreamOptions up;
    up.default_target = upstream;
    upstream_ = Upstream::Create(up, table_->service_names()).value();
    gateway_ = std::make_unique<Gateway>(table_, api_.get(), upstream_.get(), options);
    server_options.listen = "127.0.0.1:0";
    server_ = std::make_unique<HttpServer>(server_options, gateway_.get());
    gateway_->set_server(server_.get());
    absl::Status s = server_->Start();
    EXPECT_TRUE(s.ok()) << s;
  }
  ~GatewayUnderTest() {
    server_->Shutdown(absl::Seconds(1), [this] { upstream_->CancelAll(); });
    upstream_->CancelAll();
    upstream_->WaitIdle(absl::Seconds(5));
  }
  int port() const { return server_->port(); }
  HttpServer& server() { return *server_; }
  Upstream& upstream() { return *upstream_; }

 private:
  std::unique_ptr<ApiDescriptors> api_;
  std::shared_ptr<const RouteTable> table_;
  std::unique_ptr<Upstream> upstream_;
  std::unique_ptr<Gateway> gateway_;
  std::unique_ptr<HttpServer> server_;
};

class GatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = TestBackend::Start().value();
    gateway_ = std::make_unique<GatewayUnderTest>(backend_->address());
  }

  HttpReply Call(const std::string& method, const std::string& target, const std::string& body = "",
                 Headers headers = {}) {
    if (!body.empty()) headers.emplace_back("Content-Type", "application/json");
    HttpClient client(gateway_->port());
    absl::StatusOr<HttpReply> r = client.Send(method, target, headers, body);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : HttpReply{};
  }

  std::unique_ptr<TestBackend> backend_;
  std::unique_ptr<GatewayUnderTest> gateway_;
};

// ---- every HttpRule kind, through real HTTP ---------------------------------

struct RuleCase {
  const char* name;
  const char* method;
  const char* target;
  const char* body;
  const char* grpc_method;  // which backend method ran
  const char* echo;         // expected Echo.thing / Echo.create, as text proto
};

class GatewayRuleTest : public GatewayTest, public ::testing::WithParamInterface<RuleCase> {};

TEST_P(GatewayRuleTest, ReachesTheBoundMethodWithTheRightRequest) {
  const RuleCase& c = GetParam();
  HttpReply r = Call(c.method, c.target, c.body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("content-type"), "application/json");
  gatewaytest::v1::Echo got = ParseEcho(r.body);
  EXPECT_EQ(got.method(), std::string("/gatewaytest.v1.Transcoding/") + c.grpc_method);
  gatewaytest::v1::Echo want;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(c.echo, &want)) << c.echo;
  got.clear_method();
  got.clear_metadata();
  got.clear_deadline_ms();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(got, want))
      << c.name << "\n got: " << got.ShortDebugString() << "\nwant: " << want.ShortDebugString();
}

INSTANTIATE_TEST_SUITE_P(
    Rules, GatewayRuleTest,
    ::testing::Values(
        RuleCase{"get", "GET", "/v1/things/t1?i64=5&tags=a&tags=b", "", "GetThing",
                 R"(thing { name: "things/t1" i64: 5 tags: "a" tags: "b" })"},
        RuleCase{"additional_binding", "GET", "/v1/shelves/s/things/t", "", "GetThing",
                 R"(thing { name: "shelves/s/things/t" })"},
        RuleCase{"additional_binding_id", "GET", "/v1/ids/x%2Fy", "", "GetThing",
                 R"(thing { id: "x%2Fy" })"},
        RuleCase{"post_body_field", "POST", "/v1/shelves/s/things?thingId=t9",
                 R"({"displayName":"D","inner":{"count":2}})", "CreateThing",
                 R"(create { parent: "shelves/s" thing_id: "t9"
                             thing { display_name: "D" inner { count: 2 } } })"},
        RuleCase{"put_body_star", "PUT", "/v1/things/t", R"({"flag":true,"color":"RED"})",
                 "ReplaceThing", R"(thing { name: "things/t" flag: true color: RED })"},
        RuleCase{"patch_body_star", "PATCH", "/v1/things/t", R"({"mask":"displayName"})",
                 "UpdateThing", R"(thing { name: "things/t" mask { paths: "display_name" } })"},
        RuleCase{"custom_kind", "SEARCH", "/v1/things?color=2", "", "SearchThings",
                 R"(thing { color: GREEN })"},
        RuleCase{"custom_verb", "POST", "/v1/things/t:cancel", "{}", "CancelThing",
                 R"(thing { name: "things/t" })"},
        RuleCase{"body_repeated_field", "POST", "/v1/things/t:setTags", R"(["x","y"])", "SetTags",
                 R"(thing { name: "things/t" tags: "x" tags: "y" })"},
        RuleCase{"multi_segment_double_wildcard", "GET", "/v1/files/f/versions/a/b", "", "GetPath",
                 R"(thing { path: "files/f/versions/a/b" })"},
        RuleCase{"bare_double_wildcard", "GET", "/v1/static/x/y/z", "", "GetPath", R"(thing { })"},
        RuleCase{"nested_variables", "GET", "/v1/nested/v/7", "", "GetPath",
                 R"(thing { inner { deep { value: "v" } } i64: 7 })"}),
    [](const ::testing::TestParamInfo<RuleCase>& info) { return std::string(info.param.name); });

TEST_F(GatewayTest, DeleteReturnsEmptyObject) {
  HttpReply r = Call("DELETE", "/v1/things/t");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "{}");
}

TEST_F(GatewayTest, ResponseBodySendsOnlyThatField) {
  HttpReply r = Call("GET", "/v1/things/t/thing?displayName=x");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"name":"things/t","displayName":"x"})");
}

TEST_F(GatewayTest, CanonicalJsonOut) {
  HttpReply r = Call("GET", "/v1/things/t?i64=-9000000000&u64=1&at=2024-01-02T03:04:05Z&raw=AQI");
  EXPECT_THAT(r.body, HasSubstr(R"("i64":"-9000000000","u64":"1","raw":"AQI=")"));
  EXPECT_THAT(r.body, HasSubstr(R"("at":"2024-01-02T03:04:05Z")"));
  EXPECT_THAT(r.body, HasSubstr(R"("deadlineMs":")"));  // lowerCamelCase, int64 as string
}

TEST(GatewayJsonOptionsTest, ProtoNamesAndDefaults) {
  auto backend = TestBackend::Start().value();
  GatewayOptions options;
  options.response.use_proto_names = true;
  options.response.emit_defaults = true;
  GatewayUnderTest gw(backend->address(), options);
  HttpClient client(gw.port());
  HttpReply r = client.Send("GET", "/v1/things/t?displayName=x").value();
  EXPECT_THAT(r.body, HasSubstr(R"("display_name":"x")"));
  EXPECT_THAT(r.body, HasSubstr(R"("tags":[])"));
  EXPECT_THAT(r.body, HasSubstr(R"("i32":0)"));
}

// ---- the gateway's own errors -------------------------------------------

TEST_F(GatewayTest, NoRouteIs404WithStatusBody) {
  HttpReply r = Call("GET", "/v2/nothing");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.header("content-type"), "application/json");
  EXPECT_EQ(r.body, R"({"code":5,"message":"no route for GET /v2/nothing","details":[]})");
}

TEST_F(GatewayTest, KnownPathWithWrongMethodIs405WithAllow) {
  HttpReply r = Call("POST", "/v1/things/t", "{}");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.header("allow"), "DELETE, GET, PATCH, PUT");
  EXPECT_THAT(r.body, StartsWith(R"({"code":12,"message":"method POST is not allowed)"));
}

TEST_F(GatewayTest, MalformedJsonIs400WithPosition) {
  HttpReply r = Call("PUT", "/v1/things/t", "{\"id\": \"x\",\n \"flag\" true}");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body,
            R"({"code":3,"message":"malformed JSON at line 2, column 9 (byte 20): expected ':'",)"
            R"("details":[]})");
}

TEST_F(GatewayTest, UnknownQueryParameterIs400) {
  HttpReply r = Call("GET", "/v1/things/t?bogus=1");
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, HasSubstr("unknown query parameter 'bogus'"));
}

TEST(GatewayQueryOptionsTest, UnknownQueryParametersCanBeIgnored) {
  auto backend = TestBackend::Start().value();
  GatewayOptions options;
  options.request.ignore_unknown_query_parameters = true;
  GatewayUnderTest gw(backend->address(), options);
  HttpClient client(gw.port());
  EXPECT_EQ(client.Send("GET", "/v1/things/t?bogus=1&id=x").value().status, 200);
}

TEST_F(GatewayTest, DeepJsonIs400QuicklyBeforeProtobufSeesIt) {
  // 100,000 levels (200 KB): protobuf alone would spend minutes on this.
  const std::string deep = "{\"meta\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  const absl::Time start = absl::Now();
  HttpReply r = Call("PUT", "/v1/things/t", deep);
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, HasSubstr("JSON nested deeper than 64 levels"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

TEST_F(GatewayTest, WrongContentTypeIs415) {
  HttpClient client(gateway_->port());
  HttpReply r = client.Send("PUT", "/v1/things/t", {{"Content-Type", "text/plain"}}, "{}").value();
  EXPECT_EQ(r.status, 415);
  EXPECT_THAT(r.body, HasSubstr(R"("code":3,"message":"unsupported content type 'text/plain')"));
}

TEST(GatewayLimitsTest, BodyTooLargeIs413) {
  auto backend = TestBackend::Start().value();
  HttpServerOptions server;
  server.max_body_bytes = 1000;
  GatewayUnderTest gw(backend->address(), {}, server);
  HttpClient client(gw.port());
  const std::string body = "{\"id\":\"" + std::string(2000, 'x') + "\"}";
  HttpReply r = client.Send("PUT", "/v1/things/t", {{"Content-Type", "application/json"}}, body).value();
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.body, R"({"code":8,"message":"request body exceeds 1000 bytes","details":[]})");
  EXPECT_EQ(r.header("connection"), "close");
  // Chunked bodies are held to the same limit.
  HttpClient chunked(gw.port());
  ASSERT_TRUE(chunked
                  .SendRaw("PUT /v1/things/t HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n7D0\r\n" +
                           std::string(2000, ' ') + "\r\n0\r\n\r\n")
                  .ok());
  EXPECT_EQ(chunked.ReadReply().value().status, 413);
}

TEST(GatewayLimitsTest, HeadersTooLargeIs431) {
  auto backend = TestBackend::Start().value();
  HttpServerOptions server;
  server.max_header_bytes = 4096;
  server.max_headers = 10;
  GatewayUnderTest gw(backend->address(), {}, server);
  HttpClient big(gw.port());
  HttpReply r = big.Send("GET", "/v1/things/t", {{"X-Big", std::string(5000, 'a')}}).value();
  EXPECT_EQ(r.status, 431);
  EXPECT_THAT(r.body, HasSubstr("request headers exceed 4096 bytes"));
  HttpClient many(gw.port());
  Headers headers;
  for (int i = 0; i < 11; ++i) headers.emplace_back(absl::StrCat("X-H", i), "v");
  r = many.Send("GET", "/v1/things/t", headers).value();
  EXPECT_EQ(r.status, 431);
  EXPECT_THAT(r.body, HasSubstr("more than 10 header fields"));
}

TEST(GatewayLimitsTest, MalformedHttpIs400) {
  auto backend = TestBackend::Start().value();
  GatewayUnderTest gw(backend->address());
  HttpClient client(gw.port());
  ASSERT_TRUE(client.SendRaw("GET /v1/things/t HTTP/1.1\r\nBad Header\r\n\r\n").ok());
  HttpReply r = client.ReadReply().value();
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, HasSubstr("malformed HTTP request"));
}

TEST(GatewayLimitsTest, SlowHeadersAndIdleConnectionsAreClosed) {
  auto backend = TestBackend::Start().value();
  HttpServerOptions server;
  server.header_timeout = absl::Milliseconds(300);
  server.idle_timeout = absl::Milliseconds(300);
  GatewayUnderTest gw(backend->address(), {}, server);
  // Slowloris: a request line, then nothing.
  HttpClient slow(gw.port());
  ASSERT_TRUE(slow.SendRaw("GET /v1/things/t HTTP/1.1\r\nHost: x\r\n").ok());
  EXPECT_TRUE(slow.WaitClosed(absl::Seconds(5)));
  // A keep-alive connection serves several requests, then idles out.
  HttpClient idle(gw.port());
  EXPECT_EQ(idle.Send("GET", "/v1/things/a").value().status, 200);
  EXPECT_EQ(idle.Send("GET", "/v1/things/b").value().status, 200);
  EXPECT_TRUE(idle.WaitClosed(absl::Seconds(5)));
}

TEST(GatewayLimitsTest, TooManyConcurrentCallsIs429) {
  auto backend = TestBackend::Start().value();
  GatewayOptions options;
  options.max_concurrent_calls = 1;
  GatewayUnderTest gw(backend->address(), options);
  HttpClient slow(gw.port());
  ASSERT_TRUE(slow.SendRaw("POST /v1/fail HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           "Content-Length: 16\r\n\r\n{\"delayMs\":1500}")
                  .ok());
  ASSERT_TRUE(PollUntil(absl::Seconds(5), [&] { return gw.upstream().in_flight() == 1; }));
  HttpClient second(gw.port());
  HttpReply r = second.Send("GET", "/v1/things/t").value();
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.header("retry-after"), "1");
  EXPECT_THAT(r.body, HasSubstr(R"("code":8)"));
  EXPECT_EQ(slow.ReadReply().value().status, 200);
}

TEST(GatewayUpstreamTest, UnreachableUpstreamIs503) {
  // A port that was free a moment ago and has no listener.
  auto backend = TestBackend::Start().value();
  const std::string address = backend->address();
  backend.reset();
  GatewayUnderTest gw(address);
  HttpClient client(gw.port());
  HttpReply r = client.Send("GET", "/v1/things/t").value();
  EXPECT_EQ(r.status, 503);
  EXPECT_THAT(r.body, StartsWith(R"({"code":14,)"));
  EXPECT_EQ(client.Send("GET", "/readyz").value().status, 503);
}

TEST_F(GatewayTest, DeadlineExceededIs504) {
  HttpReply r = Call("POST", "/v1/fail", R"({"delayMs":3000})", {{"Grpc-Timeout", "100m"}});
  EXPECT_EQ(r.status, 504);
  EXPECT_THAT(r.body, StartsWith(R"({"code":4,)"));
}

// ---- upstream status -> HTTP status, with details ---------------------------

TEST_F(GatewayTest, GrpcCodesMapToHttpStatusesWithStatusBodies) {
  const int expected[] = {200, 499, 500, 400, 504, 404, 409, 403, 429,
                          400, 409, 400, 501, 500, 503, 500, 401};
  for (int code = 1; code <= 16; ++code) {
    HttpReply r = Call("POST", "/v1/fail", absl::StrCat(R"({"code":)", code, R"(,"message":"m)", code, "\"}"));
    EXPECT_EQ(r.status, expected[code]) << "code " << code;
    EXPECT_EQ(r.body, absl::StrCat(R"({"code":)", code, R"(,"message":"m)", code, R"(","details":[]})"));
  }
}

TEST_F(GatewayTest, ErrorDetailsAreRendered) {
  HttpReply r = Call("POST", "/v1/fail", R"({"code":9,"message":"nope","withDetails":true})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body, R"({"code":9,"message":"nope","details":[)"
                    R"({"@type":"type.googleapis.com/gatewaytest.v1.Echo","method":"detail"}]})");
}

// ---- headers ---------------------------------------------------------------

TEST_F(GatewayTest, HeadersBecomeMetadataAndBack) {
  HttpReply r = Call("POST", "/v1/fail",
                     R"({"replyMetadata":{"i-echo-init":"a","t-echo-trail":"b"}})",
                     {{"Authorization", "Bearer t0ken"},
                      {"Grpc-Metadata-Tenant", "acme"},
                      {"Grpc-Metadata-Blob-Bin", "AQID"},
                      {"X-Request-Id", "req-123"},
                      {"X-Forwarded-For", "10.1.2.3"}});
  ASSERT_EQ(r.status, 200) << r.body;
  gatewaytest::v1::Echo echo = ParseEcho(r.body);
  EXPECT_EQ(echo.metadata().at("authorization"), "Bearer t0ken");
  EXPECT_EQ(echo.metadata().at("tenant"), "acme");
  EXPECT_EQ(echo.metadata().at("blob-bin"), "AQID");
  EXPECT_EQ(echo.metadata().at("x-request-id"), "req-123");
  EXPECT_EQ(echo.metadata().at("x-forwarded-for"), "10.1.2.3, 127.0.0.1");
  EXPECT_EQ(r.header("x-request-id"), "req-123");
  EXPECT_EQ(r.header("grpc-metadata-echo-init"), "a");
  EXPECT_EQ(r.header("grpc-metadata-echo-trail"), "b");
}

TEST_F(GatewayTest, RequestIdIsGeneratedWhenAbsent) {
  HttpReply r = Call("GET", "/v1/things/t");
  const std::string id = r.header("x-request-id");
  EXPECT_EQ(id.size(), 32u);
  EXPECT_EQ(ParseEcho(r.body).metadata().at("x-request-id"), id);
  EXPECT_EQ(ParseEcho(r.body).metadata().at("x-forwarded-for"), "127.0.0.1");
  EXPECT_NE(Call("GET", "/v1/things/t").header("x-request-id"), id);
}

TEST_F(GatewayTest, ReservedMetadataKeysAreRejected) {
  EXPECT_EQ(Call("GET", "/v1/things/t", "", {{"Grpc-Metadata-Grpc-Status", "0"}}).status, 400);
  EXPECT_EQ(Call("GET", "/v1/things/t", "", {{"Grpc-Metadata-Blob-Bin", "!!"}}).status, 400);
}

TEST_F(GatewayTest, TimeoutHeadersSetTheDeadlineCappedByTheFlag) {
  auto deadline_ms = [&](Headers h) { return ParseEcho(Call("GET", "/v1/things/t", "", h).body).deadline_ms(); };
  // gRPC rounds the timeout it puts on the wire up a little (at most 1%).
  auto at_most = [](int64_t ms) { return ms + ms / 100 + 20; };
  const int64_t by_default = deadline_ms({});
  EXPECT_GT(by_default, 25000);  // --default_deadline, 30 s
  EXPECT_LE(by_default, at_most(30000));
  const int64_t grpc = deadline_ms({{"Grpc-Timeout", "2S"}});
  EXPECT_GT(grpc, 1000);
  EXPECT_LE(grpc, at_most(2000));
  const int64_t ms = deadline_ms({{"X-Timeout-Ms", "1500"}});
  EXPECT_GT(ms, 500);
  EXPECT_LE(ms, at_most(1500));
  const int64_t capped = deadline_ms({{"Grpc-Timeout", "100H"}});
  EXPECT_GT(capped, 3000 * 1000);
  EXPECT_LE(capped, at_most(3600 * 1000));  // --max_deadline, 1 h
  EXPECT_EQ(Call("GET", "/v1/things/t", "", {{"Grpc-Timeout", "soon"}}).status, 400);
}

// ---- server streaming --------------------------------------------------------

std::vector<std::string> Lines(const std::string& body) {
  return absl::StrSplit(body, '\n', absl::SkipEmpty());
}

TEST_F(GatewayTest, StreamIsNdjsonByDefault) {
  HttpReply r = Call("GET", "/v1/streams/s1:watch?count=3");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("content-type"), "application/x-ndjson");
  EXPECT_EQ(r.header("transfer-encoding"), "chunked");
  std::vector<std::string> lines = Lines(r.body);
  ASSERT_EQ(lines.size(), 3u) << r.body;
  for (int i = 0; i < 3; ++i) {
    gatewaytest::v1::Echo e = ParseEcho(lines[i]);
    EXPECT_EQ(e.index(), i);
    EXPECT_EQ(e.thing().name(), "streams/s1");
  }
}

TEST_F(GatewayTest, StreamFailingMidwayEndsWithAnErrorLine) {
  HttpReply r = Call("GET", "/v1/streams/s1:watch?count=2&code=14&message=lost");
  ASSERT_EQ(r.status, 200);
  std::vector<std::string> lines = Lines(r.body);
  ASSERT_EQ(lines.size(), 3u) << r.body;
  EXPECT_EQ(lines[2], R"({"error":{"code":14,"message":"lost","details":[]}})");
}

TEST_F(GatewayTest, StreamFailingBeforeAnyMessageIsAPlainError) {
  HttpReply r = Call("GET", "/v1/streams/s1:watch?count=0&code=5&message=no%20such%20stream");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, R"({"code":5,"message":"no such stream","details":[]})");
}

TEST_F(GatewayTest, StreamIsSseWhenAsked) {
  HttpReply r = Call("GET", "/v1/streams/s1:watch?count=2&code=13&message=boom", "",
                     {{"Accept", "text/event-stream"}});
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type"), "text/event-stream");
  std::vector<std::string> events = absl::StrSplit(r.body, "\n\n", absl::SkipEmpty());
  ASSERT_EQ(events.size(), 3u) << r.body;
  EXPECT_THAT(events[0], StartsWith("data: {"));
  EXPECT_EQ(ParseEcho(events[1].substr(6)).index(), 1);
  EXPECT_EQ(events[2], R"(event: error)" "\n" R"(data: {"code":13,"message":"boom","details":[]})");
  // A clean SSE stream has no error event.
  r = Call("GET", "/v1/streams/s1:watch?count=1", "", {{"Accept", "text/event-stream"}});
  EXPECT_THAT(r.body, ::testing::Not(HasSubstr("event: error")));
}

TEST_F(GatewayTest, ClientLeavingCancelsTheUpstreamStream) {
  HttpClient client(gateway_->port());
  ASSERT_TRUE(client.SendRaw("GET /v1/streams/s:watch?count=-1&delayMs=20 HTTP/1.1\r\nHost: x\r\n\r\n").ok());
  ASSERT_TRUE(client.ReadUntil("\"index\":2").ok());
  client.Close();
  EXPECT_TRUE(PollUntil(absl::Seconds(5), [&] { return backend_->cancelled_streams() == 1; }));
  EXPECT_TRUE(PollUntil(absl::Seconds(5), [&] { return gateway_->upstream().in_flight() == 0; }));
}

TEST_F(GatewayTest, ClientLeavingCancelsTheUpstreamUnaryCall) {
  HttpClient client(gateway_->port());
  ASSERT_TRUE(client.SendRaw("POST /v1/fail HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             "Content-Length: 16\r\n\r\n{\"delayMs\":5000}")
                  .ok());
  ASSERT_TRUE(PollUntil(absl::Seconds(5), [&] { return gateway_->upstream().in_flight() == 1; }));
  const absl::Time left = absl::Now();
  client.Close();
  // Cancelled (RST_STREAM) at once, not answered when the backend's 5 s are up.
  EXPECT_TRUE(PollUntil(absl::Seconds(3), [&] { return gateway_->upstream().in_flight() == 0; }));
  EXPECT_LT(absl::Now() - left, absl::Seconds(3));
}

TEST_F(GatewayTest, KeepAliveCarriesRequestsAfterAStream) {
  HttpClient client(gateway_->port());
  EXPECT_EQ(client.Send("GET", "/v1/streams/s:watch?count=2").value().status, 200);
  EXPECT_EQ(client.Send("GET", "/v1/things/t").value().status, 200);
}

// ---- CORS, health, metrics, OpenAPI -------------------------------------------

TEST(GatewayCorsTest, AllowedOriginsGetHeadersAndPreflights) {
  auto backend = TestBackend::Start().value();
  GatewayOptions options;
  options.cors_origins = {"https://app.example"};
  GatewayUnderTest gw(backend->address(), options);
  HttpClient client(gw.port());
  HttpReply r = client.Send("GET", "/v1/things/t", {{"Origin", "https://app.example"}}).value();
  EXPECT_EQ(r.header("access-control-allow-origin"), "https://app.example");
  EXPECT_EQ(r.header("vary"), "Origin");
  r = client.Send("GET", "/v1/things/t", {{"Origin", "https://evil.example"}}).value();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("access-control-allow-origin"), "");
  r = client.Send("OPTIONS", "/v1/things/t",
                  {{"Origin", "https://app.example"},
                   {"Access-Control-Request-Method", "PATCH"},
                   {"Access-Control-Request-Headers", "content-type"}})
          .value();
  EXPECT_EQ(r.status, 204);
  EXPECT_EQ(r.header("access-control-allow-methods"), "PATCH");
  EXPECT_EQ(r.header("access-control-allow-headers"), "content-type");
  EXPECT_EQ(r.header("access-control-max-age"), "600");
  r = client.Send("OPTIONS", "/v1/things/t",
                  {{"Origin", "https://evil.example"}, {"Access-Control-Request-Method", "GET"}})
          .value();
  EXPECT_EQ(r.status, 403);
}

TEST_F(GatewayTest, HealthAndReadiness) {
  HttpReply r = Call("GET", "/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"status":"SERVING"})");
  r = Call("GET", "/readyz");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Call("POST", "/healthz", "{}").status, 405);
}

TEST_F(GatewayTest, MetricsCountRequestsByRouteAndCode) {
  Call("GET", "/v1/things/t");
  Call("GET", "/v1/things/t");
  Call("GET", "/v2/none");
  Call("GET", "/v1/streams/s:watch?count=2");
  // The stream's request ends just after its last chunk reaches the client:
  // scrape until only the scrape itself is in flight (bounded).
  std::string text;
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  do {
    text = Call("GET", "/metrics").body;
  } while (!absl::StrContains(text, "taskmesh_gateway_requests_in_flight 1\n") &&
           absl::Now() < deadline);
  EXPECT_THAT(text, HasSubstr(
      "taskmesh_gateway_requests_total{route=\"GET /v1/{name=things/*}\",code=\"200\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("taskmesh_gateway_requests_total{route=\"unmatched\",code=\"404\"} 1\n"));
  EXPECT_THAT(text, HasSubstr(
      "taskmesh_gateway_request_duration_seconds_count{route=\"GET /v1/{name=things/*}\"} 2\n"));
  EXPECT_THAT(text, HasSubstr(
      "taskmesh_gateway_stream_messages_total{route=\"GET /v1/{name=streams/*}:watch\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("taskmesh_gateway_requests_in_flight 1\n"));  // this request
}

TEST_F(GatewayTest, OpenApiDocumentMatchesTheRoutes) {
  HttpReply r = Call("GET", "/openapi.json");
  ASSERT_EQ(r.status, 200);
  google::protobuf::Struct doc;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.body, &doc).ok());
  EXPECT_EQ(doc.fields().at("openapi").string_value(), "3.1.0");
  const auto& paths = doc.fields().at("paths").struct_value().fields();
  EXPECT_TRUE(paths.count("/v1/things/{thing}"));
  EXPECT_TRUE(paths.count("/v1/things/{thing}:cancel"));
  EXPECT_TRUE(paths.count("/v1/shelves/{shelf}/things"));
  EXPECT_TRUE(paths.count("/v1/ids/{id}"));
  EXPECT_TRUE(paths.count("/v1/streams/{stream}:watch"));
  EXPECT_TRUE(paths.count("/v1/things"));
  const auto& thing = paths.at("/v1/things/{thing}").struct_value().fields();
  for (const char* m : {"get", "put", "patch", "delete"}) EXPECT_TRUE(thing.count(m)) << m;
  EXPECT_TRUE(paths.at("/v1/things").struct_value().fields().count("x-search"));
  // Descriptions come from proto comments.
  EXPECT_THAT(r.body, HasSubstr("POST with `body: \\\"field\\\"`."));
  EXPECT_THAT(r.body, HasSubstr("\"#/components/schemas/gatewaytest.v1.Thing\""));
  EXPECT_THAT(r.body, HasSubstr("\"#/components/schemas/google.rpc.Status\""));
  const auto& schemas =
      doc.fields().at("components").struct_value().fields().at("schemas").struct_value().fields();
  EXPECT_TRUE(schemas.count("gatewaytest.v1.Thing"));
  EXPECT_TRUE(schemas.count("google.rpc.Status"));
  EXPECT_TRUE(schemas.count("gatewaytest.v1.Color"));
}

TEST(GatewayShutdownTest, DrainLetsInFlightRequestsFinish) {
  auto backend = TestBackend::Start().value();
  auto gw = std::make_unique<GatewayUnderTest>(backend->address());
  HttpClient client(gw->port());
  ASSERT_TRUE(client.SendRaw("POST /v1/fail HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             "Content-Length: 15\r\n\r\n{\"delayMs\":300}")
                  .ok());
  ASSERT_TRUE(PollUntil(absl::Seconds(5), [&] { return gw->upstream().in_flight() == 1; }));
  std::thread stopper([&] { gw->server().Shutdown(absl::Seconds(5), [] {}); });
  HttpReply r = client.ReadReply().value();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("connection"), "close");
  stopper.join();
}

}  // namespace
}  // namespace taskmesh::gateway
