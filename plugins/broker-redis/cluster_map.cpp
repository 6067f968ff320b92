#include "cluster_map.h"

#include <algorithm>
#include <utility>

namespace flowrelay::redis {

namespace {
constexpr int64_t kPeriodMs = 30000;  // a map nothing contradicted is asked again this often
constexpr int64_t kSoonMs = 250;      // ...and this soon when it leaves slots unserved
// Between two queries at least: a master that died makes every shard link's connect attempt
// ask for a refresh; the map changes only once its replica is promoted anyway.
constexpr int64_t kSpacingMs = 100;

bool same_node(const RedisEndpoint& a, const RedisEndpoint& b) {
  return a.host == b.host && a.port == b.port;
}

bool same_owners(const SlotMap& a, const SlotMap& b) {
  for (uint32_t s = 0; s < kClusterSlots; ++s) {
    const RedisEndpoint* x = a.owner(static_cast<uint16_t>(s));
    const RedisEndpoint* y = b.owner(static_cast<uint16_t>(s));
    if ((x == nullptr) != (y == nullptr) || (x && !same_node(*x, *y))) return false;
  }
  return true;
}
}  // namespace

ClusterMap::ClusterMap(RedisContext& ctx, std::vector<RedisEndpoint> seeds,
                       std::function<void()> changed)
    : _ctx(ctx),
      _seeds(std::move(seeds)),
      _changed(std::move(changed)),
      _node(_seeds.at(0)),
      _link(ctx, *this, "cluster map", "flowrelay-slots", _node) {}

RedisEndpoint ClusterMap::node_at(const RedisEndpoint& at) const {
  RedisEndpoint node = _seeds.front();
  node.unix_path.clear();  // cluster nodes are reached over TCP
  node.host = at.host;
  node.port = at.port;
  node.db = 0;  // a cluster has db 0 only
  return node;
}

void ClusterMap::refresh() {
  if (_asking) {
    _again = true;  // the answer in flight may predate what made the caller ask
    return;
  }
  const int64_t now = monotonic_ms();
  _due_ms = std::min(_due_ms, std::max(now, _asked_ms + kSpacingMs));
  if (now >= _due_ms) ask(now);
}

void ClusterMap::moved(uint16_t slot, const RedisEndpoint& node) {
  refresh();
  if (!_map) return;  // the first answer is on its way; a map of one slot is no better
  const RedisEndpoint* owner = _map->owner(slot);
  if (owner && same_node(*owner, node)) return;
  _map->assign(slot, node_at(node));
  _changed();
}

void ClusterMap::ask(int64_t now) {
  if (_asking || !_link.up() || now < _due_ms) return;
  if (redisAsyncCommand(_link.context(), slots_cb, this, "CLUSTER SLOTS") != REDIS_OK) return;
  _asking = true;
  _again = false;
  _asked_ms = now;
  _due_ms = now + kPeriodMs;  // replaced by the answer's schedule
}

void ClusterMap::slots_cb(redisAsyncContext*, void* reply, void* self) {
  auto& m = *static_cast<ClusterMap*>(self);
  m._asking = false;
  if (!reply || m._ctx.closing) return;  // the link went down: link_down() moves on
  m.answered(static_cast<const redisReply*>(reply));
}

void ClusterMap::answered(const redisReply* reply) {
  const int64_t now = monotonic_ms();
  std::string error;
  std::optional<SlotMap> fresh = SlotMap::from_cluster_slots(reply, _seeds.front(), _node, error);
  if (!fresh) {
    // A node still loading, not in cluster mode, or an ACL: another node may answer.
    const std::string why = "redis " + _link.describe() + ": " + error;
    if (!_error_logged) _ctx.report(FLOWRELAY_EUNAVAIL, why + "; asking another node");
    _error_logged = true;
    next_node();
    _rotated = true;
    _due_ms = now;
    _link.drop(why, true);
    return;
  }
  _error_logged = false;
  const bool differs = !_map || !same_owners(*_map, *fresh);
  _map = std::move(*fresh);
  if (_map->covers_all()) {
    if (_partial_logged)
      _ctx.log(FLOWRELAY_LOG_NOTICE, "redis cluster: every slot is served again");
    _partial_logged = false;
    _due_ms = now + kPeriodMs;
  } else {
    if (!_partial_logged)
      _ctx.log(FLOWRELAY_LOG_WARNING, "redis cluster: " + _link.describe() +
                                          " names no master for some slots; asking again");
    _partial_logged = true;
    _due_ms = now + kSoonMs;
  }
  if (_again) _due_ms = std::min(_due_ms, std::max(now, _asked_ms + kSpacingMs));
  _again = false;
  if (differs) _changed();
}

void ClusterMap::link_down(RedisLink&, bool, const std::string&) {
  _asking = false;  // its callback ran with no reply
  _due_ms = 0;      // ask as soon as a node is up again
  if (!std::exchange(_rotated, false)) next_node();
}

// The next candidate: the seeds, then the last map's masters the seeds do not name. The link
// connects there after its backoff.
void ClusterMap::next_node() {
  std::vector<RedisEndpoint> candidates = _seeds;
  if (_map)
    for (const auto& m : _map->masters())
      if (std::none_of(candidates.begin(), candidates.end(),
                       [&](const RedisEndpoint& c) { return same_node(c, m); }))
        candidates.push_back(node_at(m));
  _node = candidates[_next++ % candidates.size()];
}

int64_t ClusterMap::check(int64_t now) {
  int64_t next = _link.check(now);
  if (!_link.up()) return next;
  if (_asking) {
    const int64_t timeout = _ctx.live.command_timeout_ms.load();
    if (now - _asked_ms <= timeout) return std::min(next, _asked_ms + timeout + 1);
    _link.drop("no answer to CLUSTER SLOTS within command_timeout_ms", false);
    return std::min(_link.check(now), now + 1);
  }
  ask(now);
  return std::min(next, _asking ? now + _ctx.live.command_timeout_ms.load() + 1 : _due_ms);
}

}  // namespace flowrelay::redis
