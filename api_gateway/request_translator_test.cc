#include "api_gateway/request_translator.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "api_gateway/descriptors.h"
#include "api_gateway/route_table.h"
#include "api_gateway/testdata/transcoding_descriptor_set.h"
#include "gatewaytest/v1/transcoding.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace taskmesh::gateway {
namespace {

using ::testing::HasSubstr;

struct Case {
  const char* name;
  const char* method;
  const char* target;  // path and query
  const char* body;
  const char* expected;  // text proto of the request, or "error: <substring>"
};

class RequestTranslatorTest : public ::testing::TestWithParam<Case> {
 protected:
  static void SetUpTestSuite() {
    api_ = ApiDescriptors::Load({embedded::kTranscodingDescriptorSet}).value().release();
    table_ = new std::shared_ptr<const RouteTable>(RouteTable::Build(api_->services()).value());
  }

  // Translates and parses into the generated request type.
  static absl::StatusOr<std::unique_ptr<google::protobuf::Message>> Run(
      const Case& c, RequestTranslatorOptions options = {}) {
    const std::string target = c.target;
    const size_t q = target.find('?');
    RouteTable::Match m = (*table_)->Lookup(c.method, target.substr(0, q));
    if (m.route == nullptr) return absl::NotFoundError(absl::StrCat("no route: ", m.error));
    RequestTranslator translator(api_, options);
    absl::StatusOr<std::string> bytes = translator.Translate(
        *m.route, m.variable_values, q == std::string::npos ? "" : target.substr(q + 1), c.body);
    if (!bytes.ok()) return bytes.status();
    const google::protobuf::Descriptor* type =
        google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(
            m.route->method->input_type()->full_name());
    std::unique_ptr<google::protobuf::Message> msg(
        google::protobuf::MessageFactory::generated_factory()->GetPrototype(type)->New());
    if (!msg->ParseFromString(*bytes)) return absl::InternalError("bytes do not parse");
    return msg;
  }

  static ApiDescriptors* api_;
  static std::shared_ptr<const RouteTable>* table_;
};

ApiDescriptors* RequestTranslatorTest::api_ = nullptr;
std::shared_ptr<const RouteTable>* RequestTranslatorTest::table_ = nullptr;

TEST_P(RequestTranslatorTest, Translates) {
  const Case& c = GetParam();
  absl::StatusOr<std::unique_ptr<google::protobuf::Message>> got = Run(c);
  const std::string expected = c.expected;
  if (expected.rfind("error: ", 0) == 0) {
    ASSERT_FALSE(got.ok()) << c.name << " gave " << (*got)->ShortDebugString();
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(got.status().message(), HasSubstr(expected.substr(7))) << c.name;
    return;
  }
  ASSERT_TRUE(got.ok()) << c.name << ": " << got.status();
  std::unique_ptr<google::protobuf::Message> want((*got)->New());
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(expected, want.get())) << c.name;
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(**got, *want))
      << c.name << "\n got: " << (*got)->ShortDebugString()
      << "\nwant: " << want->ShortDebugString();
}

