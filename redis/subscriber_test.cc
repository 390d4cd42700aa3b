// Subscriber against a real redis-server (sharded pub/sub on a standalone
// server; the cluster cases are in the broker's cluster tests).
#include "redis/subscriber.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "redis/client.h"
#include "tests/support/process.h"
#include "tests/support/redis_server.h"

namespace taskmesh::redis {
namespace {

using ::taskmesh::testing::RedisServer;
using ::taskmesh::testing::WaitFor;

class SubscriberTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = RedisServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    redis_ = *std::move(server);
    ClientOptions options;
    options.connection = redis_->options();
    client_ = std::make_unique<Client>(options);
    Subscriber::Callbacks callbacks;
    callbacks.message = [this](const std::string& channel, const std::string& message) {
      absl::MutexLock lock(&mu_);
      messages_.push_back(channel + "=" + message);
    };
    callbacks.subscribed = [this](const std::string& channel) {
      absl::MutexLock lock(&mu_);
      subscribed_.push_back(channel);
    };
    sub_ = std::make_unique<Subscriber>(redis_->options(), std::move(callbacks));
  }

  size_t Subscribed() {
    absl::MutexLock lock(&mu_);
    return subscribed_.size();
  }
  std::vector<std::string> Messages() {
    absl::MutexLock lock(&mu_);
    return messages_;
  }
  // SPUBLISH; the number of subscribers that received it.
  int64_t Publish(const std::string& channel, const std::string& message) {
    auto r = client_->Call({"SPUBLISH", channel, message});
    return r.ok() && !r->is_error() ? r->integer() : -1;
  }

  std::unique_ptr<RedisServer> redis_;
  std::unique_ptr<Client> client_;
  absl::Mutex mu_;
  std::vector<std::string> messages_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> subscribed_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Subscriber> sub_;
};

TEST_F(SubscriberTest, DeliversTheMessagesOfChannelsAddedWhileItRuns) {
  sub_->Add("a");
  ASSERT_TRUE(WaitFor(absl::Seconds(5), [&] { return Subscribed() == 1; }));
  EXPECT_TRUE(sub_->connected());
  EXPECT_EQ(Publish("a", "1"), 1);
  EXPECT_EQ(Publish("b", "x"), 0);  // Not wanted.
  sub_->Add("b");
  ASSERT_TRUE(WaitFor(absl::Seconds(5), [&] { return Subscribed() == 2; }));
  EXPECT_EQ(Publish("b", "2"), 1);
  ASSERT_TRUE(WaitFor(absl::Seconds(5), [&] { return Messages().size() == 2; }));
  EXPECT_EQ(Messages(), (std::vector<std::string>{"a=1", "b=2"}));
}

TEST_F(SubscriberTest, RemovedChannelsAreUnsubscribed) {
  sub_->Add("a");
  ASSERT_TRUE(WaitFor(absl::Seconds(5), [&] { return Subscribed() == 1; }));
  sub_->Remove("a");
  EXPECT_TRUE(WaitFor(absl::Seconds(5), [&] { return Publish("a", "gone") == 0; }));
}

TEST_F(SubscriberTest, ResubscribesAfterARedisRestartAndSaysSo) {
  sub_->Add("a");
  ASSERT_TRUE(WaitFor(absl::Seconds(5), [&] { return Subscribed() == 1; }));
  ASSERT_TRUE(redis_->Kill().ok());
  ASSERT_TRUE(WaitFor(absl::Seconds(5), [&] { return !sub_->connected(); }));
  EXPECT_TRUE(sub_->down());
  ASSERT_TRUE(redis_->Restart().ok());
  // A second `subscribed` for the channel: what was published meanwhile is
  // unknown to the owner.
  ASSERT_TRUE(WaitFor(absl::Seconds(10), [&] { return Subscribed() == 2; }));
  EXPECT_FALSE(sub_->down());
  EXPECT_TRUE(WaitFor(absl::Seconds(5), [&] { return Publish("a", "back") == 1; }));
  EXPECT_TRUE(WaitFor(absl::Seconds(5), [&] { return Messages().size() == 1; }));
}

}  // namespace
}  // namespace taskmesh::redis
