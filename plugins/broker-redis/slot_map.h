// Redis Cluster routing for broker-redis' "mode: cluster" (issue #13; not wired in yet): the
// slot of a key, who serves each slot (built from CLUSTER SLOTS, patched by MOVED until the
// next full refresh), and the redirections a node answers with. No I/O here: the link code asks
// CLUSTER SLOTS and hands the reply over, so all of this is testable without a Redis.
#pragma once

#include <hiredis/hiredis.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "redis_options.h"

namespace flowrelay::redis {

inline constexpr uint16_t kClusterSlots = 16384;

// CRC16 (XMODEM) of the key's hash tag, or of the whole key without one, mod 16384: the Redis
// Cluster specification's HASH_SLOT. The tag is what lies between the first '{' and the first
// '}' after it, when that is not empty; so flowrelay's "flowrelay:history:{chat:42}" and
// "flowrelay:seq:{chat:42}" share the slot of "chat:42", and one script can touch both.
uint16_t key_slot(std::string_view key);
// The bare CRC16 (XMODEM: poly 0x1021, init 0, no reflection), exposed for the spec's vector
// crc16("123456789") == 0x31C3.
uint16_t crc16(std::string_view data);

// Which master serves each of the 16384 slots. A node is a RedisEndpoint: host and port from
// the cluster, user, password and db copied from the configured endpoint (every node of a
// cluster takes the same credentials; a cluster only has db 0).
class SlotMap {
 public:
  // An empty map: no slot is served.
  SlotMap();

  // From a CLUSTER SLOTS reply: an array of [start, end, [host, port, id, ...], replicas...]
  // (Redis 7 adds a 4th element to each node, [] or ["hostname", h] or ["ip", a]: ignored).
  // Only the masters (the first node of each range) are kept. A master's host may be empty
  // (the node does not know its own address yet) or nil (cluster-preferred-endpoint-type
  // unknown-endpoint): both mean "the node you asked", so `asked`'s host is used with the port
  // of the reply. A host of "?" (preferred endpoint hostname, none announced) is not reachable:
  // its slots are left unserved. `credentials` gives each node its user, password and db.
  // nullopt with `error` set when the reply is an error or not of that shape, or when two
  // masters claim a slot.
  static std::optional<SlotMap> from_cluster_slots(const redisReply* reply,
                                                   const RedisEndpoint& credentials,
                                                   const RedisEndpoint& asked, std::string& error);

  // The master serving `slot`; nullptr when none does (or slot >= 16384). Valid until the next
  // assign() or assignment of the map.
  const RedisEndpoint* owner(uint16_t slot) const;
  // The masters serving at least one slot, each once, in the order they first appeared (the
  // reply's, which Redis sorts by slot).
  std::vector<RedisEndpoint> masters() const;
  // Every slot has a master: the cluster can take any key (cluster_state:ok is more than this).
  bool covers_all() const;
  // `slot` is now served by `node` (a MOVED says so, before the next CLUSTER SLOTS). Nodes are
  // told apart by host and port; a new one is added with `node`'s credentials.
  void assign(uint16_t slot, const RedisEndpoint& node);

 private:
  static constexpr uint16_t kNone = 0xFFFF;
  // Index into _nodes of the node with `node`'s host and port (added when new).
  uint16_t index_of(const RedisEndpoint& node);

  // 32 KiB rather than a node per slot: refreshed on every MOVED storm, copied cheaply.
  std::array<uint16_t, kClusterSlots> _owner;
  std::vector<RedisEndpoint> _nodes;
};

// A node's "this slot is elsewhere" answer: hiredis' error text, without the '-'.
//   MOVED <slot> <host>:<port>  the slot has moved for good: update the map, resend there.
//   ASK <slot> <host>:<port>    mid-migration: resend this one command there after ASKING,
//                               the map does not change.
struct Redirect {
  enum Kind { Moved, Ask } kind = Moved;
  uint16_t slot = 0;
  // An IPv6 address comes bare ("::1"): the port is what follows the last ':'. Empty when the
  // node does not know the other node's address (unknown-endpoint: "MOVED 1 :6380"), meaning
  // the host of the node that answered, with this port. "?" (preferred endpoint hostname, none
  // announced) is returned as is: no address to go to, refresh the map instead.
  std::string host;
  int port = 0;
};

// The redirection in `error`; nullopt for any other error (or a malformed one).
std::optional<Redirect> parse_redirect(std::string_view error);
// TRYAGAIN: a multi-key command's keys are split mid-migration; retry after a short wait.
bool is_tryagain(std::string_view error);
// CLUSTERDOWN: the cluster is not serving (a slot unserved, a failover under way); back off
// and refresh the map.
bool is_clusterdown(std::string_view error);

// What the publisher needs of a Redis Cluster's slot map (cluster_map.h keeps it fresh).
class SlotRoutes {
 public:
  virtual const SlotMap* map() const = 0;  // nullptr until a node answered CLUSTER SLOTS
  virtual void moved(uint16_t slot, const RedisEndpoint& to) = 0;  // a MOVED said so
  virtual void refresh() = 0;  // the map may be stale (CLUSTERDOWN, a lost master)

 protected:
  ~SlotRoutes() = default;
};

}  // namespace flowrelay::redis
