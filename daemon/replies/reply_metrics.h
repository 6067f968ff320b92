// What the daemon counts about reply streams for /metrics (docs/PROTOCOL.md, "Metrics"): time to
// first token, inter-token gaps, deltas and bytes per reply, replies by how they ended, stalls.
// Observed by the node whose publish_reply the broker accepted (the delivered step's
// origin.node is this node), so that a cluster's sum counts each reply once.
#pragma once

#include <flowrelay/plugin_metrics.hpp>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace flowrelay {

// A Prometheus histogram with fixed bounds, updated lock-free from any thread.
template <size_t N>
class AtomicHistogram {
 public:
  explicit constexpr AtomicHistogram(const std::array<double, N>& bounds) : _bounds(bounds) {}

  void observe(double value) {
    size_t i = 0;
    while (i < N && value > _bounds[i]) ++i;
    if (i < N) _buckets[i].fetch_add(1, std::memory_order_relaxed);
    _count.fetch_add(1, std::memory_order_relaxed);
    // The sum in millionths: atomics of double need a CAS loop; this precision is plenty.
    _sum_micro.fetch_add(static_cast<uint64_t>(value > 0 ? value * 1e6 : 0),
                         std::memory_order_relaxed);
  }
  uint64_t count() const { return _count.load(std::memory_order_relaxed); }

  void write(sdk::PrometheusText& out, std::string_view name, std::string_view help) const {
    std::array<uint64_t, N> counts{};
    for (size_t i = 0; i < N; ++i) counts[i] = _buckets[i].load(std::memory_order_relaxed);
    out.histogram(name, help, _bounds.data(), counts.data(), N,
                  static_cast<double>(_sum_micro.load(std::memory_order_relaxed)) / 1e6, count());
  }

 private:
  const std::array<double, N> _bounds;
  std::array<std::atomic<uint64_t>, N> _buckets{};  // not cumulative
  std::atomic<uint64_t> _count{0};
  std::atomic<uint64_t> _sum_micro{0};
};

class ReplyMetrics {
 public:
  // An END this node published (stats as the broker measured them; ttft_ms < 0: no delta).
  void ended(std::string_view reason, int64_t ttft_ms, uint64_t tokens, uint64_t bytes);
  // The gap between two consecutive deltas of a reply, both accepted through this node.
  void inter_token(double seconds) { _inter_token.observe(seconds); }
  void stalled() { _stalls.fetch_add(1, std::memory_order_relaxed); }

  // `open`: replies watched now.
  void write(sdk::PrometheusText& out, uint64_t open) const;

 private:
  static constexpr std::array<double, 12> kTtft = {0.05, 0.1, 0.25, 0.5, 0.75, 1,
                                                   1.5,  2,   3,    5,   10,   30};
  static constexpr std::array<double, 12> kGap = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                  0.1,   0.25,   0.5,   1,    2.5,   10};
  static constexpr std::array<double, 10> kDeltas = {1, 5, 10, 25, 50, 100, 250, 500, 1000, 5000};
  static constexpr std::array<double, 10> kBytes = {64,    256,    1024,    4096,    16384,
                                                    65536, 262144, 1 << 20, 4 << 20, 16 << 20};
  static constexpr std::array<std::string_view, 4> kReasons = {"done", "error", "cancelled",
                                                               "producer_lost"};

  AtomicHistogram<kTtft.size()> _ttft{kTtft};
  AtomicHistogram<kGap.size()> _inter_token{kGap};
  AtomicHistogram<kDeltas.size()> _deltas{kDeltas};
  AtomicHistogram<kBytes.size()> _bytes{kBytes};
  std::array<std::atomic<uint64_t>, kReasons.size() + 1> _replies{};  // + "other"
  std::atomic<uint64_t> _stalls{0};
};

}  // namespace flowrelay
