#include "router.h"

#include <memory>

namespace flowrelay {

Router::Router(uint64_t node_id, BrokerInstance& broker)
    : _node_id(node_id),
      _broker(broker),
      _watch(
          node_id,
          [this](std::string_view channel, const flowrelay_message& m) {
            fan_out(channel, m, *m.reply);
          },
          [this](std::string_view channel, const flowrelay_message& m,
                 flowrelay_reply_published_fn done,
                 void* ctx) { return publish_reply(channel, m, done, ctx); }) {}

void Router::deliver_reply(std::string_view channel, const flowrelay_message& message,
                           const flowrelay_reply& reply) {
  if (reply.kind == FLOWRELAY_KIND_STALLED) return;  // the daemon's own, never a broker's
  _watch.observe(channel, message, reply);
  fan_out(channel, message, reply);
}

void Router::fan_out(std::string_view channel, const flowrelay_message& message,
                     const flowrelay_reply& reply) {
  const bool plain = reply.kind == FLOWRELAY_KIND_DELTA || reply.kind == FLOWRELAY_KIND_MESSAGE;
  for (TransportInstance* t : _transports) {
    if (t->takes_replies()) {
      t->deliver(channel, message);
    } else if (plain) {
      flowrelay_message m = message;
      m.reply = nullptr;
      t->deliver(channel, m);
    }
  }
}

flowrelay_status Router::subscribe(std::string_view channel) {
  std::lock_guard lock(_mutex);
  auto it = _channels.find(channel);
  if (it != _channels.end() && it->second.state != State::Failed) {
    _broker.presence_set(channel, ++it->second.sessions);
    return it->second.state == State::Live ? FLOWRELAY_OK : FLOWRELAY_PENDING;
  }
  // First session on this node, or one joining after the broker failed the channel: ask the
  // broker (again).
  const flowrelay_status status = _broker.subscribe(channel);
  if (status != FLOWRELAY_OK && status != FLOWRELAY_PENDING) return status;
  if (it == _channels.end()) {
    it = _channels.emplace(std::string(channel), Entry{}).first;
    _watch.watch_channel(channel);
  }
  _broker.presence_set(channel, ++it->second.sessions);
  it->second.state = status == FLOWRELAY_OK ? State::Live : State::Pending;
  return status;
}

void Router::unsubscribe(std::string_view channel) {
  std::lock_guard lock(_mutex);
  auto it = _channels.find(channel);
  if (it == _channels.end() || it->second.sessions == 0) return;
  const uint64_t left = --it->second.sessions;
  _broker.presence_set(channel, left);
  if (left > 0) return;
  _broker.unsubscribe(channel);
  _watch.forget_channel(channel);
  _channels.erase(it);
}

void Router::subscribed(std::string_view channel, flowrelay_status status) {
  {
    std::lock_guard lock(_mutex);
    auto it = _channels.find(channel);
    if (it == _channels.end()) return;  // every session left meanwhile
    State& state = it->second.state;
    // Pending: the answer to our subscribe. Live: only an error means something (a failed
    // re-subscribe); an OK is a duplicate. Failed: the next subscribe asks again.
    if (state == State::Failed || (state == State::Live && status == FLOWRELAY_OK)) return;
    state = status == FLOWRELAY_OK ? State::Live : State::Failed;
  }
  // Outside the lock: a transport may unsubscribe the sessions it closes from inside this call.
  for (TransportInstance* t : _transports) t->subscribed(channel, status);
}

namespace {

void on_presence(void* ctx, flowrelay_status status, uint64_t clients, uint32_t nodes) noexcept {
  std::unique_ptr<Router::PresenceFn> done(static_cast<Router::PresenceFn*>(ctx));
  try {
    (*done)(status, clients, nodes);
  } catch (...) {
    // Nothing may cross back into the broker; the caller's own timeout answers its client.
  }
}

}  // namespace

void Router::presence(std::string_view channel, PresenceFn done) {
  auto ctx = std::make_unique<PresenceFn>(std::move(done));
  const flowrelay_status s = _broker.presence(channel, on_presence, ctx.get());
  if (s == FLOWRELAY_OK || s == FLOWRELAY_PENDING) {
    ctx.release();  // on_presence owns it now
    return;
  }
  if (s != FLOWRELAY_EUNSUPPORTED) return (*ctx)(s, 0, 0);
  const uint64_t here = sessions(channel);
  (*ctx)(FLOWRELAY_OK, here, here > 0 ? 1 : 0);
}

uint64_t Router::sessions(std::string_view channel) const {
  std::lock_guard lock(_mutex);
  auto it = _channels.find(channel);
  return it == _channels.end() ? 0 : it->second.sessions;
}

std::size_t Router::channel_count() const {
  std::lock_guard lock(_mutex);
  return _channels.size();
}

std::size_t Router::session_count() const {
  std::lock_guard lock(_mutex);
  std::size_t n = 0;
  for (const auto& [name, entry] : _channels) n += entry.sessions;
  return n;
}

}  // namespace flowrelay
