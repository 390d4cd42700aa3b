// Subscriber: a reconnecting sharded pub/sub connection (SSUBSCRIBE) to one
// Redis node, for a set of channels that changes while it runs.
//
// Sharded pub/sub (Redis 7.0+) keeps a channel on the node that serves the
// channel's hash slot, so in a Redis Cluster a message goes to that node
// only (classic PUBLISH is broadcast to every node), and it works the same
// on a standalone server. The owner decides which node serves a channel and
// keeps one Subscriber per node.
//
// The Subscriber (re)connects with backoff and keeps the wanted channels
// subscribed. Each time a channel becomes subscribed (first, and again after
// a reconnect) it calls `subscribed`: messages published before then may have
// been missed. When the node stops serving a channel (its slot moved away:
// the node unsubscribes it unasked, or answers MOVED), it drops the channel
// and calls `moved`, with the new owner's "host:port" when the node named
// one: the owner re-routes it.
//
// Thread-safe. Callbacks run on the Subscriber's own thread, never under its
// lock, so they may call Add() and Remove().
//
// Example:
//   Subscriber::Callbacks callbacks;
//   callbacks.message = [](const std::string& channel, const std::string& message) {...};
//   Subscriber sub(node_options, std::move(callbacks));
//   sub.Add("taskmesh:{q}:events");
#ifndef TASKMESH_REDIS_SUBSCRIBER_H_
#define TASKMESH_REDIS_SUBSCRIBER_H_

#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/stop_signal.h"
#include "redis/options.h"

namespace taskmesh::redis {

class Subscriber {
 public:
  struct Callbacks {
    std::function<void(const std::string& channel, const std::string& message)> message;
    std::function<void(const std::string& channel)> subscribed;
    // `owner`: the "host:port" the node named, or empty.
    std::function<void(const std::string& channel, const std::string& owner)> moved;
  };

  // How often the thread looks for changes to the wanted channels while no
  // message arrives (bounds how long a new channel waits to be subscribed).
  static constexpr absl::Duration kPollInterval = absl::Milliseconds(10);

  Subscriber(ConnectionOptions node, Callbacks callbacks);
  ~Subscriber();

  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

  void Add(const std::string& channel);
  void Remove(const std::string& channel);

  // True while connected to the node.
  bool connected() const;
  // True once a connect failed or the connection was lost, until connected
  // again (false for a new Subscriber that has not tried yet).
  bool down() const;
  const ConnectionOptions& node() const { return node_; }

 private:
  void Run();

  const ConnectionOptions node_;
  const Callbacks callbacks_;
  mutable absl::Mutex mu_;
  absl::flat_hash_set<std::string> wanted_ ABSL_GUARDED_BY(mu_);
  bool connected_ ABSL_GUARDED_BY(mu_) = false;
  bool down_ ABSL_GUARDED_BY(mu_) = false;
  StopSignal stop_;
  std::thread thread_;
};

}  // namespace taskmesh::redis

#endif  // TASKMESH_REDIS_SUBSCRIBER_H_
