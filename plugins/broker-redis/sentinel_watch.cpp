#include "sentinel_watch.h"

#include <algorithm>
#include <utility>

namespace flowrelay::redis {

SentinelWatch::SentinelWatch(RedisContext& ctx)
    : _ctx(ctx),
      _sentinel(ctx.options.sentinels.at(0)),
      _query(ctx, *this, "sentinel", "flowrelay-sentinel", _sentinel),
      _switches(ctx, *this, "sentinel events", "flowrelay-sentinel-sub", _sentinel) {}

void SentinelWatch::connect() {
  _query.connect();
  _switches.connect();
}

void SentinelWatch::link_up(RedisLink& link) {
  if (&link == &_query) {
    _ctx.count.sentinel_up = 1;
    ask();
    return;
  }
  redisAsyncCommand(link.context(), switch_cb, this, "SUBSCRIBE +switch-master");
}

void SentinelWatch::link_down(RedisLink& link, bool, const std::string& reason) {
  if (&link == &_query) {
    _ctx.count.sentinel_up = 0;
    _asking = false;
  }
  if (!_rotating) next_sentinel(reason);
}

// Both links move to the next sentinel: a sentinel that lost one is suspect for the other.
void SentinelWatch::next_sentinel(const std::string& reason) {
  const auto& all = _ctx.options.sentinels;
  _index = (_index + 1) % all.size();
  _sentinel = all[_index];
  _rotating = true;
  if (_query.state() != RedisLink::State::Down) _query.drop(reason, false);
  if (_switches.state() != RedisLink::State::Down) _switches.drop(reason, false);
  _rotating = false;
  _next_ask_ms = 0;
}

void SentinelWatch::ask() {
  if (_asking || !_query.up()) return;
  _asking = true;
  _next_ask_ms = monotonic_ms() + _ctx.live.sentinel_check_ms.load();
  const std::string& name = _ctx.options.master_name;
  redisAsyncCommand(_query.context(), addr_cb, this, "SENTINEL get-master-addr-by-name %b",
                    name.data(), name.size());
}

void SentinelWatch::addr_cb(redisAsyncContext*, void* r, void* self) {
  auto& w = *static_cast<SentinelWatch*>(self);
  auto* reply = static_cast<redisReply*>(r);
  w._asking = false;
  if (!reply) return;  // the link went down; link_down() moves on
  const std::string& name = w._ctx.options.master_name;
  if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
      reply->element[0]->type == REDIS_REPLY_STRING &&
      reply->element[1]->type == REDIS_REPLY_STRING) {
    w._unknown_reported = false;
    w.set_master(str_of(reply->element[0]), str_of(reply->element[1]));
    return;
  }
  const std::string why =
      reply->type == REDIS_REPLY_ERROR
          ? "sentinel " + w._query.describe() + " refused: " + std::string(str_of(reply))
          : "sentinel " + w._query.describe() + " does not know master " + name;
  if (!w._unknown_reported) w._ctx.report(FLOWRELAY_EUNAVAIL, why);
  w._unknown_reported = true;
  // Another sentinel may know better; with one, it is asked again every sentinel_check_ms.
  if (w._ctx.options.sentinels.size() > 1) w._query.drop(why, true);
}

// "+switch-master" carries "NAME oldip oldport newip newport".
void SentinelWatch::switch_cb(redisAsyncContext*, void* r, void* self) {
  auto& w = *static_cast<SentinelWatch*>(self);
  auto* reply = static_cast<redisReply*>(r);
  if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) return;
  if (reply->element[0]->type != REDIS_REPLY_STRING || str_of(reply->element[0]) != "message" ||
      reply->element[2]->type != REDIS_REPLY_STRING)
    return;
  std::string_view fields[5];
  std::string_view text = str_of(reply->element[2]);
  size_t n = 0;
  while (n < 5 && !text.empty()) {
    const auto space = text.find(' ');
    fields[n++] = text.substr(0, space);
    text = space == std::string_view::npos ? "" : text.substr(space + 1);
  }
  if (n != 5 || fields[0] != w._ctx.options.master_name) return;
  w.set_master(fields[3], fields[4]);
}

void SentinelWatch::set_master(std::string_view host, std::string_view port_text) {
  int port = 0;
  if (!sdk::parse_number(port_text, 1, 65535, port) || host.empty()) {
    _ctx.log(FLOWRELAY_LOG_WARNING, "sentinel " + _query.describe() + " gave a bad address '" +
                                        std::string(host) + ":" + std::string(port_text) + "'");
    return;
  }
  RedisEndpoint& master = _ctx.master;
  if (master.host == host && master.port == port) return;
  const std::string now = std::string(host) + ":" + std::to_string(port);
  if (master.host.empty()) {
    _ctx.log(FLOWRELAY_LOG_INFO, "redis master " + _ctx.options.master_name + " is " + now +
                                     " (sentinel " + _query.describe() + ")");
  } else {
    _ctx.log(FLOWRELAY_LOG_NOTICE, "redis master " + _ctx.options.master_name + " is now " + now +
                                       " (was " + master.host + ":" + std::to_string(master.port) +
                                       ")");
    _ctx.count.add(_ctx.count.master_changes);
  }
  master.host.assign(host);
  master.port = port;
  _master_changed = true;
}

int64_t SentinelWatch::check(int64_t now) {
  if (now >= _next_ask_ms) ask();
  int64_t next = std::min(_query.check(now), _switches.check(now));
  if (_query.up() && !_asking) next = std::min(next, _next_ask_ms);
  return next;
}

void SentinelWatch::free_dead_adapters() {
  _query.free_dead_adapters();
  _switches.free_dead_adapters();
}

void SentinelWatch::close() {
  _query.close();
  _switches.close();
}

}  // namespace flowrelay::redis
