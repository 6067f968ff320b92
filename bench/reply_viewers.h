// Envelope viewers of flowrelay-reply-bench: thousands of WebSocket connections (subprotocol
// flowrelay.v1) on T epoll loops, each checking the reply frames it is sent: per reply, deltas
// with seq (or a merged delta's from) = last + 1, an end after the last delta with stats.tokens
// = that seq; every skipped seq is a gap, every seq seen again a duplicate.
//
// Delta data is "<CLOCK_MONOTONIC ns at send>;" (a merged delta: several of them), so every delta
// gives one latency sample: receive time (one clock read per read batch) - send time.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "latency_histogram.h"
#include "reply_http.h"

namespace flowrelay::bench {

struct ViewerSpec {
  uint32_t endpoint = 0;  // index into the pool's endpoints
  std::string path;       // e.g. "/ws/conv7" or "/ws/conv7?since=12&epoch=x"
};

// One frame as a recording viewer saw it.
struct FrameRecord {
  std::string type;
  uint64_t seq = 0, offset = 0;
  size_t wire_bytes = 0;  // WebSocket header + payload
  size_t data_bytes = 0;  // the "data" string's length
  std::string epoch;
  int64_t at_ns = 0;  // CLOCK_MONOTONIC when its read batch arrived
};

struct ViewerTotals {
  uint32_t open = 0, failed = 0, closed_early = 0;
  uint64_t frames = 0, deltas = 0, merged_frames = 0, ends = 0, bad_ends = 0;
  uint64_t duplicates = 0, gaps = 0, foreign = 0;
  uint64_t in_window = 0;  // deltas sent inside the window (their latency is recorded)
  LatencyHistogram latency;
  std::string first_error;
};

class ViewerPool {
 public:
  // `record`: keep every frame (resume measurements, few viewers).
  ViewerPool(std::vector<Endpoint> endpoints, std::vector<ViewerSpec> viewers, uint32_t threads,
             bool record);
  ~ViewerPool();
  // Opens every connection (at most `batch` handshakes at once); returns when all are open or
  // failed, or after `timeout_s`.
  void connect(double timeout_s, uint32_t batch = 500);
  // Deltas whose send time lies in [from, to) are timed and counted in in_window.
  void set_window(int64_t from_ns, int64_t to_ns);
  // Live sums (relaxed): deltas received, ends received, "resumed" frames received.
  uint64_t deltas() const;
  uint64_t ends() const;
  uint64_t resumed() const;
  // Per viewer: deltas received once (the sum of the replies' last seqs).
  std::vector<uint64_t> received_per_viewer() const;  // after stop()
  // Closes every connection and joins the loops; totals() and records() are final after it.
  void stop();
  ViewerTotals totals() const;
  const std::vector<FrameRecord>& records(size_t viewer) const;

  struct Conn;
  struct Loop;

 private:
  std::vector<Endpoint> _endpoints;
  std::vector<ViewerSpec> _specs;
  std::vector<std::unique_ptr<Loop>> _loops;
  std::vector<std::thread> _threads;
  bool _stopped = false;
};

}  // namespace flowrelay::bench
