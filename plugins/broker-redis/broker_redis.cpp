// broker-redis: the plugin's C entry points. No exception leaves this file.
#include <flowrelay/plugin.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>

#include "redis_broker.h"

struct flowrelay_broker {
  flowrelay::redis::RedisBroker broker;
};

namespace {

using flowrelay::redis::RedisBroker;
using flowrelay::redis::RedisOptions;

flowrelay_status redis_create(const flowrelay_broker_host_api* api, flowrelay_host* host,
                              const flowrelay_option* options, size_t n_options,
                              flowrelay_broker** out, char* err, size_t err_cap) {
  try {
    RedisOptions opts;
    // The original service read REDIS_URL; it still wins over the config file.
    if (!opts.parse(options, n_options, std::getenv("REDIS_URL"), err, err_cap))
      return FLOWRELAY_EINVAL;
    *out = new flowrelay_broker{RedisBroker(api, host, std::move(opts))};
    return FLOWRELAY_OK;
  } catch (const std::exception& e) {
    std::snprintf(err, err_cap, "broker-redis: %s", e.what());
    return FLOWRELAY_EINTERNAL;
  }
}

flowrelay_status redis_start(flowrelay_broker* self, char* err, size_t err_cap) {
  try {
    std::string message;
    if (self->broker.start(message)) return FLOWRELAY_OK;
    std::snprintf(err, err_cap, "%s", message.c_str());
    return FLOWRELAY_EINTERNAL;
  } catch (const std::exception& e) {
    std::snprintf(err, err_cap, "broker-redis: %s", e.what());
    return FLOWRELAY_EINTERNAL;
  }
}

void redis_destroy(flowrelay_broker* self) { delete self; }

template <typename F>
flowrelay_status guarded(F&& f) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return FLOWRELAY_ENOMEM;
  } catch (const std::exception&) {
    return FLOWRELAY_EINTERNAL;
  }
}

flowrelay_status redis_publish(flowrelay_broker* self, flowrelay_str channel,
                               flowrelay_str payload) {
  return guarded([&] {
    return self->broker.publish({channel.ptr, channel.len}, {payload.ptr, payload.len});
  });
}

flowrelay_status redis_subscribe(flowrelay_broker* self, flowrelay_str channel) {
  return guarded([&] { return self->broker.subscribe({channel.ptr, channel.len}); });
}

flowrelay_status redis_unsubscribe(flowrelay_broker* self, flowrelay_str channel) {
  return guarded([&] { return self->broker.unsubscribe({channel.ptr, channel.len}); });
}

flowrelay_status redis_publish_message(flowrelay_broker* self, flowrelay_str channel,
                                       const flowrelay_message* message,
                                       flowrelay_published_fn done, void* done_ctx) {
  if (!message || message->struct_size < offsetof(flowrelay_message, data) + sizeof message->data)
    return FLOWRELAY_EINVAL;
  return guarded([&] {
    return self->broker.publish_message({channel.ptr, channel.len}, *message, done, done_ctx);
  });
}

// Sent on the publisher connection, so it is answered after everything this node published
// before it. While Redis is unreachable it is queued like a publish (same bound: EAGAIN past
// it) and sent once the node is back and resubscribed; destroy() completes it with EUNAVAIL.
// EUNSUPPORTED while history_size is 0.
flowrelay_status redis_history(flowrelay_broker* self, flowrelay_str channel, uint64_t since,
                               flowrelay_history_fn done, void* done_ctx) {
  return guarded([&] {
    return self->broker.history({channel.ptr, channel.len}, since, done, done_ctx);
  });
}

void redis_metrics(flowrelay_broker* self, flowrelay_write_fn write, void* ctx) {
  try {
    const std::string text = self->broker.metrics();
    write(ctx, {text.data(), text.size()});
  } catch (const std::exception&) {
  }
}

flowrelay_status redis_reconfigure(flowrelay_broker* self, const flowrelay_option* options,
                                   size_t n_options, char* err, size_t err_cap) {
  try {
    RedisOptions fresh;
    if (!fresh.parse(options, n_options, std::getenv("REDIS_URL"), err, err_cap))
      return FLOWRELAY_EINVAL;
    const std::string fixed = self->broker.reconfigure(fresh);
    if (fixed.empty()) return FLOWRELAY_OK;
    std::snprintf(err, err_cap, "broker-redis: %s changed: takes effect after a restart",
                  fixed.c_str());
    return FLOWRELAY_EUNSUPPORTED;
  } catch (const std::exception& e) {
    std::snprintf(err, err_cap, "broker-redis: %s", e.what());
    return FLOWRELAY_EINTERNAL;
  }
}

const flowrelay_broker_vtable kVtable = {
    sizeof(flowrelay_broker_vtable),
    FLOWRELAY_ABI_MAJOR,
    redis_create,
    redis_start,
    redis_destroy,
    redis_publish,
    redis_subscribe,
    redis_unsubscribe,
    redis_metrics,
    redis_reconfigure,
    redis_publish_message,
    redis_history,
};

const flowrelay_plugin_info kInfo = {
    sizeof(flowrelay_plugin_info),
    FLOWRELAY_ABI_MAJOR,
    FLOWRELAY_ABI_MINOR,
    "broker-redis",
    FLOWRELAY_PLUGIN_VERSION,
    &kVtable,
    nullptr,
};

}  // namespace

extern "C" FLOWRELAY_EXPORT const flowrelay_plugin_info* flowrelay_plugin_entry_v1(uint32_t) {
  return &kInfo;
}
