// ClusterClient while the cluster changes under it, each test on a real
// cluster of its own: MOVED during `redis-cli --cluster reshard` under
// traffic (no command lost or run twice), ASK during a slot migration, and a
// master killed with kill -9 (its commands fail fast, then work again once
// its replica is promoted).
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "redis/cluster_client.h"
#include "redis/open.h"
#include "redis/script.h"
#include "redis/slots.h"
#include "tests/support/process.h"
#include "tests/support/redis_cluster.h"

namespace taskmesh::redis {
namespace {

using ::taskmesh::testing::RedisCluster;
using ::taskmesh::testing::WaitFor;
using ::testing::HasSubstr;

class ClusterFailoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = RedisCluster::Start();
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *std::move(cluster);
    ClientOptions options;
    options.connection.command_timeout = absl::Seconds(2);
    auto client = Open(cluster_->url(0), options);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
  }

  int MasterOf(const std::string& key) { return cluster_->MasterOfSlot(KeySlot(key)).value(); }

  // `n` keys named prefix:N whose slots are in [first, last].
  static std::vector<std::string> KeysInSlots(const std::string& prefix, int first, int last,
                                              int n) {
    std::vector<std::string> keys;
    for (int i = 0; static_cast<int>(keys.size()) < n; ++i) {
      std::string key = absl::StrCat(prefix, ":", i);
      const int slot = KeySlot(key);
      if (slot >= first && slot <= last) keys.push_back(std::move(key));
    }
    return keys;
  }

  std::unique_ptr<RedisCluster> cluster_;
  std::unique_ptr<Commands> client_;
};

TEST_F(ClusterFailoverTest, FollowsMovedWhileReshardingUnderTraffic) {
  const int from = cluster_->MasterOfSlot(0).value();
  const int to = cluster_->MasterOfSlot(kClusterSlots - 1).value();
  ASSERT_NE(from, to);
  // redis-cli moves the source's lowest slots first: the counters live in
  // those 100 slots (plus a few that stay, as a control).
  const int first_slot = 0;
  std::vector<std::string> keys = KeysInSlots("counter", first_slot, first_slot + 99, 60);
  const std::vector<std::string> staying = KeysInSlots("stay", first_slot + 200, first_slot + 300, 5);
  keys.insert(keys.end(), staying.begin(), staying.end());

  std::vector<std::atomic<int>> ok(keys.size());
  std::atomic<int> failed{0};
  std::atomic<int> in_flight{0};
  absl::Mutex mu;
  std::string first_failure;  // guarded by mu
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int t = 0; t < 3; ++t) {
    writers.emplace_back([&, t] {
      for (size_t i = t; !stop.load(); i = (i + 3) % keys.size()) {
        while (in_flight.load() > 100 && !stop.load()) absl::SleepFor(absl::Microseconds(200));
        in_flight.fetch_add(1);
        client_->Send({"INCR", keys[i]}, [&, i](absl::StatusOr<Reply> reply) {
          if (reply.ok() && !reply->is_error()) {
            ok[i].fetch_add(1);
          } else {
            failed.fetch_add(1);
            absl::MutexLock lock(&mu);
            if (first_failure.empty()) {
              first_failure = reply.ok() ? reply->DebugString() : reply.status().ToString();
            }
          }
          in_flight.fetch_sub(1);
        });
      }
    });
  }
  // Some traffic before, during and after the move.
  ASSERT_TRUE(WaitFor(absl::Seconds(10), [&] { return ok[0].load() > 20; }));
  auto total_ok = [&] {
    int n = 0;
    for (const std::atomic<int>& c : ok) n += c.load();
    return n;
  };
  const int before_reshard = total_ok();
  absl::Status resharded = cluster_->Reshard(from, to, 100);
  ASSERT_TRUE(resharded.ok()) << resharded;
  EXPECT_GT(total_ok(), before_reshard);  // traffic went on during the move
  const int before_stop = ok[0].load();
  ASSERT_TRUE(WaitFor(absl::Seconds(10), [&] { return ok[0].load() > before_stop + 20; }));
  stop.store(true);
  for (std::thread& w : writers) w.join();
  ASSERT_TRUE(WaitFor(absl::Seconds(10), [&] { return in_flight.load() == 0; }));

  {
    absl::MutexLock lock(&mu);
    EXPECT_EQ(failed.load(), 0) << first_failure;
  }
  int total = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    auto value = client_->Call({"GET", keys[i]});
    ASSERT_TRUE(value.ok()) << value.status();
    // Each acknowledged INCR ran exactly once: none lost, none resent.
    EXPECT_EQ(value->AsInteger().value_or(-1), ok[i].load()) << keys[i];
    total += ok[i].load();
  }
  EXPECT_GT(total, 1000);
  // Commands were redirected, and the moved keys' slots now route to the
  // new owner.
  const ClusterClient::Stats stats = static_cast<ClusterClient*>(client_.get())->stats();
  EXPECT_GT(stats.moved + stats.ask, 0);
  std::printf("redirects: %lld MOVED, %lld ASK, %lld retries, %lld slot map reads\n",
              static_cast<long long>(stats.moved), static_cast<long long>(stats.ask),
              static_cast<long long>(stats.retries), static_cast<long long>(stats.slot_map_reads));
  EXPECT_EQ(MasterOf(keys[0]), to);
  EXPECT_EQ(client_->NodeForKey(keys[0])->port, cluster_->port(to));
  EXPECT_EQ(client_->NodeForKey(staying[0])->port, cluster_->port(from));
}

