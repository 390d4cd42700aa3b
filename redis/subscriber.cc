#include "redis/subscriber.h"

#include <algorithm>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "common/backoff.h"
#include "common/logging.h"
#include "redis/connection.h"

namespace taskmesh::redis {

Subscriber::Subscriber(ConnectionOptions node, Callbacks callbacks)
    : node_(std::move(node)), callbacks_(std::move(callbacks)) {
  thread_ = std::thread([this] { Run(); });
}

Subscriber::~Subscriber() {
  stop_.Notify();
  thread_.join();
}

void Subscriber::Add(const std::string& channel) {
  absl::MutexLock lock(&mu_);
  wanted_.insert(channel);
}

void Subscriber::Remove(const std::string& channel) {
  absl::MutexLock lock(&mu_);
  wanted_.erase(channel);
}

bool Subscriber::connected() const {
  absl::MutexLock lock(&mu_);
  return connected_;
}

bool Subscriber::down() const {
  absl::MutexLock lock(&mu_);
  return down_;
}

void Subscriber::Run() {
  const std::string endpoint = DescribeEndpoint(node_);
  Backoff backoff(absl::Milliseconds(50), absl::Seconds(1));
  while (!stop_.notified()) {
    absl::StatusOr<std::unique_ptr<Connection>> conn = Connection::Connect(node_);
    if (!conn.ok()) {
      {
        absl::MutexLock lock(&mu_);
        down_ = true;
      }
      stop_.WaitFor(backoff.Next());
      continue;
    }
    backoff.Reset();
    {
      absl::MutexLock lock(&mu_);
      connected_ = true;
      down_ = false;
    }
    // Channels subscribed or asked for on this connection.
    absl::flat_hash_set<std::string> active;
    // Commands sent and not yet answered, oldest first (subscribe?, channel):
    // an error reply answers the oldest.
    std::deque<std::pair<bool, std::string>> asked;
    // The node no longer serves a channel: forget it, tell the owner.
    auto moved = [&](const std::string& channel, const std::string& owner) {
      active.erase(channel);
      {
        absl::MutexLock lock(&mu_);
        wanted_.erase(channel);
      }
      if (callbacks_.moved) callbacks_.moved(channel, owner);
    };
    absl::Status failure;
    while (!stop_.notified() && failure.ok()) {
      std::vector<std::pair<bool, std::string>> changes;
      {
        absl::MutexLock lock(&mu_);
        for (const std::string& c : wanted_) {
          if (!active.contains(c)) changes.emplace_back(true, c);
        }
        for (const std::string& c : active) {
          if (!wanted_.contains(c)) changes.emplace_back(false, c);
        }
      }
      for (auto& [subscribe, channel] : changes) {
        // One channel a command: in a cluster, one SSUBSCRIBE's channels must
        // share a slot.
        failure = conn.value()->Append({subscribe ? "SSUBSCRIBE" : "SUNSUBSCRIBE", channel});
        if (!failure.ok()) break;
        if (subscribe) {
          active.insert(channel);
        } else {
          active.erase(channel);
        }
        asked.emplace_back(subscribe, std::move(channel));
      }
      if (failure.ok() && !changes.empty()) failure = conn.value()->Flush();
      if (!failure.ok()) break;

      absl::StatusOr<absl::optional<Reply>> r = conn.value()->Poll(kPollInterval);
      if (!r.ok()) {
        failure = r.status();
        break;
      }
      if (!r->has_value()) continue;
      const Reply& reply = **r;
      if (reply.is_error()) {
        if (asked.empty()) continue;
        auto [subscribe, channel] = std::move(asked.front());
        asked.pop_front();
        if (!subscribe) continue;
        // "MOVED <slot> <host:port>": another node serves the channel.
        std::vector<std::string> words = absl::StrSplit(reply.str(), ' ');
        const bool redirect = absl::StartsWith(reply.str(), "MOVED") && words.size() == 3;
        if (!redirect) {
          log::Warning("redis: subscribe refused",
                       {{"endpoint", endpoint}, {"channel", channel}, {"error", reply.str()}});
        }
        moved(channel, redirect ? words[2] : "");
        continue;
      }
      const auto& e = reply.elements();
      if (e.size() != 3) continue;
      const std::string& kind = e[0].str();
      const std::string& channel = e[1].str();
      if (kind == "smessage") {
        if (callbacks_.message) callbacks_.message(channel, e[2].str());
      } else if (kind == "ssubscribe") {
        if (!asked.empty()) asked.pop_front();
        if (active.contains(channel) && callbacks_.subscribed) callbacks_.subscribed(channel);
      } else if (kind == "sunsubscribe") {
        if (!asked.empty() && !asked.front().first && asked.front().second == channel) {
          asked.pop_front();  // Ours.
        } else if (active.contains(channel)) {
          moved(channel, "");  // Unasked: the channel's slot moved away.
        }
      }
    }
    {
      absl::MutexLock lock(&mu_);
      connected_ = false;
      down_ = true;
    }
    if (!stop_.notified()) {
      log::Warning("redis: subscription lost; reconnecting",
                   {{"endpoint", endpoint}, {"error", failure.message()}});
    }
  }
}

}  // namespace taskmesh::redis
