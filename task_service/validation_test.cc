#include "task_service/validation.h"

#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace taskmesh::task_service {
namespace {

using ::taskmesh::v1::CreateTaskRequest;
using ::testing::HasSubstr;

const absl::Time kNow = absl::FromUnixSeconds(1800000000);

CreateTaskRequest Request(const std::string& json) {
  CreateTaskRequest r;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &r).ok()) << json;
  return r;
}

// The error message of validating `json`, or "OK".
std::string ErrorOf(const std::string& json) {
  auto q = ValidateCreate(Request(json), "", kNow);
  return q.ok() ? "OK" : std::string(q.status().message());
}

TEST(ValidationTest, AcceptsAMinimalTask) {
  auto q = ValidateCreate(Request(R"({"parent":"queues/emails","task":{"type":"echo"}})"), "", kNow);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(*q, "emails");
}

TEST(ValidationTest, NamesTheFieldAndRuleOfEachMistake) {
  EXPECT_THAT(ErrorOf(R"({"task":{"type":"echo"}})"), HasSubstr("parent: required"));
  EXPECT_THAT(ErrorOf(R"({"parent":"emails","task":{"type":"echo"}})"),
              HasSubstr("parent: must look like queues/{queue}"));
  EXPECT_THAT(ErrorOf(R"({"parent":"queues/a{b}","task":{"type":"echo"}})"),
              HasSubstr("parent: queue name must be 1-64 characters of [A-Za-z0-9_-]"));
  EXPECT_THAT(ErrorOf(R"({"parent":"queues/q"})"), HasSubstr("task: required"));
  EXPECT_THAT(ErrorOf(R"({"parent":"queues/q","task":{}})"), HasSubstr("task.type: required"));
  EXPECT_THAT(ErrorOf(R"({"parent":"queues/q","task":{"type":"a b"}})"),
              HasSubstr("task.type: must be 1-128 characters"));
  EXPECT_THAT(ErrorOf(R"({"parent":"queues/q","task":{"type":"e","maxAttempts":101}})"),
              HasSubstr("task.max_attempts: must be 0 (queue default) to 100; got 101"));
  EXPECT_THAT(ErrorOf(R"({"parent":"queues/q","task":{"type":"e","attemptTimeout":"-1s"}})"),
              HasSubstr("task.attempt_timeout"));
  EXPECT_THAT(ErrorOf(R"({"parent":"queues/q","taskId":"a/b","task":{"type":"e"}})"),
              HasSubstr("task_id: task id must be 1-128 characters"));
  EXPECT_THAT(ErrorOf(R"({"parent":"queues/q","task":{"type":"e","requestId":")" +
                      std::string(129, 'r') + R"("}})"),
              HasSubstr("task.request_id: at most 128"));
}

TEST(ValidationTest, PayloadOverOneMebibyteIsRejected) {
  CreateTaskRequest r = Request(R"({"parent":"queues/q","task":{"type":"e"}})");
  r.mutable_task()->set_payload_bytes(std::string(kMaxPayloadBytes, 'x'));
  EXPECT_TRUE(ValidateCreate(r, "", kNow).ok());
  r.mutable_task()->set_payload_bytes(std::string(kMaxPayloadBytes + 1, 'x'));
  auto q = ValidateCreate(r, "", kNow);
  EXPECT_EQ(q.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(q.status().message()), HasSubstr("task.payload: at most 1048576"));
}

TEST(ValidationTest, LabelLimits) {
  CreateTaskRequest r = Request(R"({"parent":"queues/q","task":{"type":"e"}})");
  for (int i = 0; i < kMaxLabels; ++i) (*r.mutable_task()->mutable_labels())[std::to_string(i)] = "v";
  EXPECT_TRUE(ValidateCreate(r, "", kNow).ok());
  (*r.mutable_task()->mutable_labels())["one-too-many"] = "v";
  EXPECT_THAT(std::string(ValidateCreate(r, "", kNow).status().message()),
              HasSubstr("task.labels: at most 64"));
}

TEST(ValidationTest, ScheduleTimeUpToAYearAhead) {
  CreateTaskRequest r = Request(R"({"parent":"queues/q","task":{"type":"e"}})");
  r.mutable_task()->mutable_schedule_time()->set_seconds(absl::ToUnixSeconds(kNow) - 60);
  EXPECT_TRUE(ValidateCreate(r, "", kNow).ok());
  r.mutable_task()->mutable_schedule_time()->set_seconds(absl::ToUnixSeconds(kNow) + 86400 * 365);
  EXPECT_TRUE(ValidateCreate(r, "", kNow).ok());
  r.mutable_task()->mutable_schedule_time()->set_seconds(absl::ToUnixSeconds(kNow) + 86400 * 366);
  auto q = ValidateCreate(r, "", kNow);
  EXPECT_EQ(q.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(q.status().message()), HasSubstr("task.schedule_time: at most 365 days"));
}

TEST(ValidationTest, PageSizeBounds) {
  EXPECT_TRUE(ValidatePageSize(0).ok());
  EXPECT_TRUE(ValidatePageSize(1000).ok());
  EXPECT_THAT(std::string(ValidatePageSize(1001).message()), HasSubstr("page_size"));
  EXPECT_FALSE(ValidatePageSize(-1).ok());
}

TEST(ValidationTest, BatchEntriesCarryTheirIndexAndMayOmitParent) {
  auto q = ValidateCreate(Request(R"({"task":{"type":"echo"}})"), "requests[3].", kNow);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(*q, "");
  auto bad = ValidateCreate(Request(R"({"task":{}})"), "requests[3].", kNow);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("requests[3].task.type: required"));
}

TEST(ValidationTest, ParsesTaskNames) {
  auto ref = ParseTaskName("queues/q-1/tasks/abc_2", "name");
  ASSERT_TRUE(ref.ok());
  EXPECT_EQ(ref->queue, "q-1");
  EXPECT_EQ(ref->id, "abc_2");
  for (const char* bad : {"", "queues/q", "queues/q/tasks/", "queues/q/jobs/x",
                          "queues/q/tasks/x/y", "queues//tasks/x", "queues/q/tasks/a%2Fb"}) {
    auto r = ParseTaskName(bad, "name");
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("name: ")) << bad;
  }
}

}  // namespace
}  // namespace taskmesh::task_service
