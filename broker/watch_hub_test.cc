// WatchHub against a real redis-server: sharded subscriptions per queue,
// resyncs, events of the transition scripts.
#include "broker/watch_hub.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "broker/test_fixture.h"
#include "gtest/gtest.h"
#include "tests/support/process.h"

namespace taskmesh::broker {
namespace {

using ::taskmesh::testing::WaitFor;
using ::taskmesh::v1::Task;

class WatchHubTest : public BrokerFixture {
 protected:
  void SetUp() override {
    BrokerFixture::SetUp();
    const redis::ConnectionOptions node = redis_->options();
    hub_ = std::make_unique<WatchHub>(node, [node](const std::string&) { return node; });
  }

  // Registers a listener that records "resync" or "STATE@VERSION".
  uint64_t Listen(const std::string& queue, const std::string& id) {
    auto handle = hub_->Add(queue, id, [this, id](const WatchHub::Event& e) {
      absl::MutexLock lock(&mu_);
      seen_[id].push_back(e.resync ? "resync" : absl::StrCat(e.state, "@", e.version));
    });
    EXPECT_TRUE(handle.ok()) << handle.status();
    return handle.ok() ? *handle : 0;
  }
  std::vector<std::string> Seen(const std::string& id) {
    absl::MutexLock lock(&mu_);
    return seen_[id];
  }
  // Subscribers of a sharded channel (PUBSUB SHARDNUMSUB).
  int64_t ShardSubscribers(const std::string& channel) {
    auto r = client_->Call({"PUBSUB", "SHARDNUMSUB", channel});
    return r.ok() && r->elements().size() == 2 ? r->elements()[1].integer() : -1;
  }

  std::unique_ptr<WatchHub> hub_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::vector<std::string>> seen_ ABSL_GUARDED_BY(mu_);
};

TEST_F(WatchHubTest, FirstWatcherOfAQueueGetsAResyncThenEveryTransition) {
  ASSERT_TRUE(Create("q", "t", EchoTask()).ok());
  Listen("q", "t");
  // Subscribed: the listener is told to read (it may have missed events).
  ASSERT_TRUE(WaitFor(absl::Seconds(5), [&] { return Seen("t").size() == 1; }));
  EXPECT_EQ(Seen("t")[0], "resync");
  auto read = Await<Broker::Versioned>([&](auto cb) { broker_->WatchAt("q", 0, "t", std::move(cb)); });
  ASSERT_TRUE(read.ok()) << read.status();
  const Lease lease = FetchOne("q");
  ASSERT_EQ(*Complete(lease, Success("r")), Completion::kSucceeded);
  ASSERT_TRUE(WaitFor(absl::Seconds(5), [&] { return Seen("t").size() == 3; }));
  EXPECT_EQ(Seen("t")[1], absl::StrCat("RUNNING@", read->version + 1));
  EXPECT_EQ(Seen("t")[2], absl::StrCat("SUCCEEDED@", read->version + 2));
}

// Watchers of two queues at once: the second is not refused while the
// node's new subscriber is still connecting.
TEST_F(WatchHubTest, EachQueueHasItsOwnChannelWhileItHasWatchers) {
  const uint64_t a = Listen("a", "t");
  Listen("b", "t");
  ASSERT_TRUE(WaitFor(absl::Seconds(5), [&] {
    return ShardSubscribers(EventsChannel("a")) == 1 && ShardSubscribers(EventsChannel("b")) == 1;
  }));
  EXPECT_EQ(ShardSubscribers(EventsChannel("c")), 0);
  EXPECT_EQ(hub_->listeners(), 2u);
  hub_->Remove(a);
  EXPECT_TRUE(WaitFor(absl::Seconds(5), [&] { return ShardSubscribers(EventsChannel("a")) == 0; }));
  EXPECT_EQ(ShardSubscribers(EventsChannel("b")), 1);
  EXPECT_EQ(hub_->listeners(), 1u);
}

TEST_F(WatchHubTest, ARedisRestartResyncsEveryListenerAndDeleteIsAnEvent) {
  Listen("q", "t");
  ASSERT_TRUE(WaitFor(absl::Seconds(5), [&] { return Seen("t").size() == 1; }));
  ASSERT_TRUE(redis_->Kill().ok());
  ASSERT_TRUE(WaitFor(absl::Seconds(5), [&] { return !hub_->connected(); }));
  EXPECT_EQ(hub_->Add("q", "other", [](const WatchHub::Event&) {}).status().code(),
            absl::StatusCode::kUnavailable);
  ASSERT_TRUE(redis_->Restart().ok());
  ASSERT_TRUE(WaitFor(absl::Seconds(10), [&] { return Seen("t").size() == 2; }));
  EXPECT_EQ(Seen("t")[1], "resync");
  ASSERT_TRUE(Create("q", "t", EchoTask()).ok());
  ASSERT_TRUE(Await<Broker::Versioned>([&](auto cb) { broker_->WatchAt("q", 0, "t", std::move(cb)); })
                  .ok());
  ASSERT_TRUE(Await<bool>([&](auto cb) { broker_->Delete("q", "t", std::move(cb)); }).ok());
  ASSERT_TRUE(WaitFor(absl::Seconds(5), [&] { return Seen("t").size() == 3; }));
  EXPECT_EQ(Seen("t")[2].substr(0, 8), "DELETED@");
}

}  // namespace
}  // namespace taskmesh::broker
