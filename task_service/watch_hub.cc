#include "task_service/watch_hub.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "broker/events.h"
#include "broker/keys.h"
#include "common/logging.h"
#include "redis/connection.h"

namespace taskmesh::task_service {

WatchHub::WatchHub(redis::ConnectionOptions options) : options_(std::move(options)) {
  thread_ = std::thread([this] { Run(); });
}

WatchHub::~WatchHub() {
  stop_.Notify();
  thread_.join();
}

absl::StatusOr<uint64_t> WatchHub::Add(const std::string& queue, const std::string& id,
                                       Listener listener) {
  absl::MutexLock lock(&mu_);
  if (!subscribed_) {
    return absl::UnavailableError("redis: task events are unavailable (not subscribed)");
  }
  const uint64_t handle = next_handle_++;
  const std::string key = absl::StrCat(queue, "/", id);
  listeners_[key][handle] = std::move(listener);
  key_of_[handle] = key;
  return handle;
}

void WatchHub::Remove(uint64_t handle) {
  absl::MutexLock lock(&mu_);
  auto it = key_of_.find(handle);
  if (it == key_of_.end()) return;
  auto l = listeners_.find(it->second);
  if (l != listeners_.end()) {
    l->second.erase(handle);
    if (l->second.empty()) listeners_.erase(l);
  }
  key_of_.erase(it);
}

size_t WatchHub::listeners() {
  absl::MutexLock lock(&mu_);
  return key_of_.size();
}

bool WatchHub::WaitSubscribed(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&subscribed_), timeout);
}

void WatchHub::Dispatch(const std::string& channel, const std::string& message) {
  const std::string queue = broker::QueueOfEventsChannel(channel);
  absl::StatusOr<broker::TaskEvent> parsed = broker::ParseTaskEvent(message);
  if (queue.empty() || !parsed.ok()) return;
  Event event;
  event.version = parsed->version;
  event.state = std::move(parsed->state);
  event.attempt = parsed->attempt;
  event.record = std::move(parsed->record);
  absl::MutexLock lock(&mu_);
  auto it = listeners_.find(absl::StrCat(queue, "/", parsed->id));
  if (it == listeners_.end()) return;
  for (auto& [handle, listener] : it->second) listener(event);
}

void WatchHub::Run() {
  absl::Duration backoff = absl::Milliseconds(50);
  while (!stop_.notified()) {
    auto conn = redis::Connection::Connect(options_);
    if (conn.ok()) {
      absl::Status s = (*conn)->Append({"PSUBSCRIBE", std::string(broker::kEventsPattern)});
      absl::StatusOr<redis::Reply> ack = s.ok() ? (*conn)->ReadReply() : s;
      if (ack.ok() && !ack->is_error()) {
        backoff = absl::Milliseconds(50);
        {
          absl::MutexLock lock(&mu_);
          subscribed_ = true;
          // Whatever happened while unsubscribed is unknown: re-read.
          Event resync;
          resync.resync = true;
          for (auto& [key, by_handle] : listeners_) {
            for (auto& [handle, listener] : by_handle) listener(resync);
          }
        }
        while (!stop_.notified()) {
          absl::StatusOr<absl::optional<redis::Reply>> r = (*conn)->Poll(absl::Milliseconds(200));
          if (!r.ok()) {
            log::Warning("task events subscription lost", {{"error", r.status().message()}});
            break;
          }
          if (!r->has_value()) continue;
          const auto& e = (*r)->elements();
          // ["pmessage", pattern, channel, message]
          if (e.size() == 4 && e[0].str() == "pmessage") Dispatch(e[2].str(), e[3].str());
        }
        absl::MutexLock lock(&mu_);
        subscribed_ = false;
        continue;
      }
    }
    stop_.WaitFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(1));
  }
}

}  // namespace taskmesh::task_service
