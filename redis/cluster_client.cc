#include "redis/cluster_client.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace taskmesh::redis {
namespace {

// Background slot map reads: this often at least, and at most this often
// when commands keep asking for one (MOVED, failed connections).
constexpr absl::Duration kRefreshInterval = absl::Seconds(2);
constexpr absl::Duration kMinRefreshGap = absl::Milliseconds(100);
constexpr absl::Duration kRefreshTick = absl::Milliseconds(20);
// Longest nap of the timer thread while retries wait.
constexpr absl::Duration kTimerTick = absl::Milliseconds(5);
constexpr absl::Duration kMaxBackoff = absl::Milliseconds(200);
constexpr int kMaxRedirects = 16;

absl::Status ShutDown() { return absl::CancelledError("redis: cluster client shut down"); }

std::chrono::steady_clock::time_point SteadyNow() { return std::chrono::steady_clock::now(); }

// Error replies that mean the command did not run and may run soon.
bool IsRetryable(const std::string& error) {
  return absl::StartsWith(error, "TRYAGAIN") || absl::StartsWith(error, "CLUSTERDOWN");
}

}  // namespace

ClusterClient::ClusterClient(std::vector<ConnectionOptions> seeds, ClientOptions options)
    : seeds_(std::move(seeds)), options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<ClusterClient>> ClusterClient::Connect(
    const std::vector<ConnectionOptions>& seeds, ClientOptions options) {
  if (seeds.empty()) return absl::InvalidArgumentError("redis: no cluster seed given");
  for (const ConnectionOptions& seed : seeds) {
    if (seed.db != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "redis: ", DescribeEndpoint(seed), ": a Redis Cluster has only database 0"));
    }
  }
  options.connection = seeds.front();
  std::unique_ptr<ClusterClient> client(new ClusterClient(seeds, std::move(options)));
  {
    absl::MutexLock lock(&client->refresh_mu_);
    ASSIGN_OR_RETURN(SlotMap map, client->ReadSlotMap());
    client->Install(std::move(map));
  }
  client->refresher_ = std::thread([c = client.get()] { c->RunRefresher(); });
  client->timer_thread_ = std::thread([c = client.get()] { c->RunTimers(); });
  return client;
}

ClusterClient::~ClusterClient() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  {
    absl::MutexLock lock(&timer_mu_);
    timers_stopping_ = true;
  }
  stop_.Notify();
  if (refresher_.joinable()) refresher_.join();
  if (timer_thread_.joinable()) timer_thread_.join();
  // The node Clients finish their batches in flight; the callbacks that run
  // meanwhile see stopping_ and resend nothing.
  absl::flat_hash_map<std::string, std::unique_ptr<Client>> nodes;
  {
    absl::MutexLock lock(&mu_);
    nodes.swap(nodes_);
    owners_.clear();
  }
  nodes.clear();
  // No other thread is left: fail what waits for the timer here. Callbacks
  // may Send() again (refused with CANCELLED), hence the loop.
  while (true) {
    std::vector<Timer> timers;
    {
      absl::MutexLock lock(&timer_mu_);
      timers.swap(timers_);
    }
    if (timers.empty()) break;
    for (Timer& t : timers) {
      std::move(t.request->done)(t.status.ok() ? ShutDown() : std::move(t.status));
    }
  }
}

ConnectionOptions ClusterClient::NodeOptions(const NodeAddress& node) const {
  ConnectionOptions o = options_.connection;
  o.host = node.host;
  o.port = node.port;
  o.db = 0;
  return o;
}

