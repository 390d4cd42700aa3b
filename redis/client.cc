#include "redis/client.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/backoff.h"
#include "common/logging.h"

namespace taskmesh::redis {
namespace {

// How often an idle I/O thread checks that the server has not closed its
// connection (a poll(2), no traffic).
constexpr absl::Duration kIdleCheck = absl::Seconds(1);

absl::Status ShutDown() { return absl::CancelledError("redis: client shut down"); }

const Args& AskingArgs() {
  static const Args* asking = new Args{"ASKING"};
  return *asking;
}

// Commands that write nothing (no WAIT needed for them). Scripts count as
// writes; so does any command not listed.
bool ReadOnly(const std::string& command) {
  static const auto* names = new absl::flat_hash_set<std::string>{
      "PING",  "ECHO",    "TIME",     "INFO",     "GET",    "MGET",     "EXISTS",
      "TYPE",  "TTL",     "PTTL",     "HGET",     "HMGET",  "HGETALL",  "HEXISTS",
      "HLEN",  "XINFO",   "XRANGE",   "XREVRANGE", "XLEN",  "XPENDING", "XREAD",
      "SCARD", "SMEMBERS", "SISMEMBER", "SSCAN",  "ZCARD",  "ZRANGE",   "ZRANGEBYSCORE",
      "ZSCORE", "ZCOUNT", "LLEN",     "LRANGE",   "SCAN",   "DBSIZE",   "CLUSTER",
      "COMMAND", "CLIENT", "WAIT"};
  return names->contains(absl::AsciiStrToUpper(command));
}

// Whether a command may write (and so waits for replicas): scripts always.
bool Writes(const Args& args, const Script* script) {
  return script != nullptr || !ReadOnly(args[0]);
}

}  // namespace

Client::Client(ClientOptions options) : options_(std::move(options)) {
  const int n = std::max(1, options_.connections);
  threads_.reserve(n);
  for (int i = 0; i < n; ++i) threads_.emplace_back([this, i] { Run(i); });
  completion_thread_ = std::thread([this] { RunRefused(); });
}

Client::~Client() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  stop_backoff_.Notify();
  // I/O threads finish the batch in hand and exit; nothing new is sent.
  for (std::thread& t : threads_) t.join();
  completion_thread_.join();
  // No other thread is left: fail what was never sent, here. Their callbacks
  // may Send() again (refused with CANCELLED), hence the loop.
  while (true) {
    std::deque<Pending> queued;
    std::deque<Refused> refused;
    {
      absl::MutexLock lock(&mu_);
      queued.swap(queue_);
      refused.swap(refused_);
    }
    if (queued.empty() && refused.empty()) break;
    for (Pending& p : queued) std::move(p.done)(ShutDown());
    for (Refused& r : refused) std::move(r.done)(std::move(r.status));
  }
}

void Client::Send(Args args, Callback done) {
  Enqueue(Pending{std::move(args), std::move(done), nullptr, false});
}

void Client::Eval(const Script& script, const std::vector<std::string>& keys,
                  const std::vector<std::string>& args, Callback done) {
  Enqueue(Pending{script.EvalShaArgs(keys, args), std::move(done), &script, false});
}

size_t Client::queued() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

void Client::Enqueue(Pending pending) {
  absl::MutexLock lock(&mu_);
  if (stopping_) {
    refused_.push_back(Refused{std::move(pending.done), ShutDown()});
  } else if (!down_status_.ok()) {
    // Fail fast, but not inside Send(): the completion thread runs it.
    refused_.push_back(Refused{std::move(pending.done), down_status_});
  } else if (options_.max_queued > 0 && queue_.size() >= options_.max_queued) {
    refused_.push_back(Refused{
        std::move(pending.done),
        absl::ResourceExhaustedError(absl::StrCat(
            "redis: ", queue_.size(), " commands already wait to be sent (the client's limit)"))});
  } else {
    queue_.push_back(std::move(pending));
  }
}

absl::StatusOr<ConnectionOptions> Client::NodeForKey(absl::string_view) const {
  return options_.connection;
}

std::vector<ConnectionOptions> Client::Masters() const { return {options_.connection}; }

