// ScriptBatcher: runs many calls of one batch script as few EVALSHAs.
//
// A batch script takes, after the usual P and retention, one group of
// arguments per item, each led by its length ("n, arg1 .. argn"), and one
// key per item (KEYS[i] for item i); it answers with one reply per item, in
// order. Each Lua call costs Redis a fixed overhead (about 2 us here: the
// call itself and the shared prelude, bench/RESULTS.md) that one call for
// many items pays once.
//
// How items are grouped: per queue (one script call touches one queue's
// keys, one hash slot). While fewer than `max_in_flight` calls of the queue
// are in Redis, Add() sends what waits at once, so an idle system adds no
// delay; under load, items wait for a call to return and go together (up to
// `max_items` per call). Full calls never wait, so a long list goes out in
// one pipelined write. A script error or a lost connection fails every
// item of its call.
//
// Thread-safe. Callbacks run on a Redis I/O thread (see redis/commands.h).
#ifndef TASKMESH_BROKER_SCRIPT_BATCHER_H_
#define TASKMESH_BROKER_SCRIPT_BATCHER_H_

#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "broker/options.h"
#include "redis/commands.h"
#include "redis/script.h"

namespace taskmesh::broker {

class ScriptBatcher {
 public:
  struct Item {
    // KEYS[i]: the key the item writes (for Redis Cluster's slot check).
    std::string key;
    std::vector<std::string> args;
    absl::AnyInvocable<void(absl::StatusOr<redis::Reply>)> done;
  };

  struct Limits {
    int max_items = 256;
    int max_in_flight = 2;
  };

  // `script` must outlive the batcher (scripts are static).
  ScriptBatcher(redis::Commands* client, const redis::Script& script, BrokerOptions options,
                Limits limits);
  ScriptBatcher(const ScriptBatcher&) = delete;
  ScriptBatcher& operator=(const ScriptBatcher&) = delete;

  // Queues `items` of `queue`; they are sent in this order (a long list may
  // take several calls). Calls in flight together may run in either order:
  // the client spreads them over its connections.
  void Add(const std::string& queue, std::vector<Item> items);

  // Calls of `queue` in Redis now (for tests).
  int InFlightForTest(const std::string& queue);

 private:
  struct QueueState {
    int in_flight = 0;
    std::vector<Item> waiting;
  };

  // Takes up to max_items waiting items of `queue` if a call may start.
  std::vector<Item> TakeLocked(const std::string& queue, QueueState& state)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Send(const std::string& queue, std::vector<Item> items);
  void Finished(const std::string& queue);

  redis::Commands* const client_;
  const redis::Script& script_;
  const BrokerOptions options_;
  const Limits limits_;

  absl::Mutex mu_;
  absl::flat_hash_map<std::string, QueueState> queues_ ABSL_GUARDED_BY(mu_);
};

}  // namespace taskmesh::broker

#endif  // TASKMESH_BROKER_SCRIPT_BATCHER_H_
