// A transport instance on the stream library: one listening socket served by a fixed pool of
// event loops, what every such transport (transport-ws, transport-sse) does alike. A transport
// adds how it encodes a delivery (deliver: its two frames, then post_frames) and its option
// table (reconfigure).
#pragma once

#include <flowrelay/plugin.hpp>

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "event_loop.h"
#include "transport_context.h"

namespace flowrelay::stream {

class StreamServer : public sdk::Transport {
 public:
  StreamServer(sdk::TransportHost host, StreamOptions options, const TransportIdentity& who,
               const flowrelay_option* given, size_t n);
  ~StreamServer() override;

  // Binds and starts the loops; throws with the reason on failure.
  void start() override;
  void stop(uint32_t timeout_ms) override;
  void subscribed(std::string_view channel, flowrelay_status status) override;
  // Summed over the loops (loop_metrics.cpp).
  void metrics(sdk::PrometheusText& out) const override;

 protected:
  // The message's data as clients may get it: valid UTF-8 (`repaired` holds a repaired copy).
  std::string_view client_data(const flowrelay_message& m, std::string& repaired);
  // Hands the plain and the envelope frame (either may be null; one reference each) to every
  // loop.
  void post_frames(SharedFrame* plain, SharedFrame* envelope, const flowrelay_message& m);
  // Applies `fresh`'s live limits and access rules; throws sdk::OptionError with nothing applied.
  void apply_live(const StreamOptions& fresh);
  bool running() const { return _running.load(std::memory_order_relaxed); }

  TransportContext _ctx;
  const sdk::OptionValues _given;  // the options as started, for reload diffs

 private:
  int _listen_fd = -1;
  std::vector<std::unique_ptr<EventLoop>> _loops;
  std::atomic<bool> _running{false};
  std::atomic<uint64_t> _utf8_repaired{0};
};

}  // namespace flowrelay::stream
