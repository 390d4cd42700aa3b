// The queue protocol against a real redis-server.
#include "broker/broker.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "broker/ids.h"
#include "broker/keys.h"
#include "gtest/gtest.h"
#include "tests/support/redis_server.h"

namespace taskmesh::broker {
namespace {

using ::taskmesh::v1::Task;

// Runs an asynchronous broker call and waits for its result.
template <typename T, typename F>
absl::StatusOr<T> Await(F call) {
  absl::Notification done;
  absl::StatusOr<T> result = absl::UnknownError("not called");
  call([&](absl::StatusOr<T> r) {
    result = std::move(r);
    done.Notify();
  });
  done.WaitForNotification();
  return result;
}

class BrokerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = testing::RedisServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    redis_ = *std::move(server);
    redis::ClientOptions options;
    options.connection = redis_->options();
    client_ = std::make_unique<redis::Client>(options);
    broker_ = std::make_unique<Broker>(client_.get(), BrokerOptions{});
    auto conn = redis::Connection::Connect(redis_->options());
    ASSERT_TRUE(conn.ok()) << conn.status();
    conn_ = *std::move(conn);
  }

  absl::StatusOr<Broker::Created> Create(const std::string& queue, const std::string& id,
                                         const Task& task) {
    return Await<Broker::Created>([&](auto cb) { broker_->Create(queue, id, task, std::move(cb)); });
  }

  absl::StatusOr<Task> Get(const std::string& queue, const std::string& id) {
    return Await<Task>([&](auto cb) { broker_->Get(queue, id, std::move(cb)); });
  }

  absl::StatusOr<absl::optional<Lease>> Start(const Delivery& d) {
    return Await<absl::optional<Lease>>([&](auto cb) { broker_->Start(d, std::move(cb)); });
  }

  absl::StatusOr<Completion> Complete(const Lease& lease, const Outcome& outcome) {
    return Await<Completion>([&](auto cb) { broker_->Complete(lease, outcome, std::move(cb)); });
  }

  std::vector<Delivery> Fetch(const std::vector<std::string>& queues) {
    auto d = broker_->Fetch(*conn_, "c1", queues, 10, absl::Milliseconds(100));
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() ? *d : std::vector<Delivery>();
  }

  // Fetches and starts the one task waiting on `queue`.
  Lease FetchAndStart(const std::string& queue) {
    std::vector<Delivery> d = Fetch({queue});
    EXPECT_EQ(d.size(), 1u);
    if (d.empty()) return {};
    auto lease = Start(d[0]);
    EXPECT_TRUE(lease.ok() && lease->has_value());
    return lease.ok() && lease->has_value() ? **lease : Lease{};
  }

  int64_t StreamLength(const std::string& queue) {
    return client_->Call({"XLEN", StreamKey(queue)})->integer();
  }

  static Task EchoTask() {
    Task t;
    t.set_type("echo");
    t.set_payload_bytes("hello");
    return t;
  }

  std::unique_ptr<testing::RedisServer> redis_;
  std::unique_ptr<redis::Client> client_;
  std::unique_ptr<Broker> broker_;
  std::unique_ptr<redis::Connection> conn_;
};

TEST_F(BrokerTest, CreateWritesRecordStreamEntryAndQueueName) {
  ASSERT_TRUE(broker_->EnsureGroups(*conn_, {"q"}).ok());
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
  EXPECT_EQ(client_->Call({"SISMEMBER", std::string(kQueuesKey), "q"})->integer(), 1);
}

TEST_F(BrokerTest, TaskIdInUseIsAlreadyExists) {
  ASSERT_TRUE(Create("q", "t1", EchoTask()).ok());
  EXPECT_EQ(Create("q", "t1", EchoTask()).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(StreamLength("q"), 1);
}

TEST_F(BrokerTest, SameRequestIdReturnsFirstTaskAndWritesNothing) {
  Task task = EchoTask();
  task.set_request_id("req-42");
  auto first = Create("q", "a", task);
  ASSERT_TRUE(first.ok());
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

TEST_F(BrokerTest, TasksCreatedBeforeTheGroupAreDelivered) {
  ASSERT_TRUE(Create("q", "early", EchoTask()).ok());
  ASSERT_TRUE(broker_->EnsureGroups(*conn_, {"q"}).ok());
  ASSERT_TRUE(broker_->EnsureGroups(*conn_, {"q"}).ok());  // Idempotent.
  std::vector<Delivery> d = Fetch({"q"});
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].task_id, "early");
  EXPECT_EQ(d[0].queue, "q");
}

TEST_F(BrokerTest, FetchFromSeveralQueuesAndEmptyFetchTimesOut) {
  ASSERT_TRUE(broker_->EnsureGroups(*conn_, {"a", "b"}).ok());
  EXPECT_TRUE(Fetch({"a", "b"}).empty());
  ASSERT_TRUE(Create("a", "1", EchoTask()).ok());
  ASSERT_TRUE(Create("b", "2", EchoTask()).ok());
  std::vector<Delivery> d = Fetch({"a", "b"});
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].queue == "a" ? d[0].task_id : d[1].task_id, "1");
}

