// The worker side of the queue protocol against a real redis-server:
// leases, heartbeats, reclaim, fencing, retries, schedules, dead letters.
#include "broker/consumer.h"

#include <atomic>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "broker/events.h"
#include "broker/test_fixture.h"
#include "tests/support/process.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskmesh::broker {
namespace {

using ::taskmesh::v1::Task;
using ::testing::HasSubstr;

using ConsumerTest = BrokerFixture;

TEST(PriorityOrderTest, FollowsTheWeights) {
  EXPECT_EQ(PriorityOrder(0.0, 0.0), "hdl");
  EXPECT_EQ(PriorityOrder(0.0, 0.99), "hld");
  EXPECT_EQ(PriorityOrder(0.65, 0.0), "dhl");
  EXPECT_EQ(PriorityOrder(0.95, 0.0), "lhd");
  EXPECT_EQ(PriorityOrder(0.95, 0.99), "ldh");
}

TEST_F(ConsumerTest, FetchStartsTasksUnderALease) {
  ASSERT_TRUE(Create("q", "t", EchoTask()).ok());
  Lease lease = FetchOne("q");
  EXPECT_EQ(lease.task_id, "t");
  EXPECT_EQ(lease.type, "echo");
  EXPECT_EQ(lease.payload.data, "hello");
  EXPECT_FALSE(lease.payload.is_json);
  EXPECT_EQ(lease.attempt, 1);
  EXPECT_EQ(lease.stream, StreamKey("q"));
  auto task = Get("q", "t");
  EXPECT_EQ(task->state(), Task::RUNNING);
  EXPECT_EQ(task->attempt(), 1);
  EXPECT_TRUE(task->has_start_time());
  auto pending = client_->Call({"XPENDING", StreamKey("q"), "workers"});
  EXPECT_EQ(pending->elements()[0].integer(), 1);
}

TEST_F(ConsumerTest, SuccessStoresResultAcksAndDeletesTheEntry) {
  ASSERT_TRUE(Create("q", "t", EchoTask()).ok());
  Lease lease = FetchOne("q");
  auto c = Complete(lease, Success("done"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(*c, Completion::kSucceeded);
  auto task = Get("q", "t");
  EXPECT_EQ(task->state(), Task::SUCCEEDED);
  EXPECT_EQ(task->result_bytes(), "done");
  EXPECT_TRUE(task->has_end_time());
  EXPECT_EQ(StreamLength("q"), 0);
  EXPECT_EQ(client_->Call({"XPENDING", StreamKey("q"), "workers"})->elements()[0].integer(), 0);
  EXPECT_GT(Count({"PTTL", TaskKey("q", "t")}), 0);  // Expires after the retention.
  EXPECT_EQ(Count({"ZCARD", StateIndexKey("q", "SUCCEEDED")}), 1);
  EXPECT_EQ(Count({"ZCARD", StateIndexKey("q", "RUNNING")}), 0);
}

TEST_F(ConsumerTest, FailedAttemptWaitsItsBackoffThenRunsAgain) {
  ASSERT_TRUE(Create("q", "t", EchoTask()).ok());
  Lease first = FetchOne("q");
  ASSERT_EQ(*Complete(first, Failure("boom"), absl::Milliseconds(300)), Completion::kRetrying);
  auto task = Get("q", "t");
  EXPECT_EQ(task->state(), Task::SCHEDULED);
  EXPECT_EQ(task->last_error().message(), "boom");
  auto wait = consumer_->Promote("q", 100);
  ASSERT_TRUE(wait.ok()) << wait.status();
  EXPECT_GT(*wait, absl::ZeroDuration());
  EXPECT_LE(*wait, absl::Milliseconds(300));
  EXPECT_TRUE(Fetch("q").empty());  // Not yet due.
  ASSERT_TRUE(testing::WaitFor(absl::Seconds(5), [&] {
    (void)consumer_->Promote("q", 100);
    return StateOf("q", "t") == Task::PENDING;
  }));
  Lease second = FetchOne("q");
  EXPECT_EQ(second.attempt, 2);
  EXPECT_EQ(*Complete(second, Success("ok")), Completion::kSucceeded);
}

TEST_F(ConsumerTest, LastFailedAttemptDeadLetters) {
  Task task = EchoTask();
  task.set_max_attempts(2);
  ASSERT_TRUE(Create("q", "t", task).ok());
  EXPECT_EQ(*Complete(FetchOne("q"), Failure("one")), Completion::kRetrying);
  EXPECT_EQ(*Complete(FetchOne("q"), Failure("two")), Completion::kFailed);
  auto t = Get("q", "t");
  EXPECT_EQ(t->state(), Task::FAILED);
  EXPECT_EQ(t->attempt(), 2);
  EXPECT_EQ(t->last_error().message(), "two");
  EXPECT_EQ(Count({"ZCARD", StateIndexKey("q", "FAILED")}), 1);
  EXPECT_EQ(StreamLength("q"), 0);
}

TEST_F(ConsumerTest, NonRetryableFailureEndsAtOnce) {
  ASSERT_TRUE(Create("q", "t", EchoTask()).ok());
  EXPECT_EQ(*Complete(FetchOne("q"), Failure("bad input", false)), Completion::kFailed);
  EXPECT_EQ(Get("q", "t")->attempt(), 1);
}

TEST_F(ConsumerTest, ExpiredLeaseIsReclaimedAndTheStaleOutcomeFenced) {
  auto slow = MakeConsumer("slow", absl::Milliseconds(200));
  auto other = MakeConsumer("other", absl::Milliseconds(200));
  ASSERT_TRUE(Create("q", "t", EchoTask()).ok());
  std::vector<Lease> held = Fetch("q", 1, slow.get());
  ASSERT_EQ(held.size(), 1u);
  // Within the lease nobody else gets it.
  auto early = other->Reclaim("q", 10);
  ASSERT_TRUE(early.ok()) << early.status();
  EXPECT_TRUE(early->empty());
  std::vector<Lease> taken;
  ASSERT_TRUE(testing::WaitFor(absl::Seconds(5), [&] {
    auto r = other->Reclaim("q", 10);
    if (r.ok() && !r->empty()) taken = *r;
    return !taken.empty();
  }));
  EXPECT_EQ(taken[0].attempt, 2);
  // The frozen worker wakes up and reports: fenced, nothing changes.
  EXPECT_EQ(*Complete(held[0], Success("stale"), absl::ZeroDuration(), slow.get()),
            Completion::kFenced);
  EXPECT_EQ(StateOf("q", "t"), Task::RUNNING);
  auto renewal = Await<Renewal>([&](auto cb) { slow->Renew(held[0], std::move(cb)); });
  EXPECT_EQ(*renewal, Renewal::kLost);
  EXPECT_EQ(*Complete(taken[0], Success("fresh"), absl::ZeroDuration(), other.get()),
            Completion::kSucceeded);
  EXPECT_EQ(Get("q", "t")->result_bytes(), "fresh");
}

TEST_F(ConsumerTest, HeartbeatKeepsALongTaskFromBeingStolen) {
  auto holder = MakeConsumer("holder", absl::Milliseconds(300));
  auto thief = MakeConsumer("thief", absl::Milliseconds(300));
  ASSERT_TRUE(Create("q", "t", EchoTask()).ok());
  std::vector<Lease> held = Fetch("q", 1, holder.get());
  ASSERT_EQ(held.size(), 1u);
  const absl::Time end = absl::Now() + absl::Milliseconds(1200);
  while (absl::Now() < end) {
    auto r = Await<Renewal>([&](auto cb) { holder->Renew(held[0], std::move(cb)); });
    ASSERT_EQ(*r, Renewal::kOk);
    auto stolen = thief->Reclaim("q", 10);
    ASSERT_TRUE(stolen.ok());
    ASSERT_TRUE(stolen->empty()) << "a renewed lease was reclaimed";
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(*Complete(held[0], Success("ok"), absl::ZeroDuration(), holder.get()),
            Completion::kSucceeded);
}

TEST_F(ConsumerTest, TaskThatKeepsLosingItsWorkerIsDeadLettered) {
  Task task = EchoTask();
  task.set_max_attempts(10);
  ASSERT_TRUE(Create("q", "poison", task).ok());
  ASSERT_TRUE(Create("q", "fine", EchoTask()).ok());
  auto crashy = MakeConsumer("crashy", absl::Milliseconds(100), /*poison_after=*/2);
  std::vector<Lease> first = Fetch("q", 1, crashy.get());
  ASSERT_EQ(first.size(), 1u);
  ASSERT_EQ(first[0].task_id, "poison");
  // Its worker "dies" (never renews): reclaimed once (lost 1), then again (lost 2: dead).
  for (int lost = 1; lost <= 2; ++lost) {
    ASSERT_TRUE(testing::WaitFor(absl::Seconds(5), [&] {
      auto r = crashy->Reclaim("q", 1);
      return r.ok() && (!r->empty() || StateOf("q", "poison") == Task::FAILED);
    }));
  }
  auto t = Get("q", "poison");
  EXPECT_EQ(t->state(), Task::FAILED);
  EXPECT_EQ(t->attempt(), 2);
  EXPECT_THAT(t->last_error().message(), HasSubstr("dead-lettered"));
  EXPECT_EQ(t->last_error().code(), static_cast<int>(absl::StatusCode::kAborted));
  // The other task is untouched.
  Lease fine = FetchOne("q");
  EXPECT_EQ(fine.task_id, "fine");
  EXPECT_EQ(fine.attempt, 1);
}

TEST_F(ConsumerTest, HandBackMakesTheTaskPendingAtOnceWithoutUsingAnAttempt) {
  ASSERT_TRUE(Create("q", "t", EchoTask()).ok());
  Lease lease = FetchOne("q");
  auto back = Await<bool>([&](auto cb) { consumer_->HandBack(lease, std::move(cb)); });
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(*back);
  EXPECT_EQ(StateOf("q", "t"), Task::PENDING);
  auto other = MakeConsumer("other", absl::Seconds(30));
  std::vector<Lease> again = Fetch("q", 1, other.get());
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].attempt, 1);
  EXPECT_EQ(*Complete(lease, Success("late")), Completion::kFenced);
}

TEST_F(ConsumerTest, CancellingARunningTaskReachesItsWorkerAndEndsCancelled) {
  ASSERT_TRUE(Create("q", "t", EchoTask()).ok());
  Lease lease = FetchOne("q");
  auto t = Await<Task>([&](auto cb) { broker_->Cancel("q", "t", std::move(cb)); });
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->state(), Task::RUNNING);  // Requested; the worker decides when.
  EXPECT_EQ(*Await<Renewal>([&](auto cb) { consumer_->Renew(lease, std::move(cb)); }),
            Renewal::kCancelRequested);
  EXPECT_EQ(*Complete(lease, Success("ignored the flag")), Completion::kCancelled);
  EXPECT_EQ(StateOf("q", "t"), Task::CANCELLED);
}

TEST_F(ConsumerTest, ProgressIsRecordedByTheHolderOnly) {
  ASSERT_TRUE(Create("q", "t", EchoTask()).ok());
  Lease lease = FetchOne("q");
  EXPECT_TRUE(*Await<bool>([&](auto cb) { consumer_->Progress(lease, 40, "resizing", std::move(cb)); }));
  auto task = Get("q", "t");
  EXPECT_EQ(task->progress().percent(), 40);
  EXPECT_EQ(task->progress().message(), "resizing");
  Lease stale = lease;
  stale.attempt = 7;
  EXPECT_FALSE(*Await<bool>([&](auto cb) { consumer_->Progress(stale, 90, "x", std::move(cb)); }));
}

TEST_F(ConsumerTest, HighPriorityComesFirstAndLowIsNotStarved) {
  Task high = EchoTask();
  high.set_priority(Task::HIGH);
  Task low = EchoTask();
  low.set_priority(Task::LOW);
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(Create("q", absl::StrCat("h", i), high).ok());
    ASSERT_TRUE(Create("q", absl::StrCat("l", i), low).ok());
  }
  int highs = 0, lows = 0;
  for (int i = 0; i < 100; ++i) {
    std::vector<Lease> got = Fetch("q", 1);
    ASSERT_EQ(got.size(), 1u);
    (got[0].task_id[0] == 'h' ? highs : lows)++;
  }
  // Expected: about 86 high and 14 low.
  EXPECT_GT(highs, 60);
  EXPECT_GT(lows, 0);
}

