// Integration tests for Client against a real redis-server: concurrency,
// fail-fast, reconnects, NOSCRIPT recovery and shutdown.
#include "redis/client.h"

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/process.h"
#include "tests/support/redis_server.h"

namespace taskmesh::redis {
namespace {

using ::taskmesh::testing::PickUnusedPort;
using ::taskmesh::testing::RedisServer;
using ::taskmesh::testing::RedisServerOptions;
using ::taskmesh::testing::WaitFor;
using ::testing::HasSubstr;

// Counts each command's callback runs and keeps its result.
class Tracker {
 public:
  explicit Tracker(size_t n) : calls_(n), results_(n) {}

  Client::Callback For(size_t i) {
    return [this, i](absl::StatusOr<Reply> reply) {
      {
        absl::MutexLock lock(&mu_);
        results_[i] = std::move(reply);
      }
      calls_[i].fetch_add(1);
      done_.fetch_add(1);
    };
  }
  size_t done() const { return done_.load(); }
  bool WaitAll(absl::Duration timeout) {
    return WaitFor(timeout, [&] { return done() >= calls_.size(); });
  }
  int calls(size_t i) const { return calls_[i].load(); }
  absl::StatusOr<Reply> result(size_t i) {
    absl::MutexLock lock(&mu_);
    return results_[i];
  }
  size_t size() const { return calls_.size(); }

 private:
  std::vector<std::atomic<int>> calls_;
  std::atomic<size_t> done_{0};
  absl::Mutex mu_;
  std::vector<absl::StatusOr<Reply>> results_ ABSL_GUARDED_BY(mu_);
};

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer({}); }

  void StartServer(RedisServerOptions options) {
    auto server = RedisServer::Start(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  ClientOptions Options() {
    ClientOptions o;
    o.connection = server_->options();
    return o;
  }

  // Reads a counter over a fresh connection, bypassing the client.
  int64_t ReadCounter(const std::string& key) {
    auto conn = Connection::Connect(server_->options());
    EXPECT_TRUE(conn.ok()) << conn.status();
    if (!conn.ok()) return -1;
    absl::StatusOr<Reply> r = (*conn)->Command({"GET", key});
    if (!r.ok() || r->is_nil()) return 0;
    return r->AsInteger().value_or(-1);
  }

  // `calls` of one command from INFO commandstats.
  int64_t CommandCalls(Client& client, const std::string& command) {
    absl::StatusOr<Reply> info = client.Call({"INFO", "commandstats"});
    EXPECT_TRUE(info.ok()) << info.status();
    if (!info.ok()) return -1;
    const std::string needle = absl::StrCat("cmdstat_", command, ":calls=");
    const size_t at = info->str().find(needle);
    if (at == std::string::npos) return 0;
    const size_t from = at + needle.size();
    int64_t calls = -1;
    EXPECT_TRUE(absl::SimpleAtoi(info->str().substr(from, info->str().find(',', from) - from),
                                 &calls));
    return calls;
  }

  std::unique_ptr<RedisServer> server_;
};

class Frozen {
 public:
  explicit Frozen(RedisServer& server) : server_(server) {
    EXPECT_TRUE(server_.process().Signal(SIGSTOP).ok());
  }
  ~Frozen() { Thaw(); }
  void Thaw() {
    if (frozen_) {
      EXPECT_TRUE(server_.process().Signal(SIGCONT).ok());
    }
    frozen_ = false;
  }

 private:
  RedisServer& server_;
  bool frozen_ = true;
};

TEST_F(ClientTest, CallRoundTrip) {
  Client client(Options());
  EXPECT_EQ(client.Call({"SET", "k", std::string("v\0v", 3)})->str(), "OK");
  absl::StatusOr<Reply> got = client.Call({"GET", "k"});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->str(), std::string("v\0v", 3));
  absl::StatusOr<Reply> error = client.Call({"NOSUCHCOMMAND"});
  ASSERT_TRUE(error.ok()) << error.status();
  EXPECT_TRUE(error->is_error());
  EXPECT_TRUE(WaitFor(absl::Seconds(5), [&] { return client.connected(); }));
}

TEST_F(ClientTest, SelectsDatabaseOnEveryConnection) {
  ClientOptions options = Options();
  options.connection.db = 5;
  options.connections = 3;
  Client client(options);
  // Whichever connection serves a command, it is in db 5.
  for (int i = 0; i < 30; ++i) {
    absl::StatusOr<Reply> info = client.Call({"CLIENT", "INFO"});
    ASSERT_TRUE(info.ok()) << info.status();
    ASSERT_THAT(info->str(), HasSubstr(" db=5 "));
  }
}

TEST_F(ClientTest, ConcurrentIncrementsRunEveryCallbackExactlyOnce) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 2000;
  constexpr int kTotal = kThreads * kPerThread;
  Tracker tracker(kTotal);
  {
    ClientOptions options = Options();
    options.connections = 2;
    Client client(options);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          client.Send({"INCR", "counter"}, tracker.For(t * kPerThread + i));
        }
      });
    }
    for (std::thread& t : threads) t.join();
    ASSERT_TRUE(tracker.WaitAll(absl::Seconds(15))) << tracker.done() << " of " << kTotal;
  }  // Joins the I/O threads: no callback can run after this.
  std::vector<bool> seen(kTotal + 1, false);
  for (int i = 0; i < kTotal; ++i) {
    ASSERT_EQ(tracker.calls(i), 1) << i;
    absl::StatusOr<Reply> r = tracker.result(i);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->type(), Reply::Type::kInteger);
    ASSERT_GE(r->integer(), 1);
    ASSERT_LE(r->integer(), kTotal);
    ASSERT_FALSE(seen[r->integer()]) << "duplicate INCR result " << r->integer();
    seen[r->integer()] = true;
  }
  EXPECT_EQ(ReadCounter("counter"), kTotal);
}