absl::StatusOr<SlotMap> ClusterClient::ReadSlotMap() {
  std::vector<ConnectionOptions> candidates;
  if (last_answered_.port != 0) candidates.push_back(NodeOptions(last_answered_));
  {
    absl::ReaderMutexLock lock(&mu_);
    for (const NodeAddress& m : map_.masters()) candidates.push_back(NodeOptions(m));
  }
  candidates.insert(candidates.end(), seeds_.begin(), seeds_.end());
  std::vector<std::string> errors;
  std::vector<NodeAddress> tried;
  for (const ConnectionOptions& candidate : candidates) {
    const NodeAddress address{candidate.host, candidate.port};
    if (std::find(tried.begin(), tried.end(), address) != tried.end()) continue;
    tried.push_back(address);
    absl::StatusOr<SlotMap> map = [&]() -> absl::StatusOr<SlotMap> {
      ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn, Connection::Connect(candidate));
      ASSIGN_OR_RETURN(Reply shards, conn->Command({"CLUSTER", "SHARDS"}));
      if (!shards.is_error()) return SlotMap::FromClusterShards(shards, candidate.host);
      // Before Redis 7: CLUSTER SLOTS.
      ASSIGN_OR_RETURN(Reply slots, conn->Command({"CLUSTER", "SLOTS"}));
      return SlotMap::FromClusterSlots(slots, candidate.host);
    }();
    if (map.ok()) {
      slot_map_reads_.fetch_add(1);
      last_answered_ = address;
      return map;
    }
    errors.push_back(absl::StrCat(address.ToString(), ": ", map.status().message()));
  }
  return absl::UnavailableError(
      absl::StrCat("redis: cannot read the cluster's slot map: ", absl::StrJoin(errors, "; ")));
}

Client* ClusterClient::NodeLocked(const NodeAddress& node) {
  std::unique_ptr<Client>& client = nodes_[node.ToString()];
  if (client == nullptr) {
    ClientOptions o = options_;
    o.connection = NodeOptions(node);
    client = std::make_unique<Client>(std::move(o));
  }
  return client.get();
}

void ClusterClient::RebuildOwnersLocked() {
  owners_.clear();
  for (const NodeAddress& m : map_.masters()) owners_.push_back(NodeLocked(m));
  covered_ = map_.covered();
}

void ClusterClient::Install(SlotMap map) {
  std::vector<std::string> before, after;
  absl::MutexLock lock(&mu_);
  if (stopping_) return;
  for (const NodeAddress& m : map_.masters()) before.push_back(m.ToString());
  for (const NodeAddress& m : map.masters()) after.push_back(m.ToString());
  std::sort(before.begin(), before.end());
  std::sort(after.begin(), after.end());
  map_ = std::move(map);
  RebuildOwnersLocked();
  if (before != after) {
    log::Info("redis cluster masters", {{"masters", absl::StrJoin(after, ",")},
                                        {"slots_covered", absl::StrCat(covered_)}});
  }
}

absl::Status ClusterClient::Refresh() {
  absl::MutexLock lock(&refresh_mu_);
  ASSIGN_OR_RETURN(SlotMap map, ReadSlotMap());
  Install(std::move(map));
  return absl::OkStatus();
}

void ClusterClient::Send(Args args, Callback done) {
  auto request = std::make_unique<Request>();
  if (absl::optional<absl::string_view> key = RoutingKey(args); key.has_value()) {
    request->slot = KeySlot(*key);
  }
  request->args = std::move(args);
  request->done = std::move(done);
  Start(std::move(request));
}

void ClusterClient::Eval(const Script& script, const std::vector<std::string>& keys,
                         const std::vector<std::string>& args, Callback done) {
  auto request = std::make_unique<Request>();
  request->done = std::move(done);
  for (size_t i = 0; i < keys.size(); ++i) {
    const int slot = KeySlot(keys[i]);
    if (i == 0) {
      request->slot = slot;
    } else if (slot != request->slot) {
      AddTimer(std::move(request), absl::ZeroDuration(),
               absl::InvalidArgumentError(absl::StrCat(
                   "redis: CROSSSLOT: in a Redis Cluster every key of a script must hash to "
                   "one slot, but \"", keys[0], "\" is in slot ", request->slot, " and \"",
                   keys[i], "\" in slot ", slot, " (give them a common {hash tag})")));
      return;
    }
  }
  request->args = script.EvalShaArgs(keys, args);
  request->script = &script;
  Start(std::move(request));
}

