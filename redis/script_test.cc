#include "redis/script.h"

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "redis/connection.h"
#include "tests/support/redis_server.h"

namespace taskmesh::redis {
namespace {

using ::taskmesh::testing::RedisServer;
using ::testing::ElementsAre;

TEST(ScriptTest, Sha1IsLowercaseHexOfTheSource) {
  // The SHA1 the Redis documentation gives for this script.
  Script script("return 1");
  EXPECT_EQ(script.sha1(), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
  EXPECT_EQ(script.source(), "return 1");
  EXPECT_EQ(Script("").sha1(), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
}

TEST(ScriptTest, EvalShaArgsLayout) {
  Script script("return 1");
  EXPECT_THAT(script.EvalShaArgs({"k1", "k2"}, {"a1"}),
              ElementsAre("EVALSHA", script.sha1(), "2", "k1", "k2", "a1"));
  EXPECT_THAT(script.EvalShaArgs({}, {}), ElementsAre("EVALSHA", script.sha1(), "0"));
  EXPECT_THAT(script.EvalShaArgs({}, {"x", "y"}),
              ElementsAre("EVALSHA", script.sha1(), "0", "x", "y"));
}

TEST(ScriptTest, EvalArgsLayout) {
  Script script("return KEYS[1]");
  const std::string binary("a\0b", 3);
  EXPECT_THAT(script.EvalArgs({binary}, {"", binary}),
              ElementsAre("EVAL", "return KEYS[1]", "1", binary, "", binary));
}

TEST(IsNoScriptTest, OnlyTheNoScriptErrorReply) {
  EXPECT_TRUE(IsNoScript(Reply::Error("NOSCRIPT No matching script. Please use EVAL.")));
  EXPECT_FALSE(IsNoScript(Reply::Error("ERR Error running script")));
  // A script may legitimately return this text as a value.
  EXPECT_FALSE(IsNoScript(Reply::String("NOSCRIPT No matching script.")));
  EXPECT_FALSE(IsNoScript(Reply::StatusReply("NOSCRIPT")));
  EXPECT_FALSE(IsNoScript(Reply::Nil()));
}

class ScriptRedisTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = RedisServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    auto conn = Connection::Connect(server_->options());
    ASSERT_TRUE(conn.ok()) << conn.status();
    conn_ = *std::move(conn);
  }

  std::unique_ptr<RedisServer> server_;
  std::unique_ptr<Connection> conn_;
};

TEST_F(ScriptRedisTest, RedisNamesTheScriptByOurSha1) {
  Script script("return redis.call('INCRBY', KEYS[1], ARGV[1])");
  absl::StatusOr<Reply> loaded = conn_->Command({"SCRIPT", "LOAD", script.source()});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->str(), script.sha1());
}

TEST_F(ScriptRedisTest, EvalShaFailsWithNoScriptUntilEvalCachesIt) {
  Script script("return redis.call('INCRBY', KEYS[1], ARGV[1])");
  absl::StatusOr<Reply> missing = conn_->Command(script.EvalShaArgs({"n"}, {"5"}));
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_TRUE(IsNoScript(*missing)) << missing->DebugString();
  EXPECT_EQ(missing->ToStatus().code(), absl::StatusCode::kNotFound);

  EXPECT_EQ(*conn_->Command(script.EvalArgs({"n"}, {"5"}))->AsInteger(), 5);
  // EVAL cached it: EVALSHA now works.
  EXPECT_EQ(*conn_->Command(script.EvalShaArgs({"n"}, {"2"}))->AsInteger(), 7);

  // SCRIPT FLUSH forgets it again.
  ASSERT_EQ(conn_->Command({"SCRIPT", "FLUSH"})->str(), "OK");
  EXPECT_TRUE(IsNoScript(*conn_->Command(script.EvalShaArgs({"n"}, {"1"}))));
  // The failed EVALSHA did not run.
  EXPECT_EQ(*conn_->Command({"GET", "n"})->AsInteger(), 7);
}

TEST_F(ScriptRedisTest, EvalOnSendsTheSourceOnlyWhenRedisLacksIt) {
  Script script("return redis.call('INCRBY', KEYS[1], ARGV[1])");
  auto count_evals = [&] {
    // `cmdstat_eval:calls=N,...` in INFO commandstats.
    std::string info = conn_->Command({"INFO", "commandstats"})->str();
    const size_t at = info.find("cmdstat_eval:calls=");
    if (at == std::string::npos) return 0;
    return std::atoi(info.c_str() + at + std::strlen("cmdstat_eval:calls="));
  };
  EXPECT_EQ(*EvalOn(*conn_, script, {"n"}, {"5"})->AsInteger(), 5);  // NOSCRIPT, then EVAL.
  EXPECT_EQ(*EvalOn(*conn_, script, {"n"}, {"2"})->AsInteger(), 7);  // EVALSHA alone.
  EXPECT_EQ(count_evals(), 1);
  ASSERT_EQ(conn_->Command({"SCRIPT", "FLUSH"})->str(), "OK");
  EXPECT_EQ(*EvalOn(*conn_, script, {"n"}, {"1"})->AsInteger(), 8);  // Recovers once more.
  EXPECT_EQ(count_evals(), 2);
}

TEST_F(ScriptRedisTest, KeysAndArgsAreBinarySafe) {
  Script script("return {KEYS[1], ARGV[1], #ARGV[1]}");
  const std::string key("k\0y", 3);
  const std::string arg("\0\r\n\xff", 4);
  absl::StatusOr<Reply> reply = conn_->Command(script.EvalArgs({key}, {arg}));
  ASSERT_TRUE(reply.ok()) << reply.status();
  const std::vector<Reply>* out = *reply->AsArray(3);
  EXPECT_EQ((*out)[0].str(), key);
  EXPECT_EQ((*out)[1].str(), arg);
  EXPECT_EQ((*out)[2].integer(), 4);
}

TEST_F(ScriptRedisTest, ScriptErrorsAreErrorRepliesButNotNoScript) {
  Script script("return redis.error_reply('BUSYGROUP already there')");
  absl::StatusOr<Reply> reply = conn_->Command(script.EvalArgs({}, {}));
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_TRUE(reply->is_error());
  EXPECT_FALSE(IsNoScript(*reply));
  EXPECT_EQ(reply->ToStatus().code(), absl::StatusCode::kAlreadyExists);
}

TEST(ScriptTest, LocateNamesTheFileAndLineOfAnAssembledScript) {
  // Lines 1-2 from a.lua (from its line 1), 3- from b.lua (from its line 10).
  Script script("x\ny\nz\nw", {{1, "a.lua", 1}, {3, "b.lua", 10}});
  EXPECT_EQ(script.Locate("ERR user_script:4: boom script: abc, on @user_script:4."),
            "ERR b.lua:11: boom script: abc, on @b.lua:11.");
  EXPECT_EQ(script.Locate("ERR user_script:2: x"), "ERR a.lua:2: x");
  EXPECT_EQ(script.Locate("ERR no line here"), "ERR no line here");
  // Without origins the message is left alone.
  EXPECT_EQ(Script("x").Locate("ERR user_script:1: x"), "ERR user_script:1: x");
}

TEST_F(ScriptRedisTest, EvalOnLocatesARuntimeErrorInItsFile) {
  Script script("local a = 1\nlocal b = 2\nreturn redis.call('INCR')",
                {{1, "first.lua", 1}, {2, "second.lua", 7}});
  absl::StatusOr<Reply> reply = EvalOn(*conn_, script, {}, {});
  ASSERT_TRUE(reply.ok()) << reply.status();
  ASSERT_TRUE(reply->is_error());
  EXPECT_THAT(reply->str(), ::testing::HasSubstr("second.lua:8"));
  EXPECT_THAT(reply->str(), ::testing::Not(::testing::HasSubstr("user_script")));
}

}  // namespace
}  // namespace taskmesh::redis
