// Partitioned queues (broker/partitions.h) against a real redis-server: every
// API on the queue's name, across partitions and changes of their count.
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "broker/broker.h"
#include "broker/partitions.h"
#include "broker/test_fixture.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskmesh::broker {
namespace {

using ::taskmesh::v1::Queue;
using ::taskmesh::v1::Task;
using ::testing::UnorderedElementsAreArray;

class PartitionedQueueTest : public BrokerFixture {
 protected:
  absl::StatusOr<Queue> SetPartitions(const std::string& queue, int count) {
    return Await<Queue>(
        [&](auto cb) { broker_->SetPartitions(queue, count, std::move(cb)); });
  }
  absl::StatusOr<Queue> GetQueue(const std::string& queue) {
    return Await<Queue>([&](auto cb) { broker_->GetQueue(queue, std::move(cb)); });
  }
  absl::StatusOr<int> Locate(const std::string& queue, const std::string& id) {
    return Await<int>([&](auto cb) { broker_->Locate(queue, id, std::move(cb)); });
  }
  // An id that lands in `partition` of `count`.
  static std::string IdIn(int partition, int count, const std::string& prefix = "t") {
    for (int i = 0;; ++i) {
      std::string id = absl::StrCat(prefix, i);
      if (PartitionFor(id, count) == partition) return id;
    }
  }
  // Every task name of the queue, page by page (`page_size` each).
  std::vector<std::string> ListAll(const std::string& queue, int page_size) {
    std::vector<std::string> names;
    std::string token;
    for (int pages = 0; pages < 1000; ++pages) {
      auto page = Await<Broker::TaskPage>([&](auto cb) {
        broker_->List(queue, Task::STATE_UNSPECIFIED, page_size, token, std::move(cb));
      });
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok()) break;
      EXPECT_LE(static_cast<int>(page->tasks.size()), page_size);
      for (const Task& t : page->tasks) names.push_back(t.name());
      token = page->next_page_token;
      if (token.empty()) break;
    }
    return names;
  }
};

TEST_F(PartitionedQueueTest, TasksSpreadOverPartitionsAndEveryApiFindsThemByTheQueuesName) {
  ASSERT_TRUE(Create("q", "first", EchoTask()).ok());  // A queue exists from its first task.
  auto q = SetPartitions("q", 3);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->partitions(), 3);
  std::vector<std::string> names = {"queues/q/tasks/first"};
  std::set<int> used;
  for (int i = 0; i < 30; ++i) {
    auto created = Create("q", "", EchoTask());
    ASSERT_TRUE(created.ok()) << created.status();
    names.push_back(created->task.name());
    const std::string id = created->task.name().substr(std::string("queues/q/tasks/").size());
    const int p = PartitionFor(id, 3);
    used.insert(p);
    // The record is in its partition's slot, and only there.
    EXPECT_EQ(Count({"EXISTS", TaskKey(PartitionName("q", p), id)}), 1) << id;
    auto where = Locate("q", id);
    ASSERT_TRUE(where.ok()) << where.status();
    EXPECT_EQ(*where, p);
    auto got = Get("q", id);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->name(), created->task.name());
  }
  EXPECT_EQ(used.size(), 3u) << "30 tasks over 3 partitions";
  // Stats are summed over the partitions; the name is the queue's.
  q = GetQueue("q");
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->name(), "queues/q");
  EXPECT_EQ(q->pending(), 31);
  EXPECT_EQ(q->partitions(), 3);
  // Listing pages through every partition, each task once.
  EXPECT_THAT(ListAll("q", 7), UnorderedElementsAreArray(names));
  EXPECT_THAT(ListAll("q", 1000), UnorderedElementsAreArray(names));
  // Only the queue is registered, not its partitions.
  EXPECT_EQ(Count({"SCARD", std::string(kQueuesKey)}), 1);

  const std::string in2 = IdIn(2, 3, "c");
  ASSERT_TRUE(Create("q", in2, EchoTask()).ok());
  auto cancelled = Await<Task>([&](auto cb) { broker_->Cancel("q", in2, std::move(cb)); });
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->state(), Task::CANCELLED);
  EXPECT_EQ(cancelled->name(), "queues/q/tasks/" + in2);
  auto retried = Await<Task>([&](auto cb) { broker_->Retry("q", in2, std::move(cb)); });
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ(retried->state(), Task::PENDING);
  ASSERT_TRUE(Await<Task>([&](auto cb) { broker_->Cancel("q", in2, std::move(cb)); }).ok());
  ASSERT_TRUE(Await<bool>([&](auto cb) { broker_->Delete("q", in2, std::move(cb)); }).ok());
  EXPECT_EQ(Get("q", in2).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Locate("q", in2).status().code(), absl::StatusCode::kNotFound);
  // No partition's lag became uncomputable (KEDA).
  for (int p = 0; p < 3; ++p) EXPECT_GE(Lag(StreamKey(PartitionName("q", p))), 0) << p;

  auto purged = Await<int64_t>([&](auto cb) { broker_->Purge("q", true, std::move(cb)); });
  ASSERT_TRUE(purged.ok()) << purged.status();
  EXPECT_EQ(*purged, 31);
  EXPECT_EQ(GetQueue("q")->pending(), 0);
}

