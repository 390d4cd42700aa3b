// NodeWaiters: the idle wait of a worker whose queues live on several nodes
// of a Redis Cluster. One blocking read cannot span nodes, so each node gets
// a thread of its own, with its own connection, that waits there for work
// (broker::Consumer::AwaitWork: an entry its group has not been given yet;
// nothing is delivered or started) whenever the fetcher is idle. Wait()
// returns as soon as any node has work, and the fetcher then fetches (the
// fetch scripts are routed to each queue's node), so a task on any node is
// seen as fast as on a standalone Redis.
//
// Thread-safe. Waits run on the monotonic clock (see common/stop_signal.h).
//
// Example:
//   NodeWaiters waiters(&consumer);
//   waiters.Wait({{node_a, {"q1"}}, {node_b, {"q2", "q3"}}}, absl::Seconds(1));
//   waiters.Stop();
#ifndef TASKMESH_WORKERS_NODE_WAITERS_H_
#define TASKMESH_WORKERS_NODE_WAITERS_H_

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "broker/consumer.h"
#include "redis/options.h"

namespace taskmesh::workers {

class NodeWaiters {
 public:
  // The queues a node serves.
  using NodeQueues = std::pair<redis::ConnectionOptions, std::vector<std::string>>;

  // `consumer` must outlive this.
  explicit NodeWaiters(broker::Consumer* consumer) : consumer_(consumer) {}
  // Stops and joins the threads (each within its current wait).
  ~NodeWaiters();

  NodeWaiters(const NodeWaiters&) = delete;
  NodeWaiters& operator=(const NodeWaiters&) = delete;

  // Waits up to `block` on every node at once; returns when one has work,
  // `block` has passed, or Stop() was called.
  void Wait(const std::vector<NodeQueues>& nodes, absl::Duration block);

  // Ends the current and every later Wait() at once.
  void Stop();

 private:
  struct Waiter {
    redis::ConnectionOptions node;
    std::vector<std::string> queues;
    absl::Duration block;
    bool armed = false;
    std::thread thread;
  };

  void Run(Waiter* w);

  broker::Consumer* const consumer_;
  std::mutex mu_;
  std::condition_variable cv_;
  // By "host:port".
  std::map<std::string, std::unique_ptr<Waiter>> waiters_;
  // Bumped each time a waiter's wait ends (work, or its block passed).
  uint64_t wakes_ = 0;
  bool stopped_ = false;
};

}  // namespace taskmesh::workers

#endif  // TASKMESH_WORKERS_NODE_WAITERS_H_
