// A Redis Cluster for the cluster tests (issue #13): 3 masters + 3 replicas (redis-server
// --cluster-enabled, no persistence, a short node timeout), created by `redis-cli --cluster
// create --cluster-replicas 1`, all on free loopback ports (each with its bus port, port + 10000,
// free too) in the test's TempDir. Helpers: the owner of a key's slot, SIGKILL of a master with
// the wait for its replica's promotion, and moving one slot between masters (IMPORTING /
// MIGRATING, MIGRATE of its keys, SETSLOT NODE) in steps, so a test can reshard while traffic
// flows.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "cluster.h"

namespace flowrelay::ctest {

// One line of CLUSTER NODES, as one node sees the cluster.
struct ClusterNodeView {
  std::string id;
  uint16_t port = 0;
  bool master = false;
  bool failing = false;                    // flags "fail" or "fail?"
  std::string master_id;                   // a replica's master, "" for a master
  std::vector<std::pair<int, int>> slots;  // ranges owned, inclusive; migrations left out
};

class RedisClusterSet {
 public:
  static constexpr int kMasters = 3;
  static constexpr int kSlots = 16384;

  // Starts the six redis-servers and joins them (redis-cli --cluster create); throws with the
  // logs if that fails. Call wait_settled() before use.
  explicit RedisClusterSet(const TempDir& dir, Millis node_timeout = 1000ms);

  // Until every node that was not killed says cluster_state:ok, all of them agree on who owns
  // every slot (owners all live), every live replica's link to its master is up and, while
  // nothing was killed, there are 3 masters with one replica each (bounded); returns whether so.
  bool wait_settled(Millis timeout = 20s) const;

  // redis://127.0.0.1:p1,127.0.0.1:p2,... : every node of the cluster (the seeds of mode: cluster).
  std::string url() const;
  // Every node's port, killed ones included, in start order.
  std::vector<uint16_t> ports() const;
  bool killed(uint16_t port) const { return _killed.count(port) > 0; }

  // CLUSTER NODES as the live node on `port` sees it; empty when it does not answer.
  std::vector<ClusterNodeView> view(uint16_t port) const;
  // The live masters owning slots, ordered by their lowest slot (after a slot move the order can
  // change: keep ports, not indices, across one).
  std::vector<uint16_t> masters() const;
  // The replica (live or not) of the master on `master_port`, as a live node sees it.
  std::optional<uint16_t> replica_of(uint16_t master_port) const;
  std::string node_id(uint16_t port) const;

  // CLUSTER KEYSLOT.
  int slot_of(const std::string& key) const;
  // The master owning `slot` as the first live master sees it (nullopt when none does).
  std::optional<uint16_t> owner_of_slot(int slot) const;
  std::optional<uint16_t> owner_of(const std::string& key) const {
    return owner_of_slot(slot_of(key));
  }

  // True once `master`'s replica has applied everything the master had written when asked
  // (replication offsets; WAIT only covers the writes of its own connection).
  bool wait_replica_caught_up(uint16_t master, Millis timeout) const;
  // SIGKILLs masters()[i], then waits (bounded) until its replica says it is a master and the
  // cluster is settled again (wait_settled); the promoted replica's port, nullopt if that did
  // not happen in time.
  std::optional<uint16_t> kill_master(size_t i, Millis timeout = 20s);

  // Moving `slot` from its owner to the master on `to`, in the steps of the Redis Cluster
  // specification (each throws std::runtime_error naming the command that failed):
  //  1. begin: CLUSTER SETSLOT IMPORTING on `to`, then MIGRATING on the owner; from here the
  //     owner answers -ASK for keys of the slot it no longer has, `to` -MOVED unless ASKING.
  //  2. migrate_keys: MIGRATE (REPLACE) of every key of the slot, in batches, until the owner
  //     holds none; returns how many moved.
  //  3. finish: CLUSTER SETSLOT NODE on `to`, then the old owner, then the other masters, and a
  //     bounded wait until every live node names `to` as the owner.
  // move_slot() runs all three.
  void begin_slot_move(int slot, uint16_t to);
  size_t migrate_slot_keys(int slot, uint16_t from, uint16_t to);
  void finish_slot_move(int slot, uint16_t from, uint16_t to, Millis timeout = 10s);
  void move_slot(int slot, uint16_t to);

  // Tails of every node's log, for a failing test.
  std::string logs() const;

 private:
  std::optional<uint16_t> live_master() const;
  bool agree_on_owners() const;

  const TempDir& _dir;
  std::vector<std::unique_ptr<RedisServer>> _nodes;
  std::set<uint16_t> _killed;
};

}  // namespace flowrelay::ctest
