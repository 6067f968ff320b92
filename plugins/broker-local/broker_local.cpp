// broker-local: in-process pub/sub for a single node (the default in single mode).
//
// A publish is delivered synchronously, on the publishing thread inside publish(), under the
// channel's own mutex: every session of a channel sees the same order (as Redis would give),
// and the offset is assigned under that same mutex, so offsets follow delivery order. The host
// therefore must not publish from inside deliver() or a history completion (the daemon's
// transports only queue what they get).
//
// origin: passed through as published, seq included (0 from the daemon). broker-local never
// resends: a publish is one append and at most one delivery under one lock, so nothing is
// ever stored or delivered twice and there is no (node, seq) to de-duplicate.
//
// Ages (history_max_age_ms) are measured with the host's now_ms().
#include <flowrelay/plugin.hpp>

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

#include "history_ring.h"

namespace flowrelay::local {
namespace {

struct Options {
  uint32_t history_size = 0;  // 0: no history
  uint32_t history_max_age_ms = 0;
};

const sdk::OptionTable<Options>& option_table() {
  static const sdk::OptionTable<Options> table(
      "broker-local",
      {{"history_size", &Options::history_size, "2000", 0, 1000000, sdk::Reload::Live, nullptr,
        "messages kept per conversation; 0 = no history"},
       {"history_max_age_ms", &Options::history_max_age_ms, "600000", 1, 604800000,
        sdk::Reload::Live, nullptr,
        "older messages are trimmed; a conversation idle this long starts a new epoch"}});
  return table;
}

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

// Histories of channels nobody listens to are forgotten at most this often (an exclusive lock).
constexpr int64_t kSweepIntervalMs = 1000;

class LocalBroker final : public sdk::Broker {
 public:
  LocalBroker(sdk::BrokerHost host, const flowrelay_option* options, size_t n)
      : _host(host), _running(sdk::capture(options, n)) {
    apply(option_table().parse(options, n));
  }

  void start() override { _host.set_ready(true); }

  flowrelay_status publish(std::string_view channel, const flowrelay_message& message,
                           flowrelay_published_fn done, void* ctx) override {
    if (message.lane != FLOWRELAY_LANE_MESSAGE && message.lane != FLOWRELAY_LANE_LOG)
      return FLOWRELAY_EUNSUPPORTED;  // a lane of a newer ABI this broker does not know
    _published.fetch_add(1, std::memory_order_relaxed);
    const int64_t now = _host.now_ms();
    for (;;) {
      {
        std::shared_lock map_lock(_map_mutex);
        auto it = _channels.find(channel);
        if (it != _channels.end()) {
          std::lock_guard order(it->second->order);
          publish_locked(*it->second, channel, message, done, ctx, now);
          break;
        }
      }
      if (history_size() == 0) {  // nobody listens on this node and nothing is kept
        if (done) done(ctx, FLOWRELAY_OK, 0, {nullptr, 0});
        break;
      }
      std::unique_lock map_lock(_map_mutex);
      _channels.try_emplace(std::string(channel), std::make_unique<Channel>());
    }
    sweep(now);
    return FLOWRELAY_OK;
  }

  // `done` runs under the channel's lock (the views point into the ring).
  flowrelay_status history(std::string_view channel, uint64_t since, flowrelay_history_fn done,
                           void* ctx) override {
    if (history_size() == 0) return FLOWRELAY_EUNSUPPORTED;
    _history_reads.fetch_add(1, std::memory_order_relaxed);
    flowrelay_history h{sizeof(flowrelay_history), {nullptr, 0}, 0, nullptr, 0};
    std::shared_lock map_lock(_map_mutex);
    auto it = _channels.find(channel);
    if (it == _channels.end()) return done(ctx, FLOWRELAY_OK, &h), FLOWRELAY_OK;
    std::lock_guard order(it->second->order);
    std::optional<HistoryRing>& ring = it->second->history;
    const int64_t oldest = oldest_kept(_host.now_ms());
    if (ring && ring->last_at_ms() < oldest) ring.reset();  // expired: a new epoch next time
    if (!ring) return done(ctx, FLOWRELAY_OK, &h), FLOWRELAY_OK;
    ring->trim_older_than(oldest);
    const auto messages = ring->after(since);
    h.epoch = sdk::str(ring->epoch());
    h.top = ring->top();
    h.messages = messages.data();
    h.count = messages.size();
    done(ctx, FLOWRELAY_OK, &h);
    return FLOWRELAY_OK;
  }

  flowrelay_status subscribe(std::string_view channel) override {
    std::unique_lock lock(_map_mutex);
    auto& ch = _channels[std::string(channel)];
    if (!ch) ch = std::make_unique<Channel>();
    ch->subscribed = true;
    return FLOWRELAY_OK;
  }

  void unsubscribe(std::string_view channel) override {
    std::unique_lock lock(_map_mutex);
    auto it = _channels.find(channel);
    if (it == _channels.end()) return;
    it->second->subscribed = false;
    if (!it->second->history) _channels.erase(it);  // else kept until it ages out (sweep)
  }

  // One node: presence is this node's own count, kept here so that the daemon's presence API
  // answers through the broker as it does in cluster mode.
  void presence_set(std::string_view channel, uint64_t clients) override {
    std::lock_guard lock(_presence_mutex);
    if (clients == 0)
      _presence.erase(std::string(channel));
    else
      _presence[std::string(channel)] = clients;
  }

