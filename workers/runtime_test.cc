// The worker runtime against a real redis-server.
#include "workers/runtime.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "redis/client.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "broker/partitions.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "tests/support/redis_server.h"
#include "workers/builtin_handlers.h"

namespace taskmesh::workers {
namespace {

using ::taskmesh::v1::Task;
using ::testing::HasSubstr;

class RuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = testing::RedisServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    redis_ = *std::move(server);
    redis::ClientOptions options;
    options.connection = redis_->options();
    client_ = std::make_unique<redis::Client>(options);
    broker_ = std::make_unique<broker::Broker>(client_.get(), broker::BrokerOptions{});
    broker::ConsumerOptions consumer_options;
    consumer_options.consumer = "test-worker";
    consumer_options.lease = absl::Seconds(2);
    consumer_ = std::make_unique<broker::Consumer>(client_.get(), broker::BrokerOptions{},
                                                   consumer_options);
    RegisterBuiltinHandlers(registry_);
    registry_.Register("count", [this](const TaskContext& ctx) -> absl::StatusOr<Result> {
      absl::MutexLock lock(&mu_);
      ++runs_[ctx.task_name];
      return Result::Json("true");
    });
  }

  void StartWorker(int concurrency = 4, absl::Duration drain = absl::Seconds(10),
                   absl::Duration fetch_block = absl::Milliseconds(100)) {
    WorkerOptions options;
    options.queues = {"q"};
    options.concurrency = concurrency;
    options.fetch_block = fetch_block;
    options.drain_timeout = drain;
    options.heartbeat_interval = absl::Milliseconds(200);
    options.promote_interval = absl::Milliseconds(20);
    options.retry_base = absl::Milliseconds(50);
    options.retry_cap = absl::Milliseconds(200);
    options.partitions_refresh = absl::Milliseconds(100);
    worker_ = std::make_unique<Worker>(options, &registry_, consumer_.get());
    ASSERT_TRUE(worker_->Start().ok());
  }

  std::string Create(const std::string& type, const std::string& payload_json,
                     int max_attempts = 0, absl::Duration timeout = absl::ZeroDuration()) {
    Task task;
    task.set_type(type);
    if (!payload_json.empty()) {
      google::protobuf::Value v;
      EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(payload_json, &v).ok());
      *task.mutable_payload() = v;
    }
    task.set_max_attempts(max_attempts);
    if (timeout > absl::ZeroDuration()) {
      task.mutable_attempt_timeout()->set_nanos(absl::ToInt64Nanoseconds(timeout));
    }
    const std::string id = absl::StrCat("t", next_id_++);
    absl::Notification done;
    broker_->Create("q", id, task, [&](absl::StatusOr<broker::Broker::Created> c) {
      EXPECT_TRUE(c.ok()) << c.status();
      done.Notify();
    });
    done.WaitForNotification();
    return id;
  }

  Task Get(const std::string& id) {
    absl::Notification done;
    Task out;
    broker_->Get("q", id, [&](absl::StatusOr<Task> t) {
      if (t.ok()) out = *t;
      done.Notify();
    });
    done.WaitForNotification();
    return out;
  }

  // Waits until the task is terminal; returns it.
  Task AwaitTerminal(const std::string& id, absl::Duration timeout = absl::Seconds(15)) {
    Task task;
    testing::WaitFor(timeout, [&] {
      task = Get(id);
      return task.state() == Task::SUCCEEDED || task.state() == Task::FAILED ||
             task.state() == Task::CANCELLED;
    });
    return task;
  }

  std::unique_ptr<testing::RedisServer> redis_;
  std::unique_ptr<redis::Client> client_;
  std::unique_ptr<broker::Broker> broker_;
  std::unique_ptr<broker::Consumer> consumer_;
  HandlerRegistry registry_;
  std::unique_ptr<Worker> worker_;
  int next_id_ = 0;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, int> runs_ ABSL_GUARDED_BY(mu_);
};

