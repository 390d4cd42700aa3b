// StopSignal: a one-shot "stop now" flag whose timed waits run on the
// monotonic clock.
//
// Why not absl::Notification: Debian's Abseil (20220623) turns timed waits
// into absolute wall-clock deadlines, so a clock stepped backwards (or a
// process under faketime) stretches every wait by the step: a heartbeat
// loop waiting that way lets its leases expire. std::condition_variable's
// wait_for measures on steady_clock.
//
// Thread-safe.
//
// Example:
//   StopSignal stop;
//   std::thread t([&] { while (!stop.WaitFor(absl::Seconds(1))) Heartbeat(); });
//   stop.Notify();
//   t.join();
#ifndef TASKMESH_COMMON_STOP_SIGNAL_H_
#define TASKMESH_COMMON_STOP_SIGNAL_H_

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "absl/time/time.h"

namespace taskmesh {

class StopSignal {
 public:
  void Notify() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      notified_ = true;
    }
    cv_.notify_all();
  }

  bool notified() const {
    std::lock_guard<std::mutex> lock(mu_);
    return notified_;
  }

  // Waits up to `timeout`, measured on the monotonic clock; true once
  // notified (at once if it already was).
  bool WaitFor(absl::Duration timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    if (timeout <= absl::ZeroDuration()) return notified_;
    return cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout), [this] { return notified_; });
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool notified_ = false;
};

}  // namespace taskmesh

#endif  // TASKMESH_COMMON_STOP_SIGNAL_H_