TEST_F(ClusterFailoverTest, FollowsAskDuringASlotMigration) {
  static const Script kSetGet(R"lua(
    redis.call('SET', KEYS[1], ARGV[1])
    return redis.call('GET', KEYS[1])
  )lua");
  const std::string tag = "{ask}";
  const int slot = KeySlot(tag);
  const int from = MasterOf(tag);
  const int to = cluster_->MasterOfSlot((slot + 8000) % kClusterSlots).value();
  ASSERT_NE(from, to);
  ASSERT_EQ(client_->Call({"SET", tag + ":old", "1"})->str(), "OK");
  ASSERT_EQ(client_->Call({"SET", tag + ":stay", "s"})->str(), "OK");

  absl::Status begun = cluster_->BeginSlotMigration(slot, from, to);
  ASSERT_TRUE(begun.ok()) << begun;
  // A key the old owner lacks is created on the importing node (ASK), and
  // read back from there.
  auto set = client_->Call({"SET", tag + ":new", "2"});
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->str(), "OK");
  auto get = client_->Call({"GET", tag + ":new"});
  ASSERT_TRUE(get.ok()) << get.status();
  EXPECT_EQ(get->str(), "2");
  auto on_target = cluster_->Command(to, {"CLUSTER", "COUNTKEYSINSLOT", absl::StrCat(slot)});
  ASSERT_TRUE(on_target.ok());
  EXPECT_EQ(on_target->integer(), 1);
  // A key the old owner still has is served there.
  auto old = client_->Call({"GET", tag + ":old"});
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(old->str(), "1");
  // A script too, on a node that never saw it (ASKING, EVALSHA, NOSCRIPT,
  // ASKING, EVAL).
  ASSERT_TRUE(cluster_->Command(to, {"SCRIPT", "FLUSH"}).ok());
  auto eval = client_->CallEval(kSetGet, {tag + ":script"}, {"3"});
  ASSERT_TRUE(eval.ok()) << eval.status();
  EXPECT_EQ(eval->str(), "3");
  // ASK does not move the slot in the client's map.
  EXPECT_EQ(client_->NodeForKey(tag)->port, cluster_->port(from));

  // With one key moved and one not, a command on both gets TRYAGAIN: it is
  // retried until the migration ends (then MOVED), within its timeout.
  auto moved_one = cluster_->Command(
      from, {"MIGRATE", "127.0.0.1", absl::StrCat(cluster_->port(to)), tag + ":old", "0", "5000"});
  ASSERT_TRUE(moved_one.ok() && !moved_one->is_error())
      << (moved_one.ok() ? moved_one->DebugString() : moved_one.status().ToString());
  const int64_t retries_before = static_cast<ClusterClient*>(client_.get())->stats().retries;
  absl::Notification mget_done;
  absl::StatusOr<Reply> mget;
  client_->Send({"MGET", tag + ":old", tag + ":stay"}, [&](absl::StatusOr<Reply> reply) {
    mget = std::move(reply);
    mget_done.Notify();
  });
  ASSERT_TRUE(WaitFor(absl::Seconds(1), [&] {
    return static_cast<ClusterClient*>(client_.get())->stats().retries > retries_before;
  }));
  EXPECT_FALSE(mget_done.HasBeenNotified());

  absl::Status finished = cluster_->FinishSlotMigration(slot, from, to);
  ASSERT_TRUE(finished.ok()) << finished;
  ASSERT_TRUE(mget_done.WaitForNotificationWithTimeout(absl::Seconds(5)));
  ASSERT_TRUE(mget.ok()) << mget.status();
  EXPECT_EQ(mget->DebugString(), R"(["1", "s"])");
  // Now MOVED: every key is read from the new owner.
  for (const char* suffix : {":old", ":new", ":script", ":stay"}) {
    auto value = client_->Call({"GET", tag + suffix});
    ASSERT_TRUE(value.ok()) << value.status();
    EXPECT_FALSE(value->is_nil()) << suffix;
    EXPECT_FALSE(value->is_error()) << value->DebugString();
  }
  EXPECT_EQ(client_->NodeForKey(tag)->port, cluster_->port(to));
}

