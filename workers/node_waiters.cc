#include "workers/node_waiters.h"

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "redis/connection.h"

namespace taskmesh::workers {

NodeWaiters::~NodeWaiters() {
  Stop();
  for (auto& [name, w] : waiters_) w->thread.join();
}

void NodeWaiters::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
  }
  cv_.notify_all();
}

void NodeWaiters::Wait(const std::vector<NodeQueues>& nodes, absl::Duration block) {
  std::unique_lock<std::mutex> lock(mu_);
  if (stopped_) return;
  const uint64_t before = wakes_;
  for (const auto& [node, queues] : nodes) {
    std::unique_ptr<Waiter>& w = waiters_[redis::HostPort(node)];
    if (w == nullptr) {
      w = std::make_unique<Waiter>();
      w->node = node;
      Waiter* raw = w.get();
      w->thread = std::thread([this, raw] { Run(raw); });
    }
    // A waiter still in its last wait keeps it (it wakes us just the same).
    if (!w->armed) {
      w->queues = queues;
      w->block = block;
      w->armed = true;
    }
  }
  cv_.notify_all();
  cv_.wait_for(lock, absl::ToChronoNanoseconds(block),
               [&] { return stopped_ || wakes_ != before; });
}

void NodeWaiters::Run(Waiter* w) {
  std::unique_ptr<redis::Connection> conn;
  while (true) {
    std::vector<std::string> queues;
    absl::Duration block;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopped_ || w->armed; });
      if (stopped_) return;
      queues = w->queues;
      block = w->block;
    }
    absl::Status s;
    if (conn == nullptr || conn->broken()) {
      absl::StatusOr<std::unique_ptr<redis::Connection>> c = redis::Connection::Connect(w->node);
      if (c.ok()) {
        conn = *std::move(c);
      } else {
        s = c.status();
      }
    }
    if (s.ok()) s = consumer_->AwaitWork(*conn, queues, block);
    if (!s.ok()) {
      // The fetcher's own calls see the same failure and back off; a moved
      // slot or a dead node shows in its next routing.
      log::Warning("idle wait on a node failed",
                   {{"node", redis::HostPort(w->node)},
                    {"error", s.message()}});
      conn.reset();
    }
    {
      std::unique_lock<std::mutex> lock(mu_);
      w->armed = false;
      ++wakes_;
      if (!s.ok()) {
        // Not at once again: a node that refuses must not spin.
        cv_.wait_for(lock, std::chrono::milliseconds(200), [&] { return stopped_; });
      }
    }
    cv_.notify_all();
  }
}

}  // namespace taskmesh::workers
