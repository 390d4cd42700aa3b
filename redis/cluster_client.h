// ClusterClient: redis::Commands for a Redis Cluster. Each command goes to
// the master serving its key's slot, on that master's own auto-pipelined
// redis::Client (one per master node, `options.connections` connections
// each).
//
// Routing (the table is in redis/slots.h): Send() by the command's first
// key, Eval() by its KEYS, which must all hash to one slot (else
// INVALID_ARGUMENT, nothing sent: give the keys a common `{hash tag}`).
// Keyless commands (PING, TIME, INFO, an Eval without keys...) go to any
// master. The slot map comes from CLUSTER SHARDS (CLUSTER SLOTS on servers
// without it) and is read again in the background every couple of seconds,
// after a MOVED, and after a node's connection fails.
//
// Redirects and retries. Only replies that say the command did NOT run are
// resent, within the command timeout (ConnectionOptions::command_timeout):
//   MOVED        the slot map is corrected and the command resent to the
//                new owner (at most 16 redirects);
//   ASK          the command is resent to the importing node, preceded by
//                ASKING on the same connection;
//   TRYAGAIN,    resent after a short backoff (10 ms, doubling to 200 ms)
//   CLUSTERDOWN  until the command timeout; then the error reply is the
//                result (it reads as UNAVAILABLE).
// A command whose connection failed (UNAVAILABLE) is never resent: it may
// have run. While a master is down its slots' commands fail at once with
// UNAVAILABLE (its Client fails fast); once a replica is promoted and the
// slot map read again, they go to the new master.
//
// Scripts: EVALSHA on the slot's master, EVAL there once on NOSCRIPT (each
// node has its own script cache).
//
// Thread-safe. Callbacks follow redis::Client's rules (redis/commands.h);
// they run on a node's I/O thread or on this client's timer thread. The
// client owns its node Clients and keeps them until it is destroyed (a
// cluster has few nodes; a demoted master may be promoted again).
//
// Example:
//   ASSIGN_OR_RETURN(auto seeds, ParseRedisSeeds("redis://10.0.0.1:7000,10.0.0.2:7000"));
//   ASSIGN_OR_RETURN(auto client, ClusterClient::Connect(seeds, options));
//   client->Send({"INCR", "{user1}:hits"}, done);
//   client->Eval(kScript, {"{q}:pending", "{q}:stream"}, {"arg"}, done);
//   ASSIGN_OR_RETURN(ConnectionOptions node, client->NodeForKey("{q}:stream"));
#ifndef TASKMESH_REDIS_CLUSTER_CLIENT_H_
#define TASKMESH_REDIS_CLUSTER_CLIENT_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/stop_signal.h"
#include "redis/client.h"
#include "redis/commands.h"
#include "redis/options.h"
#include "redis/slots.h"

namespace taskmesh::redis {

class ClusterClient final : public Commands {
 public:
  // Reads the slot map from the first seed that answers and starts a Client
  // per master. Every node is reached with the first seed's credentials and
  // timeouts (a cluster's nodes share their users); options.connection is
  // replaced by that seed. UNAVAILABLE when no seed
  // answers, INVALID_ARGUMENT for a database other than 0 (a cluster has
  // only database 0).
  static absl::StatusOr<std::unique_ptr<ClusterClient>> Connect(
      const std::vector<ConnectionOptions>& seeds, ClientOptions options);

  // Stops the background threads, then destroys the node Clients (see
  // ~Client); commands not yet sent fail with CANCELLED. Must not run on
  // one of the client's own threads (from a callback).
  ~ClusterClient() override;

  ClusterClient(const ClusterClient&) = delete;
  ClusterClient& operator=(const ClusterClient&) = delete;

  void Send(Args args, Callback done) override;
  void Eval(const Script& script, const std::vector<std::string>& keys,
            const std::vector<std::string>& args, Callback done) override;

  // True while every slot has a master and each master's Client is
  // connected.
  bool connected() const override;
  const ClientOptions& options() const override { return options_; }
  bool cluster() const override { return true; }
  // The master serving `key`'s slot in the current slot map; UNAVAILABLE
  // when no node serves it.
  absl::StatusOr<ConnectionOptions> NodeForKey(absl::string_view key) const override;
  // The masters of the current slot map.
  std::vector<ConnectionOptions> Masters() const override;

