// WatchHub: the task_service's end of the queue's events protocol, shared by
// every WatchTask stream.
//
// The transition scripts publish each transition of a watched task, with its
// record (broker/events.h), on its queue's events channel with SPUBLISH
// (sharded pub/sub: the channel `taskmesh:{Q}:events` lives on the node of
// the queue's slot, in a Redis Cluster as on a standalone server). The hub
// subscribes to the channels of the queues that have watchers, through one
// redis::Subscriber per node, and hands each event to the listeners of its
// task.
//
// A listener receives every event published after Add() returned once its
// queue's channel is subscribed; until then, and again whenever the hub may
// have missed events (the channel was subscribed anew: first watcher of a
// queue, reconnect, the queue's slot moved to another node), it receives a
// `resync` event: the listener re-reads the task.
//
// Thread-safe. Listeners run on a subscriber's thread, under the hub's lock:
// they must be quick and must not call back into the hub.
//
// Example:
//   WatchHub hub(redis_options, [&](const std::string& channel) { return NodeOf(channel); });
//   ASSIGN_OR_RETURN(auto handle, hub.Add("q", "id", [](const WatchHub::Event& e) {...}));
//   ...
//   hub.Remove(handle);
#ifndef TASKMESH_BROKER_WATCH_HUB_H_
#define TASKMESH_BROKER_WATCH_HUB_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "broker/task_codec.h"
#include "redis/options.h"
#include "redis/subscriber.h"

namespace taskmesh::broker {

class WatchHub {
 public:
  struct Event {
    // The task's record version after the transition.
    int64_t version = 0;
    // A Task.State name, or "DELETED".
    std::string state;
    int attempt = 0;
    // The task record at `version`, when the event carried it.
    std::shared_ptr<const Record> record;
    // True: the hub may have missed events; re-read the task.
    bool resync = false;
  };
  using Listener = std::function<void(const Event&)>;
  // The node that serves a channel (a Redis Cluster's slot owner).
  using Route = std::function<redis::ConnectionOptions(const std::string& channel)>;

  // Channels on the nodes `route` names (a standalone server: always it);
  // `redis` holds the credentials and timeouts for a node named by a MOVED
  // redirection. Subscribers are made as queues get watchers.
  WatchHub(redis::ConnectionOptions redis, Route route);
  ~WatchHub();

  WatchHub(const WatchHub&) = delete;
  WatchHub& operator=(const WatchHub&) = delete;

  // UNAVAILABLE when the node of the queue's channel is known to be
  // unreachable (its subscriber failed to connect or lost its connection).
  absl::StatusOr<uint64_t> Add(const std::string& queue, const std::string& id,
                               Listener listener);
  void Remove(uint64_t handle);

  // Listeners registered now (open WatchTask streams).
  size_t listeners();

  // False while a node the hub subscribes on is known to be unreachable.
  bool connected();

 private:
  struct Channel {
    int watchers = 0;
    redis::Subscriber* subscriber = nullptr;
  };

  redis::Subscriber* SubscriberFor(const redis::ConnectionOptions& node)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Resync(const std::string& queue) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnMessage(const std::string& channel, const std::string& message);
  void OnSubscribed(const std::string& channel);
  void OnMoved(const std::string& channel, const std::string& owner);

  const redis::ConnectionOptions redis_;
  const Route route_;
  absl::Mutex mu_;
  uint64_t next_handle_ ABSL_GUARDED_BY(mu_) = 1;
  // queue -> "id" -> handle -> listener.
  absl::flat_hash_map<std::string,
                      absl::flat_hash_map<std::string, absl::flat_hash_map<uint64_t, Listener>>>
      listeners_ ABSL_GUARDED_BY(mu_);
  // handle -> (queue, id).
  absl::flat_hash_map<uint64_t, std::pair<std::string, std::string>> key_of_ ABSL_GUARDED_BY(mu_);
  // Events channel -> its watchers and subscriber.
  absl::flat_hash_map<std::string, Channel> channels_ ABSL_GUARDED_BY(mu_);
  // One per node, by "host:port".
  absl::flat_hash_map<std::string, std::unique_ptr<redis::Subscriber>> subscribers_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace taskmesh::broker

#endif  // TASKMESH_BROKER_WATCH_HUB_H_