INSTANTIATE_TEST_SUITE_P(
    Table, RequestTranslatorTest,
    ::testing::Values(
        // --- path templates and HttpRule kinds
        Case{"get_variable", "GET", "/v1/things/t1", "", R"(name: "things/t1")"},
        Case{"additional_binding_multi", "GET", "/v1/shelves/s1/things/t2", "",
             R"(name: "shelves/s1/things/t2")"},
        Case{"additional_binding_single", "GET", "/v1/ids/abc", "", R"(id: "abc")"},
        Case{"single_segment_keeps_escaped_slash", "GET", "/v1/ids/a%2Fb%20c", "",
             R"(id: "a%2Fb c")"},
        Case{"multi_segment_keeps_reserved", "GET", "/v1/things/a%3Ab%2Fc%7E", "",
             R"(name: "things/a%3Ab%2Fc~")"},
        Case{"double_wildcard_variable", "GET", "/v1/files/f1/versions/2024/01/x.txt", "",
             R"(path: "files/f1/versions/2024/01/x.txt")"},
        Case{"bare_double_wildcard", "GET", "/v1/static/a/b?id=7", "", R"(id: "7")"},
        Case{"nested_and_int_variables", "GET", "/v1/nested/deepv/-42", "",
             R"(inner { deep { value: "deepv" } } i64: -42)"},
        Case{"int_variable_rejects_text", "GET", "/v1/nested/x/notanumber", "",
             "error: invalid value 'notanumber' for field 'i64'"},
        Case{"custom_kind", "SEARCH", "/v1/things?tags=a", "", R"(tags: "a")"},
        Case{"custom_verb_body_star", "POST", "/v1/things/t1:cancel", R"({"id":"x"})",
             R"(name: "things/t1" id: "x")"},
        Case{"delete_no_body", "DELETE", "/v1/things/t1", "", R"(name: "things/t1")"},
        // --- bodies
        Case{"body_field", "POST", "/v1/shelves/s1/things?thing_id=t9",
             R"({"displayName":"A","i64":"12","inner":{"deep":{"ids":["1","2"]}}})",
             R"(parent: "shelves/s1" thing_id: "t9"
                thing { display_name: "A" i64: 12 inner { deep { ids: 1 ids: 2 } } })"},
        Case{"body_field_proto_names", "POST", "/v1/shelves/s1/things",
             R"({"display_name":"B","maybe_int":5})",
             R"(parent: "shelves/s1" thing { display_name: "B" maybe_int { value: 5 } })"},
        Case{"body_field_query_cannot_touch_body", "POST", "/v1/shelves/s1/things?thing.id=x",
             "{}", "error: unknown query parameter 'thing.id'"},
        Case{"body_star_put", "PUT", "/v1/things/t1",
             R"({"name":"ignored","flag":true,"color":"GREEN","colors":[1,"RED"]})",
             R"(name: "things/t1" flag: true color: GREEN colors: RED colors: RED)"},
        Case{"body_star_patch_wkt", "PATCH", "/v1/things/t1",
             R"({"at":"2024-05-06T07:08:09.5Z","timeout":"1.5s","mask":"displayName,inner.text",
                 "meta":{"k":[1,"x",null]},"payload":{"a":1},"maybeText":"w","raw":"AQI="})",
             R"(name: "things/t1" at { seconds: 1714979289 nanos: 500000000 }
                timeout { seconds: 1 nanos: 500000000 } mask { paths: "display_name" paths: "inner.text" }
                meta { fields { key: "k" value { list_value { values { number_value: 1 }
                  values { string_value: "x" } values { null_value: NULL_VALUE } } } } }
                payload { struct_value { fields { key: "a" value { number_value: 1 } } } }
                maybe_text { value: "w" } raw: "\001\002")"},
        Case{"body_star_rejects_query", "PATCH", "/v1/things/t1?flag=true", "{}",
             "error: unknown query parameter 'flag': the body binds every field"},
        Case{"body_repeated_field", "POST", "/v1/things/t1:setTags", R"(["a","b"])",
             R"(name: "things/t1" tags: "a" tags: "b")"},
        Case{"empty_body_is_no_fields", "PUT", "/v1/things/t1", "  ", R"(name: "things/t1")"},
        Case{"body_ignored_without_body_rule", "GET", "/v1/things/t1", R"({"id":"x"})",
             R"(name: "things/t1")"},
        Case{"malformed_json_has_position", "PUT", "/v1/things/t1", "{\"id\": \"x\",\n \"flag\" true}",
             "error: malformed JSON at line 2, column 9 (byte 20): expected ':'"},
        Case{"too_deep_json", "PUT", "/v1/things/t1",
             R"({"meta":{"a":{"b":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}})",
             "error: JSON nested deeper than 64 levels"},
        Case{"body_cannot_smuggle_fields", "POST", "/v1/shelves/s1/things",
             R"({}, "parent": "shelves/evil")", "error: unexpected data after the JSON value"},
        Case{"unknown_json_field", "PUT", "/v1/things/t1", R"({"nope":1})",
             "error: invalid JSON body"},
        Case{"wrong_json_type", "PUT", "/v1/things/t1", R"({"i32":"abc"})",
             "error: invalid JSON body"},
        // --- query parameters
        Case{"query_nested", "GET", "/v1/things/t1?inner.deep.value=v&inner.text=t&inner.count=3", "",
             R"(name: "things/t1" inner { text: "t" count: 3 deep { value: "v" } })"},
        Case{"query_json_names", "GET", "/v1/things/t1?displayName=D&maybeInt=4", "",
             R"(name: "things/t1" display_name: "D" maybe_int { value: 4 })"},
        Case{"query_repeated", "GET", "/v1/things/t1?tags=a&tags=b&nums=1&nums=-2&inner.deep.ids=5", "",
             R"(name: "things/t1" tags: "a" tags: "b" nums: 1 nums: -2 inner { deep { ids: 5 } })"},
        Case{"query_enums_by_name_and_number", "GET", "/v1/things/t1?color=GREEN&colors=1&colors=GREEN",
             "", R"(name: "things/t1" color: GREEN colors: RED colors: GREEN)"},
        Case{"query_bad_enum", "GET", "/v1/things/t1?color=BLUE", "",
             "error: invalid value 'BLUE' for field 'color'"},
        Case{"query_every_scalar", "GET",
             "/v1/things/t1?i32=-1&i64=-9000000000&u32=4000000000&u64=18000000000000000000"
             "&s32=-5&s64=-6&f32=7&f64=8&sf32=-9&sf64=-10&dbl=1.5&flt=-2.25&flag=1"
             "&raw=AQL_&id=caf%C3%A9+x",
             "", R"(name: "things/t1" i32: -1 i64: -9000000000 u32: 4000000000
                    u64: 18000000000000000000 s32: -5 s64: -6 f32: 7 f64: 8 sf32: -9 sf64: -10
                    dbl: 1.5 flt: -2.25 flag: true raw: "\001\002\377" id: "café x")"},
        Case{"query_special_doubles", "GET", "/v1/things/t1?dbl=-Infinity", "",
             R"(name: "things/t1" dbl: -inf)"},
        Case{"query_int_out_of_range", "GET", "/v1/things/t1?i32=3000000000", "",
             "error: expected a 32-bit integer"},
        Case{"query_negative_unsigned", "GET", "/v1/things/t1?u64=-1", "",
             "error: expected an unsigned 64-bit integer"},
        Case{"query_bad_bool", "GET", "/v1/things/t1?flag=yes", "", "error: expected true or false"},
        Case{"query_wkts", "GET",
             "/v1/things/t1?at=2024-01-02T03:04:05Z&timeout=3s&mask=displayName,inner.text"
             "&maybeFlag=false&maybeBig=-5&maybeDbl=2.5&maybe_text=hi",
             "", R"(name: "things/t1" at { seconds: 1704164645 } timeout { seconds: 3 }
                    mask { paths: "display_name" paths: "inner.text" } maybe_flag { value: false }
                    maybe_big { value: -5 } maybe_dbl { value: 2.5 } maybe_text { value: "hi" })"},
        Case{"query_bad_timestamp", "GET", "/v1/things/t1?at=yesterday", "",
             "error: expected a Timestamp in JSON form"},
        Case{"query_unknown", "GET", "/v1/things/t1?nope=1", "",
             "error: unknown query parameter 'nope'"},
        Case{"query_bound_by_path", "GET", "/v1/things/t1?name=other", "",
             "error: unknown query parameter 'name': the field is bound by the path"},
        Case{"query_message_field", "GET", "/v1/things/t1?inner=x", "",
             "error: cannot be set from the URL"},
        Case{"query_map_field", "GET", "/v1/things/t1?labels=x", "",
             "error: map fields cannot be set from the URL"},
        Case{"query_singular_twice", "GET", "/v1/things/t1?id=a&id=b", "",
             "error: is given more than once"},
        Case{"query_bad_escape", "GET", "/v1/things/t1?id=%zz", "",
             "error: malformed percent-encoding"},
        Case{"query_invalid_utf8", "GET", "/v1/things/t1?id=%FF", "", "error: valid UTF-8"},
        Case{"path_wins_over_body", "PUT", "/v1/things/t1", R"({"name":"things/other"})",
             R"(name: "things/t1")"}),
    [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

// Plain bodies take the translator's own encoder; anything else protobuf's
// parser. Either way the request must be what protobuf's parser makes of it.
TEST_F(RequestTranslatorTest, BodiesEncodeAsProtobufsJsonParserDoes) {
  const char* bodies[] = {
      R"({})",
      R"({"id":"x","i32":-5,"i64":"-9000000000","u32":7,"u64":"18446744073709551615"})",
      R"({"s32":-3,"s64":"-4","f32":9,"f64":"10","sf32":-11,"sf64":"-12"})",
      R"( { "flag" : true , "color" : "GREEN", "displayName": "d", "i32": "42" } )",
      R"({"flag":false,"color":1,"display_name":"snake","i64":123,"u32":"8"})",
      R"({"inner":{"text":"t","count":2147483647,"deep":{}},"id":"caf\u00e9 \"q\""})",
      R"({"i32":-2147483648,"s64":"-9223372036854775808","u64":0})",
      R"({"dbl":1.5,"flt":2.5,"raw":"AAE=","tags":["a","b"],"nums":[1,2]})",
      R"({"at":"2024-01-02T03:04:05Z","maybeInt":3,"labels":{"k":"v"},"meta":{"a":[1,null]}})",
      R"({"id":"\u00e9","inner":null,"i64":1e3})",
  };
  for (const char* body : bodies) {
    absl::StatusOr<std::unique_ptr<google::protobuf::Message>> got =
        Run(Case{"", "PUT", "/v1/things/t1", body, ""});
    ASSERT_TRUE(got.ok()) << body << ": " << got.status();
    gatewaytest::v1::Thing want;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(body, &want).ok()) << body;
    want.set_name("things/t1");
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(**got, want))
        << body << "\n got: " << (*got)->ShortDebugString() << "\nwant: " << want.ShortDebugString();
  }
  for (const char* bad : {R"({"i32":2147483648})", R"({"u32":-1})", R"({"i32":1.5})",
                          R"({"color":"PURPLE"})", R"({"id":1})"}) {
    EXPECT_FALSE(Run(Case{"", "PUT", "/v1/things/t1", bad, ""}).ok()) << bad;
  }
}

