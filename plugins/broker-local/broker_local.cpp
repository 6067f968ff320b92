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
// Reply streams (publish_reply) follow the same rule: one step is checked, stored and delivered
// under the channel's lock, so compaction at END is atomic for readers and live sessions alike.
//
// Ages (history_max_age_ms) and reply stats are measured with the host's now_ms().
//
// Memory: each history is bounded by history_size and history_max_bytes; all of them together by
// history_memory_limit (history_memory.h): past it, the least recently used conversations'
// histories are dropped whole, after the publish that passed it released its channel's lock
// (locks are taken map -> channel -> LRU, never a second channel's while holding one).
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

#include "channel_history.h"
#include "history_memory.h"
#include "local_options.h"

namespace flowrelay::local {
namespace {

// A channel exists while some session on this node listens or its history is kept.
// Its LruLink is its place in the node's order of use while it has a history.
struct Channel : LruLink {
  std::mutex order;         // serialises offsets, history and deliveries of this channel
  bool subscribed = false;  // changed under the map's exclusive lock
  std::optional<ChannelHistory> history;  // created by the first publish (history on)
  uint64_t accounted = 0;                 // its bytes as last added to HistoryMemory
};

// What a channel costs beyond its entries (the Channel, its map node and name, the deque's
// blocks): an estimate, as kEntryOverhead.
constexpr uint64_t kChannelOverhead = 1024;

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
    const bool kept = under_channel(
        channel, /*create=*/history_size() > 0,
        [&](Channel& ch, int64_t now) { publish_locked(ch, channel, message, done, ctx, now); });
    // Nobody listens on this node and nothing is kept.
    if (!kept && done) done(ctx, FLOWRELAY_OK, 0, {nullptr, 0});
    return FLOWRELAY_OK;
  }

  // A reply's state is kept even with history_size 0 (its seq and text are the rules' input);
  // then only open replies are (an ended one leaves with its REPLY entry at once).
  flowrelay_status publish_reply(std::string_view channel, const flowrelay_message& message,
                                 flowrelay_reply_published_fn done, void* ctx) override {
    if (!valid_reply_step(*sdk::reply_of(message))) return FLOWRELAY_EINVAL;
    under_channel(channel, /*create=*/true, [&](Channel& ch, int64_t now) {
      reply_locked(ch, channel, message, done, ctx, now);
    });
    return FLOWRELAY_OK;
  }

  // Runs `fn(channel, now)` under the channel's order lock (creating the channel when `create`),
  // then enforces the memory limit and sweeps idle channels: the one path of both publishes.
  // False when the channel did not exist and was not created.
  template <class Fn>
  bool under_channel(std::string_view channel, bool create, Fn&& fn) {
    _published.fetch_add(1, std::memory_order_relaxed);
    const int64_t now = _host.now_ms();
    bool found = false;
    for (;;) {
      {
        std::shared_lock map_lock(_map_mutex);
        auto it = _channels.find(channel);
        if (it != _channels.end()) {
          {
            std::lock_guard order(it->second->order);
            fn(*it->second, now);
          }
          if (_memory.over_limit()) drop_least_recent();
          found = true;
          break;
        }
      }
      if (!create) break;
      add_channel(channel);
    }
    sweep(now);
    return found;
  }

