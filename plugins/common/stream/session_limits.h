// What the sessions of a transport read on every frame (the limits a reload may change) and
// what each loop counts; shared by the Session, the event loops and /metrics.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "stream_options.h"

namespace flowrelay::stream {

// Read by the loops on every frame: relaxed atomics, so a reload is seen at the next frame.
struct LiveLimits {
  std::atomic<uint64_t> max_message_size;
  std::atomic<uint64_t> max_outbound_bytes;
  std::atomic<uint32_t> max_header_size;
  std::atomic<uint32_t> handshake_timeout_ms;
  std::atomic<uint32_t> close_timeout_ms;
  std::atomic<uint32_t> idle_timeout_ms;
  std::atomic<uint32_t> max_conversation_id_length;
  std::atomic<uint64_t> max_connections;
  std::atomic<uint64_t> max_connections_per_ip;
  std::atomic<double> publish_rate;
  std::atomic<double> publish_burst;
  std::atomic<uint32_t> retry_ms;  // transport-sse: the reconnect delay told to EventSource

  explicit LiveLimits(const StreamOptions& o) { apply(o); }
  void apply(const StreamOptions& o) {
    max_message_size = o.max_message_size;
    max_outbound_bytes = o.max_outbound_bytes;
    max_header_size = o.max_header_size;
    handshake_timeout_ms = o.handshake_timeout_ms;
    close_timeout_ms = o.close_timeout_ms;
    idle_timeout_ms = o.idle_timeout_ms;
    max_conversation_id_length = o.max_conversation_id_length;
    max_connections = o.max_connections;
    max_connections_per_ip = o.max_connections_per_ip;
    publish_rate = o.publish_rate;
    publish_burst = o.publish_burst;
    retry_ms = o.retry_ms;
  }
};

// A connection's publish_rate token bucket (publish_burst deep), on the session's clock.
struct PublishBucket {
  float tokens = 0;
  uint32_t at_ms = 0;  // last refill (wraps after 49 days: harmless)

  void fill(const LiveLimits& l, int64_t now_ms) {
    tokens = static_cast<float>(l.publish_burst.load(std::memory_order_relaxed));
    at_ms = static_cast<uint32_t>(now_ms);
  }
  // True if a message may be published now (and takes its token).
  bool take(const LiveLimits& l, int64_t now_ms) {
    const double rate = l.publish_rate.load(std::memory_order_relaxed);
    if (rate <= 0) return true;
    const double burst = l.publish_burst.load(std::memory_order_relaxed);
    const auto now = static_cast<uint32_t>(now_ms);
    const double refill = (now - at_ms) * rate / 1000.0;
    tokens = static_cast<float>(std::min(burst, tokens + refill));
    at_ms = now;
    if (tokens < 1.0f) return false;
    tokens -= 1.0f;
    return true;
  }
};

// Delivery latency buckets (seconds): from the message reaching the transport to its frame
// being fully handed to the kernel for one client.
inline constexpr double kLatencyBuckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                             0.01,   0.025,   0.05,   0.1,   0.25,   1.0};
inline constexpr int kLatencyBucketCount = sizeof(kLatencyBuckets) / sizeof(kLatencyBuckets[0]);

// One loop's counters. Each has a single writer (its loop), so an increment is a relaxed load
// and store, not a locked read-modify-write; /metrics sums them from another thread.
struct LoopStats {
  struct Counter {
    std::atomic<uint64_t> v{0};
    void add(uint64_t n = 1) {
      v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    uint64_t get() const { return v.load(std::memory_order_relaxed); }
  };
  Counter connections_total;  // accepted (open = total - closed)
  Counter connections_closed;
  Counter handshakes_rejected;
  Counter messages_in;
  Counter bytes_in;
  Counter deliveries;  // frames queued to clients (fan-out)
  Counter bytes_out;
  Counter slow_consumer_closes;
  Counter protocol_closes;      // closed by us for a protocol violation
  Counter publish_errors;       // the broker refused a client's message (client told: 1013/1011)
  Counter limit_rejections;     // refused at accept: max_connections / max_connections_per_ip
  Counter access_rejections;    // refused at the handshake: 401 / 403
  Counter idle_closes;          // no answer to our ping within idle_timeout_ms
  Counter rate_limited;         // closed 1008 for exceeding publish_rate
  Counter forbidden_publishes;  // closed 1008: the token does not grant publishing
  Counter log_messages_in;      // envelope publishes on the log lane
  Counter log_frames_shed;      // log-lane frames dropped for a client falling behind
  Counter envelope_errors;      // bad envelope frames answered with {"type":"error"}
  Counter resumes_recovered;    // resume: history covered the gap
  Counter resumes_unrecovered;  // resume: recovered:false
  Counter acks_sent;            // envelope {"type":"ack"} frames (re-acks of resends included)
  Counter publish_resends;      // publishes whose id was in flight or acked: not published again
  Counter refused_4xx;          // client messages not published, by the code the client got
  Counter refused_500;
  Counter refused_501;
  Counter refused_503;
  Counter deltas_merged;  // reply deltas merged into the queued one of a client falling behind
  Counter latency_count;
  Counter latency_sum_ns;
  Counter latency_buckets[kLatencyBucketCount];

  void observe_latency_ns(int64_t ns) {
    latency_count.add();
    latency_sum_ns.add(static_cast<uint64_t>(ns));
    const double s = ns / 1e9;
    for (int i = 0; i < kLatencyBucketCount; ++i)
      if (s <= kLatencyBuckets[i]) {
        latency_buckets[i].add();
        break;
      }
  }

  // flowrelay_relay_latency_seconds: deliver() to the first socket write of a message's frame
  // on this loop (once per message per loop, shared_frame.h arm_sample).
  struct Histogram {
    Counter count, sum_ns, buckets[kLatencyBucketCount];
    void observe_ns(int64_t ns) {
      count.add();
      sum_ns.add(static_cast<uint64_t>(ns));
      const double s = ns / 1e9;
      for (int i = 0; i < kLatencyBucketCount; ++i)
        if (s <= kLatencyBuckets[i]) {
          buckets[i].add();
          break;
        }
    }
  };
  Histogram relay_latency;
};

}  // namespace flowrelay::stream
