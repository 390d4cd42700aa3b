#include "bench/loadgen/histogram.h"

#include <cstdint>

#include "gtest/gtest.h"

namespace taskmesh::bench {
namespace {

TEST(HistogramTest, EmptyReportsZero) {
  Histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.Percentile(50), 0);
  EXPECT_EQ(h.Percentile(99.9), 0);
}

TEST(HistogramTest, SmallValuesAreExact) {
  Histogram h;
  for (int v = 1; v <= 100; ++v) h.Record(v);
  EXPECT_EQ(h.Percentile(50), 50);
  EXPECT_EQ(h.Percentile(99), 99);
  EXPECT_EQ(h.Percentile(100), 100);
  EXPECT_EQ(h.max(), 100);
  EXPECT_DOUBLE_EQ(h.mean(), 50.5);
}

TEST(HistogramTest, LargeValuesKeepTheirPrecision) {
  Histogram h;
  for (int64_t v = 1000; v <= 1000000; v += 1000) h.Record(v * 1000);  // 1 us .. 1 s
  const double p50 = static_cast<double>(h.Percentile(50));
  const double p99 = static_cast<double>(h.Percentile(99));
  EXPECT_NEAR(p50, 500e6, 500e6 / 128);
  EXPECT_NEAR(p99, 990e6, 990e6 / 128);
}

TEST(HistogramTest, BucketsCoverEveryValueWithoutGaps) {
  for (int i = 1; i < Histogram::kBuckets; ++i) {
    EXPECT_EQ(Histogram::LowestEquivalent(i), Histogram::HighestEquivalent(i - 1) + 1) << i;
  }
  for (uint64_t v : {0ull, 1ull, 127ull, 128ull, 129ull, 255ull, 256ull, 1000003ull,
                     (1ull << 62) + 12345, ~0ull >> 1}) {
    const int i = Histogram::Index(v);
    EXPECT_LE(Histogram::LowestEquivalent(i), v);
    EXPECT_GE(Histogram::HighestEquivalent(i), v);
  }
}

TEST(HistogramTest, MergeAddsCounts) {
  Histogram a, b;
  a.Record(10);
  b.Record(20);
  b.Record(30);
  a.Merge(b);
  EXPECT_EQ(a.count(), 3u);
  EXPECT_EQ(a.max(), 30);
  EXPECT_EQ(a.Percentile(50), 20);
}

}  // namespace
}  // namespace taskmesh::bench
