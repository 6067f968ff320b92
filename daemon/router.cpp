#include "router.h"

namespace flowrelay {

flowrelay_status Router::subscribe(std::string_view channel) {
  std::lock_guard lock(_mutex);
  auto it = _channels.find(channel);
  if (it != _channels.end() && it->second.state != State::Failed) {
    ++it->second.sessions;
    return it->second.state == State::Live ? FLOWRELAY_OK : FLOWRELAY_PENDING;
  }
  // First session on this node, or one joining after the broker failed the channel: ask the
  // broker (again).
  const flowrelay_status status = _broker.subscribe(channel);
  if (status != FLOWRELAY_OK && status != FLOWRELAY_PENDING) return status;
  if (it == _channels.end()) it = _channels.emplace(std::string(channel), Entry{}).first;
  ++it->second.sessions;
  it->second.state = status == FLOWRELAY_OK ? State::Live : State::Pending;
  return status;
}

void Router::unsubscribe(std::string_view channel) {
  std::lock_guard lock(_mutex);
  auto it = _channels.find(channel);
  if (it == _channels.end() || it->second.sessions == 0) return;
  if (--it->second.sessions > 0) return;
  _broker.unsubscribe(channel);
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