TEST_F(RequestTranslatorTest, UnknownQueryParametersCanBeIgnored) {
  RequestTranslatorOptions options;
  options.ignore_unknown_query_parameters = true;
  auto got = Run(Case{"", "GET", "/v1/things/t1?nope=1&name=x&id=y", "", ""}, options);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)->ShortDebugString(), R"(name: "things/t1" id: "y")");
  // A bad value for a known field is still an error.
  EXPECT_FALSE(Run(Case{"", "GET", "/v1/things/t1?i32=x", "", ""}, options).ok());
}

TEST_F(RequestTranslatorTest, UnknownJsonFieldsCanBeIgnored) {
  RequestTranslatorOptions options;
  options.ignore_unknown_json_fields = true;
  auto got = Run(Case{"", "PUT", "/v1/things/t1", R"({"nope":1,"id":"z"})", ""}, options);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)->ShortDebugString(), R"(name: "things/t1" id: "z")");
}

TEST_F(RequestTranslatorTest, NestingLimitIsConfigurable) {
  RequestTranslatorOptions options;
  options.max_json_depth = 3;
  EXPECT_TRUE(Run(Case{"", "PUT", "/v1/things/t1", R"({"meta":{"a":{}}})", ""}, options).ok());
  auto got = Run(Case{"", "PUT", "/v1/things/t1", R"({"meta":{"a":{"b":{}}}})", ""}, options);
  EXPECT_THAT(got.status().message(), HasSubstr("nested deeper than 3"));
}

