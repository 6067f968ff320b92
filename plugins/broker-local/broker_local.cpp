// broker-local: in-process pub/sub for a single node (the default in single mode).
// A publish is delivered synchronously on the publishing thread, under the channel's own
// mutex, so every session of a channel sees the same order (as Redis would give), and the
// offset of a message is assigned under that same mutex, so offsets follow delivery order.
#include <flowrelay/plugin.h>

#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "../common/parse_number.h"
#include "history_ring.h"

namespace {

using flowrelay::local::HistoryRing;

struct Options {
  size_t history_size = 2000;  // 0: no history
  uint32_t history_max_age_ms = 600000;
};

// A channel exists while some session on this node listens or its history is kept.
struct Channel {
  std::mutex order;                    // serialises offsets, history and deliveries of this channel
  bool subscribed = false;             // changed under the map's exclusive lock
  std::optional<HistoryRing> history;  // created by the first publish (history on)
};

struct Hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

int64_t now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace

struct flowrelay_broker {
  flowrelay_broker(const flowrelay_broker_host_api* a, flowrelay_host* h, const Options& o)
      : api(a), host(h), history_size(o.history_size), history_max_age_ms(o.history_max_age_ms) {}

  const flowrelay_broker_host_api* api;
  flowrelay_host* host;
  std::atomic<size_t> history_size;
  std::atomic<uint32_t> history_max_age_ms;
  std::atomic<uint64_t> published{0};  // messages published
  std::atomic<uint64_t> delivered{0};  // of which some session on this node listened
  std::atomic<uint64_t> history_reads{0};
  std::atomic<int64_t> next_sweep_ms{0};
  std::mutex epoch_mutex;
  std::mt19937_64 epoch_source{std::random_device{}()};
  std::shared_mutex map_mutex;  // shared for publish/history, exclusive to add/remove channels
  std::unordered_map<std::string, std::unique_ptr<Channel>, Hash, std::equal_to<>> channels;

  bool has_deliver_message() const {
    return FLOWRELAY_HAS_SLOT(api, flowrelay_broker_host_api, deliver_message) &&
           api->deliver_message;
  }
  // A history restarted in memory (after a restart, or after it expired) gets a new epoch, so
  // a client holding offsets of the old one is told it cannot recover.
  std::string new_epoch() {
    std::lock_guard lock(epoch_mutex);
    char text[24];
    std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(epoch_source()));
    return text;
  }
};

