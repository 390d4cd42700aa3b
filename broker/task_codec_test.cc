#include "broker/task_codec.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace taskmesh::broker {
namespace {

using ::taskmesh::v1::Task;
using ::testing::HasSubstr;

Task ParseTask(const std::string& json) {
  Task task;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &task).ok()) << json;
  return task;
}

// What the enqueue script would store: the caller's fields plus its own.
Record Stored(const Task& task) {
  auto fields = NewTaskFields(task, 3);
  EXPECT_TRUE(fields.ok()) << fields.status();
  Record record = {{"state", "PENDING"}, {"attempt", "0"}, {"ctime", "1700000000123"},
                   {"mtime", "1700000000123"}};
  for (size_t i = 0; i + 1 < fields->size(); i += 2) record[(*fields)[i]] = (*fields)[i + 1];
  return record;
}

TEST(TaskCodecTest, JsonPayloadRoundTrips) {
  const Task in = ParseTask(R"({"type":"echo","payload":{"a":[1,"x",null],"b":{"c":true}},
                                "labels":{"team":"mail"},"requestId":"r1","maxAttempts":5,
                                "attemptTimeout":"2.500s","priority":"HIGH"})");
  const Record record = Stored(in);
  EXPECT_EQ(record.at("pk"), "j");
  // Compact JSON (object key order is protobuf's to choose).
  EXPECT_THAT(record.at("payload"), HasSubstr(R"("a":[1,"x",null])"));
  EXPECT_THAT(record.at("payload"), HasSubstr(R"("b":{"c":true})"));
  EXPECT_EQ(record.at("payload").find(' '), std::string::npos);
  auto out = TaskFromRecord("q", "id1", record);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->name(), "queues/q/tasks/id1");
  EXPECT_EQ(out->type(), "echo");
  EXPECT_EQ(out->payload().DebugString(), in.payload().DebugString());
  EXPECT_EQ(out->labels().at("team"), "mail");
  EXPECT_EQ(out->request_id(), "r1");
  EXPECT_EQ(out->max_attempts(), 5);
  EXPECT_EQ(out->attempt_timeout().seconds(), 2);
  EXPECT_EQ(out->attempt_timeout().nanos(), 500000000);
  EXPECT_EQ(out->priority(), Task::HIGH);
  EXPECT_EQ(out->state(), Task::PENDING);
  EXPECT_EQ(out->create_time().seconds(), 1700000000);
  EXPECT_EQ(out->create_time().nanos(), 123000000);
}

TEST(TaskCodecTest, BinaryPayloadIsKeptAsBytes) {
  Task in;
  in.set_type("raw");
  in.set_payload_bytes(std::string("\0\xff\x01", 3));
  const Record record = Stored(in);
  EXPECT_EQ(record.at("pk"), "b");
  auto out = TaskFromRecord("q", "id", record);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->payload_bytes(), std::string("\0\xff\x01", 3));
  EXPECT_EQ(out->payload_kind_case(), Task::kPayloadBytes);
}

TEST(TaskCodecTest, MissingPayloadIsJsonNull) {
  Task in;
  in.set_type("noop");
  auto payload = PayloadOf(in);
  ASSERT_TRUE(payload.ok());
  EXPECT_TRUE(payload->is_json);
  EXPECT_EQ(payload->data, "null");
}

TEST(TaskCodecTest, UnsetTimesStayUnset) {
  auto out = TaskFromRecord("q", "id", Stored(ParseTask(R"({"type":"echo"})")));
  ASSERT_TRUE(out.ok());
  EXPECT_FALSE(out->has_schedule_time());
  EXPECT_FALSE(out->has_start_time());
  EXPECT_FALSE(out->has_end_time());
  EXPECT_FALSE(out->has_attempt_timeout());
  EXPECT_FALSE(out->has_last_error());
  EXPECT_FALSE(out->has_progress());
  EXPECT_TRUE(out->has_create_time());
}

TEST(TaskCodecTest, DefaultMaxAttemptsApplies) {
  Task in;
  in.set_type("noop");
  EXPECT_EQ(Stored(in).at("max_att"), "3");
}

TEST(TaskCodecTest, ResultAndErrorAreRead) {
  Record record = Stored(ParseTask(R"({"type":"echo"})"));
  record["state"] = "SUCCEEDED";
  record["rk"] = "j";
  record["result"] = R"({"ok":1})";
  record["err_code"] = "14";
  record["err_msg"] = "redis down";
  auto out = TaskFromRecord("q", "id", record);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->state(), Task::SUCCEEDED);
  EXPECT_EQ(out->result().struct_value().fields().at("ok").number_value(), 1);
  EXPECT_EQ(out->last_error().code(), 14);
  EXPECT_EQ(out->last_error().message(), "redis down");
}

TEST(TaskCodecTest, EmptyRecordIsNotFound) {
  auto out = TaskFromRecord("q", "nope", {});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("queues/q/tasks/nope"));
}

TEST(TaskCodecTest, CorruptRecordIsDataLoss) {
  Record record = Stored(ParseTask(R"({"type":"echo"})"));
  record["state"] = "EXPLODED";
  EXPECT_EQ(TaskFromRecord("q", "id", record).status().code(), absl::StatusCode::kDataLoss);
  record["state"] = "PENDING";
  record["payload"] = "{not json";
  EXPECT_EQ(TaskFromRecord("q", "id", record).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace taskmesh::broker
