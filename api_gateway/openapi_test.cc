#include "api_gateway/openapi.h"

#include "api_gateway/descriptors.h"
#include "api_gateway/taskmesh_descriptor_set.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

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

}  // namespace
}  // namespace taskmesh::gateway