TEST(RouteTableTest, EveryBindingBecomesARouteAndUnboundMethodsAreSkipped) {
  auto api = ApiDescriptors::Load({embedded::kTranscodingDescriptorSet}).value();
  auto table = RouteTable::Build(api->services()).value();
  std::vector<std::string> labels;
  for (const Route& r : table->routes()) labels.push_back(r.label);
  EXPECT_THAT(labels, ::testing::IsSupersetOf({
                          "GET /v1/{name=things/*}", "GET /v1/{name=shelves/*/things/*}",
                          "GET /v1/ids/{id}", "POST /v1/{parent=shelves/*}/things",
                          "PUT /v1/{name=things/*}", "PATCH /v1/{name=things/*}",
                          "DELETE /v1/{name=things/*}", "SEARCH /v1/things",
                          "POST /v1/{name=things/*}:cancel", "GET /v1/static/**",
                          "GET /v1/{name=streams/*}:watch"}));
  EXPECT_THAT(table->skipped(),
              ::testing::ElementsAre("gatewaytest.v1.Transcoding/Unbound: no google.api.http rule"));
  RouteTable::Match m = table->Lookup("GET", "/v1/streams/s1:watch");
  ASSERT_NE(m.route, nullptr);
  EXPECT_TRUE(m.route->server_streaming);
  EXPECT_EQ(m.route->grpc_path, "/gatewaytest.v1.Transcoding/Stream");
  m = table->Lookup("GET", "/v1/things/t1/thing");
  ASSERT_NE(m.route, nullptr);
  ASSERT_NE(m.route->response_body_field, nullptr);
  EXPECT_EQ(m.route->response_body_field->name(), "thing");
}

}  // namespace
}  // namespace taskmesh::gateway
