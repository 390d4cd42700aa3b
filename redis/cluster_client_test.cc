// Integration tests for ClusterClient and Open() against a real Redis
// Cluster (3 masters, 3 replicas) that the tests share: routing of keys,
// scripts and keyless commands, node lookup, standalone-vs-cluster
// detection and seed lists. Slot moves and failover are in
// cluster_failover_test.cc, each on a cluster of its own.
#include "redis/cluster_client.h"

#include <atomic>
#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "redis/open.h"
#include "redis/script.h"
#include "redis/slots.h"
#include "tests/support/process.h"
#include "tests/support/redis_cluster.h"
#include "tests/support/redis_server.h"

namespace taskmesh::redis {
namespace {

using ::taskmesh::testing::PickUnusedPort;
using ::taskmesh::testing::RedisCluster;
using ::taskmesh::testing::RedisServer;
using ::testing::HasSubstr;

ClientOptions Options() {
  ClientOptions o;
  o.connection.command_timeout = absl::Seconds(2);
  return o;
}

class ClusterClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto cluster = RedisCluster::Start();
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = cluster->release();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(cluster_, nullptr);
    auto client = Open(cluster_->url(0), Options());
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
    ASSERT_TRUE(client_->cluster());
  }

  // The fixture's node index of the master serving `key`.
  int MasterOf(const std::string& key) { return cluster_->MasterOfSlot(KeySlot(key)).value(); }

  static RedisCluster* cluster_;
  std::unique_ptr<Commands> client_;
};

RedisCluster* ClusterClientTest::cluster_ = nullptr;

TEST_F(ClusterClientTest, KeySlotAgreesWithRedis) {
  for (int i = 0; i < 200; ++i) {
    const std::string key = absl::StrCat("key:", i * 7919, i % 3 == 0 ? "{tag}" : "");
    auto slot = cluster_->Command(0, {"CLUSTER", "KEYSLOT", key});
    ASSERT_TRUE(slot.ok()) << slot.status();
    EXPECT_EQ(KeySlot(key), slot->integer()) << key;
  }
}

TEST_F(ClusterClientTest, RoutesKeysToTheMasterOfTheirSlot) {
  constexpr int kKeys = 300;
  std::vector<absl::StatusOr<Reply>> replies(kKeys);
  std::atomic<int> done{0};
  for (int i = 0; i < kKeys; ++i) {
    client_->Send({"SET", absl::StrCat("route:", i), absl::StrCat(i)},
                  [&, i](absl::StatusOr<Reply> reply) {
                    replies[i] = std::move(reply);
                    done.fetch_add(1);
                  });
  }
  ASSERT_TRUE(::taskmesh::testing::WaitFor(absl::Seconds(10), [&] { return done == kKeys; }));
  std::set<int> masters;
  for (int i = 0; i < kKeys; ++i) {
    ASSERT_TRUE(replies[i].ok()) << replies[i].status();
    EXPECT_EQ(replies[i]->str(), "OK");
    const std::string key = absl::StrCat("route:", i);
    const int master = MasterOf(key);
    masters.insert(master);
    // The key is on that very node (no redirect needed to read it there).
    auto direct = cluster_->Command(master, {"GET", key});
    ASSERT_TRUE(direct.ok()) << direct.status();
    EXPECT_EQ(direct->str(), absl::StrCat(i)) << key;
    auto read = client_->Call({"GET", key});
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_EQ(read->str(), absl::StrCat(i));
  }
  EXPECT_EQ(masters.size(), 3u);
}

TEST_F(ClusterClientTest, RunsScriptsOnEveryMasterAfterScriptFlush) {
  static const Script kSetAndCount(R"lua(
    redis.call('SET', KEYS[1], ARGV[1])
    return redis.call('INCR', KEYS[2])
  )lua");
  for (int node = 0; node < cluster_->size(); ++node) {
    ASSERT_TRUE(cluster_->Command(node, {"SCRIPT", "FLUSH"}).ok());
  }
  std::set<int> masters;
  for (int i = 0; i < 30; ++i) {
    const std::string tag = absl::StrCat("{script", i, "}");
    masters.insert(MasterOf(tag));
    for (int round = 1; round <= 2; ++round) {  // NOSCRIPT first, then EVALSHA
      auto reply = client_->CallEval(kSetAndCount, {tag + ":value", tag + ":count"}, {"v"});
      ASSERT_TRUE(reply.ok()) << reply.status();
      EXPECT_EQ(reply->integer(), round) << tag << " " << reply->DebugString();
    }
  }
  EXPECT_EQ(masters.size(), 3u);
}

