// broker-local: in-process pub/sub for a single node (the default in single mode).
// A publish is delivered synchronously on the publishing thread, under the channel's own
// mutex, so every session of a channel sees the same order (as Redis would give).
#include <flowrelay/plugin.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace {

struct Channel {
  std::mutex order;  // serialises deliveries of this channel
};

struct Hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

}  // namespace

struct flowrelay_broker {
  const flowrelay_broker_host_api* api;
  flowrelay_host* host;
  std::atomic<uint64_t> published{0};  // messages published
  std::atomic<uint64_t> delivered{0};  // of which some session on this node listened
  std::shared_mutex map_mutex;         // shared for publish, exclusive for (un)subscribe
  std::unordered_map<std::string, std::unique_ptr<Channel>, Hash, std::equal_to<>> channels;
};

namespace {

std::string_view view(flowrelay_str s) { return {s.ptr, s.len}; }

flowrelay_status local_create(const flowrelay_broker_host_api* api, flowrelay_host* host,
                              const flowrelay_option* options, size_t n_options,
                              flowrelay_broker** out, char* err, size_t err_cap) {
  if (n_options > 0) {
    std::snprintf(err, err_cap, "broker-local takes no options, got '%.*s'",
                  static_cast<int>(options[0].key.len), options[0].key.ptr);
    return FLOWRELAY_EINVAL;
  }
  try {
    *out = new flowrelay_broker{api, host, {0}, {0}, {}, {}};
  } catch (const std::bad_alloc&) {
    return FLOWRELAY_ENOMEM;
  }
  return FLOWRELAY_OK;
}

flowrelay_status local_start(flowrelay_broker* self, char*, size_t) {
  self->api->set_ready(self->host, 1);
  return FLOWRELAY_OK;
}

void local_destroy(flowrelay_broker* self) { delete self; }

flowrelay_status local_publish(flowrelay_broker* self, flowrelay_str channel,
                               flowrelay_str payload) {
  self->published.fetch_add(1, std::memory_order_relaxed);
  std::shared_lock map_lock(self->map_mutex);
  auto it = self->channels.find(view(channel));
  if (it == self->channels.end()) return FLOWRELAY_OK;  // nobody listens on this node
  std::lock_guard order(it->second->order);
  self->api->deliver(self->host, channel, payload);
  self->delivered.fetch_add(1, std::memory_order_relaxed);
  return FLOWRELAY_OK;
}

flowrelay_status local_subscribe(flowrelay_broker* self, flowrelay_str channel) {
  try {
    std::unique_lock lock(self->map_mutex);
    self->channels.try_emplace(std::string(view(channel)), std::make_unique<Channel>());
  } catch (const std::bad_alloc&) {
    return FLOWRELAY_ENOMEM;
  }
  return FLOWRELAY_OK;
}

flowrelay_status local_unsubscribe(flowrelay_broker* self, flowrelay_str channel) {
  std::unique_lock lock(self->map_mutex);
  auto it = self->channels.find(view(channel));
  if (it != self->channels.end()) self->channels.erase(it);
  return FLOWRELAY_OK;
}

void local_metrics(flowrelay_broker* self, flowrelay_write_fn write, void* ctx) {
  size_t channels = 0;
  {
    std::shared_lock lock(self->map_mutex);
    channels = self->channels.size();
  }
  char text[768];
  const int n = std::snprintf(
      text, sizeof text,
      "# HELP flowrelay_broker_published_total Messages published to the local broker\n"
      "# TYPE flowrelay_broker_published_total counter\n"
      "flowrelay_broker_published_total{broker=\"local\"} %llu\n"
      "# HELP flowrelay_broker_delivered_total Messages the broker delivered to this node\n"
      "# TYPE flowrelay_broker_delivered_total counter\n"
      "flowrelay_broker_delivered_total{broker=\"local\"} %llu\n"
      "# HELP flowrelay_broker_channels Channels subscribed at the broker\n"
      "# TYPE flowrelay_broker_channels gauge\n"
      "flowrelay_broker_channels{broker=\"local\"} %zu\n",
      static_cast<unsigned long long>(self->published.load(std::memory_order_relaxed)),
      static_cast<unsigned long long>(self->delivered.load(std::memory_order_relaxed)), channels);
  if (n > 0) write(ctx, {text, static_cast<size_t>(std::min<int>(n, sizeof text - 1))});
}

flowrelay_status local_reconfigure(flowrelay_broker*, const flowrelay_option* options,
                                   size_t n_options, char* err, size_t err_cap) {
  if (n_options == 0) return FLOWRELAY_OK;
  std::snprintf(err, err_cap, "broker-local takes no options, got '%.*s'",
                static_cast<int>(options[0].key.len), options[0].key.ptr);
  return FLOWRELAY_EINVAL;
}

const flowrelay_broker_vtable kVtable = {
    sizeof(flowrelay_broker_vtable),
    FLOWRELAY_ABI_MAJOR,
    local_create,
    local_start,
    local_destroy,
    local_publish,
    local_subscribe,
    local_unsubscribe,
    local_metrics,
    local_reconfigure,
};

const flowrelay_plugin_info kInfo = {
    sizeof(flowrelay_plugin_info),
    FLOWRELAY_ABI_MAJOR,
    FLOWRELAY_ABI_MINOR,
    "broker-local",
    FLOWRELAY_PLUGIN_VERSION,
    &kVtable,
    nullptr,
};

}  // namespace

extern "C" FLOWRELAY_EXPORT const flowrelay_plugin_info* flowrelay_plugin_entry_v1(uint32_t) {
  return &kInfo;
}