TEST_F(BrokerTest, SuccessfulRunStoresResultAcksAndDeletesEntry) {
  ASSERT_TRUE(broker_->EnsureGroups(*conn_, {"q"}).ok());
  ASSERT_TRUE(Create("q", "t", EchoTask()).ok());
  Lease lease = FetchAndStart("q");
  EXPECT_EQ(lease.type, "echo");
  EXPECT_EQ(lease.payload.data, "hello");
  EXPECT_FALSE(lease.payload.is_json);
  EXPECT_EQ(lease.attempt, 1);
  EXPECT_EQ(Get("q", "t")->state(), Task::RUNNING);

  Outcome outcome;
  outcome.result = Blob{true, R"({"echo":"hello"})"};
  auto c = Complete(lease, outcome);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(*c, Completion::kSucceeded);
  auto task = Get("q", "t");
  ASSERT_TRUE(task.ok());
  EXPECT_EQ(task->state(), Task::SUCCEEDED);
  EXPECT_EQ(task->result().struct_value().fields().at("echo").string_value(), "hello");
  EXPECT_TRUE(task->has_end_time());
  EXPECT_EQ(StreamLength("q"), 0);  // Finished entries are removed.
  auto pending = client_->Call({"XPENDING", StreamKey("q"), std::string(kConsumerGroup)});
  EXPECT_EQ(pending->elements()[0].integer(), 0);
  auto ttl = client_->Call({"PTTL", TaskKey("q", "t")});
  EXPECT_GT(ttl->integer(), 0);  // Finished records expire after the retention.
}

TEST_F(BrokerTest, FailedAttemptRetriesUntilAttemptsRunOut) {
  ASSERT_TRUE(broker_->EnsureGroups(*conn_, {"q"}).ok());
  Task task = EchoTask();
  task.set_max_attempts(2);
  ASSERT_TRUE(Create("q", "t", task).ok());
  Outcome fail;
  fail.status = absl::InternalError("boom");

  Lease first = FetchAndStart("q");
  EXPECT_EQ(*Complete(first, fail), Completion::kRetrying);
  EXPECT_EQ(Get("q", "t")->state(), Task::PENDING);
  EXPECT_EQ(Get("q", "t")->last_error().message(), "boom");

  Lease second = FetchAndStart("q");
  EXPECT_EQ(second.attempt, 2);
  EXPECT_EQ(*Complete(second, fail), Completion::kFailed);
  auto final_task = Get("q", "t");
  EXPECT_EQ(final_task->state(), Task::FAILED);
  EXPECT_EQ(final_task->attempt(), 2);
  EXPECT_EQ(final_task->last_error().code(), static_cast<int>(absl::StatusCode::kInternal));
  EXPECT_EQ(StreamLength("q"), 0);
}

TEST_F(BrokerTest, NonRetryableFailureEndsAtOnce) {
  ASSERT_TRUE(broker_->EnsureGroups(*conn_, {"q"}).ok());
  ASSERT_TRUE(Create("q", "t", EchoTask()).ok());
  Lease lease = FetchAndStart("q");
  Outcome outcome;
  outcome.status = absl::UnimplementedError("no handler");
  outcome.retryable = false;
  EXPECT_EQ(*Complete(lease, outcome), Completion::kFailed);
  EXPECT_EQ(Get("q", "t")->state(), Task::FAILED);
  EXPECT_EQ(Get("q", "t")->attempt(), 1);
}

TEST_F(BrokerTest, StaleCompletionIsFenced) {
  ASSERT_TRUE(broker_->EnsureGroups(*conn_, {"q"}).ok());
  ASSERT_TRUE(Create("q", "t", EchoTask()).ok());
  Lease lease = FetchAndStart("q");
  Outcome fail;
  fail.status = absl::InternalError("first");
  ASSERT_EQ(*Complete(lease, fail), Completion::kRetrying);
  Lease newer = FetchAndStart("q");
  // The first attempt's holder reports again, late: nothing may change.
  Outcome late;
  late.result = Blob{false, "stale"};
  EXPECT_EQ(*Complete(lease, late), Completion::kFenced);
  EXPECT_EQ(Get("q", "t")->state(), Task::RUNNING);
  Outcome ok;
  ok.result = Blob{false, "fresh"};
  EXPECT_EQ(*Complete(newer, ok), Completion::kSucceeded);
  EXPECT_EQ(Get("q", "t")->result_bytes(), "fresh");
}

TEST_F(BrokerTest, StaleEntryOfDeletedTaskIsDropped) {
  ASSERT_TRUE(broker_->EnsureGroups(*conn_, {"q"}).ok());
  ASSERT_TRUE(Create("q", "t", EchoTask()).ok());
  ASSERT_TRUE(client_->Call({"DEL", TaskKey("q", "t")}).ok());
  std::vector<Delivery> d = Fetch({"q"});
  ASSERT_EQ(d.size(), 1u);
  auto lease = Start(d[0]);
  ASSERT_TRUE(lease.ok());
  EXPECT_FALSE(lease->has_value());
  EXPECT_EQ(StreamLength("q"), 0);
}

TEST_F(BrokerTest, FetchRecreatesAGroupDeletedWithItsStream) {
  ASSERT_TRUE(broker_->EnsureGroups(*conn_, {"q"}).ok());
  ASSERT_TRUE(client_->Call({"DEL", StreamKey("q")}).ok());
  EXPECT_TRUE(Fetch({"q"}).empty());
  ASSERT_TRUE(Create("q", "t", EchoTask()).ok());
  EXPECT_EQ(Fetch({"q"}).size(), 1u);
}

TEST_F(BrokerTest, RedisDownMeansUnavailableNotOk) {
  ASSERT_TRUE(redis_->Kill().ok());
  auto created = Create("q", "t", EchoTask());
  EXPECT_EQ(created.status().code(), absl::StatusCode::kUnavailable) << created.status();
}

}  // namespace
}  // namespace taskmesh::broker