TEST_F(ClusterClientTest, ScriptKeysInTwoSlotsFailWithoutBeingSent) {
  static const Script kTouch("return redis.call('INCR', KEYS[1])");
  ASSERT_NE(KeySlot("a"), KeySlot("b"));
  auto reply = client_->CallEval(kTouch, {"cross:a", "cross:b"}, {});
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(reply.status().message(), HasSubstr("CROSSSLOT"));
  EXPECT_THAT(reply.status().message(), HasSubstr("hash tag"));
  auto untouched = client_->Call({"EXISTS", "cross:a"});
  ASSERT_TRUE(untouched.ok());
  EXPECT_EQ(untouched->integer(), 0);
}

TEST_F(ClusterClientTest, KeylessCommandsAndScriptsGoToAMaster) {
  static const Script kOne("return 1");
  for (int i = 0; i < 6; ++i) {
    auto pong = client_->Call({"PING"});
    ASSERT_TRUE(pong.ok()) << pong.status();
    EXPECT_EQ(pong->str(), "PONG");
    auto time = client_->Call({"TIME"});
    ASSERT_TRUE(time.ok()) << time.status();
    EXPECT_EQ(time->elements().size(), 2u);
    auto info = client_->Call({"INFO", "replication"});
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_THAT(info->str(), HasSubstr("role:master"));
    auto one = client_->CallEval(kOne, {}, {});
    ASSERT_TRUE(one.ok()) << one.status();
    EXPECT_EQ(one->integer(), 1);
  }
}

TEST_F(ClusterClientTest, MultiKeyCommandsInOneSlotWork) {
  auto set = client_->Call({"MSET", "{m}:a", "1", "{m}:b", "2"});
  ASSERT_TRUE(set.ok()) << set.status();
  auto get = client_->Call({"MGET", "{m}:a", "{m}:b"});
  ASSERT_TRUE(get.ok()) << get.status();
  EXPECT_EQ(get->DebugString(), R"(["1", "2"])");
  // Across slots Redis itself refuses, and says why.
  auto cross = client_->Call({"MGET", "a", "b"});
  ASSERT_TRUE(cross.ok()) << cross.status();
  EXPECT_THAT(cross->str(), HasSubstr("CROSSSLOT"));
}

TEST_F(ClusterClientTest, NodeForKeyAndMastersNameTheServingNodes) {
  std::vector<ConnectionOptions> masters = client_->Masters();
  ASSERT_EQ(masters.size(), 3u);
  std::set<int> ports;
  for (const ConnectionOptions& m : masters) ports.insert(m.port);
  const std::vector<int> nodes = cluster_->Masters().value();
  for (int node : nodes) EXPECT_EQ(ports.count(cluster_->port(node)), 1u);

  for (const std::string key : {"stream:a", "stream:b", "{q}:stream"}) {
    auto node = client_->NodeForKey(key);
    ASSERT_TRUE(node.ok()) << node.status();
    EXPECT_EQ(node->port, cluster_->port(MasterOf(key)));
    // A connection of one's own there serves the key without a redirect,
    // blocking reads included.
    auto conn = Connection::Connect(*node);
    ASSERT_TRUE(conn.ok()) << conn.status();
    auto read = (*conn)->BlockingCommand({"XREAD", "BLOCK", "10", "STREAMS", key, "$"},
                                         absl::Milliseconds(10));
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_FALSE(read->is_error()) << read->DebugString();
  }
}

TEST_F(ClusterClientTest, ConnectedOnceEveryMasterIsUp) {
  EXPECT_TRUE(::taskmesh::testing::WaitFor(absl::Seconds(5), [&] { return client_->connected(); }));
}

TEST_F(ClusterClientTest, OpenDetectsACluster) {
  for (int node = 0; node < cluster_->size(); ++node) {  // replicas too
    auto client = Open(cluster_->url(node), Options());
    ASSERT_TRUE(client.ok()) << client.status();
    EXPECT_TRUE((*client)->cluster());
    auto set = (*client)->Call({"SET", absl::StrCat("open:", node), "x"});
    ASSERT_TRUE(set.ok()) << set.status();
    EXPECT_EQ(set->str(), "OK");
  }
}

TEST_F(ClusterClientTest, OpenSkipsDeadSeeds) {
  const int dead = PickUnusedPort();
  const std::string seeds = absl::StrCat("redis://127.0.0.1:", dead, ",127.0.0.1:", dead,
                                         ",redis://127.0.0.1:", cluster_->port(1));
  auto client = Open(seeds, Options());
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_TRUE((*client)->cluster());
  auto set = (*client)->Call({"SET", "seeded", "1"});
  ASSERT_TRUE(set.ok()) << set.status();

  auto all_seeds = Open(cluster_->seeds(), Options());
  ASSERT_TRUE(all_seeds.ok()) << all_seeds.status();
  EXPECT_EQ((*all_seeds)->Masters().size(), 3u);
}

TEST_F(ClusterClientTest, OpenFailsFastWhenNoSeedAnswers) {
  const absl::Time start = absl::Now();
  auto client = Open(absl::StrCat("redis://127.0.0.1:", PickUnusedPort(), ",127.0.0.1:",
                                  PickUnusedPort()),
                     Options());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kUnavailable) << client.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