  flowrelay_status presence(std::string_view channel, flowrelay_presence_fn done,
                            void* ctx) override {
    uint64_t clients = 0;
    {
      std::lock_guard lock(_presence_mutex);
      if (auto it = _presence.find(channel); it != _presence.end()) clients = it->second;
    }
    done(ctx, FLOWRELAY_OK, clients, clients ? 1 : 0);
    return FLOWRELAY_OK;
  }

  void metrics(sdk::PrometheusText& out) const override {
    uint64_t subscribed = 0, histories = 0;
    {
      std::shared_lock lock(_map_mutex);
      for (const auto& [name, ch] : _channels) {
        subscribed += ch->subscribed;
        histories += ch->history.has_value();
      }
    }
    const std::string local = sdk::PrometheusText::label("broker", "local");
    auto count = [](const std::atomic<uint64_t>& n) { return n.load(std::memory_order_relaxed); };
    out.counter("flowrelay_broker_published_total", "Messages published to the local broker",
                count(_published), local)
        .counter("flowrelay_broker_delivered_total", "Messages the broker delivered to this node",
                 count(_delivered), local)
        .gauge("flowrelay_broker_channels", "Channels subscribed at the broker", subscribed, local)
        .gauge("flowrelay_broker_histories", "Channels whose history is kept in memory", histories,
               local)
        .counter("flowrelay_broker_history_reads_total", "History reads (resumes)",
                 count(_history_reads), local);
  }

  // Both options apply live: a smaller bound at each channel's next publish or read.
  std::string reconfigure(const flowrelay_option* options, size_t n) override {
    apply(option_table().parse(options, n));
    std::string changed = option_table().restart_changes(_running, options, n);
    _running = sdk::capture(options, n);
    return changed;
  }

 private:
  void apply(const Options& o) {
    _history_size.store(o.history_size, std::memory_order_relaxed);
    _history_max_age_ms.store(o.history_max_age_ms, std::memory_order_relaxed);
  }
  size_t history_size() const { return _history_size.load(std::memory_order_relaxed); }
  int64_t oldest_kept(int64_t now) const {
    return now - _history_max_age_ms.load(std::memory_order_relaxed);
  }

  // Assigns the offset, keeps the message and delivers it, all under the channel's lock.
  void publish_locked(Channel& ch, std::string_view channel, const flowrelay_message& in,
                      flowrelay_published_fn done, void* ctx, int64_t now) {
    flowrelay_message m = in;
    m.struct_size = sizeof(flowrelay_message);
    m.offset = 0;
    m.epoch = {nullptr, 0};
    if (const size_t size = history_size(); size > 0) {
      const int64_t oldest = oldest_kept(now);
      if (ch.history && ch.history->last_at_ms() < oldest) ch.history.reset();  // a new epoch
      if (!ch.history) ch.history.emplace(new_epoch());
      ch.history->trim_older_than(oldest);
      m.offset = ch.history->append(m, now, size);
      m.epoch = sdk::str(ch.history->epoch());
    }
    if (ch.subscribed) {
      _host.deliver(channel, m);
      _delivered.fetch_add(1, std::memory_order_relaxed);
    }
    if (done) done(ctx, FLOWRELAY_OK, m.offset, m.epoch);
  }

  // Forgets histories that aged out on channels nobody listens to.
  void sweep(int64_t now) {
    int64_t due = _next_sweep_ms.load(std::memory_order_relaxed);
    if (now < due || !_next_sweep_ms.compare_exchange_strong(due, now + kSweepIntervalMs)) return;
    const int64_t oldest = oldest_kept(now);
    std::unique_lock lock(_map_mutex);
    std::erase_if(_channels, [&](const auto& kv) {
      const Channel& ch = *kv.second;
      return !ch.subscribed && (!ch.history || ch.history->last_at_ms() < oldest);
    });
  }

  // A history restarted in memory (after a restart, or after it expired) gets a new epoch, so
  // a client holding offsets of the old one is told it cannot recover.
  std::string new_epoch() {
    std::lock_guard lock(_epoch_mutex);
    char text[24];
    std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(_epoch_source()));
    return text;
  }

  const sdk::BrokerHost _host;
  sdk::OptionValues _running;  // [main] as last parsed, for reconfigure()'s diff
  std::atomic<size_t> _history_size{0};
  std::atomic<uint32_t> _history_max_age_ms{0};
  std::atomic<uint64_t> _published{0};  // messages published
  std::atomic<uint64_t> _delivered{0};  // of which some session on this node listened
  std::atomic<uint64_t> _history_reads{0};
  std::atomic<int64_t> _next_sweep_ms{INT64_MIN};
  std::mutex _epoch_mutex;
  std::mt19937_64 _epoch_source{std::random_device{}()};
  std::mutex _presence_mutex;  // never held across a host call
  std::unordered_map<std::string, uint64_t, Hash, std::equal_to<>> _presence;  // clients > 0
  mutable std::shared_mutex _map_mutex;  // shared: publish/history; exclusive: add/remove
  std::unordered_map<std::string, std::unique_ptr<Channel>, Hash, std::equal_to<>> _channels;
};

}  // namespace
}  // namespace flowrelay::local

FLOWRELAY_PLUGIN_ENTRY("broker-local", FLOWRELAY_PLUGIN_VERSION,
                       flowrelay::sdk::broker_vtable<flowrelay::local::LocalBroker>(), nullptr)