void ClusterClient::Start(std::unique_ptr<Request> request) {
  request->deadline = SteadyNow() + absl::ToChronoNanoseconds(options_.connection.command_timeout);
  absl::Status status = Dispatch(request, nullptr);
  // Not inside Send(): the timer thread reports it.
  if (!status.ok()) AddTimer(std::move(request), absl::ZeroDuration(), std::move(status));
}

absl::Status ClusterClient::Dispatch(std::unique_ptr<Request>& request,
                                     const Redirect* redirect) {
  Client* client = nullptr;
  std::string host;
  // The lock is held while queueing, so that ~ClusterClient cannot destroy
  // the node Client meanwhile (Enqueue never runs a callback).
  auto enqueue = [&] {
    Args args = request->args;  // Kept for a redirect or retry.
    const Script* script = request->script;
    const bool asking = redirect != nullptr && redirect->ask;
    client->Enqueue(Client::Pending{
        std::move(args),
        [this, host, r = std::move(request)](absl::StatusOr<Reply> reply) mutable {
          OnReply(std::move(r), host, std::move(reply));
        },
        script, asking});
  };
  if (redirect != nullptr) {
    absl::MutexLock lock(&mu_);
    if (stopping_) return ShutDown();
    client = NodeLocked(redirect->node);
    host = redirect->node.host;
    enqueue();
    return absl::OkStatus();
  }
  absl::ReaderMutexLock lock(&mu_);
  if (stopping_) return ShutDown();
  int owner = -1;
  if (request->slot >= 0) {
    owner = map_.owner(request->slot);
  } else if (!owners_.empty()) {
    owner = static_cast<int>(next_any_.fetch_add(1) % owners_.size());
  }
  if (owner < 0) {
    RequestRefresh();
    return absl::UnavailableError(
        request->slot >= 0
            ? absl::StrCat("redis: cluster slot ", request->slot, " is not served by any node")
            : std::string("redis: the cluster has no master serving slots"));
  }
  client = owners_[owner];
  host = map_.masters()[owner].host;
  enqueue();
  return absl::OkStatus();
}

void ClusterClient::OnReply(std::unique_ptr<Request> request, const std::string& host,
                            absl::StatusOr<Reply> reply) {
  if (!reply.ok()) {
    // The node is unreachable or its connection broke: the command may have
    // run, so it is not resent; the slot map may be stale.
    if (absl::IsUnavailable(reply.status())) RequestRefresh();
    std::move(request->done)(std::move(reply));
    return;
  }
  if (!reply->is_error()) {
    std::move(request->done)(std::move(reply));
    return;
  }
  const bool in_time = SteadyNow() < request->deadline;
  if (absl::optional<Redirect> redirect = ParseRedirect(reply->str(), host)) {
    (redirect->ask ? ask_ : moved_).fetch_add(1);
    if (!redirect->ask) {
      // The slot has moved for good: correct the map now, read it all soon.
      absl::MutexLock lock(&mu_);
      const NodeAddress* owner = map_.master_of(redirect->slot);
      if (!stopping_ && (owner == nullptr || *owner != redirect->node)) {
        map_.Assign(redirect->slot, redirect->node);
        RebuildOwnersLocked();
      }
      RequestRefresh();
    }
    if (in_time && ++request->redirects <= kMaxRedirects) {
      absl::Status status = Dispatch(request, &*redirect);
      if (status.ok()) return;
      std::move(request->done)(std::move(status));
      return;
    }
  } else if (IsRetryable(reply->str())) {
    if (absl::StartsWith(reply->str(), "CLUSTERDOWN")) RequestRefresh();
    const absl::Duration backoff = request->backoff;
    if (SteadyNow() + absl::ToChronoNanoseconds(backoff) < request->deadline) {
      request->backoff = std::min(backoff * 2, kMaxBackoff);
      retries_.fetch_add(1);
      AddTimer(std::move(request), backoff, absl::OkStatus());
      return;
    }
  }
  std::move(request->done)(std::move(reply));
}

