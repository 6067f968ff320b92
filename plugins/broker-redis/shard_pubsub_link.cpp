#include "shard_pubsub_link.h"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace flowrelay::redis {

namespace {
constexpr const char* kRole = "shard subscriber";

bool is_push(const redisReply* r, std::string_view kind, size_t elements) {
  return r->type == REDIS_REPLY_ARRAY && r->elements == elements &&
         r->element[0]->type == REDIS_REPLY_STRING && str_of(r->element[0]) == kind;
}
bool is_pong(const redisReply* r) {
  return (r->type == REDIS_REPLY_STATUS && str_of(r) == "PONG") || is_push(r, "pong", 2);
}
std::string_view push_channel(const redisReply* r) {
  return r->element[1]->type == REDIS_REPLY_STRING ? str_of(r->element[1]) : std::string_view();
}
}  // namespace

ShardPubSubLink::ShardPubSubLink(RedisContext& ctx, ShardPubSubEvents& events, RedisEndpoint master)
    : _ctx(ctx), _events(events), _master(std::move(master)) {}

ShardPubSubLink::~ShardPubSubLink() { close(); }

void ShardPubSubLink::close() {
  if (_c) {
    watch(0);
    redisFree(_c);
    _c = nullptr;
  }
  _expected.clear();
  _state = State::Down;
}

void ShardPubSubLink::connect() {
  redisContext* c = _master.unix_path.empty()
                        ? redisConnectNonBlock(_master.host.c_str(), _master.port)
                        : redisConnectUnixNonBlock(_master.unix_path.c_str());
  _state = State::Connecting;
  _since_ms = monotonic_ms();
  if (!c || c->err) {
    const std::string why = c ? c->errstr : "out of memory";
    if (c) redisFree(c);
    mark_down(why);
    return;
  }
  _c = c;
  watch(EPOLLOUT);  // writable once the connect completed, or failed
}

void ShardPubSubLink::handle(uint32_t events) {
  if (!_c) return;
  if (_state == State::Connecting) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(_c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) {
      mark_down(std::strerror(err));
      return;
    }
    on_connected();
    return;
  }
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) read();
  if (_c && (events & EPOLLOUT)) flush();
}

void ShardPubSubLink::on_connected() {
  _state = State::Authenticating;
  _since_ms = monotonic_ms();
  if (!_master.password.empty()) {
    if (_master.user.empty())
      send({"AUTH", _master.password}, Awaits::Auth);
    else
      send({"AUTH", _master.user, _master.password}, Awaits::Auth);
  }
  if (!_c) return;
  send({"CLIENT", "SETNAME", "flowrelay-ssub"}, Awaits::Setname);  // refused by some ACLs: fine
  if (_c) send({"PING"}, Awaits::Ready);
}

void ShardPubSubLink::subscribe(const std::vector<std::string>& channels) {
  for (const auto& ch : channels) {
    if (!_c || _state != State::Up) return;  // re-subscribed on the next shard_up()
    send({"SSUBSCRIBE", ch}, Awaits::Subscribe, ch);
  }
}

void ShardPubSubLink::unsubscribe(const std::vector<std::string>& channels) {
  for (const auto& ch : channels) {
    if (!_c || _state != State::Up) return;  // nothing is subscribed on a new connection
    send({"SUNSUBSCRIBE", ch}, Awaits::Unsubscribe, ch);
  }
}

