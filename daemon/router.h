// The channel router: counts local sessions per channel so the broker sees only the first
// subscribe and the last unsubscribe of a channel on this node (and every new count, for
// presence), and hands each message from the broker once to every transport (which fans it out
// to its own sessions).
//
// The path of one message is direct: a transport's host publish -> Router::publish ->
// BrokerInstance::publish -> the broker's slot; the broker's host deliver -> Router::deliver ->
// TransportInstance::deliver -> each transport's slot. Reply steps (ABI 2.2) take a side path
// from one kind check: the reply watch sees them (liveness, metrics) and transports built
// before 2.2 get deltas as plain messages and nothing else of a reply.
#pragma once

#include <flowrelay/plugin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "plugin_instance.h"
#include "replies/reply_watch.h"

namespace flowrelay {

class Router {
 public:
  // `node_id` goes into the origin of every publish (flowrelay_origin.node).
  Router(uint64_t node_id, BrokerInstance& broker);

  // [main, before traffic] A transport that receives deliveries and subscription outcomes.
  void add_transport(TransportInstance& transport) { _transports.push_back(&transport); }

  // [any thread] One session joined: OK, PENDING (transports get subscribed() later) or the
  // broker's error (then the session is not counted). A session joining a Failed channel makes
  // the broker subscribe again.
  flowrelay_status subscribe(std::string_view channel);
  // [any thread] One session left (after OK or PENDING from subscribe). The last one's leaving
  // unsubscribes the broker and forgets the channel.
  void unsubscribe(std::string_view channel);

  // [any thread, non-blocking] The message as given, from this node: origin.node is set here,
  // origin.session is the caller's (0 from the publish API), seq is the broker's. Publishing
  // and history reads need no channel state here: the broker keeps both.
  flowrelay_status publish(std::string_view channel, const flowrelay_message& message,
                           flowrelay_published_fn done = nullptr, void* done_ctx = nullptr) {
    flowrelay_message m = own_copy(message);
    return _broker.publish(channel, m, done, done_ctx);
  }
  // [any thread, non-blocking] A reply step (OPEN, DELTA, END) as given, from this node.
  flowrelay_status publish_reply(std::string_view channel, const flowrelay_message& message,
                                 flowrelay_reply_published_fn done, void* done_ctx) {
    flowrelay_message m = own_copy(message);
    return _broker.publish_reply(channel, m, done, done_ctx);
  }
  flowrelay_status history(std::string_view channel, uint64_t since, flowrelay_history_fn done,
                           void* done_ctx) {
    return _broker.history(channel, since, done, done_ctx);
  }

  // How many clients `channel` has on every node, and on how many nodes (status OK), or why
  // the broker could not tell.
  using PresenceFn = std::function<void(flowrelay_status status, uint64_t clients, uint32_t nodes)>;
  // [any thread, non-blocking] Asks the broker; `done` runs exactly once, on any thread, maybe
  // before this returns. A broker without presence (slot NULL or EUNSUPPORTED) serves one
  // node: then this node's own count answers.
  void presence(std::string_view channel, PresenceFn done);

  // [broker thread] A message for this node: once to each transport. No channel lookup here: a
  // late delivery after the last session left is dropped by the transports, which have none.
  void deliver(std::string_view channel, const flowrelay_message& message) {
    if (const flowrelay_reply* reply = flowrelay_reply_of(&message)) [[unlikely]]
      return deliver_reply(channel, message, *reply);
    for (TransportInstance* t : _transports) t->deliver(channel, message);
  }
  // [broker thread] The broker's word on a channel: the outcome of a PENDING subscribe, or an
  // error for a Live channel it could not re-subscribe after a reconnect. An error marks the
  // channel Failed and reaches every transport, which closes its sessions of it; they leave
  // through unsubscribe() as usual.
  void subscribed(std::string_view channel, flowrelay_status status);

  // Channels with at least one local session, and the total of sessions counted.
  std::size_t channel_count() const;
  std::size_t session_count() const;
  // Sessions of `channel` on this node.
  uint64_t sessions(std::string_view channel) const;

  // [any thread] channels.reply_stall_ms / reply_timeout_ms (0: off), live.
  void set_reply_timers(uint32_t stall_ms, uint32_t timeout_ms) {
    _watch.set_timers(stall_ms, timeout_ms);
  }
  // [main] Before the broker goes: no stalled notice or seal after it returns.
  void stop_reply_watch() { _watch.stop(); }
  // The reply families of /metrics.
  void reply_metrics(sdk::PrometheusText& out) const { _watch.metrics(out); }

 private:
  void deliver_reply(std::string_view channel, const flowrelay_message& message,
                     const flowrelay_reply& reply);
  // To each transport as it can take it: all of it from 2.2 on; before, a delta as a plain
  // message with its text and nothing else of a reply.
  void fan_out(std::string_view channel, const flowrelay_message& message,
               const flowrelay_reply& reply);

  // The caller's message at this daemon's struct size (a 2.0/2.1 plugin's is shorter: the
  // fields it lacks read as empty), from this node: origin.node set, seq the broker's.
  flowrelay_message own_copy(const flowrelay_message& message) const {
    flowrelay_message m{};
    std::memcpy(&m, &message, std::min<size_t>(sizeof m, message.struct_size));
    m.struct_size = sizeof m;
    m.origin.node = _node_id;
    m.origin.seq = 0;
    return m;
  }

  enum class State { Live, Pending, Failed };
  struct Entry {
    uint64_t sessions = 0;
    State state = State::Live;
  };
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  const uint64_t _node_id;
  BrokerInstance& _broker;
  std::vector<TransportInstance*> _transports;
  mutable std::mutex _mutex;  // held across broker subscribe/unsubscribe to keep their order
  std::unordered_map<std::string, Entry, Hash, std::equal_to<>> _channels;
  ReplyWatch _watch;  // last: its timer thread stops before the rest goes
};

}  // namespace flowrelay
