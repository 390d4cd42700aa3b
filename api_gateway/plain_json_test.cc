#include "api_gateway/plain_json.h"

#include <string>

#include "gatewaytest/v1/transcoding.pb.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace taskmesh::gateway {
namespace {

using ::gatewaytest::v1::Thing;

TEST(PlainJsonTest, PlainObjectsEncodeAsProtobufsParserReadsThem) {
  for (const char* body : {
           R"({})",
           R"({"id":"x","i32":-5,"i64":"-9000000000","u32":7,"u64":"18446744073709551615"})",
           R"({"s32":-3,"s64":"-4","f32":9,"f64":"10","sf32":-11,"sf64":"-12"})",
           R"( { "flag" : true , "color" : "GREEN", "displayName": "d", "i32": "42" } )",
           R"({"flag":false,"color":1,"display_name":"snake","inner":{"text":"t","deep":{}}})",
           R"({"i32":-2147483648,"s64":"-9223372036854775808","u64":0})",
           // Edges the differential fuzzer (fuzz/plain_json_fuzzer.cc) checks too.
           R"({"i32":-0,"s32":-0,"i64":"-0","sf64":"-0"})",
           R"({"i32":"007","u64":"00000000000000000001","i64":"-0000000000000000001"})",
           R"({"color":-1})",                 // proto3 enums are open: any int32
           R"({"color":2147483647})",
           "{\"id\":\"\xe2\x80\xa8\xf4\x8f\xbf\xbf\x7f/\"}",  // raw UTF-8, DEL, a slash
           "\t{\"i32\":1}\r\n ",
       }) {
    std::string bytes;
    ASSERT_TRUE(EncodePlainJson(body, Thing::descriptor(), &bytes)) << body;
    Thing got, want;
    ASSERT_TRUE(got.ParseFromString(bytes)) << body;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(body, &want).ok()) << body;
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(got, want))
        << body << "\n got: " << got.ShortDebugString() << "\nwant: " << want.ShortDebugString();
  }
}

TEST(PlainJsonTest, GivesUpOnAnythingElse) {
  for (const char* body : {
           R"({"id":"caf\u00e9"})",          // an escape
           R"({"dbl":1.5})",                  // a float
           R"({"raw":"AAE="})",               // bytes
           R"({"tags":["a"]})",               // repeated
           R"({"labels":{"k":"v"}})",         // a map
           R"({"at":"2024-01-02T03:04:05Z"})",  // a well-known type
           R"({"inner":null})",               // null
           R"({"i64":1e3})",                  // not a plain integer
           R"({"id":"a","id":"b"})",          // a repeated name
           R"({"nope":1})",                   // an unknown name
           R"({"i32":2147483648})",           // out of range: protobuf's error
           R"({"u32":-1})",
           R"({"color":"PURPLE"})",
       }) {
    std::string bytes;
    EXPECT_FALSE(EncodePlainJson(body, Thing::descriptor(), &bytes)) << body;
  }
}

}  // namespace
}  // namespace taskmesh::gateway