void ShardPubSubLink::send(const std::vector<std::string_view>& argv, Awaits what,
                           std::string channel) {
  std::vector<const char*> args;
  std::vector<size_t> lens;
  for (auto a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  if (redisAppendCommandArgv(_c, static_cast<int>(args.size()), args.data(), lens.data()) !=
      REDIS_OK) {
    mark_down("cannot format a command: " + std::string(_c->errstr));
    return;
  }
  _expected.push_back({what, std::move(channel)});
  flush();
}

void ShardPubSubLink::flush() {
  int done = 0;
  if (redisBufferWrite(_c, &done) != REDIS_OK) {
    mark_down(_c->errstr[0] ? _c->errstr : "write failed");
    return;
  }
  watch(EPOLLIN | (done ? 0u : uint32_t(EPOLLOUT)));  // the rest once the socket takes it
}

void ShardPubSubLink::read() {
  if (redisBufferRead(_c) != REDIS_OK) {
    mark_down(_c->errstr[0] ? _c->errstr : "connection lost");
    return;
  }
  for (;;) {
    void* r = nullptr;
    if (redisGetReply(_c, &r) != REDIS_OK) {  // non-blocking: only what was read is parsed
      mark_down(std::string("protocol error: ") + _c->errstr);
      return;
    }
    if (!r) return;
    auto* reply = static_cast<redisReply*>(r);
    const bool alive = dispatch(reply);
    freeReplyObject(reply);
    if (!alive) return;
  }
}

bool ShardPubSubLink::dispatch(const redisReply* reply) {
  if (is_push(reply, "smessage", 3) && reply->element[2]->type == REDIS_REPLY_STRING) {
    _events.shard_message(*this, push_channel(reply), str_of(reply->element[2]));
    return _c != nullptr;
  }
  if (is_push(reply, "sunsubscribe", 3)) {
    const std::string_view ch = push_channel(reply);
    const bool asked = !_expected.empty() && _expected.front().what == Awaits::Unsubscribe &&
                       _expected.front().channel == ch;
    if (!asked) {
      _events.shard_lost(*this, ch);
      return _c != nullptr;
    }
  }
  if (_expected.empty()) {
    mark_down("a reply nothing asked for");
    return false;
  }
  const Expected e = std::move(_expected.front());
  _expected.pop_front();
  return answered(e, reply);
}

bool ShardPubSubLink::answered(const Expected& e, const redisReply* reply) {
  const bool error = reply->type == REDIS_REPLY_ERROR;
  switch (e.what) {
    case Awaits::Setname:
      return true;
    case Awaits::Auth:
    case Awaits::Ready:
      if (error) {
        const std::string why(str_of(reply));
        _ctx.report(FLOWRELAY_EUNAVAIL,
                    "redis " + describe() + " refused the shard subscriber connection: " + why);
        mark_down("redis said: " + why);
        return false;
      }
      if (e.what == Awaits::Auth) return true;
      if (!is_pong(reply)) {
        mark_down("unexpected answer to PING");
        return false;
      }
      _state = State::Up;
      _since_ms = monotonic_ms();
      _ping_sent_ms = 0;
      _next_ping_ms = _since_ms + _ctx.live.ping_interval_ms.load();
      _outage.up(_ctx, kRole, describe());
      _events.shard_up(*this);
      return _c != nullptr;
    case Awaits::Ping:
      // An error (a PING an ACL forbids) is an answer too: Redis is alive.
      _ping_sent_ms = 0;
      return true;
    case Awaits::Subscribe:
      if (error) {
        _events.shard_subscribed(*this, e.channel, str_of(reply));
        return _c != nullptr;
      }
      if (!is_push(reply, "ssubscribe", 3) || push_channel(reply) != e.channel) {
        mark_down("unexpected answer to SSUBSCRIBE " + e.channel);
        return false;
      }
      _events.shard_subscribed(*this, e.channel, {});
      return _c != nullptr;
    case Awaits::Unsubscribe:
      return true;
  }
  return true;
}

int64_t ShardPubSubLink::check(int64_t now) {
  const uint32_t connect_timeout = _ctx.live.connect_timeout_ms.load();
  switch (_state) {
    case State::Down:
      if (_ctx.closing) return INT64_MAX;
      if (now < _retry_at_ms) return _retry_at_ms;
      connect();
      return _state == State::Down ? _retry_at_ms : now + connect_timeout + 1;
    case State::Connecting:
    case State::Authenticating:
      if (now - _since_ms <= connect_timeout) return _since_ms + connect_timeout + 1;
      mark_down("no answer within connect_timeout_ms (" + std::to_string(connect_timeout) + " ms)");
      return _retry_at_ms;
    case State::Up:
      break;
  }
  const uint32_t timeout = _ctx.live.command_timeout_ms.load();
  if (_ping_sent_ms) {
    if (now - _ping_sent_ms <= timeout) return _ping_sent_ms + timeout + 1;
    mark_down("no PONG within command_timeout_ms (" + std::to_string(timeout) + " ms)");
    return _retry_at_ms;
  }
  if (now < _next_ping_ms) return _next_ping_ms;
  _ping_sent_ms = now;
  _next_ping_ms = now + _ctx.live.ping_interval_ms.load();
  send({"PING"}, Awaits::Ping);
  return now + timeout + 1;
}

void ShardPubSubLink::drop(const std::string& reason) {
  if (_state != State::Down) mark_down(reason);
}

void ShardPubSubLink::watch(uint32_t events) {
  if (!_c || events == _watched) return;
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = static_cast<EpollHandler*>(this);
  const int op = _watched == 0 ? EPOLL_CTL_ADD : events == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
  epoll_ctl(_ctx.epoll_fd, op, _c->fd, events == 0 ? nullptr : &ev);
  _watched = events;
}

void ShardPubSubLink::mark_down(const std::string& reason) {
  const bool was_up = _state == State::Up;
  close();
  if (_ctx.closing) return;
  _retry_at_ms = _outage.down(_ctx, kRole, describe(), reason, was_up);
  _events.shard_down(*this, reason, was_up);
}

}  // namespace flowrelay::redis
