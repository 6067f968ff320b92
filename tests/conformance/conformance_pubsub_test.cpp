// Conformance: what reaches deliver() — payloads exactly, only subscribed channels, nothing
// after unsubscribe().
#include <algorithm>
#include <random>
#include <thread>

#include "broker_fixture.h"

namespace flowrelay::test {
namespace {

TEST_F(BrokerConformance, DeliversAnEmptyPayload) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string ch = channel("empty");
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  ASSERT_NO_FATAL_FAILURE(publish(ch, ""));
  ASSERT_TRUE(host_.wait_deliveries(ch, 1, kDeliveryTimeout));
  ASSERT_NO_FATAL_FAILURE(flush_through(ch));
  auto got = host_.deliveries(ch);
  ASSERT_EQ(got.size(), 2u) << "expected the empty message then the marker";
  EXPECT_EQ(got[0], "");
}

TEST_F(BrokerConformance, DeliversBinaryPayloadWithNulBytesExactly) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string ch = channel("binary");
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  std::string payload;
  for (int round = 0; round < 2; ++round)
    for (int b = 0; b < 256; ++b) payload.push_back(static_cast<char>(b));
  payload += std::string(5, '\0');  // trailing NULs must not be trimmed either
  ASSERT_NO_FATAL_FAILURE(publish(ch, payload));
  ASSERT_TRUE(host_.wait_deliveries(ch, 1, kDeliveryTimeout));
  auto got = host_.deliveries(ch);
  ASSERT_EQ(got[0].size(), payload.size());
  EXPECT_TRUE(got[0] == payload) << "payload bytes differ";
}

TEST_F(BrokerConformance, DeliversAOneMebibytePayloadExactly) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string ch = channel("large");
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  std::string payload(1 << 20, '\0');
  std::mt19937 rng(42);
  for (auto& c : payload) c = static_cast<char>(rng());
  ASSERT_NO_FATAL_FAILURE(publish(ch, payload));
  ASSERT_TRUE(host_.wait_deliveries(ch, 1, kDeliveryTimeout));
  auto got = host_.deliveries(ch);
  ASSERT_EQ(got[0].size(), payload.size());
  EXPECT_TRUE(got[0] == payload) << "payload bytes differ";
}

// Arguments are borrowed for the call only: a broker that queues must copy them.
TEST_F(BrokerConformance, CopiesBorrowedArgumentsBeforeReturning) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string ch = channel("borrowed");
  std::vector<char> name(ch.begin(), ch.end());
  flowrelay_status st = call_subscribe(vt_, broker_, flowrelay_str{name.data(), name.size()});
  std::fill(name.begin(), name.end(), 'X');
  if (st == FLOWRELAY_PENDING) st = host_.take_subscribed(ch, kDeliveryTimeout).value_or(-1);
  ASSERT_EQ(st, FLOWRELAY_OK);
  const std::string expected = "borrowed payload";
  std::vector<char> payload(expected.begin(), expected.end());
  std::vector<char> name2(ch.begin(), ch.end());
  flowrelay_message m{};
  m.struct_size = sizeof m;
  m.lane = FLOWRELAY_LANE_LOG;
  m.origin = {host_.node_id(), 42, 0};
  m.data = {payload.data(), payload.size()};
  ASSERT_EQ(vt_->publish(broker_, {name2.data(), name2.size()}, &m, nullptr, nullptr),
            FLOWRELAY_OK);
  std::fill(payload.begin(), payload.end(), 'Y');
  std::fill(name2.begin(), name2.end(), 'Y');
  m = flowrelay_message{};  // the broker keeps no pointer into the message either
  m.lane = 99;
  ASSERT_TRUE(host_.wait_deliveries(ch, 1, kDeliveryTimeout));
  const auto got = host_.messages(ch);
  EXPECT_EQ(got[0].data, expected);
  EXPECT_EQ(got[0].lane, static_cast<flowrelay_lane>(FLOWRELAY_LANE_LOG));
  EXPECT_EQ(got[0].origin.node, host_.node_id());
  EXPECT_EQ(got[0].origin.session, 42u);
  EXPECT_EQ(host_.all_deliveries().size(), 1u) << "a delivery went to a garbled channel name";
}

TEST_F(BrokerConformance, DoesNotDeliverAChannelNotSubscribed) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string on = channel("subscribed");
  const std::string off = channel("not-subscribed");
  ASSERT_NO_FATAL_FAILURE(subscribe(on));
  ASSERT_NO_FATAL_FAILURE(publish(off, "nobody listens"));
  ASSERT_NO_FATAL_FAILURE(flush_through(on));
  EXPECT_TRUE(host_.deliveries(off).empty());
  EXPECT_EQ(host_.all_deliveries().size(), 1u);
}