TEST_F(ClusterFailoverTest, FailsFastWhileAMasterIsDownThenFollowsTheFailover) {
  const std::string key = "failover";
  const int master = MasterOf(key);
  {
    // WAIT counts the replicas that have this connection's writes, so the
    // write goes on a connection of its own (replication is asynchronous).
    auto conn = Connection::Connect(cluster_->options(master));
    ASSERT_TRUE(conn.ok()) << conn.status();
    ASSERT_EQ((*conn)->Command({"SET", key, "before"})->str(), "OK");
    ASSERT_EQ((*conn)->Command({"WAIT", "1", "2000"})->integer(), 1);
  }
  ASSERT_EQ(client_->Call({"GET", key})->str(), "before");
  ASSERT_TRUE(cluster_->Kill(master).ok());

  // Until the replica takes over, the dead master's slots fail at once.
  for (int i = 0; i < 5; ++i) {
    const absl::Time start = absl::Now();
    auto reply = client_->Call({"GET", key});
    const absl::Duration took = absl::Now() - start;
    ASSERT_FALSE(reply.ok()) << reply->DebugString();
    EXPECT_EQ(reply.status().code(), absl::StatusCode::kUnavailable) << reply.status();
    EXPECT_LT(took, absl::Seconds(1)) << reply.status();
  }
  // Then (bounded) the promoted replica serves them. Every attempt ends
  // within the command timeout plus a margin: never a hang.
  absl::StatusOr<Reply> reply;
  absl::Duration slowest;
  const bool recovered = WaitFor(absl::Seconds(30), [&] {
    const absl::Time start = absl::Now();
    reply = client_->Call({"GET", key});
    slowest = std::max(slowest, absl::Now() - start);
    return reply.ok() && !reply->is_error();
  });
  ASSERT_TRUE(recovered) << (reply.ok() ? reply->DebugString() : reply.status().ToString());
  EXPECT_LT(slowest, absl::Seconds(3));
  EXPECT_EQ(reply->str(), "before");
  const int promoted = MasterOf(key);
  EXPECT_NE(promoted, master);
  EXPECT_EQ(client_->NodeForKey(key)->port, cluster_->port(promoted));
  auto write = client_->Call({"SET", key, "after"});
  ASSERT_TRUE(write.ok()) << write.status();
  EXPECT_EQ(write->str(), "OK");

  // The old master comes back as a replica; the client keeps using the new one.
  ASSERT_TRUE(cluster_->Restart(master).ok());
  absl::Status healthy = cluster_->WaitHealthy();
  ASSERT_TRUE(healthy.ok()) << healthy;
  auto after = client_->Call({"GET", key});
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->str(), "after");
  EXPECT_TRUE(WaitFor(absl::Seconds(10), [&] { return client_->connected(); }));
}

}  // namespace
}  // namespace taskmesh::redis
