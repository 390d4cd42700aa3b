// The producer side of the queue protocol against a real redis-server.
#include "broker/broker.h"

#include <atomic>
#include <cstring>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "broker/scripts.h"
#include "broker/test_fixture.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskmesh::broker {
namespace {

using ::taskmesh::v1::Task;
using ::testing::HasSubstr;

using BrokerTest = BrokerFixture;

TEST_F(BrokerTest, CreateWritesRecordStreamEntryIndexAndQueueName) {
  auto created = Create("q", "t1", EchoTask());
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_FALSE(created->existing);
  EXPECT_EQ(created->task.name(), "queues/q/tasks/t1");
  EXPECT_EQ(created->task.state(), Task::PENDING);
  EXPECT_EQ(created->task.max_attempts(), 3);
  EXPECT_GT(created->task.create_time().seconds(), 1600000000);

  auto got = Get("q", "t1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->payload_bytes(), "hello");
  EXPECT_EQ(got->state(), Task::PENDING);
  EXPECT_EQ(StreamLength("q"), 1);
  // PENDING tasks are their undelivered stream entries: no index to write.
  EXPECT_EQ(Count({"EXISTS", StateIndexKey("q", "PENDING")}), 0);
  EXPECT_EQ(Count({"SISMEMBER", std::string(kQueuesKey), "q"}), 1);
}

TEST_F(BrokerTest, PriorityPicksTheStream) {
  Task high = EchoTask();
  high.set_priority(Task::HIGH);
  Task low = EchoTask();
  low.set_priority(Task::LOW);
  ASSERT_TRUE(Create("q", "h", high).ok());
  ASSERT_TRUE(Create("q", "l", low).ok());
  ASSERT_TRUE(Create("q", "d", EchoTask()).ok());
  EXPECT_EQ(Count({"XLEN", StreamKey("q", "high")}), 1);
  EXPECT_EQ(Count({"XLEN", StreamKey("q", "low")}), 1);
  EXPECT_EQ(StreamLength("q"), 1);
}

TEST_F(BrokerTest, FutureScheduleTimeWaitsInTheScheduledSet) {
  Task task = EchoTask();
  task.mutable_schedule_time()->set_seconds(absl::ToUnixSeconds(absl::Now()) + 3600);
  auto created = Create("q", "later", task);
  ASSERT_TRUE(created.ok());
  EXPECT_EQ(created->task.state(), Task::SCHEDULED);
  EXPECT_EQ(StreamLength("q"), 0);
  EXPECT_EQ(Count({"ZCARD", ScheduledKey("q")}), 1);
}

TEST_F(BrokerTest, TaskIdInUseIsAlreadyExists) {
  ASSERT_TRUE(Create("q", "t1", EchoTask()).ok());
  EXPECT_EQ(Create("q", "t1", EchoTask()).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(StreamLength("q"), 1);
}

TEST_F(BrokerTest, SameRequestIdReturnsFirstTaskAndWritesNothing) {
  Task task = EchoTask();
  task.set_request_id("req-42");
  ASSERT_TRUE(Create("q", "a", task).ok());
  auto second = Create("q", "b", task);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(second->existing);
  EXPECT_EQ(second->task.name(), "queues/q/tasks/a");
  EXPECT_EQ(Get("q", "b").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(StreamLength("q"), 1);
}

TEST_F(BrokerTest, UnknownTaskIsNotFound) {
  EXPECT_EQ(Get("q", "missing").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(BrokerTest, CancelPendingRemovesItsStreamEntry) {
  ASSERT_TRUE(Create("q", "t", EchoTask()).ok());
  auto t = Await<Task>([&](auto cb) { broker_->Cancel("q", "t", std::move(cb)); });
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->state(), Task::CANCELLED);
  EXPECT_TRUE(t->has_end_time());
  EXPECT_EQ(StreamLength("q"), 0);
  EXPECT_TRUE(Fetch("q").empty());
  // Terminal: cannot be cancelled again.
  auto again = Await<Task>([&](auto cb) { broker_->Cancel("q", "t", std::move(cb)); });
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(again.status().message()), HasSubstr("already CANCELLED"));
}

TEST_F(BrokerTest, CancelScheduledRemovesItFromTheScheduledSet) {
  Task task = EchoTask();
  task.mutable_schedule_time()->set_seconds(absl::ToUnixSeconds(absl::Now()) + 3600);
  ASSERT_TRUE(Create("q", "t", task).ok());
  auto t = Await<Task>([&](auto cb) { broker_->Cancel("q", "t", std::move(cb)); });
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->state(), Task::CANCELLED);
  EXPECT_EQ(Count({"ZCARD", ScheduledKey("q")}), 0);
}

TEST_F(BrokerTest, RetryRerunsAFailedTaskWithFreshAttempts) {
  Task task = EchoTask();
  task.set_max_attempts(1);
  ASSERT_TRUE(Create("q", "t", task).ok());
  Lease lease = FetchOne("q");
  ASSERT_EQ(*Complete(lease, Failure("boom")), Completion::kFailed);
  auto retried = Await<Task>([&](auto cb) { broker_->Retry("q", "t", std::move(cb)); });
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ(retried->state(), Task::PENDING);
  EXPECT_EQ(retried->attempt(), 0);
  EXPECT_FALSE(retried->has_last_error());
  EXPECT_EQ(Count({"PTTL", TaskKey("q", "t")}), -1);  // No longer expires.
  Lease again = FetchOne("q");
  EXPECT_EQ(again.attempt, 1);
  EXPECT_EQ(*Complete(again, Success("ok")), Completion::kSucceeded);
  // Only FAILED and CANCELLED tasks can be retried.
  EXPECT_EQ(Await<Task>([&](auto cb) { broker_->Retry("q", "t", std::move(cb)); }).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(BrokerTest, DeleteRemovesEverythingButNotARunningTask) {
  Task task = EchoTask();
  task.set_request_id("r");
  ASSERT_TRUE(Create("q", "t", task).ok());
  ASSERT_TRUE(Create("q", "run", EchoTask()).ok());
  auto deleted = Await<bool>([&](auto cb) { broker_->Delete("q", "t", std::move(cb)); });
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(Get("q", "t").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Count({"EXISTS", IdempotencyKey("q", "r")}), 0);
  EXPECT_EQ(Count({"ZSCORE", StateIndexKey("q", "PENDING"), "t"}), 0);
  EXPECT_EQ(Await<bool>([&](auto cb) { broker_->Delete("q", "t", std::move(cb)); }).status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_EQ(Fetch("q").size(), 1u);  // "run" is now RUNNING.
  auto running = Await<bool>([&](auto cb) { broker_->Delete("q", "run", std::move(cb)); });
  EXPECT_EQ(running.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(BrokerTest, ListPagesThroughStatesInOrder) {
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(Create("q", absl::StrCat("t", i), EchoTask()).ok());
  Lease lease = FetchOne("q");  // t0 RUNNING
  ASSERT_EQ(lease.task_id, "t0");
  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    auto page = Await<Broker::TaskPage>([&](auto cb) {
      broker_->List("q", Task::STATE_UNSPECIFIED, 3, token, std::move(cb));
    });
    ASSERT_TRUE(page.ok()) << page.status();
    for (const Task& t : page->tasks) seen.push_back(t.name());
    token = page->next_page_token;
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(seen.size(), 7u);
  EXPECT_EQ(seen.back(), "queues/q/tasks/t0");  // PENDING pages come before RUNNING.
  auto running = Await<Broker::TaskPage>(
      [&](auto cb) { broker_->List("q", Task::RUNNING, 10, "", std::move(cb)); });
  ASSERT_TRUE(running.ok());
  ASSERT_EQ(running->tasks.size(), 1u);
  EXPECT_EQ(running->tasks[0].name(), "queues/q/tasks/t0");
  EXPECT_TRUE(running->next_page_token.empty());
  auto bad = Await<Broker::TaskPage>(
      [&](auto cb) { broker_->List("q", Task::RUNNING, 10, "garbage!", std::move(cb)); });
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(BrokerTest, ListAndCountWaitingAndRunningTasksAcrossPriorityStreams) {
  Task high = EchoTask();
  high.set_priority(Task::HIGH);
  Task low = EchoTask();
  low.set_priority(Task::LOW);
  ASSERT_TRUE(Create("q", "d1", EchoTask()).ok());
  ASSERT_TRUE(Create("q", "l1", low).ok());
  ASSERT_TRUE(Create("q", "h1", high).ok());
  ASSERT_TRUE(Create("q", "d2", EchoTask()).ok());
  ASSERT_TRUE(Create("q", "h2", high).ok());
  // Two start (the fetch takes the priority streams in a weighted random
  // order).
  std::vector<Lease> started = Fetch("q", 2);
  ASSERT_EQ(started.size(), 2u);
  // Every task in the order workers take them: by priority, then age.
  const std::vector<std::string> all = {"h1", "h2", "d1", "d2", "l1"};
  const auto filter = [&](bool running, const std::string& except = "") {
    std::vector<std::string> out;
    for (const std::string& id : all) {
      const bool is_running = id == started[0].task_id || id == started[1].task_id;
      if (is_running == running && id != except) out.push_back(id);
    }
    return out;
  };
  const auto names = [&](Task::State state, int page_size) {
    std::vector<std::string> seen;
    std::string token;
    for (int pages = 0; pages < 20; ++pages) {
      auto page = Await<Broker::TaskPage>(
          [&](auto cb) { broker_->List("q", state, page_size, token, std::move(cb)); });
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok()) break;
      for (const Task& t : page->tasks) seen.push_back(t.name().substr(strlen("queues/q/tasks/")));
      token = page->next_page_token;
      if (token.empty()) break;
    }
    return seen;
  };
  EXPECT_EQ(names(Task::PENDING, 10), filter(false));
  EXPECT_EQ(names(Task::PENDING, 1), filter(false));
  EXPECT_EQ(names(Task::RUNNING, 1), filter(true));
  auto q = Await<taskmesh::v1::Queue>([&](auto cb) { broker_->GetQueue("q", std::move(cb)); });
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->pending(), 3);
  EXPECT_EQ(q->running(), 2);
  // A finished task leaves the running ones; a cancelled one the waiting.
  const std::string cancelled = filter(false)[0];
  ASSERT_EQ(*Complete(started[0], Success("x")), Completion::kSucceeded);
  ASSERT_TRUE(Await<Task>([&](auto cb) { broker_->Cancel("q", cancelled, std::move(cb)); }).ok());
  EXPECT_EQ(names(Task::PENDING, 2), filter(false, cancelled));
  EXPECT_EQ(names(Task::RUNNING, 2), (std::vector<std::string>{started[1].task_id}));
  EXPECT_EQ(names(Task::SUCCEEDED, 2), (std::vector<std::string>{started[0].task_id}));
  EXPECT_EQ(names(Task::CANCELLED, 2), (std::vector<std::string>{cancelled}));
  q = Await<taskmesh::v1::Queue>([&](auto cb) { broker_->GetQueue("q", std::move(cb)); });
  EXPECT_EQ(q->pending(), 2);
  EXPECT_EQ(q->running(), 1);
}

TEST_F(BrokerTest, CreateManyEntersTasksInRequestOrderInOneCall) {
  constexpr int kN = 600;
  std::vector<Broker::NewTask> tasks;
  std::atomic<int> done{0};
  std::vector<std::string> want;
  for (int i = kN; i > 0; --i) {  // Ids sort the other way round.
    const std::string id = absl::StrCat("b", i);
    want.push_back(id);
    tasks.push_back({id, EchoTask(), [&](absl::StatusOr<Broker::Created> c) {
                       EXPECT_TRUE(c.ok()) << c.status();
                       done.fetch_add(1);
                     }});
  }
  ASSERT_TRUE(Create("q", "warm", EchoTask()).ok());  // Loads the script (EVALSHA, then EVAL).
  ASSERT_TRUE(Await<bool>([&](auto cb) { broker_->Delete("q", "warm", std::move(cb)); }).ok());
  const int64_t calls_before = EvalCalls();
  broker_->CreateMany("q", std::move(tasks));
  ASSERT_TRUE(testing::WaitFor(absl::Seconds(10), [&] { return done.load() == kN; }));
  EXPECT_EQ(EvalCalls() - calls_before, 1);
  auto page = Await<Broker::TaskPage>(
      [&](auto cb) { broker_->List("q", Task::PENDING, 1000, "", std::move(cb)); });
  ASSERT_TRUE(page.ok()) << page.status();
  std::vector<std::string> got;
  for (const Task& t : page->tasks) got.push_back(t.name().substr(strlen("queues/q/tasks/")));
  EXPECT_EQ(got, want);
}

TEST_F(BrokerTest, QueueFiguresPauseAndResume) {
  EXPECT_EQ(Await<taskmesh::v1::Queue>([&](auto cb) { broker_->GetQueue("q", std::move(cb)); })
                .status()
                .code(),
            absl::StatusCode::kNotFound);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Create("q", absl::StrCat("t", i), EchoTask()).ok());
  Lease lease = FetchOne("q");
  ASSERT_EQ(*Complete(lease, Success("ok")), Completion::kSucceeded);
  Lease running = FetchOne("q");
  auto q = Await<taskmesh::v1::Queue>([&](auto cb) { broker_->GetQueue("q", std::move(cb)); });
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->name(), "queues/q");
  EXPECT_EQ(q->pending(), 1);
  EXPECT_EQ(q->running(), 1);
  EXPECT_FALSE(q->paused());

  auto paused = Await<taskmesh::v1::Queue>(
      [&](auto cb) { broker_->SetPaused("q", true, std::move(cb)); });
  ASSERT_TRUE(paused.ok());
  EXPECT_TRUE(paused->paused());
  auto f = consumer_->Fetch("q", 10);
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(f->paused);
  EXPECT_TRUE(f->leases.empty());
  // Creating still works while paused.
  EXPECT_TRUE(Create("q", "while-paused", EchoTask()).ok());
  ASSERT_TRUE(Await<taskmesh::v1::Queue>(
                  [&](auto cb) { broker_->SetPaused("q", false, std::move(cb)); })
                  .ok());
  EXPECT_EQ(Fetch("q").size(), 2u);

  auto list = Await<Broker::QueuePage>([&](auto cb) { broker_->ListQueues(10, "", std::move(cb)); });
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->queues.size(), 1u);
  EXPECT_EQ(list->queues[0].name(), "queues/q");
}

TEST_F(BrokerTest, OutcomesShowAsRates) {
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(Create("q", absl::StrCat("t", i), EchoTask()).ok());
  for (const Lease& l : Fetch("q")) ASSERT_TRUE(Complete(l, Success("x")).ok());
  // Rates count whole seconds that have passed: look until the second rolls over.
  ASSERT_TRUE(testing::WaitFor(absl::Seconds(3), [&] {
    auto q = Await<taskmesh::v1::Queue>([&](auto cb) { broker_->GetQueue("q", std::move(cb)); });
    return q.ok() && q->succeeded_per_second() > 0;
  }));
  auto q = Await<taskmesh::v1::Queue>([&](auto cb) { broker_->GetQueue("q", std::move(cb)); });
  EXPECT_DOUBLE_EQ(q->succeeded_per_second(), 4 / 60.0);
}

TEST_F(BrokerTest, PurgeDeletesDeadAndOptionallyWaitingTasks) {
  Task once = EchoTask();
  once.set_max_attempts(1);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Create("q", absl::StrCat("dead", i), once).ok());
  for (const Lease& l : Fetch("q", 3)) ASSERT_EQ(*Complete(l, Failure("x")), Completion::kFailed);
  ASSERT_TRUE(Create("q", "waiting", EchoTask()).ok());
  auto purged = Await<int64_t>([&](auto cb) { broker_->Purge("q", false, std::move(cb)); });
  ASSERT_TRUE(purged.ok());
  EXPECT_EQ(*purged, 3);
  EXPECT_EQ(StateOf("q", "waiting"), Task::PENDING);
  purged = Await<int64_t>([&](auto cb) { broker_->Purge("q", true, std::move(cb)); });
  EXPECT_EQ(*purged, 1);
  EXPECT_EQ(StreamLength("q"), 0);
  EXPECT_TRUE(Fetch("q").empty());
}

// KEDA wakes a pool at zero workers from the group's lag: no operation may
// leave Redis unable to compute it (nil, read as -1 by KEDA), nor wrong.
TEST_F(BrokerTest, CancelOfTheNewestWaitingTaskKeepsTheLagExact) {
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(Create("q", absl::StrCat("t", i), EchoTask()).ok());
  ASSERT_TRUE(Await<Task>([&](auto cb) { broker_->Cancel("q", "t5", std::move(cb)); }).ok());
  EXPECT_EQ(Lag(StreamKey("q")), 5);
  ASSERT_TRUE(Await<Task>([&](auto cb) { broker_->Cancel("q", "t2", std::move(cb)); }).ok());
  EXPECT_EQ(Lag(StreamKey("q")), 4);
  ASSERT_TRUE(Create("q", "t6", EchoTask()).ok());
  EXPECT_EQ(Lag(StreamKey("q")), 5);
  // Reading past the gaps keeps it exact: what is delivered is no longer lag.
  EXPECT_EQ(Fetch("q", 3).size(), 3u);
  EXPECT_EQ(Lag(StreamKey("q")), 2);
  EXPECT_EQ(Fetch("q", 10).size(), 2u);
  EXPECT_EQ(Lag(StreamKey("q")), 0);
}

TEST_F(BrokerTest, CancelAndDeleteAfterSomeDeliveriesKeepTheLagExact) {
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(Create("q", absl::StrCat("t", i), EchoTask()).ok());
  std::vector<Lease> running = Fetch("q", 2);
  ASSERT_EQ(running.size(), 2u);
  EXPECT_EQ(Lag(StreamKey("q")), 3);
  ASSERT_TRUE(Await<bool>([&](auto cb) { broker_->Delete("q", "t4", std::move(cb)); }).ok());
  EXPECT_EQ(Lag(StreamKey("q")), 2);
  ASSERT_TRUE(Await<Task>([&](auto cb) { broker_->Cancel("q", "t3", std::move(cb)); }).ok());
  EXPECT_EQ(Lag(StreamKey("q")), 1);
  // Finishing delivered tasks (XACK + XDEL) leaves it a number too.
  for (const Lease& l : running) ASSERT_EQ(*Complete(l, Success("r")), Completion::kSucceeded);
  EXPECT_EQ(Lag(StreamKey("q")), 1);
}

TEST_F(BrokerTest, PurgeOfWaitingTasksKeepsTheLagExactForLaterTasks) {
  Task high = EchoTask();
  high.set_priority(Task::HIGH);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(Create("q", absl::StrCat("t", i), EchoTask()).ok());
  EXPECT_EQ(Fetch("q", 1).size(), 1u);  // One delivered, RUNNING: purge keeps it.
  ASSERT_TRUE(Create("q", "h", high).ok());
  auto purged = Await<int64_t>([&](auto cb) { broker_->Purge("q", true, std::move(cb)); });
  ASSERT_TRUE(purged.ok()) << purged.status();
  EXPECT_EQ(*purged, 4);
  EXPECT_EQ(Lag(StreamKey("q")), 0);
  EXPECT_EQ(Lag(StreamKey("q", "high")), 0);
  ASSERT_TRUE(Create("q", "after", EchoTask()).ok());
  ASSERT_TRUE(Create("q", "after-high", high).ok());
  EXPECT_EQ(Lag(StreamKey("q")), 1);
  EXPECT_EQ(Lag(StreamKey("q", "high")), 1);
}

// Scripts are assembled from broker/lua/ files; an error names the file.
TEST_F(BrokerTest, AScriptErrorNamesItsLuaFileAndLine) {
  auto reply = client_->CallEval(scripts::Cancel(), {}, {});  // No KEYS, no ARGV.
  ASSERT_TRUE(reply.ok()) << reply.status();
  ASSERT_TRUE(reply->is_error());
  EXPECT_THAT(reply->str(), HasSubstr("broker/lua/cancel.lua:"));
}

TEST_F(BrokerTest, RedisDownMeansUnavailableNotOk) {
  ASSERT_TRUE(redis_->Kill().ok());
  auto created = Create("q", "t", EchoTask());
  EXPECT_EQ(created.status().code(), absl::StatusCode::kUnavailable) << created.status();
}

}  // namespace
}  // namespace taskmesh::broker