  // Redirects and retries so far, for metrics and tests.
  struct Stats {
    int64_t moved = 0;
    int64_t ask = 0;
    // TRYAGAIN and CLUSTERDOWN resends.
    int64_t retries = 0;
    int64_t slot_map_reads = 0;
  };
  Stats stats() const;

  // Reads the slot map now (blocking, up to a connect and a command timeout
  // per node tried). The client does this by itself; tests and tools may
  // want it at a known moment.
  absl::Status Refresh();

 private:
  using SteadyTime = std::chrono::steady_clock::time_point;

  // One caller's command while it is routed, redirected or retried.
  struct Request {
    // The command (EVALSHA form for a script).
    Args args;
    const Script* script = nullptr;
    // The slot of its keys; -1: any master.
    int slot = -1;
    Callback done;
    // Past it, no more redirects or retries (now + command_timeout).
    SteadyTime deadline;
    int redirects = 0;
    absl::Duration backoff = absl::Milliseconds(10);
  };

  // A request due on the timer thread: resent when `status` is OK, failed
  // with it otherwise.
  struct Timer {
    SteadyTime due;
    std::unique_ptr<Request> request;
    absl::Status status;
  };

  ClusterClient(std::vector<ConnectionOptions> seeds, ClientOptions options);

  ConnectionOptions NodeOptions(const NodeAddress& node) const;
  // The slot map as the first node that answers sees it: the known masters
  // first, then the seeds.
  absl::StatusOr<SlotMap> ReadSlotMap() ABSL_EXCLUSIVE_LOCKS_REQUIRED(refresh_mu_);
  void Install(SlotMap map) ABSL_LOCKS_EXCLUDED(mu_);
  // Points owners_ at the Clients of map_'s masters, creating missing ones.
  void RebuildOwnersLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Client* NodeLocked(const NodeAddress& node) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Queues `request` on the Client of its slot's master, or of the
  // redirect's node. On success `request` is moved from; on failure (client
  // stopping, slot not served) it is left for the caller to fail.
  absl::Status Dispatch(std::unique_ptr<Request>& request, const Redirect* redirect);
  void OnReply(std::unique_ptr<Request> request, const std::string& host,
               absl::StatusOr<Reply> reply);
  // Dispatches from Send()/Eval(): a failure is reported on the timer thread.
  void Start(std::unique_ptr<Request> request);
  void AddTimer(std::unique_ptr<Request> request, absl::Duration delay, absl::Status status);
  void RequestRefresh() { refresh_requested_.store(true); }

  void RunTimers();
  void RunRefresher();
  bool HasTimersOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(timer_mu_);

  const std::vector<ConnectionOptions> seeds_;
  // options_.connection: the first seed (credentials and timeouts of every
  // node).
  ClientOptions options_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  SlotMap map_ ABSL_GUARDED_BY(mu_);
  // The Client of each of map_.masters(), by index.
  std::vector<Client*> owners_ ABSL_GUARDED_BY(mu_);
  // Slots with a master in map_.
  int covered_ ABSL_GUARDED_BY(mu_) = 0;
  // Every node Client made so far, by host:port.
  absl::flat_hash_map<std::string, std::unique_ptr<Client>> nodes_ ABSL_GUARDED_BY(mu_);
  std::atomic<int64_t> moved_{0};
  std::atomic<int64_t> ask_{0};
  std::atomic<int64_t> retries_{0};
  std::atomic<int64_t> slot_map_reads_{0};
  // Spreads keyless commands over the masters.
  std::atomic<unsigned> next_any_{0};

  absl::Mutex timer_mu_;
  std::vector<Timer> timers_ ABSL_GUARDED_BY(timer_mu_);
  bool timers_stopping_ ABSL_GUARDED_BY(timer_mu_) = false;

  std::atomic<bool> refresh_requested_{false};
  // One slot map read at a time (the refresher thread, Refresh()).
  absl::Mutex refresh_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  // The node that answered the last read, asked first next time.
  NodeAddress last_answered_ ABSL_GUARDED_BY(refresh_mu_);
  StopSignal stop_;
  std::thread refresher_;
  std::thread timer_thread_;
};

}  // namespace taskmesh::redis

#endif  // TASKMESH_REDIS_CLUSTER_CLIENT_H_
