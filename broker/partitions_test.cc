#include "broker/partitions.h"

#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskmesh::broker {
namespace {

using ::testing::ElementsAre;

redis::Reply Fields(absl::optional<std::string> count, absl::optional<std::string> history) {
  auto field = [](const absl::optional<std::string>& v) {
    return v ? redis::Reply::String(*v) : redis::Reply::Nil();
  };
  return redis::Reply::Array({field(count), field(history)});
}

TEST(PartitionsTest, NamesAndTheirQueue) {
  EXPECT_EQ(PartitionName("emails", 0), "emails");
  EXPECT_EQ(PartitionName("emails", 3), "emails~3");
  EXPECT_EQ(QueueOfPartition("emails~3"), "emails");
  EXPECT_EQ(QueueOfPartition("emails"), "emails");
  EXPECT_TRUE(IsPartitionName("emails~3"));
  EXPECT_FALSE(IsPartitionName("emails"));
}

TEST(PartitionsTest, PartitionForIsStableAndSpreads) {
  // Pinned: a task created by one release is found by the next.
  EXPECT_EQ(PartitionFor("task-a", 1), 0);
  EXPECT_EQ(PartitionFor("", 7), PartitionFor("", 7));
  const int a = PartitionFor("01HZXW6Q8J0000000000000000", 64);
  EXPECT_EQ(a, PartitionFor("01HZXW6Q8J0000000000000000", 64));
  std::set<int> seen;
  int counts[3] = {0, 0, 0};
  for (int i = 0; i < 3000; ++i) {
    const int p = PartitionFor("task-" + std::to_string(i), 3);
    ASSERT_GE(p, 0);
    ASSERT_LT(p, 3);
    ++counts[p];
  }
  for (int c : counts) EXPECT_GT(c, 800) << "3000 ids over 3 partitions";
}

TEST(PartitionsTest, AQueueNeverPartitionedIsItsOwnOnlyPartition) {
  absl::StatusOr<PartitionMap> map = ParsePartitionMap(Fields(absl::nullopt, absl::nullopt));
  ASSERT_TRUE(map.ok()) << map.status();
  EXPECT_EQ(map->count, 1);
  EXPECT_EQ(map->highest(), 1);
  EXPECT_THAT(map->Candidates("x"), ElementsAre(0));
  EXPECT_THAT(map->Names("q"), ElementsAre("q"));
}

TEST(PartitionsTest, CandidatesFollowTheHistoryMostRecentFirst) {
  absl::StatusOr<PartitionMap> map = ParsePartitionMap(Fields("2", "1,8,2"));
  ASSERT_TRUE(map.ok()) << map.status();
  EXPECT_EQ(map->count, 2);
  EXPECT_EQ(map->highest(), 8);
  EXPECT_EQ(map->HistoryText(), "1,8,2");
  EXPECT_THAT(map->Names("q"), ElementsAre("q", "q~1", "q~2", "q~3", "q~4", "q~5", "q~6", "q~7"));
  // Find an id whose partitions differ under 2 and 8, to see the order.
  for (int i = 0; i < 100; ++i) {
    const std::string id = "t" + std::to_string(i);
    const int now = PartitionFor(id, 2), before = PartitionFor(id, 8);
    if (now == before || before == 0 || now == 0) continue;
    EXPECT_THAT(map->Candidates(id), ElementsAre(now, before, 0));
    return;
  }
  FAIL() << "no id with three distinct candidates";
}

TEST(PartitionsTest, BadMetaIsAnErrorNotAGuess) {
  EXPECT_FALSE(ParsePartitionMap(Fields("0", "1")).ok());
  EXPECT_FALSE(ParsePartitionMap(Fields("65", "1,65")).ok());
  EXPECT_FALSE(ParsePartitionMap(Fields("3", "1,x")).ok());
  // A history missing the current count gets it.
  absl::StatusOr<PartitionMap> map = ParsePartitionMap(Fields("3", "1"));
  ASSERT_TRUE(map.ok());
  EXPECT_THAT(map->history, ElementsAre(1, 3));
}

TEST(PartitionsTest, ParsesPartitionLimits) {
  absl::StatusOr<PartitionLimits> limits = ParsePartitionLimits("hot=3, default=1");
  ASSERT_TRUE(limits.ok()) << limits.status();
  EXPECT_EQ(limits->at("hot"), 3);
  EXPECT_EQ(limits->at("default"), 1);
  EXPECT_TRUE(ParsePartitionLimits("")->empty());
  EXPECT_FALSE(ParsePartitionLimits("hot").ok());
  EXPECT_FALSE(ParsePartitionLimits("hot=0").ok());
  EXPECT_FALSE(ParsePartitionLimits("hot=65").ok());
  EXPECT_FALSE(ParsePartitionLimits("=3").ok());
}

}  // namespace
}  // namespace taskmesh::broker
