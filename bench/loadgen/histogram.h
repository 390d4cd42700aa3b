// Histogram: a lock-free, HDR-style latency histogram (log-linear buckets).
//
// Values (nanoseconds) are bucketed by their power of two and, within it, by
// the next kSubBits bits, so every recorded value is kept to within 1/128
// (0.8%) of its true value from 1 ns to 2^63 ns, in a fixed 64 KiB table.
// Record() is one relaxed atomic increment: safe from any number of threads.
//
// Example:
//   Histogram h;
//   h.Record(absl::ToInt64Nanoseconds(elapsed));
//   int64_t p99 = h.Percentile(99.0);
#ifndef TASKMESH_BENCH_LOADGEN_HISTOGRAM_H_
#define TASKMESH_BENCH_LOADGEN_HISTOGRAM_H_

#include <array>
#include <atomic>
#include <cstdint>

namespace taskmesh::bench {

class Histogram {
 public:
  static constexpr int kSubBits = 7;
  static constexpr int kSub = 1 << kSubBits;
  static constexpr int kBuckets = (64 - kSubBits + 1) * kSub;

  Histogram() { Reset(); }
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  void Record(int64_t value) {
    if (value < 0) value = 0;
    counts_[Index(static_cast<uint64_t>(value))].fetch_add(1, std::memory_order_relaxed);
    total_.fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(static_cast<uint64_t>(value), std::memory_order_relaxed);
    uint64_t prev = max_.load(std::memory_order_relaxed);
    while (static_cast<uint64_t>(value) > prev &&
           !max_.compare_exchange_weak(prev, static_cast<uint64_t>(value),
                                       std::memory_order_relaxed)) {
    }
  }

  void Reset() {
    for (auto& c : counts_) c.store(0, std::memory_order_relaxed);
    total_ = 0;
    sum_ = 0;
    max_ = 0;
  }

  // Adds `other`'s counts to this one.
  void Merge(const Histogram& other) {
    for (int i = 0; i < kBuckets; ++i) {
      counts_[i].fetch_add(other.counts_[i].load(std::memory_order_relaxed),
                           std::memory_order_relaxed);
    }
    total_ += other.total_.load();
    sum_ += other.sum_.load();
    if (other.max_.load() > max_.load()) max_ = other.max_.load();
  }

  uint64_t count() const { return total_.load(); }
  int64_t max() const { return static_cast<int64_t>(max_.load()); }
  double mean() const {
    const uint64_t n = total_.load();
    return n == 0 ? 0.0 : static_cast<double>(sum_.load()) / static_cast<double>(n);
  }

  // The smallest recorded value v (to bucket precision) such that at least
  // `percent`% of the values are <= v; 0 when empty.
  int64_t Percentile(double percent) const {
    const uint64_t n = total_.load();
    if (n == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(percent / 100.0 * static_cast<double>(n) + 0.5);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    uint64_t seen = 0;
    for (int i = 0; i < kBuckets; ++i) {
      seen += counts_[i].load(std::memory_order_relaxed);
      if (seen >= rank) {
        const int64_t hi = static_cast<int64_t>(HighestEquivalent(i));
        return hi < max() ? hi : max();
      }
    }
    return max();
  }

  // Bucket layout, public for tests.
  static int Index(uint64_t v) {
    if (v < static_cast<uint64_t>(kSub)) return static_cast<int>(v);
    const int msb = 63 - __builtin_clzll(v);
    const int shift = msb - kSubBits;
    return (shift + 1) * kSub + static_cast<int>((v >> shift) & (kSub - 1));
  }
  static uint64_t LowestEquivalent(int index) {
    if (index < kSub) return static_cast<uint64_t>(index);
    const int shift = index / kSub - 1;
    return (static_cast<uint64_t>(kSub + index % kSub)) << shift;
  }
  static uint64_t HighestEquivalent(int index) {
    if (index < kSub) return static_cast<uint64_t>(index);
    const int shift = index / kSub - 1;
    return LowestEquivalent(index) + ((uint64_t{1} << shift) - 1);
  }

 private:
  std::array<std::atomic<uint64_t>, kBuckets> counts_;
  std::atomic<uint64_t> total_{0};
  std::atomic<uint64_t> sum_{0};
  std::atomic<uint64_t> max_{0};
};

}  // namespace taskmesh::bench

#endif  // TASKMESH_BENCH_LOADGEN_HISTOGRAM_H_
