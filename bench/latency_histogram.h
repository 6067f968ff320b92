// Log-linear latency histogram (HdrHistogram-like) for flowrelay-bench: one per thread, no
// allocation after construction, merged at the end.
//
// Unit 1 µs. Exact below 256 µs, then 128 sub-buckets per power of two (relative error under
// 0.8 %) up to 2^24 µs (16.7 s); larger values land in the last bucket. The exact maximum is
// kept separately in nanoseconds.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>

namespace flowrelay::bench {

class LatencyHistogram {
 public:
  static constexpr int kSubBits = 7;
  static constexpr uint64_t kHalf = uint64_t{1} << kSubBits;  // sub-buckets per octave
  static constexpr uint64_t kLinear = 2 * kHalf;              // exact region [0, kLinear)
  static constexpr int kMaxBits = 24;                         // values < 2^24 µs
  static constexpr size_t kBuckets = kLinear + (kMaxBits - kSubBits - 1) * kHalf;

  void record_ns(int64_t ns) {
    if (ns < 0) ns = 0;  // clocks of two processes cannot disagree here, but be safe
    const auto u = static_cast<uint64_t>(ns);
    _max_ns = std::max(_max_ns, u);
    ++_counts[index_of(u / 1000)];
    ++_total;
  }

  void merge(const LatencyHistogram& o) {
    for (size_t i = 0; i < kBuckets; ++i) _counts[i] += o._counts[i];
    _total += o._total;
    _max_ns = std::max(_max_ns, o._max_ns);
  }

  uint64_t count() const { return _total; }
  double max_ms() const { return static_cast<double>(_max_ns) / 1e6; }

  // The value of rank floor(q * count) (0-based, as bench.js picks from its sorted array), as the
  // middle of its bucket, in milliseconds. Returns -1 when empty.
  double quantile_ms(double q) const {
    if (_total == 0) return -1;
    auto rank = static_cast<uint64_t>(q * static_cast<double>(_total));
    if (rank >= _total) rank = _total - 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += _counts[i];
      if (seen > rank) {
        const double mid_us =
            static_cast<double>(lower_us(i)) + static_cast<double>(width_us(i)) / 2;
        return std::min(mid_us / 1000.0, max_ms());
      }
    }
    return max_ms();
  }

  static size_t index_of(uint64_t us) {
    if (us < kLinear) return static_cast<size_t>(us);
    if (us >= (uint64_t{1} << kMaxBits)) return kBuckets - 1;
    const int msb = 63 - __builtin_clzll(us);  // >= kSubBits + 1
    const int shift = msb - kSubBits;
    const uint64_t sub = us >> shift;  // in [kHalf, 2 * kHalf)
    return static_cast<size_t>(kLinear + static_cast<uint64_t>(msb - kSubBits - 1) * kHalf +
                               (sub - kHalf));
  }
  static uint64_t lower_us(size_t i) {
    if (i < kLinear) return i;
    const uint64_t k = i - kLinear;
    const int shift = static_cast<int>(k / kHalf) + 1;
    return (kHalf + k % kHalf) << shift;
  }
  static uint64_t width_us(size_t i) {
    if (i < kLinear) return 1;
    return uint64_t{1} << (static_cast<int>((i - kLinear) / kHalf) + 1);
  }

 private:
  std::array<uint64_t, kBuckets> _counts{};
  uint64_t _total = 0;
  uint64_t _max_ns = 0;
};

}  // namespace flowrelay::bench