TEST_F(ClientTest, OneConnectionKeepsOrderAcrossSmallBatches) {
  ClientOptions options = Options();
  options.connections = 1;
  options.max_batch = 7;
  Client client(options);
  constexpr int kN = 1000;
  Tracker tracker(kN);
  for (int i = 0; i < kN; ++i) client.Send({"RPUSH", "list", absl::StrCat(i)}, tracker.For(i));
  ASSERT_TRUE(tracker.WaitAll(absl::Seconds(10)));
  for (int i = 0; i < kN; ++i) ASSERT_EQ(tracker.result(i)->integer(), i + 1) << i;
  absl::StatusOr<Reply> range = client.Call({"LRANGE", "list", "0", "-1"});
  ASSERT_TRUE(range.ok());
  ASSERT_EQ(range->elements().size(), static_cast<size_t>(kN));
  for (int i = 0; i < kN; ++i) ASSERT_EQ(range->elements()[i].str(), absl::StrCat(i));
}

TEST_F(ClientTest, ZeroMaxBatchStillSends) {
  ClientOptions options = Options();
  options.max_batch = 0;
  Client client(options);
  Tracker tracker(1);
  client.Send({"PING"}, tracker.For(0));
  ASSERT_TRUE(tracker.WaitAll(absl::Seconds(5)));
  EXPECT_EQ(tracker.result(0)->str(), "PONG");
}