  // `done` runs under the channel's lock (the views point into the history).
  flowrelay_status history(std::string_view channel, uint64_t since, flowrelay_history_fn done,
                           void* ctx) override {
    if (history_size() == 0) return FLOWRELAY_EUNSUPPORTED;
    _history_reads.fetch_add(1, std::memory_order_relaxed);
    flowrelay_history h{sizeof(flowrelay_history), {nullptr, 0}, 0, nullptr, 0, 0};
    std::shared_lock map_lock(_map_mutex);
    auto it = _channels.find(channel);
    if (it == _channels.end()) return done(ctx, FLOWRELAY_OK, &h), FLOWRELAY_OK;
    Channel& ch = *it->second;
    std::lock_guard order(ch.order);
    const int64_t oldest = oldest_kept(_host.now_ms());
    if (ch.history && ch.history->last_at_ms() < oldest) ch.history.reset();  // a new epoch next
    if (ch.history) {
      ch.history->trim_older_than(oldest);
      ch.history->enforce(bounds());  // a bound lowered by a reload
      _memory.touch(ch);
    }
    sync_bytes(ch);
    if (!ch.history) return done(ctx, FLOWRELAY_OK, &h), FLOWRELAY_OK;
    HistoryView view;
    ch.history->read_after(since, view);
    h.epoch = sdk::str(ch.history->epoch());
    h.top = ch.history->top();
    h.messages = view.messages.data();
    h.count = view.messages.size();
    h.trimmed = ch.history->trimmed();
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
                 count(_history_reads), local)
        .counter("flowrelay_history_dropped_total",
                 "Conversations whose whole history was dropped to keep history_memory_limit "
                 "(their resumes: recovered false, new epoch)",
                 _memory.dropped(), local)
        .gauge("flowrelay_history_bytes",
               "Bytes the histories hold: data plus an estimate of the per-entry overhead",
               _memory.bytes(), local)
        .gauge("flowrelay_history_memory_limit_bytes", "history_memory_limit (0: no limit)",
               _memory.limit(), local);
  }

  // Every option applies live: a smaller bound at each channel's next publish or read (the
  // memory limit at the next publish).
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
    _history_max_bytes.store(o.history_max_bytes, std::memory_order_relaxed);
    _memory.set_limit(o.history_memory_limit);
  }
  HistoryBounds bounds() const {
    return {history_size(), _history_max_bytes.load(std::memory_order_relaxed)};
  }
  size_t history_size() const { return _history_size.load(std::memory_order_relaxed); }
  int64_t oldest_kept(int64_t now) const {
    return now - _history_max_age_ms.load(std::memory_order_relaxed);
  }

  void add_channel(std::string_view channel) {
    std::unique_lock map_lock(_map_mutex);
    _channels.try_emplace(std::string(channel), std::make_unique<Channel>());
  }

  // The channel's history as of `now`: an expired one restarts with a new epoch.
  ChannelHistory& current_history(Channel& ch, int64_t now) {
    const int64_t oldest = oldest_kept(now);
    if (ch.history && ch.history->last_at_ms() < oldest) ch.history.reset();
    if (!ch.history) ch.history.emplace(new_epoch());
    ch.history->trim_older_than(oldest);
    return *ch.history;
  }

  // Tells HistoryMemory what the channel's history holds now (under the channel's lock).
  void sync_bytes(Channel& ch) {
    const uint64_t held = ch.history ? ch.history->memory_bytes() + kChannelOverhead : 0;
    _memory.add_bytes(static_cast<int64_t>(held) - static_cast<int64_t>(ch.accounted));
    ch.accounted = held;
    if (!ch.history) _memory.remove(ch);
  }

  // Assigns the offset, keeps the message and delivers it, all under the channel's lock.
  void publish_locked(Channel& ch, std::string_view channel, const flowrelay_message& in,
                      flowrelay_published_fn done, void* ctx, int64_t now) {
    flowrelay_message m = in;
    m.struct_size = sizeof(flowrelay_message);
    m.offset = 0;
    m.epoch = {nullptr, 0};
    m.reply = nullptr;  // a plain message (reply steps come through publish_reply)
    if (history_size() > 0) {
      ChannelHistory& history = current_history(ch, now);
      m.offset = history.append(m, now, bounds());
      m.epoch = sdk::str(history.epoch());
      sync_bytes(ch);
      _memory.touch(ch);
    }
    if (ch.subscribed) {
      _host.deliver(channel, m);
      _delivered.fetch_add(1, std::memory_order_relaxed);
    }
    if (done) done(ctx, FLOWRELAY_OK, m.offset, m.epoch);
  }

  // One reply step: checked, stored and delivered under the channel's lock.
  void reply_locked(Channel& ch, std::string_view channel, const flowrelay_message& in,
                    flowrelay_reply_published_fn done, void* ctx, int64_t now) {
    ChannelHistory& history = current_history(ch, now);
    ReplyStep step;
    history.apply_reply(in, now, bounds(), step);
    sync_bytes(ch);
    _memory.touch(ch);
    if (step.deliver && ch.subscribed) {
      _host.deliver(channel, step.message);
      _delivered.fetch_add(1, std::memory_order_relaxed);
    }
    if (!done) return;
    const flowrelay_reply_published result{
        sizeof(flowrelay_reply_published), step.status,       step.duplicate ? 1 : 0, step.offset,
        sdk::str(history.epoch()),         step.expected_seq, sdk::str(step.ended)};
    done(ctx, &result);
  }

  // Drops the least recently used histories whole until the node is under its limit (never the
  // one in use now). Runs under the map's shared lock, holding no channel's lock.
  void drop_least_recent() {
    while (_memory.over_limit()) {
      auto* victim = static_cast<Channel*>(_memory.least_recent());
      if (!victim) return;
      std::lock_guard order(victim->order);
      if (victim->history) _memory.count_dropped();
      victim->history.reset();  // its epoch is forgotten: the next publish starts a new one
      sync_bytes(*victim);
    }
  }

  // Forgets histories that aged out on channels nobody listens to.
  void sweep(int64_t now) {
    int64_t due = _next_sweep_ms.load(std::memory_order_relaxed);
    if (now < due || !_next_sweep_ms.compare_exchange_strong(due, now + kSweepIntervalMs)) return;
    const int64_t oldest = oldest_kept(now);
    std::unique_lock lock(_map_mutex);
    std::erase_if(_channels, [&](const auto& kv) {
      Channel& ch = *kv.second;
      if (ch.subscribed || (ch.history && ch.history->last_at_ms() >= oldest)) return false;
      ch.history.reset();
      sync_bytes(ch);
      return true;
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
  std::atomic<uint64_t> _history_max_bytes{0};
  HistoryMemory _memory;
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
