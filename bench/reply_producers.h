// Producers of flowrelay-reply-bench: backends streaming replies through the publish API
// (POST /api/publish, keep-alive), one thread per connection, one request in flight on each, so
// a reply's steps reach the broker in order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "reply_http.h"

namespace flowrelay::bench {

struct ProducerTotals {
  uint64_t requests = 0, deltas = 0, ends = 0, errors = 0, duplicates = 0;
  uint64_t deltas_in_window = 0;     // deltas sent inside [window_from, window_to)
  double max_behind_ms = 0;          // how late the latest tick started
  std::vector<uint64_t> per_stream;  // deltas accepted per stream (conversation)
  std::string first_error;
};

// Paced replies: `streams` conversations (conv_prefix + index), each streaming replies of
// `reply_deltas` deltas at `rate` deltas/s, then an end and the next reply ("r<k>"). Stream s
// belongs to connection s % producers on apis[connection % apis.size()]; per tick a connection
// sends its streams' steps in requests of `batch` items ({"messages":[...]}; 1: single bodies),
// connection p's ticks p / producers of a period after connection 0's.
// Delta data: "<CLOCK_MONOTONIC ns at send>;". Produces from start_ns until stop_ns, then ends
// every reply still open. Blocks until done.
struct PacedPlan {
  std::vector<Endpoint> apis;
  std::string key;
  std::string conv_prefix;
  uint32_t streams = 1000, producers = 20, batch = 50, reply_deltas = 250;
  double rate = 50;
  int64_t start_ns = 0, stop_ns = 0, window_from = 0, window_to = 0;
};
ProducerTotals run_paced(const PacedPlan& plan);

// As fast as the API answers: `conns` connections to one API, each streaming its own reply in
// requests of `batch` deltas (1: single bodies) for `seconds`; replies of `reply_deltas` deltas
// (then an end in the same request and the next reply). Delta data: `token`.
struct FloodPlan {
  Endpoint api;
  std::string key;
  std::string conv_prefix;
  uint32_t conns = 8, batch = 1, reply_deltas = 10000;
  double seconds = 10;
  std::string token = "tok12 ";
};
ProducerTotals run_flood(const FloodPlan& plan);

// One reply of `deltas` deltas "w<i> " in conversation `conv` through `api`, in requests of
// `batch`; returns the totals (no end is sent: end_reply does).
ProducerTotals produce_reply(const Endpoint& api, const std::string& key, const std::string& conv,
                             const std::string& reply, uint64_t deltas, uint32_t batch);
// Ends `reply`; returns the HTTP status.
int end_reply(const Endpoint& api, const std::string& key, const std::string& conv,
              const std::string& reply);

}  // namespace flowrelay::bench
