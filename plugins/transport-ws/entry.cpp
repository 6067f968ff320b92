// transport-ws: the plugin's entry symbol. flowrelay/plugin.hpp builds the C table from WsServer
// and catches every exception at the boundary.
#include <flowrelay/plugin.hpp>

#include "ws_server.h"

FLOWRELAY_PLUGIN_ENTRY("transport-ws", FLOWRELAY_PLUGIN_VERSION, nullptr,
                       flowrelay::sdk::transport_vtable<flowrelay::ws::WsServer>())