TEST_F(ClusterClientTest, ClusterRefusesOtherDatabases) {
  auto client = Open(absl::StrCat(cluster_->url(0), "/3"), Options());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kInvalidArgument) << client.status();
}

TEST_F(ClusterClientTest, ABrokenConnectionIsReportedNotResent) {
  // Each master is kept busy by a 300 ms script while INCRs queue up behind
  // it on the client's connections, then a CLIENT KILL arrives: once the
  // script ends, a master runs some INCRs and is told to drop their
  // connections before it writes the replies. Such a command ran, yet its
  // caller sees UNAVAILABLE; the client must not run it a second time.
  constexpr char kBusy[] = R"lua(
    local t0 = redis.call('TIME')
    while true do
      local t = redis.call('TIME')
      if (t[1] - t0[1]) * 1000000 + (t[2] - t0[2]) > 300000 then return 1 end
    end
  )lua";
  constexpr int kCounters = 30;
  std::vector<std::atomic<int>> ok(kCounters);
  std::atomic<int> failed{0};
  std::atomic<int> done{0};
  int sent = 0;
  const std::vector<int> masters = cluster_->Masters().value();
  for (int burst = 0; burst < 3; ++burst) {
    std::vector<std::thread> busy;
    for (int node : masters) {
      busy.emplace_back([&, node] { (void)cluster_->Command(node, {"EVAL", kBusy, "0"}); });
    }
    absl::SleepFor(absl::Milliseconds(100));  // pacing the fault: scripts are running
    for (int i = 0; i < 3000; ++i, ++sent) {
      client_->Send({"INCR", absl::StrCat("killed:", i % kCounters)},
                    [&, i](absl::StatusOr<Reply> reply) {
                      if (reply.ok() && !reply->is_error()) {
                        ok[i % kCounters].fetch_add(1);
                      } else {
                        EXPECT_EQ(reply.status().code(), absl::StatusCode::kUnavailable)
                            << reply.status();
                        failed.fetch_add(1);
                      }
                      done.fetch_add(1);
                    });
    }
    absl::SleepFor(absl::Milliseconds(50));  // pacing: the INCRs are written
    std::vector<std::thread> kills;
    for (int node : masters) {
      kills.emplace_back(
          [&, node] { (void)cluster_->Command(node, {"CLIENT", "KILL", "TYPE", "normal"}); });
    }
    for (std::thread& t : busy) t.join();
    for (std::thread& t : kills) t.join();
    ASSERT_TRUE(::taskmesh::testing::WaitFor(absl::Seconds(10), [&] { return done == sent; }));
  }
  int total_ok = 0;
  int total_value = 0;
  for (int i = 0; i < kCounters; ++i) {
    auto value = client_->Call({"GET", absl::StrCat("killed:", i)});
    ASSERT_TRUE(value.ok()) << value.status();
    const int applied = static_cast<int>(value->AsInteger().value_or(0));
    EXPECT_GE(applied, ok[i].load());
    total_ok += ok[i].load();
    total_value += applied;
  }
  // Acknowledged ones ran exactly once, failed ones at most once.
  EXPECT_LE(total_value, total_ok + failed.load());
  EXPECT_GT(failed.load(), 0);  // the fault did cut commands in flight
  std::printf("%d acknowledged, %d failed, %d applied\n", total_ok, failed.load(), total_value);
}

TEST_F(ClusterClientTest, ShutsDownWithCommandsInFlight) {
  std::atomic<int> done{0};
  {
    auto client = Open(cluster_->seeds(), Options());
    ASSERT_TRUE(client.ok()) << client.status();
    for (int i = 0; i < 2000; ++i) {
      (*client)->Send({"INCR", absl::StrCat("shutdown:", i % 50)},
                      [&](absl::StatusOr<Reply>) { done.fetch_add(1); });
    }
  }
  // Every callback ran exactly once, by the end of the destructor.
  EXPECT_EQ(done.load(), 2000);
}

TEST(OpenTest, DetectsAStandaloneServer) {
  auto server = RedisServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  auto client = Open((*server)->url(), Options());
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_FALSE((*client)->cluster());
  EXPECT_NE(dynamic_cast<Client*>(client->get()), nullptr);
  auto set = (*client)->Call({"SET", "k", "v"});
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->str(), "OK");
  auto node = (*client)->NodeForKey("k");
  ASSERT_TRUE(node.ok());
  EXPECT_EQ(node->port, (*server)->port());
  EXPECT_EQ((*client)->Masters().size(), 1u);
  // A standalone server keeps its database number.
  auto db2 = Open(absl::StrCat((*server)->url(), "/2"), Options());
  ASSERT_TRUE(db2.ok()) << db2.status();
  EXPECT_EQ((*db2)->options().connection.db, 2);
}

}  // namespace
}  // namespace taskmesh::redis