TEST_F(PartitionedQueueTest, ChangingTheCountLosesNothingAndFindsOldTasks) {
  ASSERT_TRUE(Create("q", "zero", EchoTask()).ok());
  ASSERT_TRUE(SetPartitions("q", 4).ok());
  const std::string in3 = IdIn(3, 4);
  ASSERT_TRUE(Create("q", in3, EchoTask()).ok());
  // Down to 2: partitions 2 and 3 take no new tasks but keep theirs.
  auto q = SetPartitions("q", 2);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->partitions(), 2);
  EXPECT_EQ(q->pending(), 2);
  auto got = Get("q", in3);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*Locate("q", in3), 3);
  // The id is taken wherever it is: no second task of that id.
  EXPECT_EQ(Create("q", in3, EchoTask()).status().code(), absl::StatusCode::kAlreadyExists);
  // A consumer of every partition gets both tasks.
  auto partitions = consumer_->Partitions("q");
  ASSERT_TRUE(partitions.ok()) << partitions.status();
  EXPECT_THAT(*partitions, UnorderedElementsAreArray({"q", "q~1", "q~2", "q~3"}));
  std::set<std::string> fetched;
  for (const std::string& p : *partitions) {
    for (const Lease& lease : Fetch(p)) {
      fetched.insert(lease.task_id);
      EXPECT_EQ(lease.queue, p);
      EXPECT_TRUE(Complete(lease, Success("ok")).ok());
    }
  }
  EXPECT_EQ(fetched, (std::set<std::string>{"zero", in3}));
  EXPECT_EQ(Get("q", in3)->state(), Task::SUCCEEDED);
}

TEST_F(PartitionedQueueTest, ARetriedCreateFindsItsTaskAcrossACountChange) {
  ASSERT_TRUE(Create("q", "seed", EchoTask()).ok());
  ASSERT_TRUE(SetPartitions("q", 3).ok());
  Task task = EchoTask();
  task.set_request_id("req-1");
  // Lands outside partition 0: the request_id is reserved in partition 0.
  const std::string id = IdIn(1, 3, "r");
  auto first = Create("q", id, task);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->existing);
  EXPECT_EQ(Count({"EXISTS", IdempotencyKey("q", "req-1")}), 1);
  // The same request again, with a server-chosen id, then after K changes.
  auto again = Create("q", "", task);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->existing);
  EXPECT_EQ(again->task.name(), first->task.name());
  ASSERT_TRUE(SetPartitions("q", 1).ok());
  again = Create("q", "", task);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->existing);
  EXPECT_EQ(again->task.name(), first->task.name());
  ASSERT_TRUE(SetPartitions("q", 5).ok());
  again = Create("q", "", task);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->existing);
  EXPECT_EQ(GetQueue("q")->pending(), 2);
}

TEST_F(PartitionedQueueTest, ATryThatDiedAfterItsReservationIsCompletedByTheRetry) {
  ASSERT_TRUE(Create("q", "seed", EchoTask()).ok());
  ASSERT_TRUE(SetPartitions("q", 3).ok());
  const std::string id = IdIn(2, 3, "d");
  // What a create that reserved its request_id and then died leaves behind.
  ASSERT_TRUE(client_->Call({"SET", IdempotencyKey("q", "req-2"), id}).ok());
  Task task = EchoTask();
  task.set_request_id("req-2");
  auto created = Create("q", "", task);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_FALSE(created->existing);
  EXPECT_EQ(created->task.name(), "queues/q/tasks/" + id);
  auto again = Create("q", "", task);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->existing);
  EXPECT_EQ(GetQueue("q")->pending(), 2);
}