TEST_F(ClientTest, BatchWindowHoldsCommandsForOneRoundTrip) {
  ClientOptions options = Options();
  options.connections = 1;
  options.batch_window = absl::Milliseconds(300);
  Client client(options);
  ASSERT_TRUE(client.Call({"PING"}).ok());  // Connected.
  constexpr int kN = 10;
  Tracker tracker(kN);
  absl::Mutex mu;
  absl::Time first_reply = absl::InfiniteFuture();
  for (int i = 0; i < kN; ++i) {
    client.Send({"INCR", "n"}, [&, done = tracker.For(i)](absl::StatusOr<Reply> r) mutable {
      {
        absl::MutexLock lock(&mu);
        first_reply = std::min(first_reply, absl::Now());
      }
      done(std::move(r));
    });
    absl::SleepFor(absl::Milliseconds(5));
  }
  const absl::Time last_send = absl::Now();
  ASSERT_TRUE(tracker.WaitAll(absl::Seconds(10)));
  // The first command waited the window, so all ten went out together: no
  // reply came back before the last command was queued.
  absl::MutexLock lock(&mu);
  EXPECT_GT(first_reply, last_send);
  for (int i = 0; i < kN; ++i) EXPECT_EQ(tracker.result(i)->integer(), i + 1);
}

TEST_F(ClientTest, FullQueueFailsFastWithResourceExhausted) {
  ClientOptions options = Options();
  options.connections = 1;
  options.max_queued = 4;
  options.connection.command_timeout = absl::Seconds(5);
  Client client(options);
  ASSERT_TRUE(client.Call({"PING"}).ok());
  Frozen frozen(*server_);
  // The I/O thread writes this and waits for the frozen server's reply.
  Tracker first(1);
  client.Send({"INCR", "n"}, first.For(0));
  ASSERT_TRUE(WaitFor(absl::Seconds(5), [&] { return client.queued() == 0; }));
  constexpr int kN = 10;
  Tracker tracker(kN);
  for (int i = 0; i < kN; ++i) client.Send({"INCR", "n"}, tracker.For(i));
  // The refused ones answer at once, while Redis is still frozen.
  ASSERT_TRUE(WaitFor(absl::Seconds(2), [&] { return tracker.done() >= 6; }));
  int refused = 0;
  for (int i = 0; i < kN; ++i) {
    if (tracker.calls(i) == 0) continue;
    absl::StatusOr<Reply> r = tracker.result(i);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << r.status();
    EXPECT_THAT(r.status().message(), HasSubstr("commands already wait"));
    ++refused;
  }
  EXPECT_EQ(refused, 6);
  frozen.Thaw();
  ASSERT_TRUE(first.WaitAll(absl::Seconds(10)));
  ASSERT_TRUE(tracker.WaitAll(absl::Seconds(10)));
  EXPECT_TRUE(first.result(0).ok()) << first.result(0).status();
  int accepted = 0;
  for (int i = 0; i < kN; ++i) accepted += tracker.result(i).ok() ? 1 : 0;
  EXPECT_EQ(accepted, 4);
  EXPECT_EQ(ReadCounter("n"), 5);
}

TEST_F(ClientTest, CallbacksMaySendAgain) {
  Client client(Options());
  constexpr int kDepth = 300;
  std::atomic<int> done{0};
  std::function<void(int)> step = [&](int n) {
    client.Send({"INCR", "chain"}, [&, n](absl::StatusOr<Reply> reply) {
      ASSERT_TRUE(reply.ok()) << reply.status();
      EXPECT_EQ(reply->integer(), n + 1);
      if (n + 1 < kDepth) {
        step(n + 1);
      } else {
        done.store(1);
      }
    });
  };
  step(0);
  ASSERT_TRUE(WaitFor(absl::Seconds(10), [&] { return done.load() == 1; }));
  EXPECT_EQ(ReadCounter("chain"), kDepth);
}

TEST(ClientDownTest, FailsFastWhenRedisWasNeverUp) {
  ClientOptions options;
  options.connection.port = PickUnusedPort();
  Client client(options);
  const absl::Time start = absl::Now();
  absl::StatusOr<Reply> first = client.Call({"PING"});
  EXPECT_EQ(first.status().code(), absl::StatusCode::kUnavailable) << first.status();
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(1500));
  EXPECT_FALSE(client.connected());

  const absl::Time burst = absl::Now();
  for (int i = 0; i < 200; ++i) {
    ASSERT_EQ(client.Call({"PING"}).status().code(), absl::StatusCode::kUnavailable);
  }
  EXPECT_LT(absl::Now() - burst, absl::Milliseconds(1500));
}

