// The cluster fixture itself: creation, failover after kill -9, rejoin, and
// both ways of moving slots.
#include "tests/support/redis_cluster.h"

#include <memory>
#include <vector>

#include "gtest/gtest.h"

namespace taskmesh::testing {
namespace {

TEST(RedisClusterTest, StartsThreeMastersCoveringAllSlots) {
  auto cluster = RedisCluster::Start();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  EXPECT_EQ((*cluster)->size(), 6);
  auto masters = (*cluster)->Masters();
  ASSERT_TRUE(masters.ok()) << masters.status();
  EXPECT_EQ(masters->size(), 3u);
  for (int slot : {0, 8000, 16383}) {
    auto master = (*cluster)->MasterOfSlot(slot);
    ASSERT_TRUE(master.ok()) << master.status();
    EXPECT_GE(*master, 0);
  }
}

TEST(RedisClusterTest, KilledMasterIsReplacedAndRejoinsAsReplica) {
  auto cluster = RedisCluster::Start().value();
  const int master = cluster->MasterOfSlot(0).value();
  ASSERT_TRUE(cluster->Kill(master).ok());
  EXPECT_FALSE(cluster->running(master));
  ASSERT_TRUE(cluster->WaitHealthy().ok());
  const int promoted = cluster->MasterOfSlot(0).value();
  EXPECT_NE(promoted, master);
  ASSERT_TRUE(cluster->Restart(master).ok());
  ASSERT_TRUE(cluster->WaitHealthy().ok());
  EXPECT_EQ(cluster->MasterOfSlot(0).value(), promoted);
}

TEST(RedisClusterTest, MovesSlotsWithReshardAndByHand) {
  auto cluster = RedisCluster::Start().value();
  const int from = cluster->MasterOfSlot(0).value();
  const int to = cluster->MasterOfSlot(16383).value();
  ASSERT_NE(from, to);
  // redis-cli moves the source's lowest slots first.
  absl::Status resharded = cluster->Reshard(from, to, 10);
  ASSERT_TRUE(resharded.ok()) << resharded;
  EXPECT_EQ(cluster->MasterOfSlot(0).value(), to);
  EXPECT_EQ(cluster->MasterOfSlot(9).value(), to);
  EXPECT_EQ(cluster->MasterOfSlot(10).value(), from);

  ASSERT_TRUE(cluster->BeginSlotMigration(10, from, to).ok());
  absl::Status finished = cluster->FinishSlotMigration(10, from, to);
  ASSERT_TRUE(finished.ok()) << finished;
  EXPECT_EQ(cluster->MasterOfSlot(10).value(), to);
}

}  // namespace
}  // namespace taskmesh::testing
