// broker-redis' mode: cluster subscriber (plugins/broker-redis/cluster_subscriber.h, issue #13)
// while the cluster changes under it: a slot moved while subscribed (the unasked sunsubscribe),
// a master killed and its replica promoted, a MOVED answer to a stale map. Each channel is back
// by itself, without a second subscribed() answer.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cluster_subscriber_node.h"

namespace flowrelay::ctest {
namespace {

// (c) The slot of a subscribed channel moves while messages flow: the old owner ends the
// subscription unasked, the channel is subscribed on the new owner by itself (no second
// answer), and what is published there is delivered; a neighbour on the old owner stays.
TEST_F(ClusterSubscriberTest, ASlotMoveTakesTheChannelToItsNewOwnerByItself) {
  Node node(set.ports());
  node.map->connect();
  const std::string ch = "chat:42";
  const int slot = set.slot_of(ch);
  const uint16_t from = *set.owner_of(ch);
  uint16_t to = 0;
  for (uint16_t m : set.masters())
    if (m != from) to = m;
  const std::string neighbour = channels_on(set, from, "chat:n", 1, slot)[0];
  node.subscribe(ch);
  node.subscribe(neighbour);
  ASSERT_TRUE(node.answered({ch, neighbour}));
  for (const auto& m : numbered("before-", 10)) ASSERT_EQ(spublish(from, ch, m), ":1");
  ASSERT_TRUE(node.loop.run_until([&] { return node.loop.host.deliveries(ch).size() == 10; }));

  set.begin_slot_move(slot, to);
  set.migrate_slot_keys(slot, from, to);
  node.loop.run_for(100ms);
  const bool during_delivered = spublish(from, ch, "during") == ":1";
  node.loop.run_for(100ms);
  set.finish_slot_move(slot, from, to);
  const auto moved_at = Clock::now();
  // Probes on the new owner until one reaches this node's subscription there.
  int probes = 0;
  ASSERT_TRUE(node.loop.run_until(
      [&] {
        ++probes;
        return spublish(to, ch, "probe") == ":1";
      },
      10s))
      << "never subscribed on the new owner";
  std::printf(
      "[ cluster  ] re-subscribed on the new owner %lld ms after the move\n",
      static_cast<long long>(std::chrono::duration_cast<Millis>(Clock::now() - moved_at).count()));
  for (const auto& m : numbered("after-", 10)) ASSERT_EQ(spublish(to, ch, m), ":1");
  ASSERT_EQ(spublish(from, neighbour, "still here"), ":1");
  ASSERT_TRUE(node.loop.run_until([&] {
    const auto got = node.loop.host.deliveries(ch);
    return !got.empty() && got.back() == "after-9" && node.loop.host.deliveries(neighbour).size();
  }));
  node.loop.run_for(200ms);
  node.take_answers();
  EXPECT_EQ(node.answers[ch], std::vector<flowrelay_status>{FLOWRELAY_OK});
  EXPECT_EQ(node.answers[neighbour], std::vector<flowrelay_status>{FLOWRELAY_OK});
  std::vector<std::string> want = numbered("before-", 10);
  if (during_delivered) want.push_back("during");
  for (const auto& m : numbered("after-", 10)) want.push_back(m);
  const auto got = node.loop.host.deliveries(ch);
  EXPECT_EQ(without(got, "probe"), want);
  EXPECT_EQ(got.size() - without(got, "probe").size(), 1u) << "only the answered probe arrives";
  EXPECT_EQ(node.loop.host.deliveries(neighbour), std::vector<std::string>{"still here"});
  EXPECT_TRUE(node.sub->resubscribed());
  EXPECT_EQ(node.map->map()->owner(static_cast<uint16_t>(slot))->port, to);
}

// (d) A master is killed: once its replica is promoted, its channels are subscribed there by
// themselves; the other masters' channels are not disturbed.
TEST_F(ClusterSubscriberTest, AKilledMastersChannelsComeBackOnThePromotedReplica) {
  Node node(set.ports());
  node.map->connect();
  const std::vector<uint16_t> masters = set.masters();
  const uint16_t victim = masters[0];
  const uint16_t replica = *set.replica_of(victim);
  const std::vector<std::string> lost = channels_on(set, victim, "room:", 5);
  std::vector<std::string> kept;
  for (size_t i = 1; i < masters.size(); ++i)
    for (const auto& ch : channels_on(set, masters[i], "hall:" + std::to_string(i) + ":", 2))
      kept.push_back(ch);
  std::vector<std::string> all = lost;
  all.insert(all.end(), kept.begin(), kept.end());
  for (const auto& ch : all) node.subscribe(ch);
  ASSERT_TRUE(node.answered(all));
  ASSERT_TRUE(node.steady());

  // The loop runs while the killer waits for the promotion. A probe SPUBLISHed on a replica
  // reaches its master's subscribers too: probes go only once the victim is dead.
  const auto killed_at = Clock::now();
  std::optional<uint16_t> promoted;
  std::atomic<bool> kill_done{false};
  std::thread killer([&] {
    promoted = set.kill_master(0, 30s);
    kill_done = true;
  });
  bool victim_dead = false;
  auto last_probe = Clock::now() - 1s;
  const bool back = node.loop.run_until(
      [&] {
        const auto got = node.loop.host.deliveries(lost[0]);
        if (std::find(got.begin(), got.end(), "probe") != got.end()) return true;
        if (Clock::now() - last_probe < 50ms) return false;
        last_probe = Clock::now();
        if (!victim_dead) victim_dead = !redis_command(victim, {"PING"}, 50ms).has_value();
        if (victim_dead) spublish(replica, lost[0], "probe");
        return false;
      },
      30s);
  const auto first_delivery = Clock::now();
  node.loop.run_until([&] { return kill_done.load(); }, 30s);
  killer.join();
  ASSERT_EQ(promoted, replica) << set.logs();
  ASSERT_TRUE(back) << "no delivery from the promoted replica";
  std::printf("[ cluster  ] kill of master %d -> first delivery on its promoted replica: %lld ms\n",
              static_cast<int>(victim),
              static_cast<long long>(
                  std::chrono::duration_cast<Millis>(first_delivery - killed_at).count()));
  for (const auto& ch : lost)
    ASSERT_TRUE(node.loop.run_until([&] { return spublish(replica, ch, "after") == ":1"; }))
        << ch << " not subscribed on the promoted replica";
  ASSERT_TRUE(node.steady(10s));
  for (const auto& ch : kept) ASSERT_EQ(spublish(*set.owner_of(ch), ch, "after"), ":1") << ch;
  ASSERT_TRUE(node.loop.run_until([&] {
    for (const auto& ch : all) {
      const auto got = node.loop.host.deliveries(ch);
      if (got.empty() || got.back() != "after") return false;
    }
    return true;
  }));
  node.loop.run_for(200ms);
  node.take_answers();
  for (const auto& ch : all)
    EXPECT_EQ(node.answers[ch], std::vector<flowrelay_status>{FLOWRELAY_OK}) << ch;
  for (const auto& ch : kept)
    EXPECT_EQ(node.loop.host.deliveries(ch), std::vector<std::string>{"after"}) << ch;
  for (const auto& ch : lost)
    EXPECT_EQ(without(node.loop.host.deliveries(ch), "probe"), std::vector<std::string>{"after"});
  EXPECT_EQ(node.sub->link_count(), 3u) << "the dead master's link is closed";
  EXPECT_GT(node.state_changes, 0) << "the broker was never told to re-evaluate readiness";
  EXPECT_EQ(node.loop.ctx().count.sub_up.load(), 1);
}

// (f) A stale map (the slot moved while nothing was subscribed there, no refresh since): the
// owner it names answers MOVED; the channel ends subscribed on the right owner, answered once.
TEST_F(ClusterSubscriberTest, AMovedAnswerToAStaleMapEndsSubscribedOnTheRightOwner) {
  Node node(set.ports());
  node.map->connect();
  ASSERT_TRUE(node.steady());
  const std::string ch = "chat:99";
  const uint16_t slot = redis::key_slot(ch);
  const uint16_t from = *set.owner_of(ch);
  uint16_t to = 0;
  for (uint16_t m : set.masters())
    if (m != from) to = m;
  set.move_slot(slot, to);
  ASSERT_EQ(node.map->map()->owner(slot)->port, from) << "the map is not stale";
  const int changes = node.map_changes;

  node.subscribe(ch);
  ASSERT_TRUE(node.answered({ch}));
  EXPECT_GT(node.map_changes, changes);
  EXPECT_EQ(node.map->map()->owner(slot)->port, to);
  ASSERT_EQ(spublish(to, ch, "hi"), ":1");
  ASSERT_TRUE(node.loop.run_until([&] { return node.loop.host.deliveries(ch).size() == 1; }));
  node.loop.run_for(200ms);
  node.take_answers();
  EXPECT_EQ(node.answers[ch], std::vector<flowrelay_status>{FLOWRELAY_OK});
  EXPECT_TRUE(node.sub->resubscribed());
}

}  // namespace
}  // namespace flowrelay::ctest
