#include "api_gateway/openapi.h"

#include "api_gateway/descriptors.h"
#include "api_gateway/taskmesh_descriptor_set.h"
#include "api_gateway/testdata/transcoding_descriptor_set.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace taskmesh::gateway {
namespace {

using ::testing::HasSubstr;

TEST(OpenApiTest, TaskmeshApiDocumentHasEveryRouteAndComments) {
  auto api = ApiDescriptors::Load({embedded::kTaskmeshDescriptorSet}).value();
  auto table = RouteTable::Build(api->services()).value();
  const std::string doc = BuildOpenApi(*table, {"taskmesh API", "v1"});
  google::protobuf::Struct parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(doc, &parsed).ok());
  const auto& paths = parsed.fields().at("paths").struct_value().fields();
  for (const char* path : {"/v1/queues/{queue}/tasks", "/v1/queues/{queue}/tasks:batchCreate",
                           "/v1/queues/{queue}/tasks/{task}", "/v1/queues/{queue}/tasks/{task}:cancel",
                           "/v1/queues/{queue}/tasks/{task}:retry", "/v1/queues/{queue}/tasks/{task}:watch",
                           "/v1/queues/{queue}", "/v1/queues", "/v1/queues/{queue}:pause",
                           "/v1/queues/{queue}:resume", "/v1/queues/{queue}:purge"}) {
    EXPECT_TRUE(paths.count(path)) << path;
  }
  // ListTasks: the free fields are query parameters, with JSON names.
  const auto& list = paths.at("/v1/queues/{queue}/tasks").struct_value().fields().at("get");
  std::string names;
  for (const auto& p : list.struct_value().fields().at("parameters").list_value().values()) {
    names += p.struct_value().fields().at("name").string_value() + ",";
  }
  EXPECT_EQ(names, "queue,state,pageSize,pageToken,");
  EXPECT_THAT(doc, HasSubstr("Enqueues a task. OK is returned only after"));  // a method comment
  EXPECT_THAT(doc, HasSubstr("\"readOnly\": true"));  // "Output only." fields
  EXPECT_THAT(doc, HasSubstr("\"format\": \"date-time\""));
  EXPECT_THAT(doc, HasSubstr("\"application/x-ndjson\""));  // WatchTask streams
}

std::string TestApiDocument() {
  auto api = ApiDescriptors::Load({embedded::kTranscodingDescriptorSet}).value();
  auto table = RouteTable::Build(api->services()).value();
  return BuildOpenApi(*table, {"test API", "v1"});
}

TEST(OpenApiTest, SchemasOfWellKnownTypesMapsRepeatedAndEnumFields) {
  const auto doc = nlohmann::ordered_json::parse(TestApiDocument());
  const auto& thing = doc["components"]["schemas"]["gatewaytest.v1.Thing"]["properties"];
  const std::pair<const char*, const char*> cases[] = {
      {"i64", R"({"type":"string","format":"int64"})"},
      {"raw", R"({"type":"string","format":"byte"})"},
      {"color", R"({"$ref":"#/components/schemas/gatewaytest.v1.Color"})"},
      {"tags", R"({"type":"array","items":{"type":"string"}})"},
      {"labels", R"({"type":"object","additionalProperties":{"type":"string"}})"},
      {"at", R"({"type":"string","format":"date-time"})"},
      {"maybeInt", R"({"type":["integer","null"]})"},
      {"maybeBig", R"({"type":["string","null"],"format":"int64"})"},
      {"meta", R"({"type":"object"})"},
      {"payload", R"({"description":"Any JSON value."})"},
  };
  for (const auto& [field, want] : cases) EXPECT_EQ(thing[field].dump(), want) << field;
  // A custom HTTP method becomes an x- extension.
  EXPECT_EQ(doc["paths"]["/v1/things"].begin().key(), "x-search");
}

TEST(OpenApiTest, EnumSchemasFollowMessagesInTheOrderFirstReferenced) {
  // They used to follow descriptor addresses: the order changed with the heap's
  // layout (seen in a process that had built another API's document first).
  const auto doc = nlohmann::ordered_json::parse(TestApiDocument());
  std::string names;
  for (const auto& [name, schema] : doc["components"]["schemas"].items()) names += name + ",";
  EXPECT_THAT(names, ::testing::EndsWith(",gatewaytest.v1.Color,google.protobuf.NullValue,"));
  EXPECT_EQ(TestApiDocument(), TestApiDocument());
}

TEST(OpenApiTest, DocumentIsIndentedByTwoSpacesAndEndsWithANewline) {
  const std::string doc = TestApiDocument();
  EXPECT_THAT(doc, ::testing::StartsWith("{\n  \"openapi\": \"3.1.0\",\n  \"info\": {\n"));
  EXPECT_THAT(doc, HasSubstr(R"(
    "/healthz": {
      "get": {
        "tags": [
          "gateway"
        ],
        "description": "Liveness: the gateway process is up.",
        "responses": {
          "200": {
            "description": "OK",
            "content": {
              "application/json": {
                "schema": {
                  "type": "string"
                }
              }
            }
          }
        }
      }
    },
)"));
  EXPECT_THAT(doc, ::testing::EndsWith("}\n"));
}

}  // namespace
}  // namespace taskmesh::gateway
