// broker-redis: the plugin's entry symbol (flowrelay/plugin.hpp turns RedisBroker into the C
// table and catches every exception at the boundary).
#include <flowrelay/plugin.hpp>

#include "redis_broker.h"

FLOWRELAY_PLUGIN_ENTRY("broker-redis", FLOWRELAY_PLUGIN_VERSION,
                       flowrelay::sdk::broker_vtable<flowrelay::redis::RedisBroker>(), nullptr)
