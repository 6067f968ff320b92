// The transport instance: one listening socket served by a fixed pool of event loops.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "event_loop.h"

namespace flowrelay::ws {

class WsServer {
 public:
  WsServer(const flowrelay_transport_host_api* api, flowrelay_host* host, WsOptions options)
      : _ctx(api, host, std::move(options)) {}
  ~WsServer();

  // Binds and starts the loops; on failure returns false with a message in err.
  bool start(std::string& err);
  void stop(uint32_t timeout_ms);
  // [any thread] Encodes the frames once (raw text for message-lane messages, JSON when
  // envelope clients are connected) and hands them to every loop.
  void deliver(std::string_view channel, const flowrelay_message& message);
  void subscribed(std::string_view channel, flowrelay_status status);
  // Prometheus text, summed over the loops.
  std::string metrics() const;
  // Applies the live limits of `fresh`; returns the names of options that need a restart.
  std::string reconfigure(const WsOptions& fresh);

 private:
  TransportContext _ctx;
  int _listen_fd = -1;
  std::vector<std::unique_ptr<EventLoop>> _loops;
  std::atomic<bool> _running{false};
  std::atomic<uint64_t> _utf8_repaired{0};
};

}  // namespace flowrelay::ws
