#include "sse_options.h"

namespace flowrelay::sse {

const sdk::OptionTable<SseOptions>& sse_option_table() {
  static const sdk::OptionTable<SseOptions> table(
      "transport-sse", stream::stream_option_rows("127.0.0.1:8090", "/sse/"),
      {
          {"heartbeat_ms", &SseOptions::idle_timeout_ms, "15000", 0, 86400000, sdk::Reload::Live,
           "milliseconds from 0 (off) to 86400000",
           "a quiet stream gets a comment line within one to two of these"},
          {"retry_ms", &SseOptions::retry_ms, "1000", 0, 3600000, sdk::Reload::Live,
           "milliseconds from 0 to 3600000", "EventSource's reconnect delay (retry: field)"},
      });
  return table;
}

SseOptions parse_sse_options(const flowrelay_option* options, size_t n,
                             std::string_view config_dir) {
  SseOptions o = sse_option_table().parse(options, n);
  stream::finish_stream_options(o, "transport-sse", config_dir);
  return o;
}

}  // namespace flowrelay::sse
