// /metrics for a transport on the stream library: its loops' counters, summed.
#pragma once

#include <flowrelay/plugin.hpp>

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "event_loop.h"

namespace flowrelay::stream {

// The families transport-ws has always exported (flowrelay_connections, flowrelay_deliveries_total,
// ...), named with `prefix` in place of "flowrelay_" ("flowrelay_sse_" for transport-sse).
void write_loop_metrics(sdk::PrometheusText& out,
                        const std::vector<std::unique_ptr<EventLoop>>& loops,
                        std::string_view prefix, uint64_t utf8_repaired);

}  // namespace flowrelay::stream
