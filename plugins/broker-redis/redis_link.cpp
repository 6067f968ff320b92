#include "redis_link.h"

#include <time.h>

#include <algorithm>

namespace flowrelay::redis {

int64_t monotonic_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

int64_t LinkOutage::down(const RedisContext& ctx, const char* role, const std::string& where,
                         const std::string& reason, bool was_up) {
  const uint32_t min = ctx.live.reconnect_min_ms.load();
  _backoff_ms = _backoff_ms == 0
                    ? min
                    : std::max(min, std::min(_backoff_ms * 2, ctx.live.reconnect_max_ms.load()));
  if (was_up || _failures == 0)
    ctx.log(FLOWRELAY_LOG_WARNING, std::string("redis ") + role + " connection " +
                                       (was_up ? "lost" : "failed") + " (" + where +
                                       "): " + reason + "; reconnecting");
  ++_failures;
  return monotonic_ms() + _backoff_ms;
}

void LinkOutage::up(RedisContext& ctx, const char* role, const std::string& where) {
  if (_failures > 0) {
    ctx.count.add(ctx.count.reconnects);
    ctx.log(FLOWRELAY_LOG_NOTICE,
            std::string("redis ") + role + " connection restored (" + where + ")");
  } else {
    ctx.log(FLOWRELAY_LOG_INFO, std::string("redis ") + role + " connected");
  }
  _failures = 0;
  _backoff_ms = 0;
}

RedisLink::RedisLink(RedisContext& ctx, LinkEvents& events, const char* role,
                     const char* client_name, bool select_db)
    : _ctx(ctx),
      _events(events),
      _role(role),
      _client_name(client_name),
      _select_db(select_db),
      _target(ctx.master),
      _check_role(ctx.sentinel_mode()) {}

RedisLink::RedisLink(RedisContext& ctx, LinkEvents& events, const char* role,
                     const char* client_name, const RedisEndpoint& target)
    : _ctx(ctx),
      _events(events),
      _role(role),
      _client_name(client_name),
      _select_db(false),
      _target(target),
      _check_role(false) {}

// The owner close()s the link on its thread first; whatever hiredis still holds is gone then.
RedisLink::~RedisLink() { free_dead_adapters(); }

void RedisLink::close() {
  if (_ac) redisAsyncFree(_ac);  // runs the callbacks with no reply, then disconnect_cb
}

void RedisLink::connect() {
  if (_target.host.empty() && _target.unix_path.empty()) {
    // The master is not known yet: the sentinel watch asks, and relinks once it is.
    _retry_at_ms = monotonic_ms() + _ctx.live.reconnect_min_ms.load();
    return;
  }
  _connected_to = _target;
  const auto& ep = _connected_to;
  redisAsyncContext* ac = ep.unix_path.empty() ? redisAsyncConnect(ep.host.c_str(), ep.port)
                                               : redisAsyncConnectUnix(ep.unix_path.c_str());
  if (!ac || ac->err) {
    const std::string why = ac ? ac->errstr : "out of memory";
    if (ac) redisAsyncFree(ac);
    _state = State::Connecting;  // so mark_down() counts and logs it
    mark_down(why, false);
    return;
  }
  ac->data = this;
  _ac = ac;
  _adapters.push_back(HiredisEpoll::attach(_ctx.epoll_fd, ac));
  redisAsyncSetConnectCallback(ac, connect_cb);
  redisAsyncSetDisconnectCallback(ac, disconnect_cb);
  _state = State::Connecting;
  _since_ms = monotonic_ms();
}

void RedisLink::connect_cb(const redisAsyncContext* ac, int status) {
  auto& link = *static_cast<RedisLink*>(ac->data);
  if (status != REDIS_OK) {
    // hiredis frees the context after this callback, without a disconnect callback.
    const std::string why = ac->errstr[0] ? ac->errstr : "connect failed";
    link._ac = nullptr;
    link.mark_down(why, false);
    return;
  }
  link.on_connected();
}

void RedisLink::on_connected() {
  const auto& ep = _connected_to;
  _state = State::Authenticating;
  _since_ms = monotonic_ms();
  // AUTH and SELECT go first; the link is Up once Redis accepted them (or a PING when there
  // is nothing to say), so a wrong password shows as an error, not as a silent hang.
  if (!ep.password.empty()) {
    if (ep.user.empty())
      redisAsyncCommand(_ac, auth_cb, nullptr, "AUTH %b", ep.password.data(), ep.password.size());
    else
      redisAsyncCommand(_ac, auth_cb, nullptr, "AUTH %b %b", ep.user.data(), ep.user.size(),
                        ep.password.data(), ep.password.size());
  }
  if (ep.db != 0 && _select_db) redisAsyncCommand(_ac, auth_cb, nullptr, "SELECT %d", ep.db);
  // Named for CLIENT LIST (and for tests that cut one link). Refused when CLIENT is not
  // allowed (ACL, managed Redis): harmless, hence no callback.
  redisAsyncCommand(_ac, nullptr, nullptr, "CLIENT SETNAME %s", _client_name);
  _events.link_connected(*this);
  redisAsyncCommand(_ac, auth_cb, reinterpret_cast<void*>(1), "PING");
}

void RedisLink::auth_cb(redisAsyncContext* ac, void* r, void* last) {
  auto& link = *static_cast<RedisLink*>(ac->data);
  auto* reply = static_cast<redisReply*>(r);
  if (!reply) return;  // disconnected meanwhile; the disconnect callback handles it
  if (reply->type == REDIS_REPLY_ERROR) {
    const std::string why(str_of(reply));
    link._ctx.report(FLOWRELAY_EUNAVAIL,
                     std::string("redis refused the ") + link._role + " connection: " + why);
    link.drop("redis said: " + why, true);
    return;
  }
  if (!last || link._state != State::Authenticating) return;
  if (!link._check_role) {
    link.on_up();
    return;
  }
  redisAsyncCommand(ac, role_cb, nullptr, "ROLE");
}

// Sentinel mode: a failover demotes the old master; a link that reached it (an address the
// sentinels gave a moment earlier) must not carry writes there.
void RedisLink::role_cb(redisAsyncContext* ac, void* r, void*) {
  auto& link = *static_cast<RedisLink*>(ac->data);
  auto* reply = static_cast<redisReply*>(r);
  if (!reply || link._state != State::Authenticating) return;
  if (reply->type == REDIS_REPLY_ERROR) {
    if (!link._role_error_logged)
      link._ctx.log(FLOWRELAY_LOG_WARNING, "redis " + link.describe() + " refused ROLE (" +
                                               std::string(str_of(reply)) +
                                               "); trusting the sentinels that it is the master");
    link._role_error_logged = true;
    link.on_up();
    return;
  }
  const bool master = reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
                      reply->element[0]->type == REDIS_REPLY_STRING &&
                      str_of(reply->element[0]) == "master";
  if (master) {
    link._replica_logged = false;
    link.on_up();
    return;
  }
  if (!link._replica_logged)
    link._ctx.log(FLOWRELAY_LOG_WARNING, link.describe() + " is a replica, not the master of " +
                                             link._ctx.options.master_name +
                                             "; asking the sentinels again");
  link._replica_logged = true;
  link.drop("not the master", true);
}

void RedisLink::on_up() {
  _outage.up(_ctx, _role, describe());
  _state = State::Up;
  _since_ms = monotonic_ms();
  _events.link_up(*this);
}

void RedisLink::disconnect_cb(const redisAsyncContext* ac, int status) {
  auto& link = *static_cast<RedisLink*>(ac->data);
  link._ac = nullptr;  // hiredis frees it after this callback
  // An error reply hiredis had no callback for (a refused SUBSCRIBE in subscribed mode): it
  // closes the connection with Redis' words in errstr.
  const bool refused =
      status != REDIS_OK && ac->err == REDIS_ERR_OTHER && link._drop_reason.empty();
  std::string why = !link._drop_reason.empty() ? link._drop_reason
                    : status == REDIS_OK       ? "connection closed"
                                               : (ac->errstr[0] ? ac->errstr : "connection lost");
  link.mark_down(why, refused);
}

void RedisLink::mark_down(const std::string& reason, bool refused) {
  const bool was_up = _state == State::Up;
  _ac = nullptr;
  _state = State::Down;
  _drop_reason.clear();
  if (_ctx.closing) return;
  _retry_at_ms = _outage.down(_ctx, _role, describe(), reason, was_up);
  _events.link_down(*this, refused, reason);
}

void RedisLink::drop(const std::string& reason, bool in_callback) {
  if (!_ac) return;
  _drop_reason = reason;
  if (in_callback) {
    // hiredis disconnects once out of its callback (after the replies already asked for).
    redisAsyncDisconnect(_ac);
    return;
  }
  // A hung Redis would never answer what a graceful disconnect waits for: free outright.
  // That runs the disconnect callback if the link was connected...
  redisAsyncContext* ac = _ac;
  redisAsyncFree(ac);
  if (_ac == ac) mark_down(reason, false);  // ...and nothing if it was still connecting
}

void RedisLink::reconnect_now(const std::string& reason) {
  if (_state != State::Down) {
    if (_ac)
      drop(reason, false);
    else
      mark_down(reason, false);
  }
  _outage.reset_backoff();
  _retry_at_ms = 0;
}

int64_t RedisLink::check(int64_t now) {
  const uint32_t connect_timeout = _ctx.live.connect_timeout_ms.load();
  switch (_state) {
    case State::Down:
      if (now < _retry_at_ms) return _retry_at_ms;
      connect();
      return _state == State::Down ? _retry_at_ms : now + connect_timeout + 1;
    case State::Connecting:
    case State::Authenticating:
      if (now - _since_ms <= connect_timeout) return _since_ms + connect_timeout + 1;
      drop("no answer within connect_timeout_ms (" + std::to_string(connect_timeout) + " ms)",
           false);
      return _retry_at_ms;
    case State::Up:
      break;
  }
  return INT64_MAX;
}

void RedisLink::free_dead_adapters() {
  auto dead = std::stable_partition(_adapters.begin(), _adapters.end(),
                                    [](HiredisEpoll* a) { return !a->dead(); });
  for (auto it = dead; it != _adapters.end(); ++it) delete *it;
  _adapters.erase(dead, _adapters.end());
}

}  // namespace flowrelay::redis
