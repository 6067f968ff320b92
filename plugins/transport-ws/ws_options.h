// transport-ws options, parsed from the plugin's YAML section.
#pragma once

#include <flowrelay/plugin.h>

#include <cstdint>
#include <string>

#include "access_policy.h"

namespace flowrelay::ws {

struct WsOptions {
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 8080;
  std::string path = "/ws/";              // the conversation id follows it
  uint64_t max_message_size = 1 << 20;    // 1009 past it (summed over fragments)
  unsigned io_threads = 0;                // 0: one per core
  uint64_t max_outbound_bytes = 8 << 20;  // a slower reader is disconnected (slow consumer)
  uint32_t max_header_size = 8192;        // 431 past it
  uint32_t handshake_timeout_ms = 10000;  // headers (and broker confirmation) within this
  uint32_t close_timeout_ms = 2000;       // wait for the peer's close/EOF after ours
  int backlog = 4096;
  uint32_t max_conversation_id_length = 128;
  uint32_t idle_timeout_ms = 60000;      // no frame for this long: ping; again: close 1001
  uint64_t max_connections = 0;          // 0: unlimited; past it: 503 at the handshake
  uint64_t max_connections_per_ip = 0;   // 0: unlimited; past it: 429
  double publish_rate = 1000;            // messages/s per connection; 0: unlimited
  double publish_burst = 1000;           // token bucket size
  AccessSettings access;                 // auth (none | jwt) and Origin rules
  std::string config_dir;                // set by the daemon: relative key files resolve here
  std::string channel_prefix = "chat:";  // set by the daemon (channels.prefix)
  bool echo = true;                      // set by the daemon (channels.echo)

  // Returns false and writes a one-line message into err on an unknown key or a bad value.
  bool parse(const flowrelay_option* options, size_t n, char* err, size_t err_cap);
};

}  // namespace flowrelay::ws