bool Client::HasWorkOrStopping() const { return stopping_ || !queue_.empty(); }

bool Client::HasRefusedOrStopping() const { return stopping_ || !refused_.empty(); }

void Client::RunRefused() {
  while (true) {
    std::deque<Refused> refused;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &Client::HasRefusedOrStopping));
      if (stopping_) return;  // The destructor runs what is left.
      refused.swap(refused_);
    }
    for (Refused& r : refused) std::move(r.done)(std::move(r.status));
  }
}

bool Client::WaitBackoff(absl::Duration backoff) {
  // Monotonic, unlike Abseil's timed waits: a clock step must not delay a
  // reconnect.
  return !stop_backoff_.WaitFor(backoff);
}

absl::Status Client::SendBatch(Connection& conn, std::vector<Pending>& batch) {
  // With min_replicas_acked, one WAIT after the batch (and its NOSCRIPT
  // retries) covers its writes, and no reply is delivered before it answers.
  const int replicas = options_.min_replicas_acked;
  bool wait = false;
  if (replicas > 0) {
    for (const Pending& p : batch) wait = wait || Writes(p.args, p.script);
  }
  std::vector<std::pair<Pending*, absl::StatusOr<Reply>>> held;
  const auto deliver = [&](Pending& p, absl::StatusOr<Reply> reply) {
    if (wait) {
      held.emplace_back(&p, std::move(reply));
    } else {
      Deliver(p, std::move(reply));
    }
  };

  // The first transport failure fails the rest of the batch with its status.
  absl::Status failure;
  for (const Pending& p : batch) {
    if (p.asking) failure = conn.Append(AskingArgs());
    if (failure.ok()) failure = conn.Append(p.args);
    if (!failure.ok()) break;
  }
  std::vector<Pending*> retried;
  for (Pending& p : batch) {
    // ASKING answers OK; the command's own reply is what the caller gets.
    if (p.asking && failure.ok()) {
      if (absl::StatusOr<Reply> ok = conn.ReadReply(); !ok.ok()) failure = ok.status();
    }
    absl::StatusOr<Reply> reply = failure.ok() ? conn.ReadReply() : failure;
    if (!reply.ok()) {
      if (failure.ok()) failure = reply.status();
    } else if (p.script != nullptr && IsNoScript(*reply)) {
      // Redis lost its script cache (restart, SCRIPT FLUSH): send the source
      // once, on this connection, after this batch; EVAL also caches it for
      // the next EVALSHA. NOSCRIPT means the script did not run.
      p.args[0] = "EVAL";
      p.args[1] = p.script->source();
      retried.push_back(&p);
      continue;
    }
    deliver(p, std::move(reply));
  }
  for (Pending* p : retried) {
    if (!failure.ok()) break;
    if (p->asking) failure = conn.Append(AskingArgs());
    if (failure.ok()) failure = conn.Append(p->args);
  }
  for (Pending* p : retried) {
    if (p->asking && failure.ok()) {
      if (absl::StatusOr<Reply> ok = conn.ReadReply(); !ok.ok()) failure = ok.status();
    }
    absl::StatusOr<Reply> reply = failure.ok() ? conn.ReadReply() : failure;
    if (!reply.ok() && failure.ok()) failure = reply.status();
    deliver(*p, std::move(reply));
  }
  if (!wait) return failure;

  // WAIT numreplicas timeout: how many replicas have every write so far.
  absl::Status unacked;
  if (failure.ok()) {
    absl::StatusOr<Reply> acked = conn.Command(
        {"WAIT", absl::StrCat(replicas),
         absl::StrCat(absl::ToInt64Milliseconds(options_.replicas_timeout))});
    if (!acked.ok()) {
      failure = acked.status();
    } else if (acked->type() != Reply::Type::kInteger || acked->integer() < replicas) {
      unacked = absl::UnavailableError(absl::StrCat(
          "redis: the write reached ", acked->type() == Reply::Type::kInteger ? acked->integer() : 0,
          " of the ", replicas, " replicas asked for (--redis_min_replicas_acked) within ",
          absl::FormatDuration(options_.replicas_timeout),
          "; it may or may not persist after a failover"));
    }
  }
  for (auto& [p, reply] : held) {
    // Error replies stay as they are (nothing was written; a cluster's MOVED
    // must reach ClusterClient).
    const bool write = reply.ok() && !reply->is_error() && Writes(p->args, p->script);
    if (write && !failure.ok()) {
      reply = failure;  // The connection broke before WAIT answered.
    } else if (write && !unacked.ok()) {
      reply = unacked;
    }
    Deliver(*p, std::move(reply));
  }
  return failure;
}

