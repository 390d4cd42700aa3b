#include "broker/events.h"

#include "gtest/gtest.h"

namespace taskmesh::broker {
namespace {

TEST(ParseTaskEventTest, HeaderOnly) {
  absl::StatusOr<TaskEvent> e = ParseTaskEvent("t1 7 DELETED 0");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->id, "t1");
  EXPECT_EQ(e->version, 7);
  EXPECT_EQ(e->state, "DELETED");
  EXPECT_EQ(e->attempt, 0);
  EXPECT_EQ(e->record, nullptr);
}

TEST(ParseTaskEventTest, WithRecordIncludingBinaryValues) {
  const std::string payload("a,b:\n\0c", 7);
  const std::string message =
      "t1 3 SUCCEEDED 1\n5:state,9:SUCCEEDED,3:ver,1:3,7:payload,7:" + payload + ",0:,0:,";
  absl::StatusOr<TaskEvent> e = ParseTaskEvent(message);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->state, "SUCCEEDED");
  EXPECT_EQ(e->attempt, 1);
  ASSERT_NE(e->record, nullptr);
  EXPECT_EQ(e->record->at("state"), "SUCCEEDED");
  EXPECT_EQ(e->record->at("ver"), "3");
  EXPECT_EQ(e->record->at("payload"), payload);
  EXPECT_EQ(e->record->at(""), "");
}

TEST(ParseTaskEventTest, RejectsMalformedMessages) {
  for (const char* bad : {"", "t1 3 RUNNING", "t1 x RUNNING 1", "t1 3 RUNNING 1 extra",
                          "t1 3 RUNNING 1\n", "t1 3 RUNNING 1\n5:state", "t1 3 RUNNING 1\n5:state,",
                          "t1 3 RUNNING 1\n9:state,1:x,", "t1 3 RUNNING 1\n5:state;7:RUNNING,",
                          "t1 3 RUNNING 1\n-1:x,1:y,", "t1 3 RUNNING 1\n:x,1:y,"}) {
    EXPECT_FALSE(ParseTaskEvent(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace taskmesh::broker
