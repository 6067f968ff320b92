// transport-ws: the plugin's C entry points. No exception leaves this file.
#include <flowrelay/plugin.h>

#include <cstdio>
#include <exception>

#include "ws_server.h"

struct flowrelay_transport {
  flowrelay::ws::WsServer server;
};

namespace {

using flowrelay::ws::WsServer;

flowrelay_status ws_create(const flowrelay_transport_host_api* api, flowrelay_host* host,
                           const flowrelay_option* options, size_t n_options,
                           flowrelay_transport** out, char* err, size_t err_cap) {
  try {
    flowrelay::ws::WsOptions parsed;
    if (!parsed.parse(options, n_options, err, err_cap)) return FLOWRELAY_EINVAL;
    *out = new flowrelay_transport{WsServer(api, host, std::move(parsed))};
    return FLOWRELAY_OK;
  } catch (const std::runtime_error& e) {  // an unreadable key file, a bad key
    std::snprintf(err, err_cap, "transport-ws: %s", e.what());
    return FLOWRELAY_EINVAL;
  } catch (const std::exception& e) {
    std::snprintf(err, err_cap, "transport-ws: %s", e.what());
    return FLOWRELAY_EINTERNAL;
  }
}

flowrelay_status ws_start(flowrelay_transport* self, char* err, size_t err_cap) {
  try {
    std::string message;
    if (self->server.start(message)) return FLOWRELAY_OK;
    std::snprintf(err, err_cap, "%s", message.c_str());
    return FLOWRELAY_EUNAVAIL;
  } catch (const std::exception& e) {
    std::snprintf(err, err_cap, "transport-ws: %s", e.what());
    return FLOWRELAY_EINTERNAL;
  }
}

void ws_stop(flowrelay_transport* self, uint32_t timeout_ms) { self->server.stop(timeout_ms); }

void ws_destroy(flowrelay_transport* self) { delete self; }

void ws_deliver_message(flowrelay_transport* self, flowrelay_str channel,
                        const flowrelay_message* message) {
  if (!message) return;
  try {
    self->server.deliver({channel.ptr, channel.len}, *message);
  } catch (const std::exception&) {
    // Out of memory for one frame: the sessions miss it; nothing else can be done here.
  }
}

void ws_deliver(flowrelay_transport* self, flowrelay_str channel, flowrelay_str payload) {
  const flowrelay_message m{
      sizeof(flowrelay_message), FLOWRELAY_LANE_MESSAGE, 0, {nullptr, 0}, payload};
  ws_deliver_message(self, channel, &m);
}

void ws_subscribed(flowrelay_transport* self, flowrelay_str channel, flowrelay_status status) {
  try {
    self->server.subscribed({channel.ptr, channel.len}, status);
  } catch (const std::exception&) {
  }
}

void ws_metrics(flowrelay_transport* self, flowrelay_write_fn write, void* ctx) {
  try {
    const std::string text = self->server.metrics();
    write(ctx, {text.data(), text.size()});
  } catch (const std::exception&) {
  }
}

flowrelay_status ws_reconfigure(flowrelay_transport* self, const flowrelay_option* options,
                                size_t n_options, char* err, size_t err_cap) {
  try {
    flowrelay::ws::WsOptions fresh;
    if (!fresh.parse(options, n_options, err, err_cap)) return FLOWRELAY_EINVAL;
    const std::string fixed = self->server.reconfigure(fresh);
    if (fixed.empty()) return FLOWRELAY_OK;
    std::snprintf(err, err_cap, "transport-ws: %s changed: takes effect after a restart",
                  fixed.c_str());
    return FLOWRELAY_EUNSUPPORTED;
  } catch (const std::runtime_error& e) {
    std::snprintf(err, err_cap, "transport-ws: %s (nothing applied)", e.what());
    return FLOWRELAY_EINVAL;
  } catch (const std::exception& e) {
    std::snprintf(err, err_cap, "transport-ws: %s", e.what());
    return FLOWRELAY_EINTERNAL;
  }
}

const flowrelay_transport_vtable kVtable = {
    sizeof(flowrelay_transport_vtable),
    FLOWRELAY_ABI_MAJOR,
    ws_create,
    ws_start,
    ws_stop,
    ws_destroy,
    ws_deliver,
    ws_subscribed,
    ws_metrics,
    ws_reconfigure,
    ws_deliver_message,
};

const flowrelay_plugin_info kInfo = {
    sizeof(flowrelay_plugin_info),
    FLOWRELAY_ABI_MAJOR,
    FLOWRELAY_ABI_MINOR,
    "transport-ws",
    FLOWRELAY_PLUGIN_VERSION,
    nullptr,
    &kVtable,
};

}  // namespace

extern "C" FLOWRELAY_EXPORT const flowrelay_plugin_info* flowrelay_plugin_entry_v1(uint32_t) {
  return &kInfo;
}
