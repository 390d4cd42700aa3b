// Broker: the producer side of the queue protocol, used by the task_service:
// create, read, list, cancel, retry and delete tasks; read, pause and purge
// queues. (Workers use broker::Consumer.)
//
// Thread-safe. Does not own the redis::Commands (client). Every call is asynchronous
// and runs its callback on a Redis I/O thread: callbacks must not block.
//
// Example:
//   Broker broker(&client, {});
//   broker.Create("emails", NewTaskId(absl::Now()), task,
//                 [](absl::StatusOr<Broker::Created> created) { ... });
#ifndef TASKMESH_BROKER_BROKER_H_
#define TASKMESH_BROKER_BROKER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "broker/options.h"
#include "broker/script_batcher.h"
#include "redis/commands.h"
#include "taskmesh/v1/queue.pb.h"
#include "taskmesh/v1/task.pb.h"

namespace taskmesh::broker {

template <typename T>
using Callback = absl::AnyInvocable<void(absl::StatusOr<T>)>;

class Broker {
 public:
  struct Created {
    taskmesh::v1::Task task;
    // True when the request_id was seen before and nothing was written.
    bool existing = false;
  };

  struct TaskPage {
    std::vector<taskmesh::v1::Task> tasks;
    // Empty on the last page.
    std::string next_page_token;
  };

  struct QueuePage {
    std::vector<taskmesh::v1::Queue> queues;
    std::string next_page_token;
  };

  Broker(redis::Commands* client, BrokerOptions options);

  const BrokerOptions& options() const { return options_; }

  // Writes the task record, its stream entry (or its place in the scheduled
  // set, for a future schedule_time) and the idempotency record in one
  // atomic step. ALREADY_EXISTS if `id` is taken; an empty `id` gets a new
  // one. Concurrent creates of a queue share Redis calls (ScriptBatcher).
  void Create(const std::string& queue, const std::string& id, const taskmesh::v1::Task& task,
              Callback<Created> done);

  // Most tasks one enqueue script call carries (BatchCreateTasks' limit).
  static constexpr int kMaxBatchItems = 1000;

  struct NewTask {
    // Empty: the broker picks a new id (NewTaskId), known to be free.
    std::string id;
    taskmesh::v1::Task task;
    Callback<Created> done;
  };
  // Create() for many tasks in one script call (up to kMaxBatchItems, else
  // several, pipelined), in order. Each task is created atomically and
  // answered on its own; the set is not atomic.
  void CreateMany(const std::string& queue, std::vector<NewTask> tasks);

  struct Versioned {
    taskmesh::v1::Task task;
    // Bumped by every transition; orders reads against events.
    int64_t version = 0;
  };

  // Creates the task of one tick of periodic task `name`, exactly once per
  // tick however many callers ask: the task id is `periodic-NAME-TICK`, and
  // a tick at or before the last one created is refused (ALREADY_EXISTS).
  void CreateForTick(const std::string& queue, const std::string& name, int64_t tick_unix_s,
                     const taskmesh::v1::Task& task, Callback<Created> done);

  // NOT_FOUND when there is no such task (or it expired).
  void Get(const std::string& queue, const std::string& id, Callback<taskmesh::v1::Task> done);
  void Read(const std::string& queue, const std::string& id, Callback<Versioned> done);
  // Read(), and from now on the task's transitions publish events on the
  // queue's events channel (only watched tasks do: see WatchHub).
  void Watch(const std::string& queue, const std::string& id, Callback<Versioned> done);

  // A page of the queue's tasks, by state then by time they entered it.
  // `state` STATE_UNSPECIFIED lists every state. Page tokens are offsets: a
  // task that changes state between pages may be skipped or seen twice.
  void List(const std::string& queue, taskmesh::v1::Task::State state, int page_size,
            const std::string& page_token, Callback<TaskPage> done);

  // PENDING/SCHEDULED: CANCELLED at once. RUNNING: the worker is asked to
  // stop (the task ends CANCELLED when it does). Terminal: FAILED_PRECONDITION.
  void Cancel(const std::string& queue, const std::string& id, Callback<taskmesh::v1::Task> done);

  // FAILED or CANCELLED -> PENDING with fresh attempts; else FAILED_PRECONDITION.
  void Retry(const std::string& queue, const std::string& id, Callback<taskmesh::v1::Task> done);

  // Removes a task (and its request_id); RUNNING tasks: FAILED_PRECONDITION.
  void Delete(const std::string& queue, const std::string& id, Callback<bool> done);

  // The queue's figures. NOT_FOUND for a queue that never had a task.
  void GetQueue(const std::string& queue, Callback<taskmesh::v1::Queue> done);

  void ListQueues(int page_size, const std::string& page_token, Callback<QueuePage> done);

  // Sets the queue's rate limit (tasks started per second; 0: none).
  void SetRateLimit(const std::string& queue, double rate_limit,
                    Callback<taskmesh::v1::Queue> done);

  // Pauses (workers fetch nothing) or resumes a queue; returns its figures.
  void SetPaused(const std::string& queue, bool paused, Callback<taskmesh::v1::Queue> done);

  // Deletes dead (FAILED) tasks, and PENDING and SCHEDULED ones too with
  // `include_pending`. Returns how many.
  void Purge(const std::string& queue, bool include_pending, Callback<int64_t> done);

 private:
  // The Enqueue script's item for one task (`id` empty: a new one); on a bad
  // task, runs `done` with the error and returns it.
  absl::StatusOr<ScriptBatcher::Item> EnqueueItem(const std::string& queue,
                                                  const std::string& id, taskmesh::v1::Task task,
                                                  const std::string& tick_key, int64_t tick,
                                                  Callback<Created> done);
  // Registers the queue's name and sends `items` to the Enqueue script.
  void Submit(const std::string& queue, std::vector<ScriptBatcher::Item> items);
  // Runs `then` if the queue exists, else answers NOT_FOUND.
  void IfQueueExists(const std::string& queue, Callback<taskmesh::v1::Queue> done,
                     absl::AnyInvocable<void(Callback<taskmesh::v1::Queue>)> then);
  // The queue's figures, without checking that it exists.
  void ReadStats(const std::string& queue, Callback<taskmesh::v1::Queue> done);
  // Runs `command` on a queue that must exist, then answers with its figures.
  void UpdateMeta(const std::string& queue, redis::Args command,
                  Callback<taskmesh::v1::Queue> done);
  void Transition(const redis::Script& script, const std::string& queue, const std::string& id,
                  std::vector<std::string> ok_words, absl::string_view is, absl::string_view rule,
                  Callback<taskmesh::v1::Task> done);
  void PurgeMore(const std::string& queue, bool include_pending, int64_t so_far,
                 Callback<int64_t> done);

  redis::Commands* const client_;
  const BrokerOptions options_;
  ScriptBatcher enqueue_;
};

}  // namespace taskmesh::broker

#endif  // TASKMESH_BROKER_BROKER_H_
