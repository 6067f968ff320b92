// The loops' counters of one transport, summed, in the Prometheus text format.
#include "loop_metrics.h"

namespace flowrelay::stream {

namespace {

// Every plain counter the loops keep, as exported: one table, so a new counter is one line.
// help == nullptr: another sample (label value) of the metric in the row before.
struct CounterExport {
  LoopStats::Counter LoopStats::*field;
  const char* name;
  const char* help;
  const char* labels;
};
constexpr CounterExport kCounters[] = {
    {&LoopStats::connections_total, "flowrelay_connections_total", "Connections accepted", ""},
    {&LoopStats::handshakes_rejected, "flowrelay_connections_rejected_total",
     "Connections refused at the handshake or request (HTTP error)", ""},
    {&LoopStats::messages_in, "flowrelay_messages_in_total", "Messages received from clients",
     "lane=\"message\""},
    {&LoopStats::bytes_in, "flowrelay_bytes_in_total", "Payload bytes received from clients",
     "lane=\"message\""},
    {&LoopStats::log_messages_in, "flowrelay_messages_in_total", nullptr, "lane=\"log\""},
    {&LoopStats::deliveries, "flowrelay_deliveries_total",
     "Frames queued to clients (fan-out, both lanes, history replays included)", ""},
    {&LoopStats::bytes_out, "flowrelay_bytes_out_total", "Frame bytes queued to clients", ""},
    {&LoopStats::log_frames_shed, "flowrelay_log_frames_shed_total",
     "Log-lane frames dropped for envelope clients past half of max_outbound_bytes", ""},
    {&LoopStats::envelope_errors, "flowrelay_envelope_errors_total",
     "Envelope frames refused with {\"type\":\"error\"} (bad JSON, type, lane or data)", ""},
    {&LoopStats::resumes_recovered, "flowrelay_resumes_total",
     "Resumes (?since=) answered; recovered=false when history no longer covered the gap",
     "recovered=\"true\""},
    {&LoopStats::resumes_unrecovered, "flowrelay_resumes_total", nullptr, "recovered=\"false\""},
    {&LoopStats::slow_consumer_closes, "flowrelay_slow_consumer_closes_total",
     "Clients disconnected for not reading (max_outbound_bytes)", ""},
    {&LoopStats::protocol_closes, "flowrelay_protocol_closes_total",
     "Clients closed for a protocol violation (1002, 1003, 1007, 1009)", ""},
    {&LoopStats::publish_errors, "flowrelay_publish_errors_total",
     "Client messages the broker or the daemon could not publish (the client was told)", ""},
    {&LoopStats::refused_4xx, "flowrelay_publishes_refused_total",
     "Client messages not published, by the code the client was told (4xx: the backend "
     "refused it, 503 unavailable, 501 lane not supported, 500 other)",
     "code=\"4xx\""},
    {&LoopStats::refused_500, "flowrelay_publishes_refused_total", nullptr, "code=\"500\""},
    {&LoopStats::refused_501, "flowrelay_publishes_refused_total", nullptr, "code=\"501\""},
    {&LoopStats::refused_503, "flowrelay_publishes_refused_total", nullptr, "code=\"503\""},
    {&LoopStats::acks_sent, "flowrelay_acks_total",
     "Envelope ack frames sent for publishes with an id (re-acks of resends included)", ""},
    {&LoopStats::publish_resends, "flowrelay_publish_resends_total",
     "Envelope publishes whose id was in flight or already acked: answered, not published again",
     ""},
    {&LoopStats::limit_rejections, "flowrelay_limit_rejections_total",
     "Connections refused by max_connections (503) or max_connections_per_ip (429)", ""},
    {&LoopStats::access_rejections, "flowrelay_access_rejections_total",
     "Handshakes refused by the access policy (401 token, 403 origin or conversation)", ""},
    {&LoopStats::idle_closes, "flowrelay_idle_closes_total",
     "Clients closed (1001) for not answering a ping within idle_timeout_ms (WebSocket)", ""},
    {&LoopStats::rate_limited, "flowrelay_rate_limited_total",
     "Publishes past publish_rate (WebSocket: closed 1008; SSE POST: answered 429)", ""},
    {&LoopStats::forbidden_publishes, "flowrelay_forbidden_publishes_total",
     "Clients closed (1008) for publishing without the token's publish right", ""},
    {&LoopStats::deltas_merged, "flowrelay_deltas_merged_total",
     "Reply deltas merged into the queued delta of an envelope client falling behind", ""},
};

}  // namespace

void write_loop_metrics(sdk::PrometheusText& out,
                        const std::vector<std::unique_ptr<EventLoop>>& loops,
                        std::string_view prefix, uint64_t utf8_repaired) {
  // The families are named flowrelay_*; another transport's prefix replaces "flowrelay_".
  auto name = [prefix](std::string_view n) {
    return std::string(prefix) + std::string(n.substr(std::string_view("flowrelay_").size()));
  };
  auto total = [&](auto&& counter_of) {
    uint64_t n = 0;
    for (const auto& loop : loops) n += counter_of(loop->stats()).get();
    return n;
  };
  auto field = [&](LoopStats::Counter LoopStats::*f) {
    return total([f](const LoopStats& s) -> const LoopStats::Counter& { return s.*f; });
  };
  out.gauge(name("flowrelay_connections"), "Connections open now",
            field(&LoopStats::connections_total) - field(&LoopStats::connections_closed));
  for (const auto& c : kCounters) {
    if (c.help) out.family(name(c.name), "counter", c.help);
    out.sample(name(c.name), c.labels, field(c.field));
  }
  out.counter(name("flowrelay_utf8_repaired_total"),
              "Messages from the broker that were not valid UTF-8, sent with U+FFFD in place",
              utf8_repaired);
  uint64_t buckets[kLatencyBucketCount];
  for (int i = 0; i < kLatencyBucketCount; ++i)
    buckets[i] = total(
        [i](const LoopStats& s) -> const LoopStats::Counter& { return s.latency_buckets[i]; });
  out.histogram(name("flowrelay_delivery_latency_seconds"),
                "From a message reaching the transport to its frame written for one client",
                kLatencyBuckets, buckets, kLatencyBucketCount,
                double(field(&LoopStats::latency_sum_ns)) / 1e9, field(&LoopStats::latency_count));
  for (int i = 0; i < kLatencyBucketCount; ++i)
    buckets[i] = total([i](const LoopStats& s) -> const LoopStats::Counter& {
      return s.relay_latency.buckets[i];
    });
  out.histogram(
      name("flowrelay_relay_latency_seconds"),
      "From a message reaching the transport (deliver) to the first socket write of its frame "
      "on each I/O thread",
      kLatencyBuckets, buckets, kLatencyBucketCount,
      double(total(
          [](const LoopStats& s) -> const LoopStats::Counter& { return s.relay_latency.sum_ns; })) /
          1e9,
      total([](const LoopStats& s) -> const LoopStats::Counter& { return s.relay_latency.count; }));
}

}  // namespace flowrelay::stream
