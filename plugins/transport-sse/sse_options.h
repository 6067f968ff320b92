// transport-sse options: the stream library's shared rows (stream_options.h) plus the SSE
// transport's own: heartbeat_ms (a comment on a quiet stream) and retry_ms (EventSource's
// reconnect delay).
#pragma once

#include <flowrelay/plugin.hpp>

#include <string_view>

#include "stream_options.h"

namespace flowrelay::sse {

using SseOptions = stream::StreamOptions;  // heartbeat_ms is its idle_timeout_ms

const sdk::OptionTable<SseOptions>& sse_option_table();

// Parses and checks the section; relative key files resolve against `config_dir`. Throws
// sdk::OptionError naming the key in single quotes.
SseOptions parse_sse_options(const flowrelay_option* options, size_t n,
                             std::string_view config_dir);

}  // namespace flowrelay::sse
