// broker-redis' sharded Pub/Sub link (plugins/broker-redis/shard_pubsub_link.h, issue #13)
// against real redis-servers: a local Redis Cluster (3 masters + 3 replicas) for SSUBSCRIBE on
// each master, MOVED for a channel another master serves, and the unasked sunsubscribe a slot
// move sends; a standalone Redis 7 (sharded Pub/Sub works there too) for the heartbeat against
// a hung server and the reconnect after a restart. The link runs on the broker-like epoll loop
// in the test's thread (broker_loop.h).
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "broker_loop.h"
#include "redis_cluster_set.h"
#include "shard_pubsub_link.h"

namespace flowrelay::ctest {
namespace {

using redis::ShardPubSubLink;

// What the links told, per link.
struct Recorder : redis::ShardPubSubEvents {
  struct Seen {
    int ups = 0, downs = 0;  // downs: of a link that was up (not the failed attempts after)
    int failed_attempts = 0;
    std::vector<std::string> subscribed, lost;
    std::vector<std::pair<std::string, std::string>> refused;
    std::map<std::string, std::vector<std::string>> messages;
  };
  std::map<const ShardPubSubLink*, Seen> seen;
  // Channels to subscribe on each link whenever it is up (the broker's part, here by hand).
  std::map<const ShardPubSubLink*, std::vector<std::string>> wanted;

  void shard_up(ShardPubSubLink& link) override {
    ++seen[&link].ups;
    link.subscribe(wanted[&link]);
  }
  void shard_down(ShardPubSubLink& link, const std::string&, bool was_up) override {
    ++(was_up ? seen[&link].downs : seen[&link].failed_attempts);
  }
  void shard_subscribed(ShardPubSubLink& link, std::string_view ch,
                        std::string_view error) override {
    if (error.empty())
      seen[&link].subscribed.emplace_back(ch);
    else
      seen[&link].refused.emplace_back(ch, error);
  }
  void shard_lost(ShardPubSubLink& link, std::string_view ch) override {
    seen[&link].lost.emplace_back(ch);
  }
  void shard_message(ShardPubSubLink& link, std::string_view ch, std::string_view data) override {
    seen[&link].messages[std::string(ch)].emplace_back(data);
  }
};

// The links on the shared test loop (broker_loop.h), their events recorded.
class LinkLoop : public BrokerLoop {
 public:
  LinkLoop() {
    on_turn([this](int64_t now) {
      for (auto& l : _links) l->check(now);
    });
  }
  ~LinkLoop() {
    ctx().closing = true;
    _links.clear();
  }

  ShardPubSubLink& add(uint16_t port) {
    redis::RedisEndpoint ep;
    ep.host = "127.0.0.1";
    ep.port = port;
    _links.push_back(std::make_unique<ShardPubSubLink>(ctx(), rec, ep));
    _links.back()->connect();
    return *_links.back();
  }

  Recorder rec;