TEST_F(ConsumerTest, ScheduledTaskRunsWhenDueNotBefore) {
  Task task = EchoTask();
  const absl::Time due = absl::Now() + absl::Milliseconds(400);
  task.mutable_schedule_time()->set_seconds(absl::ToUnixSeconds(due));
  task.mutable_schedule_time()->set_nanos(
      static_cast<int32_t>((absl::ToUnixMillis(due) % 1000) * 1000000));
  ASSERT_TRUE(Create("q", "later", task).ok());
  ASSERT_TRUE(consumer_->Promote("q", 100).ok());
  EXPECT_EQ(StateOf("q", "later"), Task::SCHEDULED);
  ASSERT_TRUE(testing::WaitFor(absl::Seconds(5), [&] {
    (void)consumer_->Promote("q", 100);
    return StateOf("q", "later") == Task::PENDING;
  }));
  EXPECT_GE(absl::Now(), due - absl::Milliseconds(5));  // Redis and this host share a clock.
  EXPECT_EQ(FetchOne("q").task_id, "later");
}

TEST_F(ConsumerTest, WaitDeliversAndStartsNewTasks) {
  ASSERT_TRUE(consumer_->EnsureGroups({"a", "b"}).ok());
  auto none = consumer_->Wait(*conn_, {"a", "b"}, absl::Milliseconds(50), [] { return true; });
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->empty());
  ASSERT_TRUE(Create("b", "t", EchoTask()).ok());
  auto got = consumer_->Wait(*conn_, {"a", "b"}, absl::Seconds(1), [] { return true; });
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].queue, "b");
  EXPECT_EQ(StateOf("b", "t"), Task::RUNNING);
}

