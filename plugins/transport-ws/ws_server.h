// The transport instance: one listening socket served by a fixed pool of event loops.
#pragma once

#include <flowrelay/plugin.hpp>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "event_loop.h"
#include "transport_context.h"
#include "ws_frame.h"
#include "ws_options.h"

namespace flowrelay::ws {

class WsServer final : public sdk::Transport {
 public:
  // Parses the options (throws sdk::OptionError); no I/O yet.
  WsServer(sdk::TransportHost host, const flowrelay_option* options, size_t n);
  ~WsServer() override;

  // Binds and starts the loops; throws with the reason on failure.
  void start() override;
  void stop(uint32_t timeout_ms) override;
  // [any thread] Encodes the frames once (raw text for message-lane messages, JSON when
  // envelope clients are connected) and hands them to every loop.
  void deliver(std::string_view channel, const flowrelay_message& message) override;
  void subscribed(std::string_view channel, flowrelay_status status) override;
  // Summed over the loops (plugins/common/stream/loop_metrics.cpp).
  void metrics(sdk::PrometheusText& out) const override;
  // Applies the live limits and access rules; returns the restart-only keys that changed.
  std::string reconfigure(const flowrelay_option* options, size_t n) override;

 private:
  TransportContext _ctx;
  const sdk::OptionValues _given;  // the options as started, for reload diffs
  int _listen_fd = -1;
  std::vector<std::unique_ptr<EventLoop>> _loops;
  std::atomic<bool> _running{false};
  std::atomic<uint64_t> _utf8_repaired{0};
};

}  // namespace flowrelay::ws
