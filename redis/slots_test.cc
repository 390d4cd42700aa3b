// Unit tests for key slots, the routing-key table, slot map parsing and
// redirect parsing. Expected slots are Redis 7.0.15's CLUSTER KEYSLOT.
#include "redis/slots.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace taskmesh::redis {
namespace {

TEST(KeySlotTest, MatchesRedisForPlainKeys) {
  EXPECT_EQ(KeySlot("123456789"), 12739);  // CRC16/XMODEM check value 0x31C3
  EXPECT_EQ(KeySlot("foo"), 12182);
  EXPECT_EQ(KeySlot("bar"), 5061);
  EXPECT_EQ(KeySlot("hello"), 866);
  EXPECT_EQ(KeySlot(""), 0);
}

TEST(KeySlotTest, HashesOnlyTheFirstNonEmptyTag) {
  EXPECT_EQ(KeySlot("{user1000}.following"), KeySlot("user1000"));
  EXPECT_EQ(KeySlot("{user1000}.following"), 3443);
  EXPECT_EQ(KeySlot("{user1000}.followers"), 3443);
  EXPECT_EQ(KeySlot("foo{bar}{zap}"), KeySlot("bar"));
  // An empty first tag: the whole key is hashed.
  EXPECT_EQ(KeySlot("foo{}{bar}"), 8363);
  EXPECT_EQ(KeySlot("{}"), 15257);
  // The tag ends at the first } after the first {.
  EXPECT_EQ(KeySlot("foo{{bar}}zap"), KeySlot("{bar"));
  EXPECT_EQ(KeySlot("foo{{bar}}zap"), 4015);
  // No closing brace: the whole key.
  EXPECT_EQ(KeySlot("a{b"), 13340);
}

TEST(KeySlotTest, IsBinarySafe) {
  const std::string key("a\0b", 3);
  EXPECT_NE(KeySlot(key), KeySlot("a"));
  EXPECT_LT(KeySlot(key), kClusterSlots);
}

std::string Key(const Args& args) {
  auto key = RoutingKey(args);
  return key.has_value() ? std::string(*key) : "(none)";
}

TEST(RoutingKeyTest, IsTheFirstArgumentByDefault) {
  EXPECT_EQ(Key({"GET", "k"}), "k");
  EXPECT_EQ(Key({"set", "k", "v"}), "k");
  EXPECT_EQ(Key({"HSET", "h", "f", "v"}), "h");
  EXPECT_EQ(Key({"XADD", "s", "*", "f", "v"}), "s");
  EXPECT_EQ(Key({"SPUBLISH", "channel", "m"}), "channel");
}

TEST(RoutingKeyTest, FollowsTheTableForOtherPositions) {
  EXPECT_EQ(Key({"EVALSHA", "sha", "2", "k1", "k2", "a"}), "k1");
  EXPECT_EQ(Key({"EVAL", "return 1", "0", "a"}), "(none)");
  EXPECT_EQ(Key({"FCALL", "f", "1", "k"}), "k");
  EXPECT_EQ(Key({"XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "BLOCK", "0", "STREAMS", "s",
                 ">"}),
            "s");
  EXPECT_EQ(Key({"XREAD", "streams", "s", "0"}), "s");
  EXPECT_EQ(Key({"XGROUP", "CREATE", "s", "g", "$"}), "s");
  EXPECT_EQ(Key({"XINFO", "GROUPS", "s"}), "s");
  EXPECT_EQ(Key({"XINFO", "HELP"}), "(none)");
  EXPECT_EQ(Key({"BITOP", "AND", "dest", "a", "b"}), "dest");
  EXPECT_EQ(Key({"ZUNION", "2", "a", "b"}), "a");
  EXPECT_EQ(Key({"BLMPOP", "0", "1", "l", "LEFT"}), "l");
  EXPECT_EQ(Key({"OBJECT", "ENCODING", "k"}), "k");
}

TEST(RoutingKeyTest, KeylessCommandsHaveNone) {
  EXPECT_EQ(Key({"PING"}), "(none)");
  EXPECT_EQ(Key({"PING", "hello"}), "(none)");
  EXPECT_EQ(Key({"INFO", "cluster"}), "(none)");
  EXPECT_EQ(Key({"TIME"}), "(none)");
  EXPECT_EQ(Key({"CLUSTER", "SHARDS"}), "(none)");
  EXPECT_EQ(Key({"SCRIPT", "FLUSH"}), "(none)");
  EXPECT_EQ(Key({"PUBLISH", "c", "m"}), "(none)");
}

Reply Str(const std::string& s) { return Reply::String(s); }
Reply Int(int64_t i) { return Reply::Integer(i); }

Reply ShardNode(const std::string& ip, const std::string& endpoint, int port,
                const std::string& role, const std::string& health) {
  return Reply::Array({Str("id"), Str("x"), Str("port"), Int(port), Str("ip"), Str(ip),
                       Str("endpoint"), Str(endpoint), Str("role"), Str(role),
                       Str("replication-offset"), Int(0), Str("health"), Str(health)});
}

Reply Shard(std::vector<int64_t> ranges, std::vector<Reply> nodes) {
  std::vector<Reply> slots;
  for (int64_t r : ranges) slots.push_back(Int(r));
  return Reply::Array(
      {Str("slots"), Reply::Array(std::move(slots)), Str("nodes"), Reply::Array(std::move(nodes))});
}

TEST(SlotMapTest, ReadsClusterShards) {
  Reply reply = Reply::Array({
      Shard({0, 5460}, {ShardNode("10.0.0.1", "10.0.0.1", 7000, "master", "online"),
                        ShardNode("10.0.0.4", "10.0.0.4", 7003, "replica", "online")}),
      Shard({5461, 10922}, {ShardNode("10.0.0.5", "10.0.0.5", 7004, "replica", "online"),
                            ShardNode("10.0.0.2", "10.0.0.2", 7001, "master", "online")}),
      Shard({10923, 16000, 16001, 16383},
            {ShardNode("10.0.0.3", "", 7002, "master", "online")}),
      Shard({}, {ShardNode("10.0.0.9", "10.0.0.9", 7009, "master", "online")}),
  });
  auto map = SlotMap::FromClusterShards(reply, "seed");
  ASSERT_TRUE(map.ok()) << map.status();
  EXPECT_EQ(map->covered(), kClusterSlots);
  EXPECT_EQ(map->masters().size(), 3u);  // the slotless master serves nothing
  EXPECT_EQ(map->master_of(0)->ToString(), "10.0.0.1:7000");
  EXPECT_EQ(map->master_of(5460)->ToString(), "10.0.0.1:7000");
  EXPECT_EQ(map->master_of(5461)->ToString(), "10.0.0.2:7001");
  EXPECT_EQ(map->master_of(16383)->ToString(), "10.0.0.3:7002");  // ip when no endpoint
}

TEST(SlotMapTest, PrefersTheOnlineMasterAndFillsUnknownHosts) {
  Reply reply = Reply::Array({
      Shard({0, 99}, {ShardNode("", "", 7000, "master", "failed"),
                      ShardNode("", "?", 7003, "master", "online")}),
  });
  auto map = SlotMap::FromClusterShards(reply, "seed");
  ASSERT_TRUE(map.ok()) << map.status();
  EXPECT_EQ(map->covered(), 100);
  EXPECT_EQ(map->master_of(50)->ToString(), "seed:7003");
  EXPECT_EQ(map->master_of(100), nullptr);
  EXPECT_EQ(map->owner(100), -1);
}

TEST(SlotMapTest, ReadsClusterSlots) {
  Reply reply = Reply::Array({
      Reply::Array({Int(0), Int(8191), Reply::Array({Str("10.0.0.1"), Int(7000), Str("id1")}),
                    Reply::Array({Str("10.0.0.4"), Int(7003), Str("id4")})}),
      Reply::Array({Int(8192), Int(16383), Reply::Array({Str(""), Int(7001), Str("id2")})}),
  });
  auto map = SlotMap::FromClusterSlots(reply, "seed");
  ASSERT_TRUE(map.ok()) << map.status();
  EXPECT_EQ(map->covered(), kClusterSlots);
  EXPECT_EQ(map->master_of(8191)->ToString(), "10.0.0.1:7000");
  EXPECT_EQ(map->master_of(8192)->ToString(), "seed:7001");
}

TEST(SlotMapTest, RejectsMalformedReplies) {
  EXPECT_FALSE(SlotMap::FromClusterShards(Str("nope"), "h").ok());
  EXPECT_FALSE(SlotMap::FromClusterShards(Reply::Error("ERR unknown subcommand"), "h").ok());
  EXPECT_FALSE(SlotMap::FromClusterShards(Reply::Array({Reply::Array({Str("slots")})}), "h").ok());
  EXPECT_FALSE(
      SlotMap::FromClusterShards(
          Reply::Array({Shard({0, 99999}, {ShardNode("a", "a", 1, "master", "online")})}), "h")
          .ok());
  EXPECT_FALSE(SlotMap::FromClusterSlots(Reply::Array({Reply::Array({Int(0)})}), "h").ok());
}

TEST(SlotMapTest, AssignMovesOneSlot) {
  SlotMap map;
  EXPECT_EQ(map.covered(), 0);
  map.Assign(7, NodeAddress{"h", 1});
  map.Assign(8, NodeAddress{"h", 1});
  map.Assign(9, NodeAddress{"h", 2});
  EXPECT_EQ(map.covered(), 3);
  EXPECT_EQ(map.masters().size(), 2u);
  EXPECT_EQ(map.master_of(8)->port, 1);
  EXPECT_EQ(map.master_of(9)->port, 2);
}

TEST(RedirectTest, ParsesMovedAndAsk) {
  auto moved = ParseRedirect("MOVED 3999 127.0.0.1:6381", "r");
  ASSERT_TRUE(moved.has_value());
  EXPECT_FALSE(moved->ask);
  EXPECT_EQ(moved->slot, 3999);
  EXPECT_EQ(moved->node.ToString(), "127.0.0.1:6381");

  auto ask = ParseRedirect("ASK 1 [::1]:7000", "r");
  ASSERT_TRUE(ask.has_value());
  EXPECT_TRUE(ask->ask);
  EXPECT_EQ(ask->node.host, "::1");
  EXPECT_EQ(ask->node.ToString(), "[::1]:7000");

  auto no_host = ParseRedirect("MOVED 5 :7001", "10.1.1.1");
  ASSERT_TRUE(no_host.has_value());
  EXPECT_EQ(no_host->node.ToString(), "10.1.1.1:7001");
}

TEST(RedirectTest, IgnoresOtherErrors) {
  EXPECT_FALSE(ParseRedirect("ERR wrong number of arguments", "r").has_value());
  EXPECT_FALSE(ParseRedirect("MOVED", "r").has_value());
  EXPECT_FALSE(ParseRedirect("MOVED x 1.2.3.4:5", "r").has_value());
  EXPECT_FALSE(ParseRedirect("MOVED 99999 1.2.3.4:5", "r").has_value());
  EXPECT_FALSE(ParseRedirect("ASK 5 nohostport", "r").has_value());
  EXPECT_FALSE(ParseRedirect("TRYAGAIN Multiple keys request during rehashing", "r").has_value());
}

}  // namespace
}  // namespace taskmesh::redis
