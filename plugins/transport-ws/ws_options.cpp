#include "ws_options.h"

namespace flowrelay::ws {

const sdk::OptionTable<WsOptions>& ws_option_table() {
  static const sdk::OptionTable<WsOptions> table(
      "transport-ws", stream::stream_option_rows("127.0.0.1:8080", "/ws/"),
      {
          {"idle_timeout_ms", &WsOptions::idle_timeout_ms, "60000", 0, 86400000, sdk::Reload::Live,
           "milliseconds from 0 (off) to 86400000",
           "quiet this long: ping; again without answer: close 1001"},
      });
  return table;
}

WsOptions parse_ws_options(const flowrelay_option* options, size_t n, std::string_view config_dir) {
  WsOptions o = ws_option_table().parse(options, n);
  stream::finish_stream_options(o, "transport-ws", config_dir);
  return o;
}

}  // namespace flowrelay::ws
