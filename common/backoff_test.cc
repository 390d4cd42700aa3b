#include "common/backoff.h"

#include "gtest/gtest.h"

namespace taskmesh {
namespace {

TEST(BackoffTest, DoublesUpToTheMaximumAndStartsOverAfterReset) {
  Backoff b(absl::Milliseconds(50), absl::Milliseconds(300));
  EXPECT_EQ(b.Next(), absl::Milliseconds(50));
  EXPECT_EQ(b.Next(), absl::Milliseconds(100));
  EXPECT_EQ(b.Next(), absl::Milliseconds(200));
  EXPECT_EQ(b.Next(), absl::Milliseconds(300));
  EXPECT_EQ(b.Next(), absl::Milliseconds(300));
  b.Reset();
  EXPECT_EQ(b.Next(), absl::Milliseconds(50));
}

TEST(BackoffTest, AMaximumBelowTheMinimumIsTheMinimum) {
  Backoff b(absl::Seconds(1), absl::Milliseconds(10));
  EXPECT_EQ(b.Next(), absl::Seconds(1));
  EXPECT_EQ(b.Next(), absl::Seconds(1));
}

}  // namespace
}  // namespace taskmesh
