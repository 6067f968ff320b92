// broker-redis' mode: cluster subscriber (plugins/broker-redis/cluster_subscriber.h, issue #13)
// against a local Redis Cluster (3 masters + 3 replicas), the map steady: subscriptions spread
// over the masters, a map not known yet (a dead seed, a Redis that is no cluster), unsubscribe,
// a refused channel, and the gap fill's duplicate check and floors on sequenced messages. The
// moves and failovers are in cluster_subscriber_moves_test.cpp.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "cluster_subscriber_node.h"
#include "support/ports.h"
#include "wire_format.h"

namespace flowrelay::ctest {
namespace {

using redis::ClusterSubscriber;

// (a) 60 channels over the three masters: each answered once, each message delivered once, in
// order, by the link of its owner.
TEST_F(ClusterSubscriberTest, ChannelsOverEveryMasterAreAnsweredOnceAndDeliveredInOrder) {
  Node node(set.ports());
  node.map->connect();
  std::vector<std::string> channels = numbered("chat:", 60);
  std::map<uint16_t, int> per_master;
  for (const auto& ch : channels) ++per_master[*set.owner_of(ch)];
  ASSERT_EQ(per_master.size(), 3u);
  for (const auto& ch : channels) node.subscribe(ch);
  ASSERT_TRUE(node.answered(channels));
  ASSERT_TRUE(node.steady());
  EXPECT_EQ(node.sub->link_count(), 3u);
  EXPECT_EQ(node.loop.ctx().count.sub_up.load(), 1);
  for (int k = 0; k < 5; ++k)
    for (const auto& ch : channels)
      ASSERT_EQ(spublish(*set.owner_of(ch), ch, "m" + std::to_string(k)), ":1") << ch;
  ASSERT_TRUE(node.loop.run_until([&] { return node.loop.host.total_deliveries() >= 300; }));
  node.loop.run_for(200ms);  // nothing more (no duplicate, no second answer)
  node.take_answers();
  for (const auto& ch : channels) {
    EXPECT_EQ(node.answers[ch], std::vector<flowrelay_status>{FLOWRELAY_OK}) << ch;
    EXPECT_EQ(node.loop.host.deliveries(ch), numbered("m", 5)) << ch;
  }
  EXPECT_EQ(node.loop.host.total_deliveries(), 300u);
  EXPECT_EQ(node.loop.ctx().count.received.load(), 300u);
}

// (b) Subscribed before anything is known (the first seed is not even listening, the second
// is no cluster): answered once the map and the owner's link arrive.
TEST_F(ClusterSubscriberTest, AChannelSubscribedBeforeTheMapIsKnownIsAnsweredOnceItIs) {
  RedisServer standalone(dir);  // answers CLUSTER SLOTS with an error: not a cluster
  std::vector<uint16_t> seeds{test::free_port(), standalone.port()};
  for (uint16_t p : set.ports()) seeds.push_back(p);
  Node node(seeds);
  const std::vector<std::string> channels{"early:1", "early:2", "early:3"};
  for (const auto& ch : channels) node.subscribe(ch);
  node.sub->take_ops();
  node.sub->check(redis::monotonic_ms());
  EXPECT_FALSE(node.map->known());
  EXPECT_EQ(node.sub->link_count(), 0u);
  node.take_answers();
  for (const auto& ch : channels) EXPECT_TRUE(node.answers[ch].empty()) << ch;

  node.map->connect();
  ASSERT_TRUE(node.answered(channels));
  EXPECT_TRUE(node.map->known());
  EXPECT_NE(node.map->node().port, seeds[0]) << "the dead seed was not left";
  EXPECT_NE(node.map->node().port, seeds[1]) << "the standalone Redis was not left";
  bool refusal_reported = false;
  for (const auto& [code, text] : node.loop.host.errors())
    refusal_reported |= code == FLOWRELAY_EUNAVAIL && text.find("cluster") != std::string::npos;
  EXPECT_TRUE(refusal_reported);
  for (const auto& ch : channels) {
    EXPECT_EQ(node.answers[ch], std::vector<flowrelay_status>{FLOWRELAY_OK}) << ch;
    ASSERT_EQ(spublish(*set.owner_of(ch), ch, "hello"), ":1") << ch;
  }
  ASSERT_TRUE(node.loop.run_until([&] { return node.loop.host.total_deliveries() == 3; }));
}

// (e) Unsubscribed: Redis stops delivering; subscribed again, it is answered again.
TEST_F(ClusterSubscriberTest, UnsubscribeStopsDelivery) {
  Node node(set.ports());
  node.map->connect();
  const std::string ch = "chat:7";
  const uint16_t owner = *set.owner_of(ch);
  node.subscribe(ch);
  ASSERT_TRUE(node.answered({ch}));
  ASSERT_EQ(spublish(owner, ch, "one"), ":1");
  ASSERT_TRUE(node.loop.run_until([&] { return node.loop.host.deliveries(ch).size() == 1; }));
  node.sub->unsubscribe(ch);
  node.loop.run_for(300ms);
  ASSERT_EQ(spublish(owner, ch, "gone"), ":0");
  node.loop.run_for(200ms);
  EXPECT_EQ(node.loop.host.deliveries(ch), std::vector<std::string>{"one"});
  node.take_answers();
  EXPECT_EQ(node.answers[ch], std::vector<flowrelay_status>{FLOWRELAY_OK});

  node.subscribe(ch);
  ASSERT_TRUE(node.loop.run_until([&] {
    node.take_answers();
    return node.answers[ch].size() == 2;
  }));
  EXPECT_EQ(node.answers[ch][1], FLOWRELAY_OK);
  ASSERT_EQ(spublish(owner, ch, "two"), ":1");
  ASSERT_TRUE(node.loop.run_until([&] { return node.loop.host.deliveries(ch).size() == 2; }));
  EXPECT_EQ(node.loop.host.deliveries(ch), (std::vector<std::string>{"one", "two"}));
}

// A channel an ACL forbids: refused once (EINTERNAL), dropped, the link and the other
// channels unharmed; subscribed again, refused again.
TEST_F(ClusterSubscriberTest, AChannelRedisRefusesIsAnsweredWithAnErrorOnceAndDropped) {
  for (uint16_t p : set.ports())
    ASSERT_EQ(
        redis_command(p, {"ACL", "SETUSER", "default", "resetchannels", "&chat:*"}).value_or(""),
        "+OK")
        << p;
  Node node(set.ports());
  node.map->connect();
  node.subscribe("secret:1");
  node.subscribe("chat:1");
  ASSERT_TRUE(node.answered({"secret:1", "chat:1"}));
  node.loop.run_for(200ms);
  node.take_answers();
  EXPECT_EQ(node.answers["secret:1"], std::vector<flowrelay_status>{FLOWRELAY_EINTERNAL});
  EXPECT_EQ(node.answers["chat:1"], std::vector<flowrelay_status>{FLOWRELAY_OK});
  EXPECT_EQ(node.loop.ctx().count.subscribe_refused.load(), 1u);
  EXPECT_FALSE(node.loop.host.errors().empty());
  EXPECT_TRUE(node.sub->links_up());
  EXPECT_TRUE(node.sub->resubscribed());
  ASSERT_EQ(spublish(*set.owner_of("chat:1"), "chat:1", "fine"), ":1");
  ASSERT_TRUE(node.loop.run_until([&] { return node.loop.host.deliveries("chat:1").size() == 1; }));

  node.sub->subscribe("secret:1");
  ASSERT_TRUE(node.loop.run_until([&] {
    node.take_answers();
    return node.answers["secret:1"].size() == 2;
  }));
  EXPECT_EQ(node.answers["secret:1"][1], FLOWRELAY_EINTERNAL);
}

// Messages in the wire form go through the gap fill like Subscriber's: a resent one (same
// epoch and offset) is dropped, and each delivered offset is noted for the publisher's floors.
TEST_F(ClusterSubscriberTest, SequencedMessagesAreDeliveredOnceAndNotedAsFloors) {
  std::vector<std::string> noted;
  ClusterSubscriber::PublisherHooks hooks;
  hooks.delivered = [&](std::string_view ch, std::string_view epoch, uint64_t offset) {
    noted.push_back(std::string(ch) + " " + std::string(epoch) + " " + std::to_string(offset));
  };
  Node node(set.ports(), std::move(hooks));
  node.map->connect();
  const std::string ch = "chat:5";
  const uint16_t owner = *set.owner_of(ch);
  node.subscribe(ch);
  ASSERT_TRUE(node.answered({ch}));
  const flowrelay_origin origin{7, 1, 0};
  auto wire = [&](uint64_t offset, const std::string& data) {
    return redis::encode_wire(FLOWRELAY_LANE_MESSAGE, offset, "e1", origin, data);
  };
  for (const auto& [offset, data] :
       std::vector<std::pair<uint64_t, std::string>>{{1, "a"}, {1, "a"}, {2, "b"}, {1, "a"}})
    ASSERT_EQ(spublish(owner, ch, wire(offset, data)), ":1");
  ASSERT_TRUE(node.loop.run_until([&] { return node.loop.host.deliveries(ch).size() == 2; }));
  node.loop.run_for(200ms);
  EXPECT_EQ(node.loop.host.deliveries(ch), (std::vector<std::string>{"a", "b"}));
  const auto messages = node.loop.host.messages(ch);
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[1].offset, 2u);
  EXPECT_EQ(messages[1].epoch, "e1");
  EXPECT_EQ(node.sub->gaps().duplicates(), 2u);
  EXPECT_EQ(noted, (std::vector<std::string>{ch + " e1 1", ch + " e1 2"}));
  EXPECT_EQ(node.loop.ctx().count.received.load(), 4u);
}

}  // namespace
}  // namespace flowrelay::ctest