// unsubscribe() cannot fail: deliveries stop (after the grace the header allows), and a
// publish on the channel is still accepted and completed, only not delivered here.
TEST_F(BrokerConformance, UnsubscribeStopsLaterDeliveries) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string ch = channel("leaving");
  const std::string control = channel("control");
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  ASSERT_NO_FATAL_FAILURE(subscribe(control));
  ASSERT_NO_FATAL_FAILURE(publish(ch, "before"));
  ASSERT_TRUE(host_.wait_deliveries(ch, 1, kDeliveryTimeout));
  unsubscribe(ch);
  std::this_thread::sleep_for(kUnsubscribeGrace);
  PublishedLog log(3);
  ASSERT_NO_FATAL_FAILURE(publish_messages(ch, message_lane(host_, "after", 3), log));
  for (const auto& r : log.results()) {
    EXPECT_EQ(r.calls, 1);
    EXPECT_EQ(r.status, FLOWRELAY_OK);
  }
  ASSERT_NO_FATAL_FAILURE(flush_through(control));
  EXPECT_EQ(host_.deliveries(ch), std::vector<std::string>{"before"});
}

// The daemon only unsubscribes what it subscribed, but a broker must not trip over a channel
// it does not know (e.g. one whose re-subscribe it gave up on).
TEST_F(BrokerConformance, UnsubscribingAnUnknownChannelChangesNothing) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string ch = channel("kept");
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  unsubscribe(channel("never-subscribed"));
  unsubscribe(ch + "x");
  ASSERT_NO_FATAL_FAILURE(flush_through(ch));
  EXPECT_EQ(host_.all_deliveries().size(), 1u);
}

TEST_F(BrokerConformance, ChannelsAreIsolated) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  // Names sharing prefixes, differing in case or trailing bytes, and glob characters (a broker
  // that pattern-subscribes would leak between them).
  const std::vector<std::string> subscribed = {channel("a.b"), channel("a.bc"), channel("g.*"),
                                               channel("h.?")};
  const std::vector<std::string> others = {
      channel("a.b.c"), channel("a."),   channel("a"),
      channel("A.B"),   channel("a.b "), channel("a.bcd"),
      channel("g.x"),   channel("h.y"),  channel("a.b") + std::string(1, '\0')};
  for (const auto& ch : subscribed) ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  for (const auto& ch : others) ASSERT_NO_FATAL_FAILURE(publish(ch, "to " + ch));
  for (const auto& ch : subscribed) ASSERT_NO_FATAL_FAILURE(publish(ch, "to " + ch));
  for (const auto& ch : subscribed) ASSERT_TRUE(host_.wait_deliveries(ch, 1, kDeliveryTimeout));
  ASSERT_NO_FATAL_FAILURE(flush_through(subscribed[0]));
  auto all = host_.all_deliveries();
  EXPECT_EQ(all.size(), subscribed.size()) << "deliveries on a channel not subscribed";
  for (const auto& ch : subscribed) {
    auto got = all[ch];
    ASSERT_GE(got.size(), 1u) << ch;
    EXPECT_EQ(got[0], "to " + ch);
    if (ch != subscribed[0]) {
      EXPECT_EQ(got.size(), 1u) << ch;
    }
  }

  // Leaving a.b must not end a.bc (or the reverse).
  unsubscribe(subscribed[0]);
  std::this_thread::sleep_for(kUnsubscribeGrace);
  ASSERT_NO_FATAL_FAILURE(publish(subscribed[0], "after leaving"));
  ASSERT_NO_FATAL_FAILURE(flush_through(subscribed[1]));
  for (const auto& got : host_.deliveries(subscribed[0])) EXPECT_NE(got, "after leaving");
}

// Repeated subscribe/unsubscribe of one channel leaves exactly one live subscription behind.
TEST_F(BrokerConformance, ResubscribingOneChannelDeliversOnce) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string ch = channel("again");
  for (int i = 0; i < 1000; ++i) {
    flowrelay_status st = call_subscribe(vt_, broker_, view(ch));
    ASSERT_TRUE(st == FLOWRELAY_OK || st == FLOWRELAY_PENDING) << st;
    unsubscribe(ch);
  }
  // subscribed() of those PENDING subscribes is optional once unsubscribed: let stragglers
  // arrive and forget them, so that the next one answers the subscribe below.
  std::this_thread::sleep_for(kUnsubscribeGrace);
  host_.forget_subscribed(ch);
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  ASSERT_NO_FATAL_FAILURE(publish(ch, "once"));
  ASSERT_NO_FATAL_FAILURE(flush_through(ch));
  auto got = host_.deliveries(ch);
  ASSERT_EQ(got.size(), 2u) << "expected the message once, then the marker";
  EXPECT_EQ(got[0], "once");
}

}  // namespace
}  // namespace flowrelay::test
