// transport-ws options: the stream library's shared rows (stream_options.h) plus the
// WebSocket's own (idle_timeout_ms: ping a quiet client, then close it).
#pragma once

#include <flowrelay/plugin.hpp>

#include <string_view>

#include "stream_options.h"

namespace flowrelay::ws {

using WsOptions = stream::StreamOptions;

// The table itself (keys, defaults, ranges, live or restart-only): for parsing and reload diffs.
const sdk::OptionTable<WsOptions>& ws_option_table();

// Parses and checks the section; relative key files resolve against `config_dir`. Throws
// sdk::OptionError naming the key in single quotes.
WsOptions parse_ws_options(const flowrelay_option* options, size_t n, std::string_view config_dir);

}  // namespace flowrelay::ws