void Client::Deliver(Pending& p, absl::StatusOr<Reply> reply) {
  // A script's error names the file and line it came from (Script::Locate).
  if (p.script != nullptr && reply.ok() && reply->is_error()) {
    reply = Reply::Error(p.script->Locate(reply->str()));
  }
  std::move(p.done)(std::move(reply));
}

void Client::Run(int index) {
  const std::string endpoint = DescribeEndpoint(options_.connection);
  // max_batch 0 would take nothing from a non-empty queue, forever.
  const size_t max_batch = std::max<size_t>(1, options_.max_batch);
  std::unique_ptr<Connection> conn;
  Backoff backoff(options_.min_backoff, options_.max_backoff);
  std::vector<Pending> batch;
  batch.reserve(std::min<size_t>(max_batch, 4096));

  const auto drop = [&](const absl::Status& why) {
    conn.reset();
    {
      absl::MutexLock lock(&mu_);
      live_.fetch_sub(1);
    }
    log::Warning("redis connection lost; reconnecting",
                 {{"endpoint", endpoint},
                  {"connection", absl::StrCat(index)},
                  {"error", why.message()}});
  };

  while (true) {
    if (conn == nullptr) {
      absl::StatusOr<std::unique_ptr<Connection>> connected =
          Connection::Connect(options_.connection);
      if (!connected.ok()) {
        std::deque<Pending> failed;
        {
          absl::MutexLock lock(&mu_);
          if (live_.load() == 0) {
            // No connection is up: callers must not wait for a Redis that
            // is not there. Fail what is queued, refuse what comes next.
            if (down_status_.ok()) {
              down_status_ = connected.status();
              log::Warning("redis unreachable", {{"endpoint", endpoint},
                                                 {"error", connected.status().message()}});
            }
            failed.swap(queue_);
          }
        }
        for (Pending& p : failed) std::move(p.done)(connected.status());
        if (!WaitBackoff(backoff.Next())) break;
        continue;
      }
      conn = *std::move(connected);
      backoff.Reset();
      {
        absl::MutexLock lock(&mu_);
        if (live_.fetch_add(1) == 0 && !down_status_.ok()) {
          down_status_ = absl::OkStatus();
          log::Info("redis reachable again", {{"endpoint", endpoint}});
        }
      }
    }

    bool has_work;
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(this, &Client::HasWorkOrStopping), kIdleCheck);
      // Queued commands are the destructor's to cancel.
      if (stopping_) break;
      has_work = !queue_.empty();
    }
    // Before writing, and now and then while idle: has the server closed
    // this connection meanwhile (restart, CLIENT KILL, idle timeout)? Then
    // reconnect first rather than fail the batch.
    if (absl::Status alive = conn->CheckAlive(); !alive.ok()) {
      drop(alive);
      continue;
    }
    if (!has_work) continue;
    if (options_.batch_window > absl::ZeroDuration()) {
      bool full;
      {
        absl::MutexLock lock(&mu_);
        full = queue_.size() >= max_batch;
      }
      // A plain (monotonic) sleep: Abseil's timed waits follow wall-clock
      // steps here (common/stop_signal.h).
      if (!full) absl::SleepFor(options_.batch_window);
    }
    {
      absl::MutexLock lock(&mu_);
      while (!queue_.empty() && batch.size() < max_batch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    if (batch.empty()) continue;  // Another I/O thread took it.
    absl::Status sent = SendBatch(*conn, batch);
    batch.clear();
    if (conn->broken()) drop(sent);
  }
  if (conn != nullptr) {
    absl::MutexLock lock(&mu_);
    live_.fetch_sub(1);
  }
}

}  // namespace taskmesh::redis
