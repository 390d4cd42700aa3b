#include "broker/watch_hub.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "broker/events.h"
#include "broker/keys.h"

namespace taskmesh::broker {

WatchHub::WatchHub(redis::ConnectionOptions redis, Route route)
    : redis_(std::move(redis)), route_(std::move(route)) {}

WatchHub::~WatchHub() {
  // Subscriber threads call back into the hub: stop them without the lock.
  absl::flat_hash_map<std::string, std::unique_ptr<redis::Subscriber>> subscribers;
  {
    absl::MutexLock lock(&mu_);
    subscribers.swap(subscribers_);
  }
  subscribers.clear();
}

redis::Subscriber* WatchHub::SubscriberFor(const redis::ConnectionOptions& node) {
  std::unique_ptr<redis::Subscriber>& sub = subscribers_[redis::HostPort(node)];
  if (sub == nullptr) {
    redis::Subscriber::Callbacks callbacks;
    callbacks.message = [this](const std::string& channel, const std::string& message) {
      OnMessage(channel, message);
    };
    callbacks.subscribed = [this](const std::string& channel) { OnSubscribed(channel); };
    callbacks.moved = [this](const std::string& channel, const std::string& owner) {
      OnMoved(channel, owner);
    };
    sub = std::make_unique<redis::Subscriber>(node, std::move(callbacks));
  }
  return sub.get();
}

absl::StatusOr<uint64_t> WatchHub::Add(const std::string& queue, const std::string& id,
                                       Listener listener) {
  const std::string channel = EventsChannel(queue);
  absl::MutexLock lock(&mu_);
  Channel& c = channels_[channel];
  if (c.subscriber == nullptr) {
    redis::Subscriber* sub = SubscriberFor(route_(channel));
    if (sub->down()) {
      channels_.erase(channel);
      return absl::UnavailableError("redis: task events are unavailable (not subscribed)");
    }
    c.subscriber = sub;
    sub->Add(channel);
  } else if (c.subscriber->down()) {
    return absl::UnavailableError("redis: task events are unavailable (not subscribed)");
  }
  ++c.watchers;
  const uint64_t handle = next_handle_++;
  listeners_[queue][id][handle] = std::move(listener);
  key_of_[handle] = {queue, id};
  return handle;
}

void WatchHub::Remove(uint64_t handle) {
  absl::MutexLock lock(&mu_);
  auto it = key_of_.find(handle);
  if (it == key_of_.end()) return;
  const auto& [queue, id] = it->second;
  auto q = listeners_.find(queue);
  if (q != listeners_.end()) {
    auto t = q->second.find(id);
    if (t != q->second.end()) {
      t->second.erase(handle);
      if (t->second.empty()) q->second.erase(t);
    }
    if (q->second.empty()) listeners_.erase(q);
  }
  auto c = channels_.find(EventsChannel(queue));
  if (c != channels_.end() && --c->second.watchers <= 0) {
    if (c->second.subscriber != nullptr) c->second.subscriber->Remove(c->first);
    channels_.erase(c);
  }
  key_of_.erase(it);
}

size_t WatchHub::listeners() {
  absl::MutexLock lock(&mu_);
  return key_of_.size();
}

bool WatchHub::connected() {
  absl::MutexLock lock(&mu_);
  for (const auto& [name, sub] : subscribers_) {
    if (sub->down()) return false;
  }
  return true;
}

void WatchHub::Resync(const std::string& queue) {
  auto q = listeners_.find(queue);
  if (q == listeners_.end()) return;
  Event resync;
  resync.resync = true;
  for (auto& [id, by_handle] : q->second) {
    for (auto& [handle, listener] : by_handle) listener(resync);
  }
}

void WatchHub::OnMessage(const std::string& channel, const std::string& message) {
  const std::string queue = QueueOfEventsChannel(channel);
  absl::StatusOr<TaskEvent> parsed = ParseTaskEvent(message);
  if (queue.empty() || !parsed.ok()) return;
  Event event;
  event.version = parsed->version;
  event.state = std::move(parsed->state);
  event.attempt = parsed->attempt;
  event.record = std::move(parsed->record);
  absl::MutexLock lock(&mu_);
  auto q = listeners_.find(queue);
  if (q == listeners_.end()) return;
  auto t = q->second.find(parsed->id);
  if (t == q->second.end()) return;
  for (auto& [handle, listener] : t->second) listener(event);
}

void WatchHub::OnSubscribed(const std::string& channel) {
  // Whatever was published before is unknown to the listeners: re-read.
  absl::MutexLock lock(&mu_);
  Resync(QueueOfEventsChannel(channel));
}

void WatchHub::OnMoved(const std::string& channel, const std::string& owner) {
  absl::MutexLock lock(&mu_);
  auto c = channels_.find(channel);
  if (c == channels_.end()) return;
  redis::ConnectionOptions node = redis_;
  std::vector<std::string> host_port = absl::StrSplit(owner, absl::MaxSplits(':', 1));
  int port = 0;
  if (host_port.size() == 2 && absl::SimpleAtoi(host_port[1], &port)) {
    node.host = host_port[0];
    node.port = port;
  } else {
    node = route_(channel);
  }
  c->second.subscriber = SubscriberFor(node);
  c->second.subscriber->Add(channel);
}

}  // namespace taskmesh::broker
