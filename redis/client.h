// Client: a thread-safe Redis client that pipelines the commands of many
// concurrent callers on a few connections (auto-pipelining).
//
// Each of `connections` I/O threads owns one Connection. It takes every
// command queued so far (up to `max_batch`), writes them in one go, reads the
// replies in order, and runs each caller's callback. Under load, one round
// trip carries many callers' commands: this is where throughput comes from.
// With a `batch_window`, a thread that finds fewer than `max_batch` commands
// waits that long once for more before writing (fewer, fuller round trips
// below saturation, for up to that much latency).
//
// Backpressure: at most `max_queued` commands wait to be written; beyond,
// new commands fail at once with RESOURCE_EXHAUSTED (nothing is sent), so
// an overloaded caller fails fast instead of growing without bound.
//
// Failure model: commands never hang. A broken connection fails its in-flight
// commands with UNAVAILABLE and reconnects with exponential backoff. While no
// connection can be made, new commands fail at once with UNAVAILABLE (or
// UNAUTHENTICATED for a bad password) until a reconnect succeeds (fail fast).
// Before writing, and about once a second while idle, a connection checks
// that the server has not closed it (a Redis restart), so that a restart
// does not fail the next commands. Commands are not retried: a command whose
// connection broke may or may not have run.
//
// Callbacks never run inside Send()/Eval(), so a caller may hold a lock of
// its own around Send() that the callback also takes. They run on an I/O
// thread, on the client's completion thread (commands refused at once), or
// on the thread running ~Client (commands still queued then). They must be
// quick and must not block: never call Call()/CallEval() from a callback.
// They may call Send() again.
//
// A Client is the standalone implementation of redis::Commands (one server);
// redis::ClusterClient runs one Client per master of a Redis Cluster.
//
// Example:
//   Client client(options);
//   client.Send({"INCR", "hits"}, [](absl::StatusOr<Reply> reply) { ... });
//   absl::StatusOr<Reply> pong = client.Call({"PING"});  // blocking
#ifndef TASKMESH_REDIS_CLIENT_H_
#define TASKMESH_REDIS_CLIENT_H_

#include <atomic>
#include <cstddef>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/stop_signal.h"
#include "redis/commands.h"
#include "redis/connection.h"
#include "redis/options.h"
#include "redis/reply.h"
#include "redis/script.h"

namespace taskmesh::redis {

class Client final : public Commands {
 public:
  // Starts the I/O threads; they connect in the background.
  explicit Client(ClientOptions options);
  // Waits for the batches in flight (at most about command_timeout) and any
  // connect in progress (connect_timeout), then fails every command not yet
  // sent with CANCELLED. Must not run on one of
  // the client's own threads (from a callback).
  ~Client() override;

  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Queues one command. `done` runs exactly once, never inside Send().
  void Send(Args args, Callback done) override;

  // Runs `script` by SHA1, sending its source once if Redis lacks it.
  // `script` must outlive the call (scripts are usually static).
  void Eval(const Script& script, const std::vector<std::string>& keys,
            const std::vector<std::string>& args, Callback done) override;

  // True while at least one connection is up (a dead idle connection is
  // noticed within about a second).
  bool connected() const override { return live_.load() > 0; }

  // Commands queued and not yet taken by an I/O thread (the backpressure
  // bound max_queued applies to these).
  size_t queued() const;

  const ClientOptions& options() const override { return options_; }

  bool cluster() const override { return false; }
  // The server, whatever the key.
  absl::StatusOr<ConnectionOptions> NodeForKey(absl::string_view key) const override;
  // The server.
  std::vector<ConnectionOptions> Masters() const override;

 private:
  // ClusterClient queues prepared commands (EVALSHA forms, ASK redirects)
  // through Enqueue().
  friend class ClusterClient;

  struct Pending {
    Args args;
    Callback done;
    // Set for scripts: a NOSCRIPT reply to EVALSHA is retried as EVAL, and
    // an error reply is located in the script's files.
    const Script* script = nullptr;
    // Cluster ASK redirect: ASKING is written immediately before the
    // command, on the same connection (its reply is read and dropped), and
    // again before the EVAL of a NOSCRIPT retry.
    bool asking = false;
  };

  // A command refused without being sent, waiting for its callback to run.
  struct Refused {
    Callback done;
    absl::Status status;
  };

  void Enqueue(Pending pending);
  // The loop of I/O thread `index`.
  void Run(int index);
  // Writes `batch` on `conn`, reads the replies, runs the callbacks. Returns
  // the transport failure, if any.
  absl::Status SendBatch(Connection& conn, std::vector<Pending>& batch);
  // Runs p's callback with `reply`.
  static void Deliver(Pending& p, absl::StatusOr<Reply> reply);
  // Runs the callbacks of refused commands (the completion thread).
  void RunRefused();
  // Sleeps `backoff`; false if the client is stopping.
  bool WaitBackoff(absl::Duration backoff);
  bool HasWorkOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool HasRefusedOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const ClientOptions options_;

  mutable absl::Mutex mu_;
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  std::deque<Refused> refused_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Wakes reconnect backoffs when the client shuts down.
  StopSignal stop_backoff_;
  // Why the last connect failed, while no connection is up (fail fast).
  absl::Status down_status_ ABSL_GUARDED_BY(mu_);

  // Connections up. Changed under mu_, read without it by connected().
  std::atomic<int> live_{0};
  std::vector<std::thread> threads_;
  std::thread completion_thread_;
};

}  // namespace taskmesh::redis

#endif  // TASKMESH_REDIS_CLIENT_H_
