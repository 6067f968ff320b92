// The transport instance: one listening socket served by a fixed pool of event loops
// (plugins/common/stream StreamServer); what is SSE's own is how a delivery is encoded: one SSE
// event for EventSource readers and, while NDJSON readers are connected, one JSON line, each
// encoded once per message and shared by every reader of this node.
#pragma once

#include <flowrelay/plugin.hpp>

#include <string>

#include "sse_options.h"
#include "stream_server.h"

namespace flowrelay::sse {

class SseServer final : public stream::StreamServer {
 public:
  // Parses the options (throws sdk::OptionError); no I/O yet.
  SseServer(sdk::TransportHost host, const flowrelay_option* options, size_t n);

  void deliver(std::string_view channel, const flowrelay_message& message) override;
  // Applies the live limits and access rules; returns the restart-only keys that changed.
  std::string reconfigure(const flowrelay_option* options, size_t n) override;
};

}  // namespace flowrelay::sse
