// mode: cluster (issue #13): keeps the Redis Cluster's slot map (slot_map.h) fresh, on the
// broker thread. One RedisLink to one node at a time asks CLUSTER SLOTS: at connect, whenever
// a part of the broker sees the map is stale (refresh(): a MOVED, a lost or refused shard link,
// an unasked sunsubscribe), and every 30 s. Refreshes are coalesced (one query in flight; one
// asked meanwhile follows its answer) and spaced (a dead master makes its link fail every
// backoff step; the cluster is not asked that often).
//
// Which node: the seeds (the URL's nodes), then the masters of the last map; a node that
// fails, hangs (command_timeout_ms) or refuses moves the link on to the next one. A map that
// does not cover every slot is kept (the rest is served) and asked again soon: a failover is
// under way. changed() runs after every map that differs from the one before, and after a
// moved() that changed an owner.
#pragma once

#include <hiredis/async.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "redis_context.h"
#include "redis_link.h"
#include "slot_map.h"

namespace flowrelay::redis {

class ClusterMap final : public SlotRoutes, private LinkEvents {
 public:
  // `seeds` (not empty) carry the credentials every node takes; `changed` runs on the broker
  // thread, from inside a hiredis callback or moved(): it must not destroy what called it.
  ClusterMap(RedisContext& ctx, std::vector<RedisEndpoint> seeds, std::function<void()> changed);
  ClusterMap(const ClusterMap&) = delete;
  ClusterMap& operator=(const ClusterMap&) = delete;

  // [broker thread]
  void connect() { _link.connect(); }
  // Asks again as soon as allowed (coalesced, spaced).
  void refresh() override;
  // A node answered MOVED: `slot` is `node`'s (host and port) now. Patched at once (changed()
  // if that is news), and the whole map is asked again: other slots likely moved with it.
  void moved(uint16_t slot, const RedisEndpoint& node) override;
  // The link's timeouts and reconnects, the query's timeout and the next query; returns the
  // next time it needs a call. Call it after the other parts' check(): they may refresh().
  int64_t check(int64_t now);
  void free_dead_adapters() { _link.free_dead_adapters(); }
  void close() { _link.close(); }  // [destroy]

  // nullptr until a node answered once.
  const SlotMap* map() const override { return _map ? &*_map : nullptr; }
  bool known() const { return _map.has_value(); }
  // The node asked (or to be asked next), for logs and tests.
  const RedisEndpoint& node() const { return _node; }

 private:
  void link_connected(RedisLink&) override {}
  void link_up(RedisLink&) override { ask(monotonic_ms()); }
  void link_down(RedisLink& link, bool refused, const std::string& reason) override;
  void ask(int64_t now);
  void next_node();
  void answered(const redisReply* reply);
  // Nodes with their credentials: with `host` and `port` of `at`, the rest of the seeds'.
  RedisEndpoint node_at(const RedisEndpoint& at) const;
  static void slots_cb(redisAsyncContext* ac, void* reply, void* self);

  RedisContext& _ctx;
  const std::vector<RedisEndpoint> _seeds;
  std::function<void()> _changed;
  RedisEndpoint _node;  // the link's target: the node asked
  size_t _next = 1;     // the next candidate next_node() takes (mod their number)
  RedisLink _link;      // after _node, which it refers to
  std::optional<SlotMap> _map;
  bool _asking = false;               // CLUSTER SLOTS in flight
  bool _again = false;                // refresh() while in flight: ask again after its answer
  bool _rotated = false;              // next_node() ran before the drop whose link_down follows
  bool _partial_logged = false;       // once per episode of a map not covering every slot
  bool _error_logged = false;         // once per episode of failed queries
  int64_t _asked_ms = INT64_MIN / 2;  // when the last query went
  int64_t _due_ms = 0;                // when the next one goes (once the link is up)
};

}  // namespace flowrelay::redis
