// Consumer: the worker side of the queue protocol. Fetches and starts tasks
// under a lease, renews leases, reclaims the tasks of dead workers, promotes
// due scheduled tasks, and records outcomes, fenced by attempt.
//
// Leases: a started task is RUNNING with its stream entry in this consumer's
// pending list. Renew() (a heartbeat) resets the entry's idle time; any
// worker's Reclaim() claims entries idle longer than the lease (XAUTOCLAIM)
// and starts them again as a new attempt, or dead-letters a task whose
// attempts were lost `poison_after` times. An outcome from an attempt that
// no longer holds the task is fenced: nothing is written.
//
// Thread-safe. Does not own the client. The blocking calls (Fetch, Wait,
// Reclaim, Promote) wait for Redis on the calling thread; the others run
// their callback on a Redis I/O thread.
#ifndef TASKMESH_BROKER_CONSUMER_H_
#define TASKMESH_BROKER_CONSUMER_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "broker/broker.h"
#include "broker/options.h"
#include "broker/script_batcher.h"
#include "broker/task_codec.h"
#include "redis/commands.h"
#include "redis/connection.h"

namespace taskmesh::broker {

struct ConsumerOptions {
  // This worker's stable name in the consumer groups.
  std::string consumer = "worker";
  // How long a started task stays leased without a renewal.
  absl::Duration lease = absl::Seconds(30);
  // Attempts lost (worker crashed or froze) before the task is dead-lettered.
  int poison_after = 3;
};

// A task this worker now runs (state RUNNING), and what it needs to run it.
struct Lease {
  std::string queue;
  std::string stream;
  std::string stream_id;
  std::string task_id;
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

enum class Completion { kSucceeded, kRetrying, kFailed, kCancelled, kFenced };
enum class Renewal { kOk, kCancelRequested, kLost };

class Consumer {
 public:
  struct Fetched {
    bool paused = false;
    // The queue has a rate limit: do not block on its streams (that would
    // bypass the limiter); poll again after `retry_after` at the latest.
    bool limited = false;
    absl::Duration retry_after;
    std::vector<Lease> leases;
  };

  Consumer(redis::Commands* client, BrokerOptions broker_options, ConsumerOptions options);

  const ConsumerOptions& options() const { return options_; }

  // Creates the consumer groups of each queue's streams if missing. A group
  // starts at its stream's beginning, so tasks created before any worker
  // existed are delivered.
  absl::Status EnsureGroups(const std::vector<std::string>& queues);

  // The partitions a worker of `queue` fetches from (broker/partitions.h):
  // every one that may hold tasks; `queue` alone unless it was partitioned.
  // The other calls take a partition's name wherever they take a queue's.
  absl::StatusOr<std::vector<std::string>> Partitions(const std::string& queue);

  // The node to open the blocking connection of Wait() on for `queue`: the
  // Redis server, or in a Redis Cluster the master serving the queue's slot.
  absl::StatusOr<redis::ConnectionOptions> NodeOf(const std::string& queue) const;

  // Reads and starts up to `count` new tasks of `queue`, taking its priority
  // streams in a weighted random order (HIGH 6 : DEFAULT 3 : LOW 1), so that
  // LOW is never starved, and within the queue's rate limit. Nothing for a
  // paused queue.
  absl::StatusOr<Fetched> Fetch(const std::string& queue, int count);

  // Waits up to `block` for a new entry on any of `queues`, on `conn` (a
  // blocking read must not stall the pipelined client), and starts what
  // arrived (at most one task per stream), also on `conn`. What arrived for
  // a queue paused meanwhile, or when `may_start()` (asked once the read
  // returns) says no (the worker began to drain), goes back to its stream
  // unstarted: a task the API calls RUNNING is one that a worker runs.
  absl::StatusOr<std::vector<Lease>> Wait(redis::Connection& conn,
                                          const std::vector<std::string>& queues,
                                          absl::Duration block,
                                          const std::function<bool()>& may_start);

  // Blocks on `conn` up to `block` until a stream of `queues` (all served
  // by conn's node) holds an entry that the workers' group has not been
  // given yet; delivers and starts nothing (XREAD from the group's position,
  // which answers at once when such an entry exists). For a worker whose
  // queues live on several nodes of a Redis Cluster, where one blocking read
  // cannot span them: it waits on every node at once this way, then fetches.
  absl::Status AwaitWork(redis::Connection& conn, const std::vector<std::string>& queues,
                         absl::Duration block);

  // Re-delivers up to `count` tasks of `queue` whose lease expired.
  absl::StatusOr<std::vector<Lease>> Reclaim(const std::string& queue, int count);

  // SCHEDULED -> PENDING for up to `max` due tasks. Returns how long until
  // the next scheduled task is due (InfiniteDuration when none).
  absl::StatusOr<absl::Duration> Promote(const std::string& queue, int max);

  void Renew(const Lease& lease, Callback<Renewal> done);
  void Progress(const Lease& lease, int percent, const std::string& message, Callback<bool> done);
  // Records the outcome. A failed, retryable attempt with attempts left is
  // re-enqueued after `retry_delay` (SCHEDULED), or at once when zero.
  // Outcomes recorded concurrently go to Redis together (ScriptBatcher).
  void Complete(const Lease& lease, const Outcome& outcome, absl::Duration retry_delay,
                Callback<Completion> done);
  // Gives a running task back (PENDING at once, the attempt not counted).
  void HandBack(const Lease& lease, Callback<bool> done);

 private:
  std::vector<std::string> Args(const std::string& queue, std::vector<std::string> rest) const;
  absl::StatusOr<std::vector<Lease>> ParseStarted(const std::string& queue,
                                                  const redis::Reply& reply) const;

  redis::Commands* const client_;
  const BrokerOptions broker_options_;
  const ConsumerOptions options_;
  // Outcomes of concurrent attempts share Redis calls.
  ScriptBatcher complete_;
};

// "hdl"-style order of the priority streams for one fetch, drawn at random
// by weight (HIGH 6, DEFAULT 3, LOW 1). `draw` is uniform in [0, 1).
std::string PriorityOrder(double draw1, double draw2);

}  // namespace taskmesh::broker

#endif  // TASKMESH_BROKER_CONSUMER_H_