TEST(ClientDownTest, RefusedCallbackNeverRunsInsideSend) {
  // Callers may hold their own lock around Send(); a callback that takes the
  // same lock must not deadlock, even when the command is refused at once.
  ClientOptions options;
  options.connection.port = PickUnusedPort();
  Client client(options);
  ASSERT_EQ(client.Call({"PING"}).status().code(), absl::StatusCode::kUnavailable);

  absl::Mutex mu;
  std::atomic<int> ran{0};
  std::atomic<bool> on_caller_thread{false};
  const std::thread::id caller = std::this_thread::get_id();
  for (int i = 0; i < 50; ++i) {
    absl::MutexLock lock(&mu);
    client.Send({"PING"}, [&](absl::StatusOr<Reply> reply) {
      if (std::this_thread::get_id() == caller) on_caller_thread = true;
      absl::MutexLock inner(&mu);
      EXPECT_EQ(reply.status().code(), absl::StatusCode::kUnavailable);
      ran.fetch_add(1);
    });
  }
  ASSERT_TRUE(WaitFor(absl::Seconds(5), [&] { return ran.load() == 50; }));
  EXPECT_FALSE(on_caller_thread.load());
}

TEST_F(ClientTest, FailsFastAfterRedisDies) {
  Client client(Options());
  ASSERT_TRUE(client.Call({"PING"}).ok());
  ASSERT_TRUE(server_->Kill().ok());

  const absl::Time start = absl::Now();
  EXPECT_EQ(client.Call({"PING"}).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(1500));
  ASSERT_TRUE(WaitFor(absl::Seconds(5), [&] { return !client.connected(); }));

  const absl::Time burst = absl::Now();
  for (int i = 0; i < 100; ++i) {
    absl::StatusOr<Reply> r = client.Call({"INCR", "x"});
    ASSERT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  }
  EXPECT_LT(absl::Now() - burst, absl::Milliseconds(1500));
}

TEST_F(ClientTest, FailsFastWhileRedisIsFrozenThenRecovers) {
  ClientOptions options = Options();
  options.connection.command_timeout = absl::Milliseconds(300);
  options.connection.connect_timeout = absl::Milliseconds(300);
  Client client(options);
  ASSERT_TRUE(client.Call({"PING"}).ok());

  Frozen frozen(*server_);
  const absl::Time start = absl::Now();
  absl::StatusOr<Reply> first = client.Call({"PING"});
  EXPECT_EQ(first.status().code(), absl::StatusCode::kUnavailable) << first.status();
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(1500));

  // Once the client has found that no connection can be made, commands fail
  // without waiting for a timeout.
  EXPECT_TRUE(WaitFor(absl::Seconds(5), [&] {
    const absl::Time t = absl::Now();
    absl::StatusOr<Reply> r = client.Call({"PING"});
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
    return absl::Now() - t < absl::Milliseconds(50);
  }));

  frozen.Thaw();
  EXPECT_TRUE(WaitFor(absl::Seconds(10), [&] { return client.Call({"PING"}).ok(); }));
}

TEST_F(ClientTest, ReconnectsAfterRestart) {
  Client client(Options());
  ASSERT_EQ(*client.Call({"INCR", "n"})->AsInteger(), 1);
  ASSERT_TRUE(server_->Kill().ok());
  EXPECT_EQ(client.Call({"PING"}).status().code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(server_->Restart().ok());
  EXPECT_TRUE(WaitFor(absl::Seconds(10), [&] { return client.Call({"PING"}).ok(); }));
  EXPECT_TRUE(client.connected());
  absl::StatusOr<Reply> after = client.Call({"SET", "k", "v"});
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->str(), "OK");
}

