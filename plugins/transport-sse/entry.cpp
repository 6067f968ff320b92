// transport-sse: the plugin's entry symbol. flowrelay/plugin.hpp builds the C table from
// SseServer and catches every exception at the boundary.
#include <flowrelay/plugin.hpp>

#include "sse_server.h"

FLOWRELAY_PLUGIN_ENTRY("transport-sse", FLOWRELAY_PLUGIN_VERSION, nullptr,
                       flowrelay::sdk::transport_vtable<flowrelay::sse::SseServer>())