TEST_F(RuntimeTest, RunsBuiltinHandlersToSuccess) {
  StartWorker();
  const std::string echo = Create("echo", R"({"hello":"world"})");
  const std::string sha = Create("sha256", R"({"data":"abc"})");
  Task e = AwaitTerminal(echo);
  EXPECT_EQ(e.state(), Task::SUCCEEDED);
  EXPECT_EQ(e.result().struct_value().fields().at("hello").string_value(), "world");
  EXPECT_EQ(e.attempt(), 1);
  Task s = AwaitTerminal(sha);
  EXPECT_EQ(s.state(), Task::SUCCEEDED);
  EXPECT_EQ(s.result().struct_value().fields().at("sha256").string_value(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_F(RuntimeTest, UnknownTypeFailsAtOnceNamingTheType) {
  StartWorker();
  Task t = AwaitTerminal(Create("no-such-type", ""));
  EXPECT_EQ(t.state(), Task::FAILED);
  EXPECT_EQ(t.attempt(), 1);
  EXPECT_EQ(t.last_error().code(), static_cast<int>(absl::StatusCode::kUnimplemented));
  EXPECT_THAT(t.last_error().message(), HasSubstr("no handler for task type 'no-such-type'"));
}

TEST_F(RuntimeTest, FailingTaskIsRetriedThenFailed) {  // With backoff (50-200 ms here).
  StartWorker();
  Task t = AwaitTerminal(Create("fail", R"({"message":"broken"})", /*max_attempts=*/3));
  EXPECT_EQ(t.state(), Task::FAILED);
  EXPECT_EQ(t.attempt(), 3);
  EXPECT_EQ(t.last_error().message(), "broken");
  // The worker counts an outcome when Redis has confirmed it.
  EXPECT_TRUE(testing::WaitFor(absl::Seconds(5), [&] { return worker_->stats().failed == 1; }));
  EXPECT_EQ(worker_->stats().retried, 2);
}

TEST_F(RuntimeTest, AttemptThatOverrunsItsTimeoutFails) {
  StartWorker();
  Task t = AwaitTerminal(Create("sleep", R"({"ms":2000})", 1, absl::Milliseconds(100)));
  EXPECT_EQ(t.state(), Task::FAILED);
  EXPECT_EQ(t.last_error().code(), static_cast<int>(absl::StatusCode::kDeadlineExceeded));
}

TEST_F(RuntimeTest, TasksCreatedBeforeTheWorkerStartsRunOnceEach) {
  std::vector<std::string> ids;
  for (int i = 0; i < 300; ++i) ids.push_back(Create("count", ""));
  StartWorker(/*concurrency=*/4);
  for (const std::string& id : ids) ASSERT_EQ(AwaitTerminal(id).state(), Task::SUCCEEDED) << id;
  absl::MutexLock lock(&mu_);
  EXPECT_EQ(runs_.size(), 300u);
  for (const auto& [name, runs] : runs_) EXPECT_EQ(runs, 1) << name;
}

TEST_F(RuntimeTest, FetchesFromEveryPartitionIncludingOnesAddedWhileRunning) {
  const std::string before = Create("count", "");
  StartWorker(/*concurrency=*/4);
  ASSERT_EQ(AwaitTerminal(before).state(), Task::SUCCEEDED);
  absl::Notification set;
  broker_->SetPartitions("q", 4, [&](absl::StatusOr<taskmesh::v1::Queue> q) {
    EXPECT_TRUE(q.ok()) << q.status();
    set.Notify();
  });
  set.WaitForNotification();
  std::vector<std::string> ids;
  absl::flat_hash_map<int, int> per_partition;
  for (int i = 0; i < 200; ++i) {
    ids.push_back(Create("count", ""));
    ++per_partition[broker::PartitionFor(ids.back(), 4)];
  }
  ASSERT_EQ(per_partition.size(), 4u) << "200 tasks over 4 partitions";
  for (const std::string& id : ids) ASSERT_EQ(AwaitTerminal(id).state(), Task::SUCCEEDED) << id;
  absl::MutexLock lock(&mu_);
  EXPECT_EQ(runs_.size(), 201u);
  for (const auto& [name, runs] : runs_) EXPECT_EQ(runs, 1) << name;
}

TEST_F(RuntimeTest, StopLetsInFlightTasksFinish) {
  absl::Notification started;
  registry_.Register("slow", [&](const TaskContext&) -> absl::StatusOr<Result> {
    started.Notify();
    absl::SleepFor(absl::Milliseconds(300));
    return Result::Json("true");
  });
  StartWorker(2);
  const std::string id = Create("slow", "");
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_TRUE(worker_->Stop());
  EXPECT_EQ(Get(id).state(), Task::SUCCEEDED);
}

// A task the API calls RUNNING is one a worker runs: what the idle fetcher's
// blocking read receives after Stop() began is given back unstarted (before,
// it was started, then handed back: RUNNING, then PENDING again).
TEST_F(RuntimeTest, TaskArrivingWhileTheIdleFetcherDrainsIsNeverStarted) {
  StartWorker(2, absl::Seconds(10), /*fetch_block=*/absl::Seconds(5));
  // The fetcher is blocked in XREADGROUP (CLIENT LIST: flags b).
  ASSERT_TRUE(testing::WaitFor(absl::Seconds(10), [&] {
    auto list = client_->Call({"CLIENT", "LIST"});
    return list.ok() && list->str().find("flags=b ") != std::string::npos;
  }));
  std::thread stop([&] { EXPECT_TRUE(worker_->Stop()); });
  ASSERT_TRUE(testing::WaitFor(absl::Seconds(5), [&] { return worker_->draining(); }));
  const std::string id = Create("count", "");
  stop.join();
  Task t = Get(id);
  EXPECT_EQ(t.state(), Task::PENDING);
  EXPECT_EQ(t.attempt(), 0);
  EXPECT_FALSE(t.has_start_time()) << "the draining worker started it";
  EXPECT_EQ(worker_->stats().handed_back, 0);
}

TEST_F(RuntimeTest, StopHandsBackTasksStillRunningAtTheDrainTimeout) {
  absl::Notification started;
  registry_.Register("until_stopped", [&](const TaskContext& ctx) -> absl::StatusOr<Result> {
    started.Notify();
    while (!ctx.should_stop()) absl::SleepFor(absl::Milliseconds(5));
    return absl::CancelledError("stopped");
  });
  StartWorker(1, /*drain=*/absl::Milliseconds(100));
  const std::string id = Create("until_stopped", "", 1);
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(absl::Seconds(5)));
  const absl::Time start = absl::Now();
  EXPECT_TRUE(worker_->Stop());  // The handler honours cancellation.
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  Task t = Get(id);
  // Back in the queue for another worker, the abandoned attempt not counted.
  EXPECT_EQ(t.state(), Task::PENDING);
  EXPECT_EQ(t.attempt(), 0);
  EXPECT_EQ(worker_->stats().handed_back, 1);
  // The stopped handler's outcome was dropped, not recorded.
  EXPECT_EQ(worker_->stats().failed + worker_->stats().succeeded, 0);
}

TEST_F(RuntimeTest, RetriesWithBackoffUntilSuccess) {
  std::atomic<int> calls{0};
  registry_.Register("flaky", [&](const TaskContext& ctx) -> absl::StatusOr<Result> {
    if (++calls < 3) return absl::UnavailableError("not yet");
    return Result::Json(absl::StrCat(ctx.attempt));
  });
  StartWorker();
  Task t = AwaitTerminal(Create("flaky", "", 5));
  EXPECT_EQ(t.state(), Task::SUCCEEDED);
  EXPECT_EQ(t.attempt(), 3);
  EXPECT_EQ(t.result().number_value(), 3);
}

TEST_F(RuntimeTest, CancelledRunningTaskStopsAndEndsCancelled) {
  StartWorker();
  const std::string id = Create("sleep", R"({"ms":60000})");
  ASSERT_TRUE(testing::WaitFor(absl::Seconds(5), [&] { return Get(id).state() == Task::RUNNING; }));
  absl::Notification done;
  broker_->Cancel("q", id, [&](absl::StatusOr<Task>) { done.Notify(); });
  done.WaitForNotification();
  Task t = AwaitTerminal(id, absl::Seconds(5));  // Reaches the handler with the heartbeat.
  EXPECT_EQ(t.state(), Task::CANCELLED);
}

TEST_F(RuntimeTest, ProgressReportsAreVisible) {
  absl::Notification reported, release;
  registry_.Register("progress", [&](const TaskContext& ctx) -> absl::StatusOr<Result> {
    ctx.ReportProgress(50, "half way");
    reported.Notify();
    release.WaitForNotificationWithTimeout(absl::Seconds(10));
    return Result::Json("true");
  });
  StartWorker();
  const std::string id = Create("progress", "");
  reported.WaitForNotification();
  EXPECT_TRUE(testing::WaitFor(absl::Seconds(5), [&] { return Get(id).progress().percent() == 50; }));
  EXPECT_EQ(Get(id).progress().message(), "half way");
  release.Notify();
  EXPECT_EQ(AwaitTerminal(id).state(), Task::SUCCEEDED);
}

TEST_F(RuntimeTest, ScheduledTaskRunsWhenDue) {
  StartWorker();
  Task task;
  task.set_type("echo");
  const absl::Time due = absl::Now() + absl::Milliseconds(500);
  task.mutable_schedule_time()->set_seconds(absl::ToUnixSeconds(due));
  task.mutable_schedule_time()->set_nanos(static_cast<int32_t>(absl::ToUnixMillis(due) % 1000) *
                                          1000000);
  absl::Notification created;
  broker_->Create("q", "scheduled", task, [&](auto) { created.Notify(); });
  created.WaitForNotification();
  EXPECT_EQ(Get("scheduled").state(), Task::SCHEDULED);
  Task t = AwaitTerminal("scheduled");
  EXPECT_EQ(t.state(), Task::SUCCEEDED);
  EXPECT_GE(absl::Now(), due);
  // Promoted within --promote_interval (20 ms here) of its due time.
  EXPECT_LT(absl::FromUnixMillis(google::protobuf::util::TimeUtil::TimestampToMilliseconds(
                t.start_time())) - due,
            absl::Milliseconds(300));
}

TEST(RetryDelayTest, IsFullJitterUnderAnExponentialCap) {
  const absl::Duration base = absl::Seconds(1), cap = absl::Seconds(30);
  EXPECT_EQ(RetryDelay(1, base, cap, 0.0), absl::ZeroDuration());
  EXPECT_EQ(RetryDelay(1, base, cap, 0.5), absl::Milliseconds(500));
  EXPECT_EQ(RetryDelay(3, base, cap, 0.5), absl::Seconds(2));
  EXPECT_EQ(RetryDelay(10, base, cap, 0.5), absl::Seconds(15));  // Capped at 30 s.
  EXPECT_LT(RetryDelay(100, base, cap, 0.999999), cap);
}

TEST_F(RuntimeTest, KeepsWorkingAcrossARedisRestart) {
  StartWorker();
  ASSERT_EQ(AwaitTerminal(Create("echo", "1")).state(), Task::SUCCEEDED);
  ASSERT_TRUE(redis_->Restart().ok());  // No persistence: a fresh, empty Redis.
  // The client and the fetch loop reconnect by themselves.
  std::string id;
  ASSERT_TRUE(testing::WaitFor(absl::Seconds(10), [&] {
    Task task;
    task.set_type("echo");
    absl::Notification done;
    bool ok = false;
    broker_->Create("q", "after-restart", task, [&](absl::StatusOr<broker::Broker::Created> c) {
      ok = c.ok();
      done.Notify();
    });
    done.WaitForNotification();
    return ok;
  }));
  EXPECT_EQ(AwaitTerminal("after-restart").state(), Task::SUCCEEDED);
}

}  // namespace
}  // namespace taskmesh::workers