void ClusterClient::AddTimer(std::unique_ptr<Request> request, absl::Duration delay,
                             absl::Status status) {
  absl::MutexLock lock(&timer_mu_);
  // After the timer thread stopped, the destructor runs what is left.
  timers_.push_back(
      Timer{SteadyNow() + absl::ToChronoNanoseconds(delay), std::move(request), std::move(status)});
}

bool ClusterClient::HasTimersOrStopping() const { return timers_stopping_ || !timers_.empty(); }

void ClusterClient::RunTimers() {
  while (true) {
    std::vector<Timer> due;
    absl::Duration nap = kTimerTick;
    {
      absl::MutexLock lock(&timer_mu_);
      timer_mu_.Await(absl::Condition(this, &ClusterClient::HasTimersOrStopping));
      if (timers_stopping_) return;
      const SteadyTime now = SteadyNow();
      for (size_t i = 0; i < timers_.size();) {
        if (timers_[i].due <= now) {
          due.push_back(std::move(timers_[i]));
          timers_[i] = std::move(timers_.back());
          timers_.pop_back();
        } else {
          nap = std::min(nap, absl::FromChrono(timers_[i].due - now));
          ++i;
        }
      }
    }
    for (Timer& t : due) {
      if (t.status.ok()) t.status = Dispatch(t.request, nullptr);
      if (!t.status.ok()) std::move(t.request->done)(std::move(t.status));
    }
    // A plain (monotonic) sleep while retries wait: Abseil's timed waits
    // follow wall-clock steps (common/stop_signal.h).
    if (due.empty()) absl::SleepFor(nap);
  }
}

void ClusterClient::RunRefresher() {
  SteadyTime next = SteadyNow() + absl::ToChronoNanoseconds(kRefreshInterval);
  SteadyTime earliest = SteadyNow();
  bool failing = false;
  while (!stop_.WaitFor(kRefreshTick)) {
    const SteadyTime now = SteadyNow();
    if (now < earliest) continue;
    if (now < next && !refresh_requested_.load()) continue;
    refresh_requested_.store(false);
    absl::Status status = Refresh();
    if (!status.ok() && !failing) {
      log::Warning("redis cluster slot map read failed", {{"error", status.message()}});
    }
    failing = !status.ok();
    earliest = SteadyNow() + absl::ToChronoNanoseconds(kMinRefreshGap);
    next = SteadyNow() + absl::ToChronoNanoseconds(kRefreshInterval);
  }
}

ClusterClient::Stats ClusterClient::stats() const {
  Stats s;
  s.moved = moved_.load();
  s.ask = ask_.load();
  s.retries = retries_.load();
  s.slot_map_reads = slot_map_reads_.load();
  return s;
}

bool ClusterClient::connected() const {
  absl::ReaderMutexLock lock(&mu_);
  if (covered_ < kClusterSlots || owners_.empty()) return false;
  for (const Client* client : owners_) {
    if (!client->connected()) return false;
  }
  return true;
}

absl::StatusOr<ConnectionOptions> ClusterClient::NodeForKey(absl::string_view key) const {
  const int slot = KeySlot(key);
  absl::ReaderMutexLock lock(&mu_);
  const NodeAddress* node = map_.master_of(slot);
  if (node == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("redis: cluster slot ", slot, " is not served by any node"));
  }
  return NodeOptions(*node);
}

std::vector<ConnectionOptions> ClusterClient::Masters() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<ConnectionOptions> out;
  for (const NodeAddress& m : map_.masters()) out.push_back(NodeOptions(m));
  return out;
}

}  // namespace taskmesh::redis
