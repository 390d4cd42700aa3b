// Backoff: the doubling wait between tries of something that keeps failing,
// as every reconnect loop uses it (redis::Client's I/O threads,
// redis::Subscriber, redis::AutoClient's mode detection, the worker's fetch
// loop), so that none hammers a Redis that is down and each recovers at once
// when it is back.
//
// Not thread-safe: one per loop.
//
// Example:
//   Backoff backoff(absl::Milliseconds(50), absl::Seconds(2));
//   while (!Connect()) stop.WaitFor(backoff.Next());   // 50 ms, 100 ms, ... 2 s
//   backoff.Reset();
#ifndef TASKMESH_COMMON_BACKOFF_H_
#define TASKMESH_COMMON_BACKOFF_H_

#include <algorithm>

#include "absl/time/time.h"

namespace taskmesh {

class Backoff {
 public:
  Backoff(absl::Duration min, absl::Duration max) : min_(min), max_(std::max(min, max)), next_(min) {}

  // How long to wait before the next try; the wait after it doubles, up to max.
  absl::Duration Next() {
    const absl::Duration wait = next_;
    next_ = std::min(next_ * 2, max_);
    return wait;
  }

  // After a success: the next failure waits min again.
  void Reset() { next_ = min_; }

 private:
  const absl::Duration min_;
  const absl::Duration max_;
  absl::Duration next_;
};

}  // namespace taskmesh

#endif  // TASKMESH_COMMON_BACKOFF_H_