TEST_F(ClientTest, IdleClientSurvivesRestartWithoutFailedCommands) {
  ClientOptions options = Options();
  options.connections = 2;
  Client client(options);
  ASSERT_TRUE(client.Call({"PING"}).ok());
  // Restarted while the client had nothing to send: its connections are
  // stale, which it must find out before it sends, not by failing a command.
  ASSERT_TRUE(server_->Kill().ok());
  ASSERT_TRUE(server_->Restart().ok());
  for (int i = 0; i < 10; ++i) {
    absl::StatusOr<Reply> r = client.Call({"INCR", "n"});
    ASSERT_TRUE(r.ok()) << i << ": " << r.status();
    EXPECT_EQ(r->integer(), i + 1);
  }
}

TEST_F(ClientTest, RejectsWrongPasswordFast) {
  {
    Client admin(Options());
    ASSERT_EQ(admin.Call({"CONFIG", "SET", "requirepass", "pw"})->str(), "OK");
  }
  ClientOptions wrong = Options();
  wrong.connection.password = "nope";
  Client bad(wrong);
  const absl::Time start = absl::Now();
  EXPECT_EQ(bad.Call({"PING"}).status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(1500));

  ClientOptions right = Options();
  right.connection.password = "pw";
  Client good(right);
  EXPECT_EQ(good.Call({"PING"})->str(), "PONG");
}

const Script& IncrScript() {
  static const Script* script =
      new Script("return redis.call('INCRBY', KEYS[1], ARGV[1])");
  return *script;
}

TEST_F(ClientTest, EvalRecoversFromScriptFlushWithOneEval) {
  Client client(Options());
  absl::StatusOr<Reply> first = client.CallEval(IncrScript(), {"n"}, {"1"});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->integer(), 1);

  ASSERT_EQ(client.Call({"SCRIPT", "FLUSH"})->str(), "OK");
  ASSERT_EQ(client.Call({"CONFIG", "RESETSTAT"})->str(), "OK");
  absl::StatusOr<Reply> after_flush = client.CallEval(IncrScript(), {"n"}, {"10"});
  ASSERT_TRUE(after_flush.ok()) << after_flush.status();
  EXPECT_EQ(after_flush->integer(), 11);
  EXPECT_EQ(CommandCalls(client, "eval"), 1);

  // Cached again: the next call is EVALSHA only.
  EXPECT_EQ(client.CallEval(IncrScript(), {"n"}, {"100"})->integer(), 111);
  EXPECT_EQ(CommandCalls(client, "eval"), 1);
  EXPECT_EQ(*client.Call({"SCRIPT", "EXISTS", IncrScript().sha1()})->elements()[0].AsInteger(),
            1);
}

TEST_F(ClientTest, EvalRecoversAfterRedisRestart) {
  Client client(Options());
  ASSERT_TRUE(client.CallEval(IncrScript(), {"n"}, {"1"}).ok());
  ASSERT_TRUE(server_->Kill().ok());
  ASSERT_TRUE(server_->Restart().ok());
  absl::StatusOr<Reply> r;
  EXPECT_TRUE(WaitFor(absl::Seconds(10), [&] {
    r = client.CallEval(IncrScript(), {"m"}, {"5"});
    return r.ok();
  })) << r.status();
  EXPECT_EQ(r->integer(), 5);
}

TEST_F(ClientTest, ConcurrentEvalsSurviveRepeatedScriptFlushes) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 500;
  Tracker tracker(kThreads * kPerThread);
  {
    Client client(Options());
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          client.Eval(IncrScript(), {"n"}, {"1"}, tracker.For(t * kPerThread + i));
        }
      });
    }
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(client.Call({"SCRIPT", "FLUSH"}).ok());
    for (std::thread& t : threads) t.join();
    ASSERT_TRUE(tracker.WaitAll(absl::Seconds(10)));
  }
  for (size_t i = 0; i < tracker.size(); ++i) {
    ASSERT_EQ(tracker.calls(i), 1);
    absl::StatusOr<Reply> r = tracker.result(i);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->type(), Reply::Type::kInteger) << r->DebugString();
  }
  EXPECT_EQ(ReadCounter("n"), kThreads * kPerThread);
}