// A worker idle in its blocking read when the queue is paused starts
// nothing it then receives: the entry goes back, the task stays PENDING.
TEST_F(ConsumerTest, WaitStartsNothingOfAQueuePausedWhileItWaited) {
  ASSERT_TRUE(consumer_->EnsureGroups({"q"}).ok());
  ASSERT_TRUE(Create("q", "t", EchoTask()).ok());
  ASSERT_TRUE(
      Await<taskmesh::v1::Queue>([&](auto cb) { broker_->SetPaused("q", true, std::move(cb)); })
          .ok());
  auto got = consumer_->Wait(*conn_, {"q"}, absl::Seconds(1), [] { return true; });
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->empty());
  EXPECT_EQ(StateOf("q", "t"), Task::PENDING);
  EXPECT_EQ(Lag(StreamKey("q")), 1);
  ASSERT_TRUE(
      Await<taskmesh::v1::Queue>([&](auto cb) { broker_->SetPaused("q", false, std::move(cb)); })
          .ok());
  Lease lease = FetchOne("q");
  EXPECT_EQ(lease.task_id, "t");
  EXPECT_EQ(lease.attempt, 1);
}

// A worker that began to drain while it waited gives back what arrived.
TEST_F(ConsumerTest, WaitGivesBackWhatArrivesWhenTheWorkerMayNotStart) {
  ASSERT_TRUE(consumer_->EnsureGroups({"q"}).ok());
  ASSERT_TRUE(Create("q", "t", EchoTask()).ok());
  auto got = consumer_->Wait(*conn_, {"q"}, absl::Seconds(1), [] { return false; });
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->empty());
  EXPECT_EQ(StateOf("q", "t"), Task::PENDING);
  EXPECT_EQ(Lag(StreamKey("q")), 1);
  auto other = MakeConsumer("c2", absl::Seconds(30));
  std::vector<Lease> leases = Fetch("q", 10, other.get());
  ASSERT_EQ(leases.size(), 1u);
  EXPECT_EQ(leases[0].attempt, 1);
}

