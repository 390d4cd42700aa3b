#include "broker/script_batcher.h"

#include <algorithm>
#include <iterator>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "broker/keys.h"

namespace taskmesh::broker {

ScriptBatcher::ScriptBatcher(redis::Commands* client, const redis::Script& script,
                             BrokerOptions options, Limits limits)
    : client_(client), script_(script), options_(std::move(options)), limits_(limits) {}

void ScriptBatcher::Add(const std::string& queue, std::vector<Item> items) {
  std::vector<std::vector<Item>> calls;
  {
    absl::MutexLock lock(&mu_);
    QueueState& state = queues_[queue];
    std::move(items.begin(), items.end(), std::back_inserter(state.waiting));
    while (true) {
      std::vector<Item> call = TakeLocked(queue, state);
      if (call.empty()) break;
      calls.push_back(std::move(call));
    }
  }
  for (std::vector<Item>& call : calls) Send(queue, std::move(call));
}

int ScriptBatcher::InFlightForTest(const std::string& queue) {
  absl::MutexLock lock(&mu_);
  auto it = queues_.find(queue);
  return it == queues_.end() ? 0 : it->second.in_flight;
}

std::vector<ScriptBatcher::Item> ScriptBatcher::TakeLocked(const std::string& queue,
                                                           QueueState& state) {
  std::vector<Item> call;
  // A full call goes at once: waiting would not make it fuller.
  const bool full = state.waiting.size() >= static_cast<size_t>(std::max(1, limits_.max_items));
  if (state.waiting.empty() ||
      (!full && state.in_flight >= std::max(1, limits_.max_in_flight))) {
    return call;
  }
  const size_t n = std::min(state.waiting.size(),
                            static_cast<size_t>(std::max(1, limits_.max_items)));
  call.reserve(n);
  std::move(state.waiting.begin(), state.waiting.begin() + n, std::back_inserter(call));
  state.waiting.erase(state.waiting.begin(), state.waiting.begin() + n);
  ++state.in_flight;
  return call;
}

void ScriptBatcher::Send(const std::string& queue, std::vector<Item> items) {
  std::vector<std::string> keys;
  std::vector<std::string> rest;
  keys.reserve(items.size() + 1);
  for (Item& item : items) {
    keys.push_back(std::move(item.key));
    rest.push_back(absl::StrCat(item.args.size()));
    std::move(item.args.begin(), item.args.end(), std::back_inserter(rest));
    item.args.clear();
  }
  keys.push_back(SlotGuardKey(queue));  // After the items' keys (the script reads KEYS[i]).
  auto shared = std::make_shared<std::vector<Item>>(std::move(items));
  client_->Eval(
      script_, keys, ScriptArgs(QueuePrefix(queue), options_, std::move(rest)),
      [this, queue, shared](absl::StatusOr<redis::Reply> reply) {
        std::vector<Item>& items = *shared;
        absl::Status failure;
        if (!reply.ok()) {
          failure = reply.status();
        } else if (reply->is_error()) {
          failure = reply->ToStatus();
        } else if (reply->type() != redis::Reply::Type::kArray ||
                   reply->elements().size() != items.size()) {
          failure = absl::InternalError(
              absl::StrCat("batch script: ", items.size(), " items, reply ", reply->DebugString()));
        }
        // The next call of this queue goes out before the callbacks run.
        Finished(queue);
        for (size_t i = 0; i < items.size(); ++i) {
          if (failure.ok()) {
            std::move(items[i].done)(reply->elements()[i]);
          } else {
            std::move(items[i].done)(failure);
          }
        }
      });
}

void ScriptBatcher::Finished(const std::string& queue) {
  std::vector<Item> next;
  {
    absl::MutexLock lock(&mu_);
    auto it = queues_.find(queue);
    if (it == queues_.end()) return;
    --it->second.in_flight;
    next = TakeLocked(queue, it->second);
    if (it->second.in_flight == 0 && it->second.waiting.empty()) queues_.erase(it);
  }
  if (!next.empty()) Send(queue, std::move(next));
}

}  // namespace taskmesh::broker
