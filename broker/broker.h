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
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "broker/options.h"
#include "broker/partitions.h"
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
  //
  // A partitioned queue (partitions.h): the task goes to partition
  // PartitionFor(id, K). Its request_id is then first reserved in partition
  // 0 (SET NX), which holds every request_id of the queue whatever K was,
  // so a retried create finds the task it made even across a change of K.
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
  // Create() for many tasks in one script call per partition (up to
  // kMaxBatchItems, else several, pipelined), in order within a partition.
  // Each task is created atomically and answered on its own; the set is not
  // atomic.
  void CreateMany(const std::string& queue, std::vector<NewTask> tasks);

  struct Versioned {
    taskmesh::v1::Task task;
    // Bumped by every transition; orders reads against events.
    int64_t version = 0;
  };

  // Creates the task of one tick of periodic task `name`, exactly once per
  // tick however many callers ask: the task id is `periodic-NAME-TICK`, and
  // a tick at or before the last one created is refused (ALREADY_EXISTS).
  // Ticks always go to partition 0, where the last tick is kept.
  void CreateForTick(const std::string& queue, const std::string& name, int64_t tick_unix_s,
                     const taskmesh::v1::Task& task, Callback<Created> done);

  // NOT_FOUND when there is no such task (or it expired).
  void Get(const std::string& queue, const std::string& id, Callback<taskmesh::v1::Task> done);
  void Read(const std::string& queue, const std::string& id, Callback<Versioned> done);

  // The partition that holds the task (0 for a queue never partitioned);
  // NOT_FOUND when none does. A task never changes partition.
  void Locate(const std::string& queue, const std::string& id, Callback<int> done);
  // Read() on the task's partition, as Locate() found it.
  void ReadAt(const std::string& queue, int partition, const std::string& id,
              Callback<Versioned> done);
  // ReadAt(), and from now on the task's transitions publish events on its
  // partition's events channel (only watched tasks do: see WatchHub).
  void WatchAt(const std::string& queue, int partition, const std::string& id,
               Callback<Versioned> done);

  // A page of the queue's tasks, by state then by time they entered it (in
  // a partitioned queue: by state, then partition, then time). `state`
  // STATE_UNSPECIFIED lists every state. Page tokens are offsets: a task
  // that changes state between pages may be skipped or seen twice.
  void List(const std::string& queue, taskmesh::v1::Task::State state, int page_size,
            const std::string& page_token, Callback<TaskPage> done);

  // PENDING/SCHEDULED: CANCELLED at once. RUNNING: the worker is asked to
  // stop (the task ends CANCELLED when it does). Terminal: FAILED_PRECONDITION.
  void Cancel(const std::string& queue, const std::string& id, Callback<taskmesh::v1::Task> done);

  // FAILED or CANCELLED -> PENDING with fresh attempts; else FAILED_PRECONDITION.
  void Retry(const std::string& queue, const std::string& id, Callback<taskmesh::v1::Task> done);

  // Removes a task (and its request_id); RUNNING tasks: FAILED_PRECONDITION.
  void Delete(const std::string& queue, const std::string& id, Callback<bool> done);

  // The queue's figures, summed over its partitions. NOT_FOUND for a queue
  // that never had a task.
  void GetQueue(const std::string& queue, Callback<taskmesh::v1::Queue> done);

  void ListQueues(int page_size, const std::string& page_token, Callback<QueuePage> done);

  // Sets the queue's rate limit (tasks started per second; 0: none), shared
  // evenly by its partitions.
  void SetRateLimit(const std::string& queue, double rate_limit,
                    Callback<taskmesh::v1::Queue> done);

  // Pauses (workers fetch nothing) or resumes a queue; returns its figures.
  void SetPaused(const std::string& queue, bool paused, Callback<taskmesh::v1::Queue> done);

  // Spreads the queue's new tasks over `count` partitions (1..kMaxPartitions).
  // The partitions it adds are readied (streams, consumer groups, pause, rate
  // limit) before the count is published; tasks already created stay where
  // they are and are still fetched, found and listed, so nothing is lost when
  // K grows or shrinks. Changes racing each other: the last one wins.
  void SetPartitions(const std::string& queue, int count, Callback<taskmesh::v1::Queue> done);

  // Deletes dead (FAILED) tasks, and PENDING and SCHEDULED ones too with
  // `include_pending`. Returns how many.
  void Purge(const std::string& queue, bool include_pending, Callback<int64_t> done);

  // A call on one partition of a queue (OnTask).
  template <typename T>
  using PartitionOp = std::function<void(int partition, Callback<T> done)>;

 private:
  // Runs `op` on each partition that may hold task `id`, most likely first,
  // until one answers something other than NOT_FOUND.
  template <typename T>
  void OnTask(const std::string& queue, const std::string& id, PartitionOp<T> op,
              Callback<T> done);
  // The queue's partition map: from a cache (a second old at most) unless
  // `fresh`. Stale maps are safe for creates (every count a queue had stays
  // in its history); lookups re-read the map before answering NOT_FOUND.
  void WithMap(const std::string& queue, bool fresh, Callback<PartitionMap> then);
  void Forget(const std::string& queue);
  // The Enqueue script's item for task `id` in `partition` of `queue`; on a
  // bad task, runs `done` with the error and returns it. `idem_here`: the
  // script checks and writes the request_id (partition 0 only). `reserved`:
  // the request_id was reserved for `id`, so a task of that id with the same
  // request_id is the one a previous try created.
  absl::StatusOr<ScriptBatcher::Item> EnqueueItem(const std::string& queue, int partition,
                                                  const std::string& id, bool fresh,
                                                  taskmesh::v1::Task task, bool idem_here,
                                                  bool reserved, const std::string& tick_key,
                                                  int64_t tick, Callback<Created> done);
  // Registers the queue's name and sends `items` to the Enqueue script.
  void Submit(const std::string& queue, int partition, std::vector<ScriptBatcher::Item> items);
  // Creates a task in a partition other than 0 with a request_id: reserves
  // the request_id, then Place()s the task (or answers with the one made).
  void Reserve(const std::string& queue, const PartitionMap& map, std::string id, bool fresh,
               taskmesh::v1::Task task, Callback<Created> done);
  // Creates task `id` in `partition` once no other candidate partition of
  // the id holds it.
  void Place(const std::string& queue, const PartitionMap& map, int partition, std::string id,
             taskmesh::v1::Task task, bool reserved, Callback<Created> done);
  // Answers a create whose id is taken: the existing task when it carries
  // the same request_id, else ALREADY_EXISTS.
  void AnswerTaken(const std::string& queue, const std::string& id,
                   const std::string& request_id, Callback<Created> done);
  // Runs `then` if the queue exists, else answers NOT_FOUND.
  void IfQueueExists(const std::string& queue, Callback<taskmesh::v1::Queue> done,
                     absl::AnyInvocable<void(Callback<taskmesh::v1::Queue>)> then);
  // The queue's figures, without checking that it exists.
  void ReadStats(const std::string& queue, Callback<taskmesh::v1::Queue> done);
  // Runs `command(partition name)` on every partition of a queue that must
  // exist, then answers with its figures.
  void UpdateMeta(const std::string& queue,
                  std::function<redis::Args(const std::string& partition)> command,
                  Callback<taskmesh::v1::Queue> done);
  void Transition(const redis::Script& script, const std::string& queue, int partition,
                  const std::string& id, std::vector<std::string> ok_words, absl::string_view is,
                  absl::string_view rule, Callback<taskmesh::v1::Task> done);
  void PurgeMore(const std::string& partition, bool include_pending, int64_t so_far,
                 Callback<int64_t> done);
  struct ListCursor;
  void ListStep(std::shared_ptr<ListCursor> cursor);

  redis::Commands* const client_;
  const BrokerOptions options_;
  ScriptBatcher enqueue_;

  struct CachedMap {
    PartitionMap map;
    absl::Time read;
  };
  absl::Mutex maps_mu_;
  absl::flat_hash_map<std::string, CachedMap> maps_ ABSL_GUARDED_BY(maps_mu_);
};

}  // namespace taskmesh::broker

#endif  // TASKMESH_BROKER_BROKER_H_