// The idle wait of a worker whose queues span several cluster nodes: it
// returns when an undelivered entry exists, and delivers nothing.
TEST_F(ConsumerTest, AwaitWorkWakesOnAnUndeliveredEntryAndDeliversNothing) {
  ASSERT_TRUE(consumer_->EnsureGroups({"q"}).ok());
  ASSERT_TRUE(Create("q", "t", EchoTask()).ok());
  absl::Time start = absl::Now();
  ASSERT_TRUE(consumer_->AwaitWork(*conn_, {"q"}, absl::Seconds(20)).ok());
  EXPECT_LT(absl::Now() - start, absl::Seconds(10)) << "woke by its block, not by the entry";
  EXPECT_EQ(StateOf("q", "t"), Task::PENDING);
  EXPECT_EQ(Lag(StreamKey("q")), 1);
  // Delivered: nothing undelivered is left, so it waits; a new task wakes it.
  EXPECT_EQ(FetchOne("q").task_id, "t");
  std::atomic<bool> woke{false};
  std::thread waiter([&] {
    auto conn = redis::Connection::Connect(redis_->options());
    ASSERT_TRUE(conn.ok());
    EXPECT_TRUE(consumer_->AwaitWork(**conn, {"other", "q"}, absl::Seconds(20)).ok());
    woke = true;
  });
  // The waiter is blocked in XREAD (CLIENT LIST: flags b) before the create.
  ASSERT_TRUE(testing::WaitFor(absl::Seconds(10), [&] {
    auto list = client_->Call({"CLIENT", "LIST"});
    return list.ok() && list->str().find("cmd=xread ") != std::string::npos;
  }));
  EXPECT_FALSE(woke.load());
  start = absl::Now();
  ASSERT_TRUE(Create("q", "t2", EchoTask()).ok());
  waiter.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10)) << "woke by its block, not by the entry";
  EXPECT_EQ(StateOf("q", "t2"), Task::PENDING);
}

