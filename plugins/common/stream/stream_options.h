// The options every transport on the stream library shares (transport-ws, transport-sse): one
// struct, and the rows of their declarative tables (flowrelay/plugin.hpp OptionTable) that each
// transport's own table starts with. What the host decides (channel prefix, echo, the config
// folder) is not an option: it comes from the host API (sdk::TransportHost).
#pragma once

#include <flowrelay/plugin.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "access_policy.h"

namespace flowrelay::stream {

struct StreamOptions {
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
  uint32_t idle_timeout_ms = 0;         // ws: no frame for this long: ping; sse: heartbeat interval
  uint64_t max_connections = 0;         // 0: unlimited; past it: 503 at the handshake
  uint64_t max_connections_per_ip = 0;  // 0: unlimited; past it: 429
  double publish_rate = 0;              // messages/s per connection; 0: unlimited
  double publish_burst = 0;             // token bucket size
  AccessSettings access;                // auth (none | jwt) and Origin rules
  uint32_t retry_ms = 0;                // sse: the reconnect delay told to EventSource
};

// The shared rows, for a table whose listen and path defaults are `listen` and `path` (both
// must outlive the table: string literals). `plugin` names the section in errors.
std::vector<sdk::Option<StreamOptions>> stream_option_rows(const char* listen, const char* path);

// After the table parsed `o`: io_threads 0 becomes one per core, jwt needs a key file, relative
// key files resolve against `config_dir`. Throws sdk::OptionError.
void finish_stream_options(StreamOptions& o, std::string_view plugin, std::string_view config_dir);

}  // namespace flowrelay::stream
