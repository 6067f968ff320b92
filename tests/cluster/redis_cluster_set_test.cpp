// Redis Cluster topology (issue #13): the harness's own check, that 3 masters + 3 replicas come
// up, that a key stays readable through a slot move (MOVED and ASK naming the right nodes on
// the way) and through a SIGKILLed master's failover. The flowrelayd cluster tests build on it.
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "redis_cluster_set.h"

namespace flowrelay::ctest {
namespace {

class ClusterRedisClusterSet : public ::testing::Test {
 protected:
  TempDir dir{"redis-cluster"};
};

// One command's reply in redis_command's form.
std::string cmd(uint16_t port, const std::vector<std::string>& args, Millis timeout = 1s) {
  return redis_command(port, args, timeout).value_or("(no answer)");
}
std::string moved(int slot, uint16_t port) {
  return "-MOVED " + std::to_string(slot) + " 127.0.0.1:" + std::to_string(port);
}
std::string ask(int slot, uint16_t port) {
  return "-ASK " + std::to_string(slot) + " 127.0.0.1:" + std::to_string(port);
}

TEST_F(ClusterRedisClusterSet, AKeyStaysReadableThroughASlotMoveAndAFailover) {
  const auto started = Clock::now();
  RedisClusterSet set(dir);
  ASSERT_TRUE(set.wait_settled(20s)) << set.logs();
  std::cout << "cluster settled "
            << std::chrono::duration_cast<Millis>(Clock::now() - started).count()
            << " ms after the start\n";

  // 3 masters, each with its own replica; the first owns slot 0.
  const auto masters = set.masters();
  ASSERT_EQ(masters.size(), 3u) << set.logs();
  std::set<uint16_t> replicas;
  for (uint16_t m : masters) {
    const auto r = set.replica_of(m);
    ASSERT_TRUE(r.has_value()) << "master " << m << " has no replica";
    EXPECT_EQ(std::count(masters.begin(), masters.end(), *r), 0);
    replicas.insert(*r);
  }
  EXPECT_EQ(replicas.size(), 3u);
  EXPECT_EQ(set.owner_of_slot(0), masters[0]);
  EXPECT_EQ(set.owner_of_slot(RedisClusterSet::kSlots - 1), masters[2]);

  // A conversation's keys share its hash tag, so its slot: the one of "chat:42" itself.
  const std::string key = "flowrelay:history:{chat:42}", absent = "flowrelay:seq:{chat:42}";
  const int slot = set.slot_of(key);
  EXPECT_EQ(set.slot_of("chat:42"), slot);
  EXPECT_EQ(set.slot_of(absent), slot);
  const auto owner = set.owner_of_slot(slot);
  ASSERT_TRUE(owner.has_value());
  ASSERT_EQ(cmd(*owner, {"SET", key, "v1"}), "+OK");
  uint16_t other = 0;  // another master: the slot's destination
  for (uint16_t m : masters)
    if (m != *owner) other = m;
  EXPECT_EQ(cmd(other, {"GET", key}), moved(slot, *owner));

  // 1. IMPORTING / MIGRATING: the owner still serves the key it has and sends the client to
  // the destination (ASK) for one it has not; the destination sends it back (MOVED) unless
  // ASKING.
  ASSERT_NO_THROW(set.begin_slot_move(slot, other)) << set.logs();
  EXPECT_EQ(cmd(*owner, {"GET", key}), "$2 v1");
  EXPECT_EQ(cmd(*owner, {"GET", absent}), ask(slot, other));
  EXPECT_EQ(cmd(other, {"GET", key}), moved(slot, *owner));
  // 2. MIGRATE: the key is gone from the owner, which now asks for it elsewhere.
  size_t migrated = 0;
  ASSERT_NO_THROW(migrated = set.migrate_slot_keys(slot, *owner, other)) << set.logs();
  EXPECT_EQ(migrated, 1u);
  EXPECT_EQ(cmd(*owner, {"GET", key}), ask(slot, other));
  // 3. SETSLOT NODE: the destination owns it, the old owner redirects for good.
  ASSERT_NO_THROW(set.finish_slot_move(slot, *owner, other)) << set.logs();
  EXPECT_EQ(set.owner_of_slot(slot), other);
  EXPECT_EQ(cmd(other, {"GET", key}), "$2 v1");
  EXPECT_EQ(cmd(*owner, {"GET", key}), moved(slot, other));
  ASSERT_TRUE(set.wait_settled(10s)) << set.logs();

  // The new owner's master is SIGKILLed once its replica holds the key: the replica is
  // promoted with the moved slot, and every other master redirects there.
  const auto replica = set.replica_of(other);
  ASSERT_TRUE(replica.has_value());
  ASSERT_TRUE(set.wait_replica_caught_up(other, 5s)) << "the replica never synced";
  const auto now = set.masters();
  const size_t index = static_cast<size_t>(std::find(now.begin(), now.end(), other) - now.begin());
  ASSERT_LT(index, now.size());
  const auto killed_at = Clock::now();
  const auto promoted = set.kill_master(index, 20s);
  ASSERT_TRUE(promoted.has_value()) << set.logs();
  std::cout << "replica " << *promoted << " promoted, cluster ok "
            << std::chrono::duration_cast<Millis>(Clock::now() - killed_at).count()
            << " ms after the master's SIGKILL\n";
  EXPECT_EQ(*promoted, *replica);
  EXPECT_TRUE(set.killed(other));
  EXPECT_EQ(set.owner_of_slot(slot), *promoted);
  EXPECT_EQ(cmd(*promoted, {"GET", key}), "$2 v1");
  EXPECT_EQ(cmd(*owner, {"GET", key}), moved(slot, *promoted));
  EXPECT_EQ(set.masters().size(), 3u);
}

}  // namespace
}  // namespace flowrelay::ctest
