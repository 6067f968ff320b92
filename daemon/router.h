// The channel router: counts local sessions per channel so the broker sees only the first
// subscribe and the last unsubscribe of a channel on this node, and hands each message from
// the broker once to every transport (which fans it out to its own sessions).
#pragma once

#include <flowrelay/plugin.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace flowrelay {

// What the router needs of a broker; the daemon binds it to a plugin instance.
struct BrokerPort {
  std::function<flowrelay_status(std::string_view channel)> subscribe;
  std::function<flowrelay_status(std::string_view channel)> unsubscribe;
  std::function<flowrelay_status(std::string_view channel, const flowrelay_message& message,
                                 flowrelay_published_fn done, void* done_ctx)>
      publish;
  std::function<flowrelay_status(std::string_view channel, uint64_t since,
                                 flowrelay_history_fn done, void* done_ctx)>
      history;
};

// What the router needs of a transport.
struct TransportPort {
  std::function<void(std::string_view channel, const flowrelay_message& message)> deliver;
  std::function<void(std::string_view channel, flowrelay_status status)> subscribed;
};

class Router {
 public:
  explicit Router(BrokerPort broker) : _broker(std::move(broker)) {}

  // [main, before traffic] Transports that receive deliveries.
  void add_transport(TransportPort transport) { _transports.push_back(std::move(transport)); }

  // [any thread] One session joined: OK, PENDING (transports get subscribed() later) or the
  // broker's error (then the session is not counted).
  flowrelay_status subscribe(std::string_view channel);
  // [any thread] One session left (after OK or PENDING from subscribe).
  void unsubscribe(std::string_view channel);
  // [any thread, non-blocking] Publishing and history reads need no channel state here: the
  // broker keeps both (see flowrelay_broker_vtable.publish_message / history).
  flowrelay_status publish(std::string_view channel, const flowrelay_message& message,
                           flowrelay_published_fn done = nullptr, void* done_ctx = nullptr) {
    return _broker.publish(channel, message, done, done_ctx);
  }
  flowrelay_status history(std::string_view channel, uint64_t since, flowrelay_history_fn done,
                           void* done_ctx) {
    if (!_broker.history) return FLOWRELAY_EUNSUPPORTED;
    return _broker.history(channel, since, done, done_ctx);
  }

  // [broker thread] A message for this node: once to each transport.
  void deliver(std::string_view channel, const flowrelay_message& message) {
    for (auto& t : _transports) t.deliver(channel, message);
  }
  // [broker thread] The broker confirmed (or refused) a PENDING subscription.
  void subscribed(std::string_view channel, flowrelay_status status);

  // Channels with at least one local session, and the total of sessions counted.
  std::size_t channel_count() const;
  std::size_t session_count() const;

 private:
  enum class State { Live, Pending, Failed };
  struct Entry {
    uint64_t sessions = 0;
    State state = State::Live;
  };
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  BrokerPort _broker;
  std::vector<TransportPort> _transports;
  mutable std::mutex _mutex;  // held across broker subscribe/unsubscribe to keep their order
  std::unordered_map<std::string, Entry, Hash, std::equal_to<>> _channels;
};

}  // namespace flowrelay
