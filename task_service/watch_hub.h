// WatchHub: one Redis pub/sub connection shared by every WatchTask stream.
//
// It subscribes to the events channels of all queues (PSUBSCRIBE
// taskmesh:*:events; the transition scripts publish each transition of a
// watched task with its record, broker/events.h) and hands each event to the
// listeners of that task. A listener
// added while the hub is subscribed receives every event published after
// Add() returned. After a lost connection the hub resubscribes and sends
// every listener a `resync` event: events may have been missed, so the
// listener re-reads the task.
//
// Thread-safe. Listeners run on the hub's thread, under its lock: they must
// be quick and must not call back into the hub.
//
// Example:
//   WatchHub hub(redis_options);
//   ASSIGN_OR_RETURN(auto handle, hub.Add("q", "id", [](const WatchHub::Event& e) {...}));
//   ...
//   hub.Remove(handle);
#ifndef TASKMESH_TASK_SERVICE_WATCH_HUB_H_
#define TASKMESH_TASK_SERVICE_WATCH_HUB_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/stop_signal.h"
#include "absl/time/time.h"
#include "broker/task_codec.h"
#include "redis/options.h"

namespace taskmesh::task_service {

class WatchHub {
 public:
  struct Event {
    // The task's record version after the transition.
    int64_t version = 0;
    // A Task.State name, or "DELETED".
    std::string state;
    int attempt = 0;
    // The task record at `version`, when the event carried it.
    std::shared_ptr<const broker::Record> record;
    // True: the hub may have missed events; re-read the task.
    bool resync = false;
  };
  using Listener = std::function<void(const Event&)>;

  explicit WatchHub(redis::ConnectionOptions options);
  ~WatchHub();

  WatchHub(const WatchHub&) = delete;
  WatchHub& operator=(const WatchHub&) = delete;

  // UNAVAILABLE while the hub is not subscribed (Redis unreachable).
  absl::StatusOr<uint64_t> Add(const std::string& queue, const std::string& id,
                               Listener listener);
  void Remove(uint64_t handle);

  // Listeners registered now (open WatchTask streams).
  size_t listeners();

  // Waits until subscribed; false after `timeout`.
  bool WaitSubscribed(absl::Duration timeout);

 private:
  void Run();
  void Dispatch(const std::string& channel, const std::string& message);

  const redis::ConnectionOptions options_;
  absl::Mutex mu_;
  bool subscribed_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_handle_ ABSL_GUARDED_BY(mu_) = 1;
  // "queue/id" -> handle -> listener.
  absl::flat_hash_map<std::string, absl::flat_hash_map<uint64_t, Listener>> listeners_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, std::string> key_of_ ABSL_GUARDED_BY(mu_);
  StopSignal stop_;
  std::thread thread_;
};

}  // namespace taskmesh::task_service

#endif  // TASKMESH_TASK_SERVICE_WATCH_HUB_H_