namespace {

std::string_view view(flowrelay_str s) { return {s.ptr, s.len}; }

// Parses history_size / history_max_age_ms; anything else is refused by name.
flowrelay_status parse_options(const flowrelay_option* options, size_t n, Options& out, char* err,
                               size_t err_cap) {
  for (size_t i = 0; i < n; ++i) {
    const std::string_view key = view(options[i].key), value = view(options[i].value);
    bool ok = true;
    if (key == "history_size")
      ok = flowrelay::plugin::parse_number<size_t>(value, 0, 1000000, out.history_size);
    else if (key == "history_max_age_ms")
      ok = flowrelay::plugin::parse_number<uint32_t>(value, 1, 7 * 86400000u,
                                                     out.history_max_age_ms);
    else {
      std::snprintf(err, err_cap,
                    "broker-local: unknown option '%.*s' (history_size, history_max_age_ms)",
                    static_cast<int>(key.size()), key.data());
      return FLOWRELAY_EINVAL;
    }
    if (!ok) {
      std::snprintf(err, err_cap, "broker-local: '%.*s' must be %s, got '%.*s'",
                    static_cast<int>(key.size()), key.data(),
                    key == "history_size" ? "0-1000000" : "1-604800000 (ms)",
                    static_cast<int>(value.size()), value.data());
      return FLOWRELAY_EINVAL;
    }
  }
  return FLOWRELAY_OK;
}

flowrelay_status local_create(const flowrelay_broker_host_api* api, flowrelay_host* host,
                              const flowrelay_option* options, size_t n_options,
                              flowrelay_broker** out, char* err, size_t err_cap) {
  Options o;
  if (flowrelay_status s = parse_options(options, n_options, o, err, err_cap); s != FLOWRELAY_OK)
    return s;
  try {
    *out = new flowrelay_broker(api, host, o);
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

// Forgets histories that aged out on channels nobody listens to. At most once a second, so
// the exclusive lock is rare.
void sweep(flowrelay_broker* self, int64_t now) {
  int64_t due = self->next_sweep_ms.load(std::memory_order_relaxed);
  if (now < due || !self->next_sweep_ms.compare_exchange_strong(due, now + 1000)) return;
  const int64_t oldest = now - self->history_max_age_ms.load(std::memory_order_relaxed);
  std::unique_lock lock(self->map_mutex);
  std::erase_if(self->channels, [&](const auto& kv) {
    const Channel& ch = *kv.second;
    return !ch.subscribed && (!ch.history || ch.history->last_at_ms() < oldest);
  });
}

// Assigns the offset, keeps the message and delivers it, all under the channel's lock.
void publish_locked(flowrelay_broker* self, Channel& ch, flowrelay_str channel,
                    const flowrelay_message& in, flowrelay_published_fn done, void* ctx,
                    int64_t now) {
  flowrelay_message m{sizeof(flowrelay_message), in.lane, 0, {nullptr, 0}, in.data};
  const size_t size = self->history_size.load(std::memory_order_relaxed);
  if (size > 0) {
    const int64_t oldest = now - self->history_max_age_ms.load(std::memory_order_relaxed);
    if (ch.history && ch.history->last_at_ms() < oldest) ch.history.reset();  // a new epoch
    if (!ch.history) ch.history.emplace(self->new_epoch());
    ch.history->trim_older_than(oldest);
    m.offset = ch.history->append(in.lane, std::string(view(in.data)), now, size);
    m.epoch = {ch.history->epoch().data(), ch.history->epoch().size()};
  }
  if (ch.subscribed) {
    if (self->has_deliver_message())
      self->api->deliver_message(self->host, channel, &m);
    else if (m.lane == FLOWRELAY_LANE_MESSAGE)
      self->api->deliver(self->host, channel, m.data);
    self->delivered.fetch_add(1, std::memory_order_relaxed);
  }
  if (done) done(ctx, FLOWRELAY_OK, m.offset, m.epoch);
}

flowrelay_status local_publish_message(flowrelay_broker* self, flowrelay_str channel,
                                       const flowrelay_message* message,
                                       flowrelay_published_fn done, void* ctx) {
  if (!message) return FLOWRELAY_EINVAL;
  if (message->lane != FLOWRELAY_LANE_MESSAGE && message->lane != FLOWRELAY_LANE_LOG)
    return FLOWRELAY_EUNSUPPORTED;  // a lane of a newer ABI this broker does not know
  self->published.fetch_add(1, std::memory_order_relaxed);
  const int64_t now = now_ms();
  try {
    for (;;) {
      {
        std::shared_lock map_lock(self->map_mutex);
        auto it = self->channels.find(view(channel));
        if (it != self->channels.end()) {
          std::lock_guard order(it->second->order);
          publish_locked(self, *it->second, channel, *message, done, ctx, now);
          break;
        }
      }
      if (self->history_size.load(std::memory_order_relaxed) == 0) {
        // Nobody listens on this node and nothing is kept.
        if (done) done(ctx, FLOWRELAY_OK, 0, {nullptr, 0});
        break;
      }
      std::unique_lock map_lock(self->map_mutex);
      self->channels.try_emplace(std::string(view(channel)), std::make_unique<Channel>());
    }
  } catch (const std::bad_alloc&) {
    return FLOWRELAY_ENOMEM;
  }
  sweep(self, now);
  return FLOWRELAY_OK;
}

flowrelay_status local_publish(flowrelay_broker* self, flowrelay_str channel,
                               flowrelay_str payload) {
  const flowrelay_message m{
      sizeof(flowrelay_message), FLOWRELAY_LANE_MESSAGE, 0, {nullptr, 0}, payload};
  return local_publish_message(self, channel, &m, nullptr, nullptr);
}

// `done` runs under the channel's lock (the views point into the ring): a host must not
// publish on the same channel from inside it (the daemon's transports only queue the copy).
flowrelay_status local_history(flowrelay_broker* self, flowrelay_str channel, uint64_t since,
                               flowrelay_history_fn done, void* ctx) {
  if (!done) return FLOWRELAY_EINVAL;
  if (self->history_size.load(std::memory_order_relaxed) == 0) return FLOWRELAY_EUNSUPPORTED;
  self->history_reads.fetch_add(1, std::memory_order_relaxed);
  flowrelay_history h{sizeof(flowrelay_history), {nullptr, 0}, 0, nullptr, 0};
  std::shared_lock map_lock(self->map_mutex);
  auto it = self->channels.find(view(channel));
  if (it == self->channels.end() || !it->second->history) {
    done(ctx, FLOWRELAY_OK, &h);
    return FLOWRELAY_OK;
  }
  std::lock_guard order(it->second->order);
  HistoryRing& ring = *it->second->history;
  const int64_t oldest = now_ms() - self->history_max_age_ms.load(std::memory_order_relaxed);
  if (ring.last_at_ms() < oldest) {  // expired: as if it had been swept already
    done(ctx, FLOWRELAY_OK, &h);
    return FLOWRELAY_OK;
  }
  ring.trim_older_than(oldest);
  try {
    const auto messages = ring.after(since);
    h.epoch = {ring.epoch().data(), ring.epoch().size()};
    h.top = ring.top();
    h.messages = messages.data();
    h.count = messages.size();
    done(ctx, FLOWRELAY_OK, &h);
  } catch (const std::bad_alloc&) {
    return FLOWRELAY_ENOMEM;
  }
  return FLOWRELAY_OK;
}

flowrelay_status local_subscribe(flowrelay_broker* self, flowrelay_str channel) {
  try {
    std::unique_lock lock(self->map_mutex);
    auto& ch = self->channels[std::string(view(channel))];
    if (!ch) ch = std::make_unique<Channel>();
    ch->subscribed = true;
  } catch (const std::bad_alloc&) {
    return FLOWRELAY_ENOMEM;
  }
  return FLOWRELAY_OK;
}

flowrelay_status local_unsubscribe(flowrelay_broker* self, flowrelay_str channel) {
  std::unique_lock lock(self->map_mutex);
  auto it = self->channels.find(view(channel));
  if (it == self->channels.end()) return FLOWRELAY_OK;
  it->second->subscribed = false;
  if (!it->second->history) self->channels.erase(it);  // else kept until it ages out (sweep)
  return FLOWRELAY_OK;
}

void local_metrics(flowrelay_broker* self, flowrelay_write_fn write, void* ctx) {
  size_t subscribed = 0, histories = 0;
  {
    std::shared_lock lock(self->map_mutex);
    for (const auto& [name, ch] : self->channels) {
      subscribed += ch->subscribed;
      histories += ch->history.has_value();
    }
  }
  char text[1280];
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
      "flowrelay_broker_channels{broker=\"local\"} %zu\n"
      "# HELP flowrelay_broker_histories Channels whose history is kept in memory\n"
      "# TYPE flowrelay_broker_histories gauge\n"
      "flowrelay_broker_histories{broker=\"local\"} %zu\n"
      "# HELP flowrelay_broker_history_reads_total History reads (resumes)\n"
      "# TYPE flowrelay_broker_history_reads_total counter\n"
      "flowrelay_broker_history_reads_total{broker=\"local\"} %llu\n",
      static_cast<unsigned long long>(self->published.load(std::memory_order_relaxed)),
      static_cast<unsigned long long>(self->delivered.load(std::memory_order_relaxed)), subscribed,
      histories, static_cast<unsigned long long>(self->history_reads.load()));
  if (n > 0) write(ctx, {text, static_cast<size_t>(std::min<int>(n, sizeof text - 1))});
}

flowrelay_status local_reconfigure(flowrelay_broker* self, const flowrelay_option* options,
                                   size_t n_options, char* err, size_t err_cap) {
  Options o;
  if (flowrelay_status s = parse_options(options, n_options, o, err, err_cap); s != FLOWRELAY_OK)
    return s;
  self->history_size = o.history_size;  // a smaller bound applies at each channel's next publish
  self->history_max_age_ms = o.history_max_age_ms;
  return FLOWRELAY_OK;
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
    local_publish_message,
    local_history,
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
