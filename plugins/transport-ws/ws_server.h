// The transport instance: one listening socket served by a fixed pool of event loops
// (plugins/common/stream StreamServer); what is WebSocket's own is how a delivery is encoded
// and the option table.
#pragma once

#include <flowrelay/plugin.hpp>

#include <string>

#include "stream_server.h"
#include "ws_frame.h"
#include "ws_options.h"

namespace flowrelay::ws {

class WsServer final : public StreamServer {
 public:
  // Parses the options (throws sdk::OptionError); no I/O yet.
  WsServer(sdk::TransportHost host, const flowrelay_option* options, size_t n);

  // [any thread] Encodes the frames once (raw text for message-lane messages, JSON when
  // envelope clients are connected) and hands them to every loop.
  void deliver(std::string_view channel, const flowrelay_message& message) override;
  // Applies the live limits and access rules; returns the restart-only keys that changed.
  std::string reconfigure(const flowrelay_option* options, size_t n) override;
};

}  // namespace flowrelay::ws
