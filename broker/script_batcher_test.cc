// ScriptBatcher against a real redis-server: items of concurrent callers
// share script calls, each item gets its own reply, queues never mix, and a
// failed call fails each of its items.
#include "broker/script_batcher.h"

#include <signal.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "redis/client.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "broker/keys.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "tests/support/process.h"
#include "tests/support/redis_server.h"

namespace taskmesh::broker {
namespace {

using ::taskmesh::testing::RedisServer;
using ::taskmesh::testing::WaitFor;

// Per item: INCR its key and answer "prefix:item arg:call number", where
// the call number counts script calls (so items of one call share it).
const redis::Script& EchoBatch() {
  static const redis::Script* s = new redis::Script(R"lua(
local call = redis.call('INCR', ARGV[1] .. 'calls')
local out = {}
local i = 3
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call('INCR', KEYS[#out + 1])
  out[#out + 1] = ARGV[1] .. ':' .. ARGV[i + 1] .. ':' .. call
  i = i + n + 1
end
if ARGV[3 + 1] == 'boom' then return redis.error_reply('boom') end
return out
)lua");
  return *s;
}

class ScriptBatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = RedisServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    redis::ClientOptions options;
    options.connection = server_->options();
    client_ = std::make_unique<redis::Client>(options);
  }

  struct Result {
    absl::Mutex mu;
    std::vector<std::string> replies ABSL_GUARDED_BY(mu);
    std::vector<absl::Status> errors ABSL_GUARDED_BY(mu);
    std::atomic<int> done{0};
  };

  ScriptBatcher::Item ItemFor(const std::string& queue, const std::string& arg, Result* r,
                              int index) {
    ScriptBatcher::Item item;
    item.key = absl::StrCat(QueuePrefix(queue), "k:", arg);
    item.args = {arg};
    item.done = [r, index](absl::StatusOr<redis::Reply> reply) {
      {
        absl::MutexLock lock(&r->mu);
        if (reply.ok()) {
          r->replies[index] = reply->str();
        } else {
          r->errors[index] = reply.status();
        }
      }
      r->done.fetch_add(1);
    };
    return item;
  }

  std::unique_ptr<RedisServer> server_;
  std::unique_ptr<redis::Client> client_;
};

TEST_F(ScriptBatcherTest, ItemsWaitingForACallGoTogether) {
  ScriptBatcher batcher(client_.get(), EchoBatch(), BrokerOptions{},
                        ScriptBatcher::Limits{.max_items = 100, .max_in_flight = 1});
  constexpr int kN = 500;
  Result r;
  r.replies.resize(kN);
  r.errors.resize(kN);
  for (int i = 0; i < kN; ++i) {
    std::vector<ScriptBatcher::Item> one;
    one.push_back(ItemFor("q", absl::StrCat(i), &r, i));
    batcher.Add("q", std::move(one));
  }
  ASSERT_TRUE(WaitFor(absl::Seconds(10), [&] { return r.done.load() == kN; }));
  absl::MutexLock lock(&r.mu);
  // Each item got its own reply; each call carried a contiguous run of the
  // items in the order they were added (calls in flight together may run in
  // either order: they can go out on different connections).
  std::map<int, std::vector<int>> items_of_call;
  for (int i = 0; i < kN; ++i) {
    ASSERT_TRUE(r.errors[i].ok()) << r.errors[i];
    const std::string prefix = absl::StrCat(QueuePrefix("q"), ":");
    ASSERT_TRUE(absl::StartsWith(r.replies[i], prefix)) << r.replies[i];
    std::vector<std::string> parts = absl::StrSplit(r.replies[i].substr(prefix.size()), ':');
    ASSERT_EQ(parts.size(), 2u) << r.replies[i];
    EXPECT_EQ(parts[0], absl::StrCat(i));
    int call = 0;
    ASSERT_TRUE(absl::SimpleAtoi(parts[1], &call));
    items_of_call[call].push_back(i);
  }
  for (const auto& [call, items] : items_of_call) {
    EXPECT_LE(items.size(), 100u) << "call " << call;
    for (size_t k = 1; k < items.size(); ++k) {
      EXPECT_EQ(items[k], items[k - 1] + 1) << "call " << call << " is not a contiguous run";
    }
  }
  // At most 100 items a call: 500 callers shared at least 5 and far fewer
  // than 500 calls.
  const int calls = static_cast<int>(items_of_call.size());
  EXPECT_GE(calls, 5);
  EXPECT_LT(calls, kN / 2);
  for (int i = 0; i < kN; ++i) {
    absl::StatusOr<redis::Reply> v = client_->Call({"GET", absl::StrCat(QueuePrefix("q"), "k:", i)});
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(v->str(), "1") << i;
  }
}

TEST_F(ScriptBatcherTest, ALongListIsSplitAtMaxItems) {
  ScriptBatcher batcher(client_.get(), EchoBatch(), BrokerOptions{},
                        ScriptBatcher::Limits{.max_items = 10, .max_in_flight = 2});
  constexpr int kN = 35;
  Result r;
  r.replies.resize(kN);
  r.errors.resize(kN);
  std::vector<ScriptBatcher::Item> items;
  for (int i = 0; i < kN; ++i) items.push_back(ItemFor("q", absl::StrCat(i), &r, i));
  batcher.Add("q", std::move(items));
  ASSERT_TRUE(WaitFor(absl::Seconds(10), [&] { return r.done.load() == kN; }));
  absl::StatusOr<redis::Reply> calls = client_->Call({"GET", absl::StrCat(QueuePrefix("q"), "calls")});
  ASSERT_TRUE(calls.ok());
  EXPECT_EQ(calls->str(), "4");
}

TEST_F(ScriptBatcherTest, OnlyPartialCallsWaitForACallInFlight) {
  ScriptBatcher batcher(client_.get(), EchoBatch(), BrokerOptions{},
                        ScriptBatcher::Limits{.max_items = 2, .max_in_flight = 1});
  Result r;
  r.replies.resize(4);
  r.errors.resize(4);
  const auto add = [&](std::vector<int> indexes) {
    std::vector<ScriptBatcher::Item> items;
    for (int i : indexes) items.push_back(ItemFor("q", absl::StrCat(i), &r, i));
    batcher.Add("q", std::move(items));
  };
  // Redis frozen: nothing comes back, so calls stay in flight.
  ASSERT_TRUE(server_->process().Signal(SIGSTOP).ok());
  add({0});
  EXPECT_EQ(batcher.InFlightForTest("q"), 1);
  add({1, 2});  // Full: goes at once.
  EXPECT_EQ(batcher.InFlightForTest("q"), 2);
  add({3});  // Partial: waits for a call to return.
  EXPECT_EQ(batcher.InFlightForTest("q"), 2);
  ASSERT_TRUE(server_->process().Signal(SIGCONT).ok());
  ASSERT_TRUE(WaitFor(absl::Seconds(10), [&] { return r.done.load() == 4; }));
  absl::MutexLock lock(&r.mu);
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(r.errors[i].ok()) << i << ": " << r.errors[i];
  EXPECT_EQ(r.replies[3], absl::StrCat(QueuePrefix("q"), ":3:3"));
  EXPECT_EQ(batcher.InFlightForTest("q"), 0);
}

TEST_F(ScriptBatcherTest, QueuesNeverShareACall) {
  ScriptBatcher batcher(client_.get(), EchoBatch(), BrokerOptions{},
                        ScriptBatcher::Limits{.max_items = 100, .max_in_flight = 1});
  Result r;
  r.replies.resize(4);
  r.errors.resize(4);
  std::vector<ScriptBatcher::Item> a, b;
  a.push_back(ItemFor("a", "0", &r, 0));
  a.push_back(ItemFor("a", "1", &r, 1));
  b.push_back(ItemFor("b", "2", &r, 2));
  b.push_back(ItemFor("b", "3", &r, 3));
  batcher.Add("a", std::move(a));
  batcher.Add("b", std::move(b));
  ASSERT_TRUE(WaitFor(absl::Seconds(10), [&] { return r.done.load() == 4; }));
  absl::MutexLock lock(&r.mu);
  EXPECT_EQ(r.replies[0], absl::StrCat(QueuePrefix("a"), ":0:1"));
  EXPECT_EQ(r.replies[1], absl::StrCat(QueuePrefix("a"), ":1:1"));
  EXPECT_EQ(r.replies[2], absl::StrCat(QueuePrefix("b"), ":2:1"));
  EXPECT_EQ(r.replies[3], absl::StrCat(QueuePrefix("b"), ":3:1"));
}

TEST_F(ScriptBatcherTest, AFailedCallFailsEachOfItsItemsAndTheNextCallStillRuns) {
  ScriptBatcher batcher(client_.get(), EchoBatch(), BrokerOptions{},
                        ScriptBatcher::Limits{.max_items = 100, .max_in_flight = 1});
  Result r;
  r.replies.resize(3);
  r.errors.resize(3);
  std::vector<ScriptBatcher::Item> bad;
  bad.push_back(ItemFor("q", "boom", &r, 0));
  bad.push_back(ItemFor("q", "x", &r, 1));
  batcher.Add("q", std::move(bad));
  ASSERT_TRUE(WaitFor(absl::Seconds(10), [&] { return r.done.load() == 2; }));
  std::vector<ScriptBatcher::Item> good;
  good.push_back(ItemFor("q", "ok", &r, 2));
  batcher.Add("q", std::move(good));
  ASSERT_TRUE(WaitFor(absl::Seconds(10), [&] { return r.done.load() == 3; }));
  absl::MutexLock lock(&r.mu);
  EXPECT_FALSE(r.errors[0].ok());
  EXPECT_NE(r.errors[0].message().find("boom"), std::string::npos) << r.errors[0];
  EXPECT_FALSE(r.errors[1].ok());
  EXPECT_TRUE(r.errors[2].ok()) << r.errors[2];
  EXPECT_EQ(r.replies[2], absl::StrCat(QueuePrefix("q"), ":ok:2"));
}

}  // namespace
}  // namespace taskmesh::broker
