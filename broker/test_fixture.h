// A fixture for broker tests: a private redis-server, a client, a Broker and
// a Consumer, and blocking wrappers around their asynchronous calls.
#ifndef TASKMESH_BROKER_TEST_FIXTURE_H_
#define TASKMESH_BROKER_TEST_FIXTURE_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/synchronization/notification.h"
#include "broker/broker.h"
#include "broker/consumer.h"
#include "broker/keys.h"
#include "redis/client.h"
#include "gtest/gtest.h"
#include "tests/support/redis_server.h"

namespace taskmesh::broker {

// Runs an asynchronous call and waits for its result.
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

class BrokerFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = testing::RedisServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    redis_ = *std::move(server);
    redis::ClientOptions options;
    options.connection = redis_->options();
    client_ = std::make_unique<redis::Client>(options);
    broker_ = std::make_unique<Broker>(client_.get(), BrokerOptions{});
    consumer_ = MakeConsumer("c1", absl::Seconds(30));
    auto conn = redis::Connection::Connect(redis_->options());
    ASSERT_TRUE(conn.ok()) << conn.status();
    conn_ = *std::move(conn);
  }

  std::unique_ptr<Consumer> MakeConsumer(const std::string& name, absl::Duration lease,
                                         int poison_after = 3) {
    ConsumerOptions o;
    o.consumer = name;
    o.lease = lease;
    o.poison_after = poison_after;
    return std::make_unique<Consumer>(client_.get(), BrokerOptions{}, o);
  }

  absl::StatusOr<Broker::Created> Create(const std::string& queue, const std::string& id,
                                         const taskmesh::v1::Task& task) {
    return Await<Broker::Created>(
        [&](auto cb) { broker_->Create(queue, id, task, std::move(cb)); });
  }

  absl::StatusOr<taskmesh::v1::Task> Get(const std::string& queue, const std::string& id) {
    return Await<taskmesh::v1::Task>([&](auto cb) { broker_->Get(queue, id, std::move(cb)); });
  }

  taskmesh::v1::Task::State StateOf(const std::string& queue, const std::string& id) {
    auto t = Get(queue, id);
    return t.ok() ? t->state() : taskmesh::v1::Task::STATE_UNSPECIFIED;
  }

  // Fetches up to `count` tasks of `queue` as `consumer` (default c1).
  std::vector<Lease> Fetch(const std::string& queue, int count = 10,
                           Consumer* consumer = nullptr) {
    Consumer* c = consumer != nullptr ? consumer : consumer_.get();
    EXPECT_TRUE(c->EnsureGroups({queue}).ok());
    auto f = c->Fetch(queue, count);
    EXPECT_TRUE(f.ok()) << f.status();
    return f.ok() ? f->leases : std::vector<Lease>();
  }

  Lease FetchOne(const std::string& queue) {
    std::vector<Lease> leases = Fetch(queue, 1);
    EXPECT_EQ(leases.size(), 1u);
    return leases.empty() ? Lease{} : leases[0];
  }

  absl::StatusOr<Completion> Complete(const Lease& lease, const Outcome& outcome,
                                      absl::Duration delay = absl::ZeroDuration(),
                                      Consumer* consumer = nullptr) {
    Consumer* c = consumer != nullptr ? consumer : consumer_.get();
    return Await<Completion>(
        [&](auto cb) { c->Complete(lease, outcome, delay, std::move(cb)); });
  }

  static Outcome Success(std::string result) {
    Outcome o;
    o.result = Blob{false, std::move(result)};
    return o;
  }

  static Outcome Failure(std::string message, bool retryable = true) {
    Outcome o;
    o.status = absl::InternalError(message);
    o.retryable = retryable;
    return o;
  }

  int64_t Count(const redis::Args& args) {
    auto r = client_->Call(args);
    return r.ok() ? r->integer() : -1;
  }

  int64_t StreamLength(const std::string& queue) { return Count({"XLEN", StreamKey(queue)}); }

  // The workers' group's lag on a stream as XINFO GROUPS reports it (what
  // KEDA scales on); -1 when Redis reports nil (KEDA reads that as -1 too),
  // -2 when there is no such group.
  int64_t Lag(const std::string& stream) {
    auto groups = client_->Call({"XINFO", "GROUPS", stream});
    if (!groups.ok() || groups->is_error()) return -2;
    for (const redis::Reply& g : groups->elements()) {
      const auto& f = g.elements();
      bool ours = false;
      int64_t lag = -2;
      for (size_t i = 0; i + 1 < f.size(); i += 2) {
        if (f[i].str() == "name") ours = f[i + 1].str() == kConsumerGroup;
        if (f[i].str() == "lag") lag = f[i + 1].is_nil() ? -1 : f[i + 1].integer();
      }
      if (ours) return lag;
    }
    return -2;
  }

  // Script calls Redis has run so far (EVALSHA and EVAL, INFO commandstats).
  int64_t EvalCalls() {
    auto info = client_->Call({"INFO", "commandstats"});
    if (!info.ok()) return -1;
    int64_t total = 0;
    for (const std::string name : {"cmdstat_evalsha:calls=", "cmdstat_eval:calls="}) {
      const size_t at = info->str().find(name);
      if (at == std::string::npos) continue;
      const size_t from = at + name.size();
      int64_t n = 0;
      if (absl::SimpleAtoi(info->str().substr(from, info->str().find(',', from) - from), &n)) {
        total += n;
      }
    }
    return total;
  }

  static taskmesh::v1::Task EchoTask() {
    taskmesh::v1::Task t;
    t.set_type("echo");
    t.set_payload_bytes("hello");
    return t;
  }

  std::unique_ptr<testing::RedisServer> redis_;
  std::unique_ptr<redis::Client> client_;
  std::unique_ptr<Broker> broker_;
  std::unique_ptr<Consumer> consumer_;
  std::unique_ptr<redis::Connection> conn_;
};

}  // namespace taskmesh::broker

#endif  // TASKMESH_BROKER_TEST_FIXTURE_H_