TEST_F(ClientTest, ScriptErrorsAreNotRetried) {
  static const Script* failing = new Script("return redis.error_reply('ERR no way')");
  Client client(Options());
  ASSERT_EQ(client.Call({"SCRIPT", "FLUSH"})->str(), "OK");
  ASSERT_EQ(client.Call({"CONFIG", "RESETSTAT"})->str(), "OK");
  absl::StatusOr<Reply> r = client.CallEval(*failing, {}, {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->is_error());
  EXPECT_EQ(r->str(), "ERR no way");
  // One EVALSHA (NOSCRIPT), one EVAL (the error): not retried again.
  EXPECT_EQ(CommandCalls(client, "eval"), 1);
  EXPECT_EQ(CommandCalls(client, "evalsha"), 1);
}

TEST_F(ClientTest, DestructorRunsEveryCallbackOnceAndCancelsOnlyUnsent) {
  constexpr int kN = 20000;
  Tracker tracker(kN);
  const absl::Time start = absl::Now();
  {
    Client client(Options());
    ASSERT_TRUE(client.Call({"PING"}).ok());
    for (int i = 0; i < kN; ++i) client.Send({"INCR", "n"}, tracker.For(i));
  }
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  ASSERT_EQ(tracker.done(), static_cast<size_t>(kN));
  int ok = 0;
  for (int i = 0; i < kN; ++i) {
    ASSERT_EQ(tracker.calls(i), 1) << i;
    absl::StatusOr<Reply> r = tracker.result(i);
    if (r.ok()) {
      ++ok;
    } else {
      ASSERT_EQ(r.status().code(), absl::StatusCode::kCancelled) << r.status();
    }
  }
  // Exactly the commands reported done ran; cancelled ones never reached Redis.
  EXPECT_EQ(ReadCounter("n"), ok);
}

TEST_F(ClientTest, DestructorDoesNotHangOnFrozenRedis) {
  constexpr int kN = 1000;
  Tracker tracker(kN);
  Tracker followups(kN);
  Client* raw = nullptr;
  {
    ClientOptions options = Options();
    options.connections = 1;
    options.max_batch = 16;
    options.connection.command_timeout = absl::Milliseconds(300);
    options.connection.connect_timeout = absl::Milliseconds(300);
    auto client = std::make_unique<Client>(options);
    raw = client.get();
    ASSERT_TRUE(client->Call({"PING"}).ok());
    Frozen frozen(*server_);
    for (int i = 0; i < kN; ++i) {
      client->Send({"INCR", "n"}, [&, i](absl::StatusOr<Reply> reply) {
        // A callback may send again, even while the client shuts down.
        raw->Send({"PING"}, followups.For(i));
        tracker.For(i)(std::move(reply));
      });
    }
    const absl::Time start = absl::Now();
    client.reset();
    EXPECT_LT(absl::Now() - start, absl::Milliseconds(2500));
  }
  ASSERT_EQ(tracker.done(), static_cast<size_t>(kN));
  ASSERT_EQ(followups.done(), static_cast<size_t>(kN));
  for (int i = 0; i < kN; ++i) {
    ASSERT_EQ(tracker.calls(i), 1);
    ASSERT_EQ(followups.calls(i), 1);
    const absl::StatusCode code = tracker.result(i).status().code();
    ASSERT_TRUE(code == absl::StatusCode::kCancelled || code == absl::StatusCode::kUnavailable)
        << tracker.result(i).status();
  }
}

TEST_F(ClientTest, SurvivesKillAndRestartUnderLoad) {
  server_.reset();
  RedisServerOptions durable;
  durable.appendonly = true;  // appendfsync always: acknowledged INCRs survive.
  StartServer(durable);
  ClientOptions options = Options();
  options.connection.command_timeout = absl::Seconds(1);
  Client client(options);

  std::atomic<bool> stop{false};
  std::atomic<int64_t> ok{0}, failed{0};
  std::atomic<bool> unexpected{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      while (!stop.load()) {
        absl::StatusOr<Reply> r = client.Call({"INCR", "n"});
        if (r.ok() && r->type() == Reply::Type::kInteger) {
          ok.fetch_add(1);
        } else if (r.status().code() == absl::StatusCode::kUnavailable) {
          failed.fetch_add(1);
        } else {
          unexpected = true;
        }
      }
    });
  }
  EXPECT_TRUE(WaitFor(absl::Seconds(5), [&] { return ok.load() >= 200; }));
  ASSERT_TRUE(server_->Kill().ok());
  EXPECT_TRUE(WaitFor(absl::Seconds(5), [&] { return failed.load() > 0; }));
  ASSERT_TRUE(server_->Restart().ok());
  const int64_t before = ok.load();
  EXPECT_TRUE(WaitFor(absl::Seconds(10), [&] { return ok.load() >= before + 200; }));
  stop = true;
  for (std::thread& t : threads) t.join();

  EXPECT_FALSE(unexpected.load());
  const int64_t counter = ReadCounter("n");
  // Every acknowledged INCR is there; a failed one may or may not have run.
  EXPECT_GE(counter, ok.load());
  EXPECT_LE(counter, ok.load() + failed.load());
}

