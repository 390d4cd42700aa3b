#include "common/stop_signal.h"

#include <thread>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace taskmesh {
namespace {

TEST(StopSignalTest, TimesOutWhenNotNotified) {
  StopSignal stop;
  const absl::Time start = absl::Now();
  EXPECT_FALSE(stop.WaitFor(absl::Milliseconds(30)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(30));
  EXPECT_FALSE(stop.notified());
}

TEST(StopSignalTest, WakesWaitersAtOnceAndStaysNotified) {
  StopSignal stop;
  std::thread waiter([&] { EXPECT_TRUE(stop.WaitFor(absl::Seconds(30))); });
  stop.Notify();
  waiter.join();
  EXPECT_TRUE(stop.notified());
  EXPECT_TRUE(stop.WaitFor(absl::Seconds(30)));
  EXPECT_TRUE(stop.WaitFor(absl::ZeroDuration()));
}

}  // namespace
}  // namespace taskmesh
