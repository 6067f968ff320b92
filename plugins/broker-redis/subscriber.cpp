#include "subscriber.h"

#include <algorithm>
#include <cstring>
#include <random>

#include "gap_read.h"

namespace flowrelay::redis {

namespace {
constexpr size_t kSubscribeBatch = 512;  // channels per SUBSCRIBE when re-subscribing
}  // namespace

Subscriber::Subscriber(RedisContext& ctx, LinkEvents& events, Publisher& publisher, WakeFn wake,
                       void* owner, std::function<void()> resubscribed)
    : _ctx(ctx),
      _link(ctx, events, "subscriber", "flowrelay-sub", false),
      _publisher(publisher),
      _wake(wake),
      _owner(owner),
      _on_resubscribed(std::move(resubscribed)),
      _gaps(
          {[this](std::string_view channel, const WireMessage& w) { deliver(channel, w); },
           [this](flowrelay_log_level level, const std::string& text) { _ctx.log(level, text); }}) {
  std::random_device rd;
  char id[17];
  std::snprintf(id, sizeof id, "%08x%08x", rd(), rd());
  _heartbeat_channel = std::string("flowrelay:heartbeat:") + id;
}

void Subscriber::queue_op(bool subscribe, std::string_view channel) {
  bool first = false;
  {
    std::lock_guard lock(_mutex);
    _ops.push_back({subscribe, std::string(channel)});
    if (!_wake_pending) first = _wake_pending = true;
  }
  if (first) _wake(_owner);
}

// ---------------------------------------------------------------------------- broker thread

void Subscriber::take_ops() {
  std::vector<Op> ops;
  {
    std::lock_guard lock(_mutex);
    ops.swap(_ops);
    _wake_pending = false;
  }
  if (ops.empty()) return;
  const bool was_resubscribing = !_resubscribing.empty();
  // (Un)subscribes keep their order per channel; consecutive ones are sent in batches.
  std::vector<std::string> batch;
  bool batch_subscribe = true;
  auto flush = [&] {
    if (!batch.empty() && _link.up()) send(batch_subscribe, batch);
    batch.clear();
  };
  for (auto& op : ops) {
    const std::string& ch = op.channel;
    if (op.subscribe ? !_channels.insert(ch).second : !_channels.erase(ch)) {
      // Already (un)subscribed (the daemon never asks twice in a row; still answered): live
      // now unless a SUBSCRIBE of it is still on its way.
      if (op.subscribe && _link.up() && !_in_flight.count(ch) && !_resubscribing.count(ch))
        _ctx.host.subscribed(ch, FLOWRELAY_OK);
      else if (op.subscribe)
        _awaiting.insert(ch);
      continue;
    }
    if (op.subscribe) {
      _awaiting.insert(ch);
      _gaps.add(ch);
    } else {
      _awaiting.erase(ch);  // unsubscribed first: no answer owed
      _resubscribing.erase(ch);
      _alone.erase(ch);
      _gaps.remove(ch);
    }
    if (op.subscribe != batch_subscribe) flush();
    batch_subscribe = op.subscribe;
    batch.push_back(std::move(op.channel));
  }
  flush();
  if (was_resubscribing && _resubscribing.empty()) _on_resubscribed();
}

void Subscriber::send(bool subscribe, const std::vector<std::string>& channels) {
  for (size_t i = 0; i < channels.size(); i += kSubscribeBatch) {
    const size_t n = std::min(kSubscribeBatch, channels.size() - i);
    std::vector<const char*> argv{subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE"};
    std::vector<size_t> lens{std::strlen(argv[0])};
    for (size_t j = i; j < i + n; ++j) {
      argv.push_back(channels[j].data());
      lens.push_back(channels[j].size());
    }
    if (redisAsyncCommandArgv(_link.context(), reply_cb, this, static_cast<int>(argv.size()),
                              argv.data(), lens.data()) != REDIS_OK)
      return;  // going down: everything is re-subscribed on reconnect
    if (!subscribe) continue;
    Sent sent;
    sent.channels.assign(channels.begin() + i, channels.begin() + i + n);
    for (const auto& ch : sent.channels) ++_in_flight[ch];
    _sent.push_back(std::move(sent));
  }
}

void Subscriber::on_up() {
  _ping_sent_ms = 0;
  _next_ping_ms = monotonic_ms() + _ctx.live.ping_interval_ms.load();
  if (!_heartbeat_refused) send(true, {_heartbeat_channel});
  _resubscribing = _channels;
  std::vector<std::string> batched, alone;
  for (const auto& ch : _channels) (_alone.count(ch) ? alone : batched).push_back(ch);
  send(true, batched);
  for (const auto& ch : alone) send(true, {ch});
}

void Subscriber::on_down(bool refused, const std::string& reason) {
  _ping_sent_ms = 0;
  if (refused && !_sent.empty()) {
    std::vector<std::string> culprits = std::move(_sent.front().channels);
    if (culprits.size() == 1 && culprits[0] == _heartbeat_channel) {
      // Without it a hung Redis goes unnoticed on this link; Pub/Sub itself still works.
      _heartbeat_refused = true;
      _ctx.report(FLOWRELAY_EINTERNAL, "redis refused to subscribe the heartbeat channel " +
                                           _heartbeat_channel + " (" + reason +
                                           "): the subscriber link's liveness is not checked");
    } else if (culprits.size() == 1) {
      refuse(culprits[0], reason);
    } else {
      _ctx.log(FLOWRELAY_LOG_WARNING, "redis refused a SUBSCRIBE of " +
                                          std::to_string(culprits.size()) + " channels (" + reason +
                                          "); re-subscribing them one by one");
      for (auto& ch : culprits)
        if (ch != _heartbeat_channel) _alone.insert(std::move(ch));
    }
  }
  _sent.clear();
  _in_flight.clear();
}

void Subscriber::refuse(const std::string& channel, const std::string& reason) {
  _ctx.count.add(_ctx.count.subscribe_refused);
  _ctx.report(FLOWRELAY_EINTERNAL, "redis refused to subscribe " + channel + ": " + reason);
  // Dropped until subscribed again: re-subscribing it would only be refused again, and would
  // take the link (every other channel) down with it each time.
  _channels.erase(channel);
  _awaiting.erase(channel);
  _resubscribing.erase(channel);
  _alone.erase(channel);
  _gaps.remove(channel);
  _ctx.host.subscribed(channel, FLOWRELAY_EINTERNAL);  // the PENDING answer, or the re-subscribe's
}

void Subscriber::confirmed(const std::string& channel) {
  if (!_sent.empty() && ++_sent.front().confirmed >= _sent.front().channels.size())
    _sent.pop_front();
  auto it = _in_flight.find(channel);
  if (it != _in_flight.end() && --it->second > 0) return;  // a later SUBSCRIBE decides
  if (it != _in_flight.end()) _in_flight.erase(it);
  if (channel == _heartbeat_channel) return;
  const bool was_resubscribing = _resubscribing.erase(channel) > 0;
  if (_channels.count(channel)) {
    _alone.erase(channel);
    if (_awaiting.erase(channel)) _ctx.host.subscribed(channel, FLOWRELAY_OK);
    read_gap(channel, was_resubscribing, monotonic_ms());
  }
  if (was_resubscribing && _resubscribing.empty()) _on_resubscribed();
}

// The read is queued now, on the publisher link, so that Redis runs it after the SUBSCRIBE
// it just confirmed (gap_read.h).
void Subscriber::read_gap(const std::string& channel, bool resubscribed, int64_t now) {
  if (auto r = gap_read_request(_ctx, _gaps, channel, resubscribed, now, _gap_deadline_ms))
    _publisher.push_internal(std::move(*r));  // sent once both links are up and ready
}

void Subscriber::reply_cb(redisAsyncContext*, void* r, void* priv) {
  auto* self = static_cast<Subscriber*>(priv);
  auto* reply = static_cast<redisReply*>(r);
  if (!reply || self->_ctx.closing) return;
  if (reply->type == REDIS_REPLY_ERROR) {
    self->_ctx.report(FLOWRELAY_EINTERNAL, "redis subscriber error: " + std::string(str_of(reply)));
    return;
  }
  if (reply->type == REDIS_REPLY_STATUS) {  // PONG outside subscribed mode
    self->_ping_sent_ms = 0;
    return;
  }
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2) return;
  const std::string_view kind = str_of(reply->element[0]);
  if (kind == "message" && reply->elements == 3) {
    const std::string_view channel = str_of(reply->element[1]);
    if (channel == self->_heartbeat_channel) {
      self->_ping_sent_ms = 0;
      return;
    }
    self->_ctx.count.add(self->_ctx.count.received);
    self->_gaps.live(channel, str_of(reply->element[2]), self->_ctx.live.buffer_max_bytes.load());
  } else if (kind == "subscribe") {
    self->confirmed(std::string(str_of(reply->element[1])));
  } else if (kind == "pong") {
    self->_ping_sent_ms = 0;
  }
}

void Subscriber::deliver(std::string_view channel, const WireMessage& wire) {
  const flowrelay_message m = to_message(wire);
  // What this node delivered is a floor of the channel's history (publisher.h: the fence).
  if (wire.offset > 0) _publisher.note_delivered(channel, wire.epoch, wire.offset);
  _ctx.host.deliver(channel, m);
}

void Subscriber::heartbeat_cb(redisAsyncContext*, void* r, void* priv) {
  auto* self = static_cast<Subscriber*>(priv);
  auto* reply = static_cast<redisReply*>(r);
  if (reply && reply->type == REDIS_REPLY_ERROR)
    self->_ctx.report(FLOWRELAY_EINTERNAL,
                      "redis refused the heartbeat PUBLISH: " + std::string(str_of(reply)));
}

int64_t Subscriber::check(int64_t now) {
  _gap_deadline_ms = _gaps.expire(now, _ctx.live.history_size.load() == 0);
  int64_t next = _gap_deadline_ms;
  if (!_link.up() || _heartbeat_refused) return next;
  const uint32_t timeout = _ctx.live.command_timeout_ms.load();
  if (_ping_sent_ms) {
    if (now - _ping_sent_ms <= timeout) return std::min(next, _ping_sent_ms + timeout + 1);
    _link.drop("heartbeat not received within command_timeout_ms", false);
    return next;
  }
  if (now < _next_ping_ms || !_publisher.link().up()) return std::min(next, _next_ping_ms);
  // Liveness of the subscriber link: a heartbeat published on the publisher link must come
  // back on it. (A PING would do in plain mode, but hiredis 0.14 drops the reply to a PING
  // sent in subscribed mode, so its callback never runs.)
  _ping_sent_ms = now;
  _next_ping_ms = now + _ctx.live.ping_interval_ms.load();
  redisAsyncCommand(_publisher.link().context(), heartbeat_cb, this, "PUBLISH %b %s",
                    _heartbeat_channel.data(), _heartbeat_channel.size(), "hb");
  return std::min(next, now + timeout + 1);
}

}  // namespace flowrelay::redis
