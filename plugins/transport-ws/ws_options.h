// transport-ws options: one declarative table (flowrelay/plugin.hpp OptionTable) for the
// plugin's YAML section. What the host decides (channel prefix, echo, the config folder) is not
// an option: it comes from the host API (sdk::TransportHost).
#pragma once

#include <flowrelay/plugin.hpp>

#include <cstdint>
#include <string>
#include <string_view>

#include "access_policy.h"

namespace flowrelay::ws {

struct WsOptions {
  std::string listen_host;
  uint16_t listen_port = 0;
  std::string path;                   // the conversation id follows it
  uint64_t max_message_size = 0;      // 1009 past it (summed over fragments)
  uint32_t io_threads = 0;            // 0 in the file: one per core
  uint64_t max_outbound_bytes = 0;    // a slower reader is disconnected (slow consumer)
  uint32_t max_header_size = 0;       // 431 past it
  uint32_t handshake_timeout_ms = 0;  // headers (and broker confirmation) within this
  uint32_t close_timeout_ms = 0;      // wait for the peer's close/EOF after ours
  int32_t backlog = 0;
  uint32_t max_conversation_id_length = 0;
  uint32_t idle_timeout_ms = 0;         // no frame for this long: ping; again: close 1001
  uint64_t max_connections = 0;         // 0: unlimited; past it: 503 at the handshake
  uint64_t max_connections_per_ip = 0;  // 0: unlimited; past it: 429
  double publish_rate = 0;              // messages/s per connection; 0: unlimited
  double publish_burst = 0;             // token bucket size
  AccessSettings access;                // auth (none | jwt) and Origin rules
};

// The table itself (keys, defaults, ranges, live or restart-only): for parsing and reload diffs.
const sdk::OptionTable<WsOptions>& ws_option_table();

// Parses and checks the section; relative key files resolve against `config_dir`. Throws
// sdk::OptionError naming the key in single quotes.
WsOptions parse_ws_options(const flowrelay_option* options, size_t n, std::string_view config_dir);

}  // namespace flowrelay::ws
