// What the backend proxy counts for /metrics: requests by endpoint and outcome, their latency,
// and the join/leave events it could not deliver.
#pragma once

#include <flowrelay/plugin_metrics.hpp>

#include <array>
#include <atomic>
#include <cstdint>

namespace flowrelay {

enum class BackendEndpoint { Publish, Connect, Events, Cancel, Count };
enum class BackendOutcome {
  Ok,           // publish: published as sent; connect: admitted; events, cancel: delivered
  Rewritten,    // publish: the backend's data published instead
  Private,      // publish: accepted, not relayed
  Refused,      // a 4xx (connect: 401/403)
  Unavailable,  // connection refused or broken, 5xx, the broker refused the publish
  Timeout,      // no answer within timeout_ms
  BadAnswer,    // not JSON, not an object, wrong field types, over max_answer_bytes, odd status
  Busy,         // max_queued reached: not sent to the backend at all
  Count
};

class BackendMetrics {
 public:
  void count(BackendEndpoint e, BackendOutcome o) {
    _requests[index(e)][static_cast<size_t>(o)].fetch_add(1, std::memory_order_relaxed);
  }
  // A request that reached the backend (or failed trying), with its duration.
  void observe(BackendEndpoint e, double seconds);
  void events_dropped(uint64_t n) { _events_dropped.fetch_add(n, std::memory_order_relaxed); }
  uint64_t requests(BackendEndpoint e, BackendOutcome o) const {
    return _requests[index(e)][static_cast<size_t>(o)].load(std::memory_order_relaxed);
  }

  // Writes the families; `queued`: client messages waiting for the backend now.
  void write(sdk::PrometheusText& out, uint64_t queued) const;

 private:
  static constexpr std::array<double, 12> kBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                     0.1,   0.25,   0.5,   1,    2.5,   5};
  static constexpr size_t kEndpoints = static_cast<size_t>(BackendEndpoint::Count);
  static constexpr size_t kOutcomes = static_cast<size_t>(BackendOutcome::Count);
  static size_t index(BackendEndpoint e) { return static_cast<size_t>(e); }

  struct Histogram {
    std::array<std::atomic<uint64_t>, kBounds.size()> buckets{};  // not cumulative
    std::atomic<uint64_t> count{0};
    std::atomic<uint64_t> sum_us{0};
  };
  std::array<std::array<std::atomic<uint64_t>, kOutcomes>, kEndpoints> _requests{};
  std::array<Histogram, kEndpoints> _latency{};
  std::atomic<uint64_t> _events_dropped{0};
};

}  // namespace flowrelay
