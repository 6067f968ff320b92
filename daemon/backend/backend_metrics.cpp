#include "backend_metrics.h"

#include <algorithm>
#include <cstdio>
#include <string>

namespace flowrelay {

namespace {

constexpr const char* kEndpointNames[] = {"publish", "connect", "events", "cancel"};
constexpr const char* kOutcomeNames[] = {"ok",          "rewritten", "private",    "refused",
                                         "unavailable", "timeout",   "bad_answer", "busy"};

}  // namespace

void BackendMetrics::observe(BackendEndpoint e, double seconds) {
  Histogram& h = _latency[index(e)];
  const size_t i = static_cast<size_t>(std::lower_bound(kBounds.begin(), kBounds.end(), seconds) -
                                       kBounds.begin());
  if (i < kBounds.size()) h.buckets[i].fetch_add(1, std::memory_order_relaxed);
  h.count.fetch_add(1, std::memory_order_relaxed);
  h.sum_us.fetch_add(static_cast<uint64_t>(std::max(seconds, 0.0) * 1e6),
                     std::memory_order_relaxed);
}

void BackendMetrics::write(sdk::PrometheusText& out, uint64_t queued) const {
  using sdk::PrometheusText;
  out.family("flowrelay_backend_requests_total", "counter",
             "Backend proxy requests by endpoint and outcome");
  for (size_t e = 0; e < kEndpoints; ++e)
    for (size_t o = 0; o < kOutcomes; ++o)
      out.sample("flowrelay_backend_requests_total",
                 PrometheusText::label("endpoint", kEndpointNames[e]) + "," +
                     PrometheusText::label("outcome", kOutcomeNames[o]),
                 _requests[e][o].load(std::memory_order_relaxed));
  // One histogram family with an endpoint label (PrometheusText::histogram() writes one label
  // set per family).
  out.family("flowrelay_backend_request_seconds", "histogram",
             "Time from sending a backend request to the end of its answer");
  for (size_t e = 0; e < kEndpoints; ++e) {
    const Histogram& h = _latency[e];
    const std::string endpoint = PrometheusText::label("endpoint", kEndpointNames[e]);
    uint64_t cumulative = 0;
    for (size_t i = 0; i < kBounds.size(); ++i) {
      cumulative += h.buckets[i].load(std::memory_order_relaxed);
      char le[32];
      std::snprintf(le, sizeof le, "%g", kBounds[i]);
      out.sample("flowrelay_backend_request_seconds_bucket",
                 endpoint + "," + PrometheusText::label("le", le), cumulative);
    }
    const uint64_t count = h.count.load(std::memory_order_relaxed);
    out.sample("flowrelay_backend_request_seconds_bucket", endpoint + ",le=\"+Inf\"", count);
    out.sample("flowrelay_backend_request_seconds_sum", endpoint,
               h.sum_us.load(std::memory_order_relaxed) / 1e6);
    out.sample("flowrelay_backend_request_seconds_count", endpoint, count);
  }
  out.gauge("flowrelay_backend_queued", "Client messages waiting for the publish proxy", queued);
  out.counter("flowrelay_backend_events_dropped_total",
              "Join/leave events not delivered (buffer full or backend failed)",
              _events_dropped.load(std::memory_order_relaxed));
}

}  // namespace flowrelay
