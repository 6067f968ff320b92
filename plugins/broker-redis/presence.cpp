#include "presence.h"

#include <Poco/DigestEngine.h>
#include <Poco/SHA1Engine.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <array>

#include "presence_scripts.h"

namespace flowrelay::redis {

namespace {

std::string sha1_hex(const std::string& text) {
  Poco::SHA1Engine sha1;
  sha1.update(text);
  return Poco::DigestEngine::digestToHex(sha1.digest());
}

const std::string& set_script() {
  static const std::string s = presence_set_script();
  return s;
}
const std::string& read_script() {
  static const std::string s = presence_read_script();
  return s;
}

bool is_noscript(const redisReply* r) {
  return r->type == REDIS_REPLY_ERROR && str_of(r).starts_with("NOSCRIPT");
}

}  // namespace

// One script call: what it takes to send it again by EVAL after NOSCRIPT (Redis lost the
// scripts: SCRIPT FLUSH, a failover), and whom a read answers.
struct Presence::Command {
  Presence* self;
  std::string channel;
  std::string clients;  // a write's count in decimal; empty for a read
  flowrelay_presence_fn done = nullptr;
  void* ctx = nullptr;
  bool by_eval = false;
  bool is_read() const { return done != nullptr; }
};

Presence::Presence(RedisContext& ctx, Publisher& publisher, WakeFn wake, void* owner)
    : _ctx(ctx),
      _publisher(publisher),
      _set_sha(sha1_hex(set_script())),
      _read_sha(sha1_hex(read_script())),
      _node(std::to_string(ctx.host.node_id())),
      _wake(wake),
      _owner(owner) {}

// ---------------------------------------------------------------------------- any thread

void Presence::set(std::string_view channel, uint64_t clients) {
  bool first = false;
  {
    std::lock_guard lock(_mutex);
    const auto [it, added] = _changes.try_emplace(std::string(channel), clients);
    if (!added) it->second = clients;
    if (!_wake_pending) first = _wake_pending = true;
  }
  if (first) _wake(_owner);
}

flowrelay_status Presence::read(std::string_view channel, flowrelay_presence_fn done, void* ctx) {
  {
    std::lock_guard lock(_mutex);
    if (_reads.size() >= kMaxQueuedReads) return FLOWRELAY_EAGAIN;
    _reads.push_back(Read{std::string(channel), done, ctx});
    if (_wake_pending) return FLOWRELAY_OK;
    _wake_pending = true;
  }
  _wake(_owner);
  return FLOWRELAY_OK;
}

// ---------------------------------------------------------------------------- broker thread

void Presence::on_connected(RedisLink& link) {
  // Before any EVALSHA on this connection (hiredis keeps the order); a NOSCRIPT later (SCRIPT
  // FLUSH) is answered by sending that call again by EVAL.
  for (const std::string* script : {&set_script(), &read_script()})
    redisAsyncCommand(link.context(), nullptr, nullptr, "SCRIPT LOAD %b", script->data(),
                      script->size());
}

void Presence::on_up() {
  _refresh_at_ms = 0;  // everything counted, now: Redis may have lost it, or expired it
}

void Presence::take_changes() {
  std::unordered_map<std::string, uint64_t> changes;
  std::vector<Read> reads;
  {
    std::lock_guard lock(_mutex);
    changes.swap(_changes);
    reads.swap(_reads);
    _wake_pending = false;
  }
  for (auto& [channel, clients] : changes) {
    Entry& e = _channels[channel];
    e.clients = clients;
    if (e.dirty) continue;
    e.dirty = true;
    _dirty.push_back(channel);
  }
  if (!changes.empty() && _flush_at_ms == 0) _flush_at_ms = monotonic_ms() + kFlushDelayMs;
  for (Read& r : reads) {
    const RedisLink* link = _publisher.link_for(r.channel);
    if (link && link->up())
      send_read(std::move(r));
    else
      r.done(r.ctx, FLOWRELAY_EUNAVAIL, 0, 0);
  }
}

int64_t Presence::check(int64_t now) {
  take_changes();
  if (!_publisher.up()) return INT64_MAX;  // on_up() rewrites everything
  if (now >= _refresh_at_ms) {
    refresh_all();
    _refresh_at_ms = now + std::max<uint32_t>(1, _ctx.live.presence_ttl_ms.load() / 3);
  } else if (_flush_at_ms != 0 && now >= _flush_at_ms) {
    flush_dirty();
  }
  int64_t next = _flush_at_ms != 0 ? std::min(_flush_at_ms, _refresh_at_ms) : _refresh_at_ms;
  if (_inflight > 0) {
    const uint32_t timeout = _ctx.live.command_timeout_ms.load();
    // In cluster mode the masters' sharded Pub/Sub links notice a hung one (their heartbeat)
    // and the publisher's pipes one with publishes waiting: presence alone drops no link.
    if (now - _progress_ms > timeout && !_publisher.clustered()) {
      _publisher.link().drop("no reply from Redis to a presence command within command_timeout_ms",
                             false);
      return INT64_MAX;
    }
    next = std::min<int64_t>(next, _progress_ms + timeout + 1);
  }
  return next;
}

void Presence::flush_dirty() {
  for (const std::string& channel : _dirty) {
    auto it = _channels.find(channel);
    if (it == _channels.end() || !it->second.dirty) continue;
    it->second.dirty = false;
    send_set(channel, it->second.clients);
    if (it->second.clients == 0) _channels.erase(it);
  }
  _dirty.clear();
  _flush_at_ms = 0;
}

void Presence::refresh_all() {
  for (auto it = _channels.begin(); it != _channels.end();) {
    send_set(it->first, it->second.clients);
    if (it->second.clients == 0) {
      it = _channels.erase(it);
    } else {
      it->second.dirty = false;
      ++it;
    }
  }
  _dirty.clear();
  _flush_at_ms = 0;
}

bool Presence::withdraw() {
  take_changes();
  if (!_publisher.up()) return false;  // best effort: the entries expire after presence_ttl_ms
  for (const auto& [channel, entry] : _channels) send_set(channel, 0);
  _channels.clear();
  _dirty.clear();
  return _inflight > 0;
}

void Presence::abandon() {
  std::vector<Read> reads;
  {
    std::lock_guard lock(_mutex);
    reads.swap(_reads);
  }
  for (const Read& r : reads) r.done(r.ctx, FLOWRELAY_EUNAVAIL, 0, 0);
}

void Presence::send_set(const std::string& channel, uint64_t clients) {
  send(new Command{this, channel, std::to_string(clients)}, true);
}

void Presence::send_read(Read&& read) {
  auto* c = new Command{this, std::move(read.channel), {}};
  c->done = read.done;
  c->ctx = read.ctx;
  send(c, true);
}

void Presence::send(Command* c, bool by_sha) {
  c->by_eval = !by_sha;
  const std::string hash = presence_hash_key(c->channel), expiry = presence_expiry_key(c->channel);
  const std::string& script =
      c->is_read() ? (by_sha ? _read_sha : read_script()) : (by_sha ? _set_sha : set_script());
  const std::string ttl = std::to_string(_ctx.live.presence_ttl_ms.load());
  const std::array<std::string_view, 8> args{
      by_sha ? "EVALSHA" : "EVAL", script, "2", hash, expiry, _node, c->clients, ttl};
  const size_t argc = c->is_read() ? 5 : 8;
  std::array<const char*, 8> argv;
  std::array<size_t, 8> lens;
  for (size_t i = 0; i < argc; ++i) {
    argv[i] = args[i].data();
    lens[i] = args[i].size();
  }
  RedisLink* link = _publisher.link_for(c->channel);
  if (!link || !link->up() ||
      redisAsyncCommandArgv(link->context(), reply_cb, c, static_cast<int>(argc), argv.data(),
                            lens.data()) != REDIS_OK) {
    // The context is going down: a write is rewritten once the link is back.
    if (c->is_read()) c->done(c->ctx, FLOWRELAY_EUNAVAIL, 0, 0);
    delete c;
    return;
  }
  if (_inflight++ == 0) _progress_ms = monotonic_ms();
}

void Presence::reply_cb(redisAsyncContext*, void* r, void* priv) {
  auto* c = static_cast<Command*>(priv);
  Presence& self = *c->self;
  auto* reply = static_cast<redisReply*>(r);
  --self._inflight;
  self._progress_ms = monotonic_ms();
  if (!reply) {
    // The link was lost (or freed by destroy). A read is told; every count is written again
    // on reconnect, and a lost removal too unless the channel was counted again meanwhile.
    if (c->is_read()) {
      c->done(c->ctx, FLOWRELAY_EUNAVAIL, 0, 0);
    } else if (!self._ctx.closing && c->clients == "0") {
      self._channels.try_emplace(c->channel);  // {0}: removed by the refresh after reconnect
    }
    delete c;
    return;
  }
  if (is_noscript(reply) && !c->by_eval) {
    self.send(c, false);  // keeps its place: hiredis answers in order
    return;
  }
  if (c->is_read()) {
    const bool ok = reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
                    reply->element[0]->type == REDIS_REPLY_INTEGER &&
                    reply->element[1]->type == REDIS_REPLY_INTEGER &&
                    reply->element[0]->integer >= 0 && reply->element[1]->integer >= 0;
    if (!ok)
      self._ctx.log(FLOWRELAY_LOG_WARNING,
                    "redis refused a presence read of " + c->channel + ": " +
                        (reply->type == REDIS_REPLY_ERROR ? std::string(str_of(reply))
                                                          : std::string("unexpected reply")));
    c->done(c->ctx, ok ? FLOWRELAY_OK : FLOWRELAY_EINTERNAL,
            ok ? static_cast<uint64_t>(reply->element[0]->integer) : 0,
            ok ? static_cast<uint32_t>(reply->element[1]->integer) : 0);
  } else if (reply->type != REDIS_REPLY_ERROR) {
    self._write_refused = false;
  } else if (!self._write_refused) {
    // Once per spell, not per channel and refresh (a read-only replica refuses them all).
    self._write_refused = true;
    self._ctx.log(FLOWRELAY_LOG_WARNING, "redis refused a presence write of " + c->channel + ": " +
                                             std::string(str_of(reply)) +
                                             " (logged once until a write succeeds)");
  }
  delete c;
}

}  // namespace flowrelay::redis