TEST_F(ConsumerTest, FirstTaskCreatesTheConsumerGroupSoLagIsVisible) {
  ASSERT_TRUE(Create("fresh", "t", EchoTask()).ok());
  auto groups = client_->Call({"XINFO", "GROUPS", StreamKey("fresh")});
  ASSERT_TRUE(groups.ok());
  ASSERT_EQ(groups->elements().size(), 1u) << groups->DebugString();
  // XINFO GROUPS: name, consumers, pending, last-delivered-id, entries-read, lag.
  const auto& fields = groups->elements()[0].elements();
  for (size_t i = 0; i + 1 < fields.size(); i += 2) {
    if (fields[i].str() == "name") EXPECT_EQ(fields[i + 1].str(), "workers");
    if (fields[i].str() == "lag") EXPECT_EQ(fields[i + 1].integer(), 1);
  }
  // The other priority streams get their group too (KEDA reads all three:
  // a missing group is a trigger error).
  EXPECT_EQ(Lag(StreamKey("fresh", "high")), 0);
  EXPECT_EQ(Lag(StreamKey("fresh", "low")), 0);
}

TEST_F(ConsumerTest, TasksCreatedBeforeTheGroupAreDelivered) {
  ASSERT_TRUE(Create("q", "early", EchoTask()).ok());
  ASSERT_TRUE(consumer_->EnsureGroups({"q"}).ok());
  ASSERT_TRUE(consumer_->EnsureGroups({"q"}).ok());  // Idempotent.
  EXPECT_EQ(FetchOne("q").task_id, "early");
}

