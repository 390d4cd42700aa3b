#include "api_gateway/response_translator.h"

#include <memory>
#include <string>

#include "api_gateway/descriptors.h"
#include "api_gateway/route_table.h"
#include "api_gateway/testdata/transcoding_descriptor_set.h"
#include "gatewaytest/v1/transcoding.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"

namespace taskmesh::gateway {
namespace {

using ::testing::HasSubstr;

class ResponseTranslatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    api_ = ApiDescriptors::Load({embedded::kTranscodingDescriptorSet}).value();
    table_ = RouteTable::Build(api_->services()).value();
  }

  const Route& RouteFor(const char* method, const char* path) {
    RouteTable::Match m = table_->Lookup(method, path);
    EXPECT_NE(m.route, nullptr) << path;
    return *m.route;
  }

  std::string Render(const Route& route, const char* text_proto,
                     ResponseTranslatorOptions options = {}) {
    gatewaytest::v1::Echo echo;
    EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text_proto, &echo));
    ResponseTranslator t(api_.get(), options);
    std::string json;
    absl::Status s = t.ToJson(route, echo.SerializeAsString(), &json);
    EXPECT_TRUE(s.ok()) << s;
    return json;
  }

  std::unique_ptr<ApiDescriptors> api_;
  std::shared_ptr<const RouteTable> table_;
};

TEST_F(ResponseTranslatorTest, CanonicalProto3Json) {
  const Route& r = RouteFor("GET", "/v1/things/t");
  EXPECT_EQ(Render(r, R"(method: "m" thing { display_name: "D" i64: 12 u64: 13 color: GREEN
                         at { seconds: 1 } timeout { seconds: 2 nanos: 500000000 }
                         maybe_int { value: 0 } raw: "\001" mask { paths: "inner.text" } }
                         deadline_ms: 5)"),
            R"({"method":"m","thing":{"i64":"12","u64":"13","raw":"AQ==","color":"GREEN",)"
            R"("at":"1970-01-01T00:00:01Z","timeout":"2.500s","maybeInt":0,)"
            R"("mask":"inner.text","displayName":"D"},"deadlineMs":"5"})");
}

TEST_F(ResponseTranslatorTest, ProtoNamesAndDefaults) {
  const Route& r = RouteFor("GET", "/v1/things/t");
  ResponseTranslatorOptions options;
  options.use_proto_names = true;
  std::string json = Render(r, R"(thing { display_name: "D" })", options);
  EXPECT_THAT(json, HasSubstr(R"("display_name":"D")"));
  EXPECT_THAT(json, ::testing::Not(HasSubstr("deadline_ms")));
  options.emit_defaults = true;
  json = Render(r, R"(thing { display_name: "D" })", options);
  EXPECT_THAT(json, HasSubstr(R"("deadline_ms":"0")"));
  EXPECT_THAT(json, HasSubstr(R"("method":"")"));
}

TEST_F(ResponseTranslatorTest, ResponseBodySelectsOneField) {
  const Route& r = RouteFor("GET", "/v1/things/t/thing");
  EXPECT_EQ(Render(r, R"(method: "m" thing { id: "x" i32: 3 })"), R"({"id":"x","i32":3})");
  // An unset message field is an empty object.
  EXPECT_EQ(Render(r, R"(method: "m")"), "{}");
  ResponseTranslatorOptions defaults;
  defaults.emit_defaults = true;
  EXPECT_THAT(Render(r, R"(thing { id: "x" })", defaults), HasSubstr(R"("i64":"0")"));
}

TEST_F(ResponseTranslatorTest, EmptyResponse) {
  const Route& r = RouteFor("DELETE", "/v1/things/t");
  ResponseTranslator t(api_.get(), {});
  std::string json;
  ASSERT_TRUE(t.ToJson(r, "", &json).ok());
  EXPECT_EQ(json, "{}");
}

TEST_F(ResponseTranslatorTest, GarbageFromUpstreamIsAnError) {
  const Route& r = RouteFor("GET", "/v1/things/t");
  ResponseTranslator t(api_.get(), {});
  std::string json;
  // Field 1 (a string) claims 5 bytes but 2 follow.
  EXPECT_FALSE(t.ToJson(r, std::string("\x0a\x05" "ab", 4), &json).ok());
}

TEST_F(ResponseTranslatorTest, StatusJsonAlwaysHasCodeMessageDetails) {
  ResponseTranslator t(api_.get(), {});
  EXPECT_EQ(t.StatusJson(5, "task \"x\" not found\n"),
            R"({"code":5,"message":"task \"x\" not found\n","details":[]})");
  EXPECT_EQ(t.StatusJson(3, "bad \xff byte"),
            "{\"code\":3,\"message\":\"bad \xEF\xBF\xBD byte\",\"details\":[]}");
}

TEST_F(ResponseTranslatorTest, StatusDetailsRenderKnownAndUnknownTypes) {
  google::rpc::Status status;
  gatewaytest::v1::Echo echo;
  echo.set_method("detail");
  status.add_details()->PackFrom(echo);
  google::protobuf::Any* unknown = status.add_details();
  unknown->set_type_url("type.googleapis.com/no.such.Type");
  unknown->set_value("\x01\x02");
  ResponseTranslator t(api_.get(), {});
  EXPECT_EQ(t.StatusJson(9, "m", status.SerializeAsString()),
            R"({"code":9,"message":"m","details":[)"
            R"({"@type":"type.googleapis.com/gatewaytest.v1.Echo","method":"detail"},)"
            R"({"@type":"type.googleapis.com/no.such.Type","value":"AQI="}]})");
}

TEST(HttpStatusTest, MatchesTheGrpcGatewayAndEnvoyTable) {
  const int expected[] = {200, 499, 500, 400, 504, 404, 409, 403, 429,
                          400, 409, 400, 501, 500, 503, 500, 401};
  for (int code = 0; code <= 16; ++code) {
    EXPECT_EQ(HttpStatusFromGrpc(code), expected[code]) << GrpcCodeName(code);
  }
  EXPECT_EQ(HttpStatusFromGrpc(99), 500);
}

TEST(StreamFramingTest, NdjsonAndSse) {
  std::string out;
  ResponseTranslator::AppendStreamMessage(StreamFormat::kNdjson, R"({"a":1})", &out);
  ResponseTranslator::AppendStreamError(StreamFormat::kNdjson, R"({"code":14})", &out);
  EXPECT_EQ(out, "{\"a\":1}\n{\"error\":{\"code\":14}}\n");
  out.clear();
  ResponseTranslator::AppendStreamMessage(StreamFormat::kSse, R"({"a":1})", &out);
  ResponseTranslator::AppendStreamError(StreamFormat::kSse, R"({"code":14})", &out);
  EXPECT_EQ(out, "data: {\"a\":1}\n\nevent: error\ndata: {\"code\":14}\n\n");
}

}  // namespace
}  // namespace taskmesh::gateway
