// AutoClient against real servers: started before Redis answers, it fails
// fast, then becomes a standalone or a cluster client, whichever answers.
#include "redis/auto_client.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/support/process.h"
#include "tests/support/redis_cluster.h"
#include "tests/support/redis_server.h"

namespace taskmesh::redis {
namespace {

using ::taskmesh::testing::RedisCluster;
using ::taskmesh::testing::RedisServer;
using ::taskmesh::testing::WaitFor;

TEST(AutoClientTest, StartsBeforeRedisFailsFastThenServesTheStandaloneServer) {
  auto server = RedisServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE((*server)->Kill().ok());  // Its port stays ours, with nothing on it.
  auto client = AutoClient::Create((*server)->url(), ClientOptions{});
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_FALSE((*client)->connected());
  EXPECT_FALSE((*client)->known());
  absl::StatusOr<Reply> down = (*client)->Call({"PING"});
  EXPECT_EQ(down.status().code(), absl::StatusCode::kUnavailable) << down.status();

  ASSERT_TRUE((*server)->Restart().ok());
  ASSERT_TRUE(WaitFor(absl::Seconds(15), [&] { return (*client)->connected(); }));
  EXPECT_TRUE((*client)->known());
  EXPECT_FALSE((*client)->cluster());
  absl::StatusOr<Reply> pong = (*client)->Call({"SET", "k", "v"});
  ASSERT_TRUE(pong.ok()) << pong.status();
}

TEST(AutoClientTest, AClusterSeedMakesItAClusterClient) {
  auto cluster = RedisCluster::Start();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto client = AutoClient::Create((*cluster)->seeds(), ClientOptions{});
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE(WaitFor(absl::Seconds(15), [&] { return (*client)->connected(); }));
  EXPECT_TRUE((*client)->cluster());
  EXPECT_EQ((*client)->Masters().size(), 3u);
  // Keys of every master.
  for (int i = 0; i < 30; ++i) {
    absl::StatusOr<Reply> r = (*client)->Call({"INCR", absl::StrCat("{k", i, "}")});
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_FALSE(r->is_error()) << r->str();
  }
}

TEST(AutoClientTest, ABadUrlIsRefusedAtOnce) {
  EXPECT_EQ(AutoClient::Create("http://x", ClientOptions{}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace taskmesh::redis