TEST_F(ConsumerTest, MissingGroupIsReportedSoTheWorkerRecreatesIt) {
  ASSERT_TRUE(consumer_->EnsureGroups({"q"}).ok());
  ASSERT_TRUE(client_->Call({"DEL", StreamKey("q")}).ok());
  auto f = consumer_->Fetch("q", 1);
  EXPECT_EQ(f.status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(Create("q", "t", EchoTask()).ok());
  EXPECT_EQ(Fetch("q").size(), 1u);  // Fetch() in the fixture ensures groups first.
}

TEST_F(ConsumerTest, RateLimitIsSharedByAllConsumers) {
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(Create("q", absl::StrCat("t", i), EchoTask()).ok());
  ASSERT_TRUE(Await<taskmesh::v1::Queue>(
                  [&](auto cb) { broker_->SetRateLimit("q", 5, std::move(cb)); })
                  .ok());
  auto other = MakeConsumer("other", absl::Seconds(30));
  ASSERT_TRUE(consumer_->EnsureGroups({"q"}).ok());
  // A fresh bucket holds a burst of 5; then about 5 tokens per second.
  int started = 0;
  const absl::Time start = absl::Now();
  while (absl::Now() - start < absl::Seconds(1)) {
    for (Consumer* c : {consumer_.get(), other.get()}) {
      auto f = c->Fetch("q", 10);
      ASSERT_TRUE(f.ok()) << f.status();
      EXPECT_TRUE(f->limited);
      started += static_cast<int>(f->leases.size());
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  const double elapsed = absl::ToDoubleSeconds(absl::Now() - start);
  EXPECT_GE(started, 5);
  EXPECT_LE(started, 5 + static_cast<int>(5 * elapsed) + 1);
  // Lifting the limit lets the rest through at once.
  ASSERT_TRUE(Await<taskmesh::v1::Queue>(
                  [&](auto cb) { broker_->SetRateLimit("q", 0, std::move(cb)); })
                  .ok());
  auto f = consumer_->Fetch("q", 100);
  ASSERT_TRUE(f.ok());
  EXPECT_FALSE(f->limited);
  EXPECT_EQ(static_cast<int>(f->leases.size()), 50 - started);
}

TEST_F(ConsumerTest, EachPeriodicTickIsCreatedExactlyOnce) {
  int created = 0, refused = 0;
  for (int i = 0; i < 5; ++i) {  // Five schedulers asking for the same tick.
    auto c = Await<Broker::Created>(
        [&](auto cb) { broker_->CreateForTick("q", "nightly", 1800000000, EchoTask(), std::move(cb)); });
    if (c.ok()) {
      ++created;
      EXPECT_EQ(c->task.name(), "queues/q/tasks/periodic-nightly-1800000000");
    } else {
      EXPECT_EQ(c.status().code(), absl::StatusCode::kAlreadyExists);
      ++refused;
    }
  }
  EXPECT_EQ(created, 1);
  EXPECT_EQ(refused, 4);
  // Even after the task is gone, an old tick is not created again.
  ASSERT_TRUE(Await<bool>([&](auto cb) {
                broker_->Delete("q", "periodic-nightly-1800000000", std::move(cb));
              }).ok());
  EXPECT_EQ(Await<Broker::Created>([&](auto cb) {
              broker_->CreateForTick("q", "nightly", 1800000000, EchoTask(), std::move(cb));
            }).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(Await<Broker::Created>([&](auto cb) {
                broker_->CreateForTick("q", "nightly", 1800000060, EchoTask(), std::move(cb));
              }).ok());
}

TEST_F(ConsumerTest, StaleEntryOfADeletedTaskIsDropped) {
  ASSERT_TRUE(Create("q", "t", EchoTask()).ok());
  ASSERT_TRUE(client_->Call({"DEL", TaskKey("q", "t")}).ok());
  EXPECT_TRUE(Fetch("q").empty());
  EXPECT_EQ(StreamLength("q"), 0);
}

TEST_F(ConsumerTest, OnlyWatchedTasksPublishTheirTransitions) {
  const std::string channel = EventsChannel("q");
  auto sub = redis::Connection::Connect(redis_->options());
  ASSERT_TRUE(sub.ok()) << sub.status();
  ASSERT_TRUE((*sub)->Command({"SSUBSCRIBE", channel}).ok());
  // The message after `expected` events: ours, proving nothing else came.
  const auto next_message = [&]() -> std::string {
    absl::StatusOr<redis::Reply> m = (*sub)->ReadReply();
    if (!m.ok() || m->elements().size() != 3) return "(no message)";
    return m->elements()[2].str();
  };

  // Unwatched: created, started and finished without a single event.
  ASSERT_TRUE(Create("q", "quiet", EchoTask()).ok());
  ASSERT_TRUE(Complete(FetchOne("q"), Success("x")).ok());
  ASSERT_TRUE(client_->Call({"SPUBLISH", channel, "sentinel"}).ok());
  EXPECT_EQ(next_message(), "sentinel");

  // Watched (WatchTask's first read): each later transition is published.
  ASSERT_TRUE(Create("q", "loud", EchoTask()).ok());
  auto read = Await<Broker::Versioned>([&](auto cb) { broker_->WatchAt("q", 0, "loud", std::move(cb)); });
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->task.state(), Task::PENDING);
  EXPECT_EQ(read->version, 1);
  ASSERT_TRUE(Complete(FetchOne("q"), Success("x")).ok());
  // Each event carries the record as of its version.
  for (const auto& [version, state] : {std::pair<int, std::string>{2, "RUNNING"},
                                       std::pair<int, std::string>{3, "SUCCEEDED"}}) {
    absl::StatusOr<TaskEvent> event = ParseTaskEvent(next_message());
    ASSERT_TRUE(event.ok()) << event.status();
    EXPECT_EQ(event->id, "loud");
    EXPECT_EQ(event->version, version);
    EXPECT_EQ(event->state, state);
    EXPECT_EQ(event->attempt, 1);
    ASSERT_NE(event->record, nullptr);
    EXPECT_EQ(event->record->at("state"), state);
    EXPECT_EQ(event->record->at("ver"), absl::StrCat(version));
    absl::StatusOr<Task> task = TaskFromRecord("q", "loud", *event->record);
    ASSERT_TRUE(task.ok()) << task.status();
    if (version == 3) EXPECT_EQ(task->result_bytes(), "x");
  }

  // Watching a task that does not exist creates nothing.
  auto missing = Await<Broker::Versioned>([&](auto cb) { broker_->WatchAt("q", 0, "nope", std::move(cb)); });
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << missing.status();
  EXPECT_EQ(Count({"EXISTS", TaskKey("q", "nope")}), 0);
}

}  // namespace
}  // namespace taskmesh::broker
