// The publisher in cluster mode (publisher.h): a pipe per master of the slot map, each request
// to the master of its channel's slot, and the cluster's redirects. A slot's requests reach
// Redis in their order even while the slot moves: one is written to a master only while no
// request of its slot is in flight on another (a MOVED answer sends it, and those behind it,
// to the new master once the old one has answered them all). That order is what the append
// script's resend detection needs (history_scripts.h: a node's seqs arrive ascending).
#include <algorithm>

#include "publisher.h"

namespace flowrelay::redis {

namespace {
// MOVED/ASK for one request: more than this is a redirect loop (a cluster reconfigured
// under us again and again); the request fails with Redis' words.
constexpr uint16_t kMaxRedirects = 16;
// TRYAGAIN (a multi-key script while its slot migrates) and CLUSTERDOWN (a failover under
// way) are tried again this often, this many times (~10 s), then fail.
constexpr int64_t kRetryDelayMs = 50;
constexpr uint16_t kMaxRetries = 200;

bool same_node(const RedisEndpoint& a, const RedisEndpoint& b) {
  return a.port == b.port && a.host == b.host;
}
}  // namespace

PublisherPipe* Publisher::route(const PublisherRequest& r, int64_t now) {
  if (r.retry_at_ms > now) {
    _next_retry_ms = std::min(_next_retry_ms, r.retry_at_ms);
    return nullptr;
  }
  const RedisEndpoint* master = r.ask ? &*r.ask : nullptr;
  if (!master) {
    const SlotMap* map = _cluster->map();
    master = map ? map->owner(r.slot) : nullptr;
    if (!master) return nullptr;  // not served now: the map is asked again (cluster_map.h)
  }
  PublisherPipe* pipe = pipe_for(*master);
  if (!pipe->writable()) return nullptr;
  const auto flight = _slot_flight.find(r.slot);
  // Tried again (TRYAGAIN, CLUSTERDOWN): not before its slot's other requests have answered,
  // so that its new seq (renumber_unrun) reaches Redis after theirs.
  if (flight != _slot_flight.end() && (flight->second.pipe != pipe || r.retries > 0))
    return nullptr;
  return pipe;
}

PublisherPipe* Publisher::pipe_for(const RedisEndpoint& master) {
  for (auto& pipe : _pipes)
    if (same_node(pipe->endpoint, master)) {
      pipe->retired = false;
      return pipe.get();
    }
  RedisEndpoint ep = master;
  ep.user = _ctx.options.endpoint.user;  // the URL's credentials, for every node
  ep.password = _ctx.options.endpoint.password;
  ep.db = 0;  // a cluster has only database 0
  _pipes.push_back(
      std::make_unique<PublisherPipe>(_ctx, static_cast<LinkEvents&>(*this), std::move(ep)));
  PublisherPipe* pipe = _pipes.back().get();
  pipe->owner = this;
  pipe->link.connect();
  return pipe;
}

RedisLink* Publisher::link_for(std::string_view channel) {
  if (!_cluster) return &_pipes.front()->link;
  const SlotMap* map = _cluster->map();
  const RedisEndpoint* master = map ? map->owner(key_slot(channel)) : nullptr;
  return master ? &pipe_for(*master)->link : nullptr;
}

void Publisher::map_changed() {
  const SlotMap* map = _cluster ? _cluster->map() : nullptr;
  if (!map) return;
  const std::vector<RedisEndpoint> masters = map->masters();
  for (auto& pipe : _pipes)
    pipe->retired = std::none_of(masters.begin(), masters.end(), [&](const RedisEndpoint& m) {
      return same_node(m, pipe->endpoint);
    });
  for (const auto& m : masters) pipe_for(m);
  send_pending();
}

// A pipe whose node no longer serves slots goes once nothing of it is outstanding (its
// requests were answered, redirected, or requeued when its link was lost). Outside hiredis
// callbacks: from check().
void Publisher::drop_idle_retired() {
  if (!_cluster) return;
  for (auto it = _pipes.begin(); it != _pipes.end();) {
    PublisherPipe& pipe = **it;
    if (!pipe.retired || !pipe.inflight.empty() || !pipe.awaiting_wait.empty() ||
        !pipe.retry.empty()) {
      ++it;
      continue;
    }
    pipe.link.close();
    pipe.link.free_dead_adapters();
    it = _pipes.erase(it);
  }
}

void Publisher::landed(const PublisherRequest& r) {
  if (!_cluster) return;
  const auto flight = _slot_flight.find(r.slot);
  if (flight != _slot_flight.end() && --flight->second.count == 0) _slot_flight.erase(flight);
}

// Redis Cluster's answers that mean "not here, not now" (the cluster spec's client side):
// MOVED updates the map and sends the request to the slot's master; ASK sends it once to the
// importing master; TRYAGAIN and CLUSTERDOWN wait a little. None of them ran the command.
// False: not a redirect, or too many: finish() reports it.
bool Publisher::redirected(const PublisherPipe& pipe, PublisherRequest& r,
                           const redisReply* reply) {
  const std::string_view error = str_of(reply);
  const auto redirect = parse_redirect(error);
  // A node that does not know its own address says "?": not an address to follow.
  const bool nowhere = redirect && redirect->host == "?";
  if (redirect && !nowhere) {
    if (++r.redirects > kMaxRedirects) return false;
    RedisEndpoint to;
    to.host = redirect->host.empty() ? pipe.endpoint.host : redirect->host;  // "": the answerer
    to.port = redirect->port;
    _ctx.count.add(redirect->kind == Redirect::Moved ? _ctx.count.cluster_moved
                                                     : _ctx.count.cluster_ask);
    if (redirect->kind == Redirect::Moved) {
      r.ask.reset();
      _cluster->moved(redirect->slot, to);
    } else {
      r.ask = to;
    }
  } else if (nowhere || is_tryagain(error) || is_clusterdown(error)) {
    if (++r.retries > kMaxRetries) return false;
    _ctx.count.add(_ctx.count.cluster_retries);
    r.ask.reset();
    r.retry_at_ms = monotonic_ms() + kRetryDelayMs;
    if (!is_tryagain(error)) _cluster->refresh();
    // It did not run, but requests of its slot written after it may have (a migration ended
    // or the cluster came back between the two): its seq would then arrive below theirs and
    // be taken for a resend. It and every publish never run take new seqs (the order of the
    // two may swap; nothing is lost), and it waits for its slot's requests to answer (route).
    requeue(std::move(r));
    renumber_unrun();
    return true;
  } else {
    return false;
  }
  requeue(std::move(r));
  return true;
}

}  // namespace flowrelay::redis