 private:
  std::vector<std::unique_ptr<ShardPubSubLink>> _links;
};

std::string spublish(uint16_t port, const std::string& ch, const std::string& data) {
  return redis_command(port, {"SPUBLISH", ch, data}).value_or("(no answer)");
}

class ClusterShardPubSubLink : public ::testing::Test {
 protected:
  TempDir dir{"shard-pubsub"};
};

TEST_F(ClusterShardPubSubLink, EachMasterDeliversItsOwnChannelsInOrderAndRefusesOthersWithMoved) {
  RedisClusterSet set(dir);
  ASSERT_TRUE(set.wait_settled(20s)) << set.logs();
  LinkLoop loop;
  std::map<uint16_t, ShardPubSubLink*> link_of;
  for (uint16_t m : set.masters()) link_of[m] = &loop.add(m);
  // 30 conversations over the three masters, each subscribed on its owner.
  std::map<std::string, uint16_t> owner;
  for (int i = 0; i < 30; ++i) {
    const std::string ch = "chat:" + std::to_string(i);
    owner[ch] = *set.owner_of(ch);
    loop.rec.wanted[link_of[owner[ch]]].push_back(ch);
  }
  for (auto& [m, link] : link_of) EXPECT_FALSE(loop.rec.wanted[link].empty()) << m;
  ASSERT_TRUE(loop.run_until([&] {
    size_t n = 0;
    for (auto& [l, s] : loop.rec.seen) n += s.subscribed.size();
    return n == 30;
  }));
  // 200 messages each on three conversations, pipelined by Redis into few reads.
  for (int k = 0; k < 200; ++k)
    for (const char* ch : {"chat:0", "chat:1", "chat:2"})
      ASSERT_EQ(spublish(owner[ch], ch, "m" + std::to_string(k)), ":1");
  for (auto& [ch, m] : owner) ASSERT_EQ(spublish(m, ch, "last"), ":1") << ch;
  ASSERT_TRUE(loop.run_until([&] {
    size_t n = 0;
    for (auto& [l, s] : loop.rec.seen)
      for (auto& [ch, msgs] : s.messages) n += msgs.size();
    return n >= 630;
  }));
  loop.run_for(200ms);  // nothing more (no duplicate) arrives
  for (auto& [ch, m] : owner) {
    const auto& msgs = loop.rec.seen[link_of[m]].messages[ch];
    std::vector<std::string> want;
    if (ch == "chat:0" || ch == "chat:1" || ch == "chat:2")
      for (int k = 0; k < 200; ++k) want.push_back("m" + std::to_string(k));
    want.push_back("last");
    EXPECT_EQ(msgs, want) << ch;
    for (auto& [other, link] : link_of) {
      if (other == m) continue;
      EXPECT_EQ(loop.rec.seen[link].messages.count(ch), 0u) << ch;
    }
  }

  // A channel another master serves: refused with MOVED naming the owner; the link stays up
  // and its next answer still matches its command.
  const std::string ch = "chat:0";
  ShardPubSubLink* wrong = nullptr;
  for (auto& [m, link] : link_of)
    if (m != owner[ch]) wrong = link;
  wrong->subscribe({ch});
  ASSERT_TRUE(loop.run_until([&] { return !loop.rec.seen[wrong].refused.empty(); }));
  const auto [refused_ch, error] = loop.rec.seen[wrong].refused[0];
  EXPECT_EQ(refused_ch, ch);
  EXPECT_EQ(error,
            "MOVED " + std::to_string(set.slot_of(ch)) + " 127.0.0.1:" + std::to_string(owner[ch]));
  EXPECT_TRUE(wrong->up());
  const size_t before = loop.rec.seen[wrong].subscribed.size();
  wrong->subscribe({loop.rec.wanted[wrong][0]});  // again: answered ssubscribe, in order
  ASSERT_TRUE(loop.run_until([&] { return loop.rec.seen[wrong].subscribed.size() > before; }));
  for (auto& [m, link] : link_of) {
    EXPECT_EQ(loop.rec.seen[link].downs, 0) << m;
    EXPECT_EQ(loop.rec.seen[link].lost.size(), 0u) << m;
  }
}

TEST_F(ClusterShardPubSubLink, ASlotMoveEndsItsSubscriptionsUnaskedAndTheNewOwnerServesThem) {
  RedisClusterSet set(dir);
  ASSERT_TRUE(set.wait_settled(20s)) << set.logs();
  LinkLoop loop;
  const std::string ch = "chat:42", stay = "chat:7";
  const uint16_t from = *set.owner_of(ch);
  uint16_t to = 0;
  for (uint16_t m : set.masters())
    if (m != from) to = m;
  ShardPubSubLink& old_link = loop.add(from);
  ShardPubSubLink& new_link = loop.add(to);
  // Another channel of the same master that does not move keeps its subscription.
  std::string neighbour;
  for (int i = 0; neighbour.empty(); ++i) {
    const std::string c = "chat:n" + std::to_string(i);
    if (set.owner_of(c) == from && set.slot_of(c) != set.slot_of(ch)) neighbour = c;
  }
  loop.rec.wanted[&old_link] = {ch, neighbour};
  ASSERT_TRUE(loop.run_until([&] { return loop.rec.seen[&old_link].subscribed.size() == 2; }));
  ASSERT_EQ(spublish(from, ch, "before"), ":1");

  set.move_slot(set.slot_of(ch), to);
  ASSERT_TRUE(loop.run_until([&] { return !loop.rec.seen[&old_link].lost.empty(); }))
      << "no sunsubscribe after the slot moved";
  EXPECT_EQ(loop.rec.seen[&old_link].lost, std::vector<std::string>{ch});
  EXPECT_TRUE(old_link.up());
  EXPECT_EQ(loop.rec.seen[&old_link].downs, 0);
  EXPECT_EQ(loop.rec.seen[&old_link].messages[ch], std::vector<std::string>{"before"});

  // Subscribed on the new owner, it gets what is published there; the neighbour still works.
  new_link.subscribe({ch});
  ASSERT_TRUE(loop.run_until([&] { return loop.rec.seen[&new_link].subscribed.size() == 1; }));
  ASSERT_EQ(spublish(to, ch, "after"), ":1");
  ASSERT_EQ(spublish(from, neighbour, "still here"), ":1");
  ASSERT_TRUE(loop.run_until([&] {
    return loop.rec.seen[&new_link].messages[ch].size() == 1 &&
           loop.rec.seen[&old_link].messages[neighbour].size() == 1;
  }));
  EXPECT_EQ(loop.rec.seen[&new_link].messages[ch], std::vector<std::string>{"after"});
  EXPECT_EQ(loop.rec.seen[&old_link].messages[ch].size(), 1u);
}

// A manual failover (CLUSTER FAILOVER on the replica) demotes the master: it ends the
// subscriptions of the slots it no longer serves, unasked, on a link that stays up, and the
// promoted replica serves them.
TEST_F(ClusterShardPubSubLink, AManualFailoverEndsTheOldMastersSubscriptionsUnasked) {
  RedisClusterSet set(dir);
  ASSERT_TRUE(set.wait_settled(20s)) << set.logs();
  LinkLoop loop;
  const std::string ch = "chat:42";
  const uint16_t master = *set.owner_of(ch);
  const uint16_t replica = *set.replica_of(master);
  ShardPubSubLink& old_link = loop.add(master);
  loop.rec.wanted[&old_link] = {ch};
  ASSERT_TRUE(loop.run_until([&] { return loop.rec.seen[&old_link].subscribed.size() == 1; }));

  ASSERT_EQ(redis_command(replica, {"CLUSTER", "FAILOVER"}).value_or(""), "+OK");
  ASSERT_TRUE(loop.run_until([&] { return !loop.rec.seen[&old_link].lost.empty(); }, 10s))
      << "no sunsubscribe from the demoted master";
  EXPECT_EQ(loop.rec.seen[&old_link].lost, std::vector<std::string>{ch});
  EXPECT_EQ(loop.rec.seen[&old_link].downs, 0);
  // owner_of() asks another master, which may learn of the failover a moment later (gossip).
  EXPECT_TRUE(loop.run_until([&] { return set.owner_of(ch) == replica; }, 5s));

  ShardPubSubLink& new_link = loop.add(replica);
  loop.rec.wanted[&new_link] = {ch};
  ASSERT_TRUE(loop.run_until([&] { return loop.rec.seen[&new_link].subscribed.size() == 1; }));
  ASSERT_EQ(spublish(replica, ch, "on the new master"), ":1");
  ASSERT_TRUE(loop.run_until([&] { return loop.rec.seen[&new_link].messages[ch].size() == 1; }));
  EXPECT_TRUE(loop.rec.seen[&old_link].messages[ch].empty());
}

TEST_F(ClusterShardPubSubLink, AHungRedisIsNoticedByTheHeartbeatAndARestartedOneIsReconnected) {
  RedisServer redis(dir);
  LinkLoop loop;
  ShardPubSubLink& link = loop.add(redis.port());
  loop.rec.wanted[&link] = {"chat:1"};
  ASSERT_TRUE(loop.run_until([&] { return loop.rec.seen[&link].subscribed.size() == 1; }));
  // Several heartbeats (every 200 ms) come back while it answers.
  loop.run_for(1s);
  EXPECT_TRUE(link.up());
  EXPECT_EQ(loop.rec.seen[&link].downs, 0);

  // SIGSTOP: the socket stays open, nothing answers: down within command_timeout_ms (600) of a
  // heartbeat.
  redis.pause();
  const auto paused = Clock::now();
  const bool noticed = loop.run_until([&] { return loop.rec.seen[&link].downs == 1; }, 3s);
  const auto after = std::chrono::duration_cast<Millis>(Clock::now() - paused).count();
  redis.resume();
  ASSERT_TRUE(noticed);
  EXPECT_LE(after, 1500) << "ms until the hung Redis was noticed";
  // Back, and subscribed again by its owner's shard_up.
  ASSERT_TRUE(loop.run_until([&] { return loop.rec.seen[&link].subscribed.size() == 2; }));
  EXPECT_EQ(loop.rec.seen[&link].ups, 2);

  // Killed and restarted on its port: down, then up and subscribed again.
  redis.kill();
  ASSERT_TRUE(loop.run_until([&] { return loop.rec.seen[&link].downs == 2; }));
  ASSERT_TRUE(loop.run_until([&] { return loop.rec.seen[&link].failed_attempts >= 2; }))
      << "no reconnect attempts while Redis was away";
  redis.start();
  ASSERT_TRUE(loop.run_until([&] { return loop.rec.seen[&link].subscribed.size() == 3; }));
  ASSERT_EQ(spublish(redis.port(), "chat:1", "hello"), ":1");
  ASSERT_TRUE(loop.run_until([&] { return loop.rec.seen[&link].messages["chat:1"].size() == 1; }));
  EXPECT_EQ(loop.rec.seen[&link].ups, 3);
  EXPECT_EQ(loop.rec.seen[&link].downs, 2);
}

}  // namespace
}  // namespace flowrelay::ctest