// --redis_min_replicas_acked: a write is answered only once WAIT says
// enough replicas have it; without them it is UNAVAILABLE, never OK.
TEST(ClientReplicasTest, WritesWaitForReplicasAndFailWithoutThem) {
  auto master = RedisServer::Start();
  ASSERT_TRUE(master.ok()) << master.status();
  ClientOptions options;
  options.connection = (*master)->options();
  options.min_replicas_acked = 1;
  options.replicas_timeout = absl::Milliseconds(100);
  Client client(options);

  // No replica yet: the write is applied, but not acknowledged.
  absl::StatusOr<Reply> w = client.Call({"SET", "k", "1"});
  EXPECT_EQ(w.status().code(), absl::StatusCode::kUnavailable) << w.status();
  EXPECT_THAT(std::string(w.status().message()), HasSubstr("0 of the 1 replicas"));
  // Reads do not wait, and error replies stay error replies.
  absl::StatusOr<Reply> r = client.Call({"GET", "k"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->str(), "1");
  absl::StatusOr<Reply> e = client.Call({"INCR", "k", "extra"});
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(e->is_error());

  // A replica that has caught up: writes (scripts too) are answered OK.
  RedisServerOptions replica_options;
  replica_options.extra_args = {"--replicaof", "127.0.0.1", absl::StrCat((*master)->port())};
  auto replica = RedisServer::Start(replica_options);
  ASSERT_TRUE(replica.ok()) << replica.status();
  ASSERT_TRUE(WaitFor(absl::Seconds(10), [&] {
    auto info = client.Call({"INFO", "replication"});
    return info.ok() && info->str().find("connected_slaves:1") != std::string::npos &&
           info->str().find("state=online") != std::string::npos;
  }));
  // A replica acknowledges within a round trip or two; a loaded machine gets
  // a generous timeout (the test is about the answer, not its speed).
  options.replicas_timeout = absl::Seconds(5);
  options.connection.command_timeout = absl::Seconds(10);
  Client patient(options);
  absl::StatusOr<Reply> ok = patient.Call({"SET", "k", "2"});
  ASSERT_TRUE(ok.ok()) << ok.status();
  static const Script kIncr("return redis.call('INCR', KEYS[1])");
  absl::StatusOr<Reply> s = patient.CallEval(kIncr, {"k"}, {});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->integer(), 3);
}

}  // namespace
}  // namespace taskmesh::redis