TEST_F(PartitionedQueueTest, PauseAndRateLimitCoverEveryPartitionIncludingNewOnes) {
  ASSERT_TRUE(Create("q", "seed", EchoTask()).ok());
  ASSERT_TRUE(Await<Queue>([&](auto cb) { broker_->SetPaused("q", true, std::move(cb)); }).ok());
  ASSERT_TRUE(
      Await<Queue>([&](auto cb) { broker_->SetRateLimit("q", 30, std::move(cb)); }).ok());
  auto q = SetPartitions("q", 3);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_TRUE(q->paused());
  EXPECT_EQ(q->rate_limit(), 30);
  const std::string in2 = IdIn(2, 3);
  ASSERT_TRUE(Create("q", in2, EchoTask()).ok());
  for (int p = 0; p < 3; ++p) {
    const std::string name = PartitionName("q", p);
    auto f = consumer_->Fetch(name, 10);
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_TRUE(f->paused) << name;
    // The limit is shared: each of the 3 partitions starts 10 a second.
    auto meta = client_->Call({"HMGET", MetaKey(name), "rate", "rshare"});
    ASSERT_TRUE(meta.ok());
    EXPECT_EQ(meta->elements()[0].str(), "30") << name;
    EXPECT_EQ(meta->elements()[1].str(), "3") << name;
  }
  q = Await<Queue>([&](auto cb) { broker_->SetPaused("q", false, std::move(cb)); });
  ASSERT_TRUE(q.ok());
  EXPECT_FALSE(q->paused());
  auto f = consumer_->Fetch(PartitionName("q", 2), 10);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_FALSE(f->paused);
  EXPECT_TRUE(f->limited);
  ASSERT_EQ(f->leases.size(), 1u);
  EXPECT_EQ(f->leases[0].task_id, in2);
}

TEST_F(PartitionedQueueTest, NewPartitionsHaveTheirGroupsBeforeAnyTask) {
  ASSERT_TRUE(Create("q", "seed", EchoTask()).ok());
  ASSERT_TRUE(SetPartitions("q", 4).ok());
  // KEDA reads every partition's streams: a lag of 0, never NOGROUP.
  for (int p = 0; p < 4; ++p) {
    for (const char* suffix : {"", "high", "low"}) {
      EXPECT_EQ(Lag(StreamKey(PartitionName("q", p), suffix)), p == 0 && *suffix == 0 ? 1 : 0)
          << p << suffix;
    }
  }
}

TEST_F(PartitionedQueueTest, RefusesACountOutOfRangeAndAnUnknownQueue) {
  EXPECT_EQ(SetPartitions("nope", 2).status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(Create("q", "seed", EchoTask()).ok());
  EXPECT_EQ(SetPartitions("q", 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SetPartitions("q", kMaxPartitions + 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(SetPartitions("q", kMaxPartitions).ok());
}

TEST_F(PartitionedQueueTest, ALimitKeepsTheCountWithinWhatTheAutoscalerWatches) {
  BrokerOptions options;
  options.partition_limits = {{"q", 2}};
  Broker limited(client_.get(), options);
  ASSERT_TRUE(Create("q", "seed", EchoTask()).ok());
  auto refused = Await<Queue>([&](auto cb) { limited.SetPartitions("q", 3, std::move(cb)); });
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.status().message()), ::testing::HasSubstr("at most 2"));
  EXPECT_TRUE(Await<Queue>([&](auto cb) { limited.SetPartitions("q", 2, std::move(cb)); }).ok());
}

TEST_F(PartitionedQueueTest, AnotherServersStaleMapStillFindsNewTasks) {
  // Two brokers (two task_service replicas); the second caches the map.
  Broker other(client_.get(), BrokerOptions{});
  ASSERT_TRUE(Create("q", "seed", EchoTask()).ok());
  auto seen = Await<Task>([&](auto cb) { other.Get("q", "seed", std::move(cb)); });
  ASSERT_TRUE(seen.ok());
  ASSERT_TRUE(SetPartitions("q", 3).ok());
  const std::string in1 = IdIn(1, 3);
  ASSERT_TRUE(Create("q", in1, EchoTask()).ok());
  // `other` still believes in one partition: its NOT_FOUND is checked
  // against a fresh map first.
  auto got = Await<Task>([&](auto cb) { other.Get("q", in1, std::move(cb)); });
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->name(), "queues/q/tasks/" + in1);
}

}  // namespace
}  // namespace taskmesh::broker
