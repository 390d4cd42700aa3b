// Broker: the queue protocol on Redis Streams, shared by the task_service
// (producer side) and the workers (consumer side).
//
// Thread-safe. Does not own the redis::Client. Asynchronous calls run their
// callback on a Redis I/O thread: callbacks must not block.
//
// Example (producer):
//   Broker broker(&client, {});
//   broker.Create("emails", NewTaskId(absl::Now()), task,
//                 [](absl::StatusOr<Broker::Created> created) { ... });
// Example (consumer):
//   ASSIGN_OR_RETURN(auto deliveries, broker.Fetch(*conn, "worker-1", {"emails"}, 16, absl::Seconds(1)));
//   for (auto& d : deliveries) broker.Start(d, [](absl::StatusOr<absl::optional<Lease>> lease) { ... });
#ifndef TASKMESH_BROKER_BROKER_H_
#define TASKMESH_BROKER_BROKER_H_

#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "broker/task_codec.h"
#include "redis/client.h"
#include "redis/connection.h"
#include "taskmesh/v1/task.pb.h"

namespace taskmesh::broker {

struct BrokerOptions {
  // Attempts for a task that does not set max_attempts.
  int default_max_attempts = 3;
  // How long finished tasks and idempotency records are kept.
  absl::Duration retention = absl::Hours(24 * 7);
};

// A stream entry handed to a consumer.
struct Delivery {
  std::string queue;
  std::string stream_id;
  std::string task_id;
};

// A task that a worker now runs (state RUNNING), and what it needs to run it.
struct Lease {
  Delivery delivery;
  std::string type;
  Blob payload;
  int attempt = 0;
  int max_attempts = 0;
  // Zero: the worker's default.
  absl::Duration timeout;
};

// What one attempt produced.
struct Outcome {
  // OK: `result` is the task's result. Else the attempt failed.
  absl::Status status;
  Blob result;
  // False: fail the task now, whatever attempts are left.
  bool retryable = true;
};

enum class Completion { kSucceeded, kRetrying, kFailed, kFenced };

class Broker {
 public:
  struct Created {
    taskmesh::v1::Task task;
    // True when the request_id was seen before and nothing was written.
    bool existing = false;
  };

  Broker(redis::Client* client, BrokerOptions options);

  const BrokerOptions& options() const { return options_; }

  // Writes the task record, its stream entry and (with a request_id) its
  // idempotency record in one atomic step. ALREADY_EXISTS if `id` is taken.
  void Create(const std::string& queue, const std::string& id, const taskmesh::v1::Task& task,
              absl::AnyInvocable<void(absl::StatusOr<Created>)> done);

  // Reads a task. NOT_FOUND when there is no such task (or it expired).
  void Get(const std::string& queue, const std::string& id,
           absl::AnyInvocable<void(absl::StatusOr<taskmesh::v1::Task>)> done);

  // Creates the consumer group of each queue (and its stream) if missing.
  // The group starts at the stream's beginning, so tasks created before any
  // worker existed are delivered.
  absl::Status EnsureGroups(redis::Connection& conn, const std::vector<std::string>& queues);

  // Reads up to `count` new entries from the queues' streams as `consumer`,
  // waiting up to `block` for one. Uses `conn` exclusively (a blocking read
  // must not stall the pipelined client). Recreates missing groups.
  absl::StatusOr<std::vector<Delivery>> Fetch(redis::Connection& conn, const std::string& consumer,
                                              const std::vector<std::string>& queues, int count,
                                              absl::Duration block);

  // PENDING -> RUNNING. Yields nullopt for a stale entry (nothing to run).
  void Start(const Delivery& delivery,
             absl::AnyInvocable<void(absl::StatusOr<absl::optional<Lease>>)> done);

  // Records the attempt's outcome, fenced by attempt number.
  void Complete(const Lease& lease, const Outcome& outcome,
                absl::AnyInvocable<void(absl::StatusOr<Completion>)> done);

 private:
  redis::Client* const client_;
  const BrokerOptions options_;
};

}  // namespace taskmesh::broker

#endif  // TASKMESH_BROKER_BROKER_H_
