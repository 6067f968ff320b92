#include "cluster_subscriber.h"

#include <algorithm>

#include "gap_read.h"
#include "slot_map.h"

namespace flowrelay::redis {

namespace {
std::string node_key(const RedisEndpoint& node) {
  return node.host + ":" + std::to_string(node.port);
}
int in_flight(const std::unordered_map<std::string, int>& f, const std::string& channel) {
  auto it = f.find(channel);
  return it == f.end() ? 0 : it->second;
}
}  // namespace

ClusterSubscriber::ClusterSubscriber(RedisContext& ctx, ClusterMap& map, PublisherHooks publisher,
                                     WakeFn wake, void* owner, std::function<void()> state_changed)
    : _ctx(ctx),
      _map(map),
      _publisher(std::move(publisher)),
      _wake(wake),
      _owner(owner),
      _state_changed(std::move(state_changed)),
      _gaps(
          {[this](std::string_view channel, const WireMessage& w) { deliver(channel, w); },
           [this](flowrelay_log_level level, const std::string& text) { _ctx.log(level, text); }}) {
}

ClusterSubscriber::~ClusterSubscriber() { close(); }

void ClusterSubscriber::close() {
  for (auto& [key, shard] : _shards) shard->link->close();
  _shards.clear();
}

void ClusterSubscriber::queue_op(bool subscribe, std::string_view channel) {
  bool first = false;
  {
    std::lock_guard lock(_mutex);
    _ops.push_back({subscribe, std::string(channel)});
    if (!_wake_pending) first = _wake_pending = true;
  }
  if (first) _wake(_owner);
}

// ---------------------------------------------------------------------------- broker thread

void ClusterSubscriber::take_ops() {
  std::vector<Op> ops;
  {
    std::lock_guard lock(_mutex);
    ops.swap(_ops);
    _wake_pending = false;
  }
  for (auto& op : ops) {
    auto it = _channels.find(op.channel);
    if (!op.subscribe) {
      if (it != _channels.end()) remove(op.channel);
    } else if (it == _channels.end()) {
      add(op.channel);
    } else if (it->second.live) {
      // Already subscribed (the daemon never asks twice in a row; still answered).
      _ctx.host.subscribed(op.channel, FLOWRELAY_OK);
    } else {
      _awaiting.insert(op.channel);  // answered when its SSUBSCRIBE is confirmed
    }
  }
  if (!ops.empty()) notify();
}

void ClusterSubscriber::add(const std::string& channel) {
  _channels.emplace(channel, Channel{});
  _awaiting.insert(channel);
  _gaps.add(channel);
  route(channel);
}

void ClusterSubscriber::remove(const std::string& channel) {
  Channel& c = _channels.at(channel);
  if (Shard* s = c.shard) {
    if (s->link->up() && (c.live || in_flight(s->in_flight, channel) > 0)) unsubscribe(*s, channel);
    s->channels.erase(channel);
  }
  _awaiting.erase(channel);  // unsubscribed first: no answer owed
  _resubscribing.erase(channel);
  _gaps.remove(channel);
  _channels.erase(channel);
}

ClusterSubscriber::Shard* ClusterSubscriber::shard_for(const RedisEndpoint& master) {
  auto [it, added] = _shards.try_emplace(node_key(master));
  if (added) {
    it->second = std::make_unique<Shard>();
    ShardPubSubEvents& events = *this;
    it->second->link = std::make_unique<ShardPubSubLink>(_ctx, events, master);
    it->second->link->connect();  // after the insert: a failed attempt reports shard_down
  }
  return it->second.get();
}

ClusterSubscriber::Shard* ClusterSubscriber::shard_of(const ShardPubSubLink& link) {
  auto it = _shards.find(node_key(link.master()));
  return it != _shards.end() && it->second->link.get() == &link ? it->second.get() : nullptr;
}

void ClusterSubscriber::route(const std::string& channel) {
  Channel& c = _channels.at(channel);
  Shard* target = nullptr;
  if (const SlotMap* m = _map.map())
    if (const RedisEndpoint* owner = m->owner(key_slot(channel))) target = shard_for(*owner);
  if (target != c.shard) {
    if (Shard* old = c.shard) {
      // A subscription it may still have there would deliver nothing (SPUBLISH goes to the
      // owner); ended anyway, so that a move back is not a double subscription.
      if (old->link->up() && (c.live || in_flight(old->in_flight, channel) > 0))
        unsubscribe(*old, channel);
      old->channels.erase(channel);
    }
    if (c.live) lose(channel, c);
    c.shard = target;
    if (target) target->channels.insert(channel);
  }
  if (c.shard && c.shard->link->up() && !c.live && in_flight(c.shard->in_flight, channel) == 0)
    send(*c.shard, channel);
}

void ClusterSubscriber::send(Shard& shard, const std::string& channel) {
  // Counted only when it goes: a link that went down (even inside this loop, from a failed
  // write) sends nothing, and re-subscribes everything once it is up again.
  if (!shard.link->up()) return;
  ++shard.in_flight[channel];
  shard.link->subscribe({channel});
}

// Redis answers in order: the SSUBSCRIBEs still in flight are answered before this
// SUNSUBSCRIBE takes effect, so their answers confirm nothing; a subscribe of the channel
// after this one is sent anew.
void ClusterSubscriber::unsubscribe(Shard& shard, const std::string& channel) {
  auto f = shard.in_flight.find(channel);
  if (f != shard.in_flight.end()) {
    shard.overtaken[channel] += f->second;
    shard.in_flight.erase(f);
  }
  shard.link->unsubscribe({channel});
}

void ClusterSubscriber::lose(const std::string& channel, Channel& c) {
  c.live = false;
  _resubscribing.insert(channel);
}

// Outside link callbacks (check()): a link can be destroyed here.
void ClusterSubscriber::follow_map() {
  _map_dirty = false;
  const SlotMap* m = _map.map();
  if (!m) return;
  const std::vector<RedisEndpoint> masters = m->masters();
  for (const auto& master : masters) shard_for(master);
  for (auto& [channel, c] : _channels) route(channel);
  for (auto it = _shards.begin(); it != _shards.end();) {
    const bool serves = std::any_of(masters.begin(), masters.end(), [&](const RedisEndpoint& n) {
      return node_key(n) == it->first;
    });
    if (serves || !it->second->channels.empty()) {
      ++it;
      continue;
    }
    it->second->link->close();
    it = _shards.erase(it);
  }
  notify();
}

void ClusterSubscriber::confirmed(const std::string& channel) {
  _channels.at(channel).live = true;
  const bool was_resubscribing = _resubscribing.erase(channel) > 0;
  if (_awaiting.erase(channel)) _ctx.host.subscribed(channel, FLOWRELAY_OK);
  if (auto r = gap_read_request(_ctx, _gaps, channel, was_resubscribing, monotonic_ms(),
                                _gap_deadline_ms)) {
    if (_publisher.read)
      _publisher.read(std::move(*r));
    else
      r->read(r->ctx, FLOWRELAY_EUNAVAIL, nullptr);  // nowhere to read: the fill gives up
  }
  notify();
}

void ClusterSubscriber::refuse(const std::string& channel, const std::string& reason) {
  _ctx.count.add(_ctx.count.subscribe_refused);
  _ctx.report(FLOWRELAY_EINTERNAL, "redis refused to subscribe " + channel + ": " + reason);
  // Dropped until subscribed again: re-subscribing it would only be refused again.
  if (Shard* s = _channels.at(channel).shard) s->channels.erase(channel);
  _channels.erase(channel);
  _awaiting.erase(channel);
  _resubscribing.erase(channel);
  _gaps.remove(channel);
  _ctx.host.subscribed(channel, FLOWRELAY_EINTERNAL);  // the PENDING answer, or the re-subscribe's
  notify();
}

void ClusterSubscriber::deliver(std::string_view channel, const WireMessage& wire) {
  const flowrelay_message m = to_message(wire);
  if (wire.offset > 0 && _publisher.delivered)
    _publisher.delivered(channel, wire.epoch, wire.offset);
  _ctx.host.deliver(channel, m);
}

bool ClusterSubscriber::links_up() const {
  const SlotMap* m = _map.map();
  if (!m) return false;
  for (const auto& master : m->masters()) {
    auto it = _shards.find(node_key(master));
    if (it == _shards.end() || !it->second->link->up()) return false;
  }
  return true;
}

void ClusterSubscriber::notify() {
  const bool up = links_up(), resubscribed = _resubscribing.empty();
  _ctx.count.sub_up = up ? 1 : 0;
  const bool tell = up != _links_up || (resubscribed && !_told_resubscribed);
  _links_up = up;
  _told_resubscribed = resubscribed;
  if (tell && _state_changed) _state_changed();
}

// ---------------------------------------------------------------------------- link events

void ClusterSubscriber::shard_up(ShardPubSubLink& link) {
  Shard* s = shard_of(link);
  if (!s) return;
  for (const auto& channel : s->channels) {
    const Channel& c = _channels.at(channel);
    if (!c.live && in_flight(s->in_flight, channel) == 0) send(*s, channel);
  }
  notify();
}

void ClusterSubscriber::shard_down(ShardPubSubLink& link, const std::string&, bool was_up) {
  // Either way the master may be gone (a failover): the map says who serves its slots now.
  _map.refresh();
  Shard* s = shard_of(link);
  if (!s || !was_up) return;
  s->in_flight.clear();
  s->overtaken.clear();
  for (const auto& channel : s->channels) {
    Channel& c = _channels.at(channel);
    if (c.live) lose(channel, c);  // re-subscribed on shard_up, here or on the new owner
  }
  notify();
}

void ClusterSubscriber::shard_subscribed(ShardPubSubLink& link, std::string_view ch,
                                         std::string_view error) {
  Shard* s = shard_of(link);
  if (!s) return;
  const std::string channel(ch);
  if (auto o = s->overtaken.find(channel); o != s->overtaken.end()) {
    if (--o->second == 0) s->overtaken.erase(o);
    return;  // answers an SSUBSCRIBE our SUNSUBSCRIBE followed
  }
  auto f = s->in_flight.find(channel);
  if (f == s->in_flight.end()) return;  // sent before the link was lost
  if (--f->second > 0) return;          // a later SSUBSCRIBE decides
  s->in_flight.erase(f);
  auto it = _channels.find(channel);
  if (it == _channels.end() || it->second.shard != s) return;  // unsubscribed or moved since
  if (error.empty()) {
    confirmed(channel);
    return;
  }
  const auto redirect = parse_redirect(error);
  if (redirect && redirect->kind == Redirect::Moved && redirect->host != "?") {
    // The map is stale: patched now (changed() only marks it dirty), the channel follows.
    RedisEndpoint node;
    node.host = redirect->host.empty() ? link.master().host : redirect->host;
    node.port = redirect->port;
    _map.moved(redirect->slot, node);
    route(channel);
    return;
  }
  if (redirect || is_tryagain(error) || is_clusterdown(error)) {
    // Mid-migration (ASK) or mid-failover: the same SSUBSCRIBE again, a moment later.
    _map.refresh();
    const int64_t delay = std::max<int64_t>(50, _ctx.live.reconnect_min_ms.load());
    _retries.emplace_back(monotonic_ms() + delay, channel);
    return;
  }
  refuse(channel, std::string(error));  // NOPERM, CROSSSLOT...
}

void ClusterSubscriber::shard_lost(ShardPubSubLink& link, std::string_view ch) {
  Shard* s = shard_of(link);
  const std::string channel(ch);
  auto it = _channels.find(channel);
  if (!s || it == _channels.end() || it->second.shard != s || !it->second.live) return;
  lose(channel, it->second);
  _map.refresh();
  // Sent again where the map says: the new owner if it knows already, else this master,
  // whose MOVED names the new owner sooner than the refresh does.
  route(channel);
  notify();
}

void ClusterSubscriber::shard_message(ShardPubSubLink&, std::string_view channel,
                                      std::string_view data) {
  _ctx.count.add(_ctx.count.received);
  _gaps.live(channel, data, _ctx.live.buffer_max_bytes.load());
}

int64_t ClusterSubscriber::check(int64_t now) {
  if (_map_dirty) follow_map();
  int64_t next = INT64_MAX;
  if (!_retries.empty()) {
    auto due = std::stable_partition(_retries.begin(), _retries.end(),
                                     [&](const auto& r) { return r.first > now; });
    std::vector<std::string> channels;
    for (auto it = due; it != _retries.end(); ++it) channels.push_back(std::move(it->second));
    _retries.erase(due, _retries.end());
    for (const auto& channel : channels)
      if (_channels.count(channel)) route(channel);
    for (const auto& r : _retries) next = std::min(next, r.first);
  }
  for (auto& [key, shard] : _shards) next = std::min(next, shard->link->check(now));
  _gap_deadline_ms = _gaps.expire(now, _ctx.live.history_size.load() == 0);
  return std::min(next, _gap_deadline_ms);
}

}  // namespace flowrelay::redis
