// Commands: what callers use of a Redis client, whether it talks to one
// server (redis::Client) or to a Redis Cluster (redis::ClusterClient). The
// broker, task service and workers hold a `Commands*`; only main() (through
// redis::Open) picks the concrete type.
//
// Callbacks follow redis::Client's rules for both implementations: `done`
// runs exactly once, never inside Send()/Eval(), on a client thread (or on
// the thread running the client's destructor); it must be quick and must not
// block (never Call()/CallEval() from a callback), and may Send() again.
//
// Thread-safe.
//
// Example:
//   ASSIGN_OR_RETURN(std::unique_ptr<Commands> redis, Open(flag_redis, options));
//   redis->Send({"INCR", "hits"}, [](absl::StatusOr<Reply> reply) { ... });
//   absl::StatusOr<Reply> pong = redis->Call({"PING"});   // blocking
//   // A blocking read needs its own connection, on the node serving the key:
//   ASSIGN_OR_RETURN(ConnectionOptions node, redis->NodeForKey(stream));
//   ASSIGN_OR_RETURN(auto conn, Connection::Connect(node));
#ifndef TASKMESH_REDIS_COMMANDS_H_
#define TASKMESH_REDIS_COMMANDS_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "redis/connection.h"
#include "redis/options.h"
#include "redis/reply.h"
#include "redis/script.h"

namespace taskmesh::redis {

struct ClientOptions {
  // The server (or, for a cluster, the seed it was opened through) plus the
  // credentials and timeouts every connection uses.
  ConnectionOptions connection;
  // I/O threads, each with its own connection (at least 1). In a cluster:
  // per master node.
  int connections = 2;
  // Most commands written in one batch (at least 1).
  size_t max_batch = 512;
  // How long an I/O thread that found fewer than max_batch commands waits
  // for more before writing them. Zero: write at once.
  absl::Duration batch_window = absl::ZeroDuration();
  // Most commands waiting to be written; beyond, RESOURCE_EXHAUSTED. Zero:
  // no limit. In a cluster: per master node.
  size_t max_queued = 0;
  // Durability on a replicated Redis (a cluster's replicas, or a standalone
  // master's): after the commands of a batch, a WAIT for this many replicas
  // to have its writes, up to `replicas_timeout`. A write they did not all
  // acknowledge in time fails with UNAVAILABLE (it may still persist; it is
  // never answered OK). Zero: no WAIT (asynchronous replication: a write
  // acknowledged by a master that dies before a replica has it is lost).
  int min_replicas_acked = 0;
  absl::Duration replicas_timeout = absl::Milliseconds(500);
  // Reconnect backoff: doubles from min to max while Redis is unreachable.
  absl::Duration min_backoff = absl::Milliseconds(20);
  absl::Duration max_backoff = absl::Seconds(1);
};

class Commands {
 public:
  using Callback = absl::AnyInvocable<void(absl::StatusOr<Reply>)>;

  virtual ~Commands() = default;

  // Queues one command. `done` runs exactly once, never inside Send().
  virtual void Send(Args args, Callback done) = 0;

  // Runs `script` by SHA1, sending its source once if Redis lacks it.
  // `script` must outlive the call (scripts are usually static). In a
  // cluster every key must hash to one slot.
  virtual void Eval(const Script& script, const std::vector<std::string>& keys,
                    const std::vector<std::string>& args, Callback done) = 0;

  // Blocking forms, for threads that may wait (tests, workers, tools).
  absl::StatusOr<Reply> Call(Args args);
  absl::StatusOr<Reply> CallEval(const Script& script, const std::vector<std::string>& keys,
                                 const std::vector<std::string>& args);

  // True while commands can reach Redis (standalone: a connection is up;
  // cluster: every master serving slots has one).
  virtual bool connected() const = 0;

  virtual const ClientOptions& options() const = 0;

  // True for a Redis Cluster.
  virtual bool cluster() const = 0;

  // Where to open a Connection of one's own for commands that must not share
  // the pipelined ones (XREADGROUP ... BLOCK, SUBSCRIBE/SSUBSCRIBE): the
  // master now serving `key`'s slot (standalone: the server), with the
  // client's credentials and timeouts. A cluster may move the slot later: a
  // MOVED reply on that connection means ask again.
  virtual absl::StatusOr<ConnectionOptions> NodeForKey(absl::string_view key) const = 0;

  // Every master serving slots (standalone: the server), for commands that
  // must reach every node (KEYS, SCAN, FLUSHALL; PSUBSCRIBE to keyspace
  // events, which each node publishes on its own).
  virtual std::vector<ConnectionOptions> Masters() const = 0;
};

}  // namespace taskmesh::redis

#endif  // TASKMESH_REDIS_COMMANDS_H_
