// Conformance: history() — for brokers that keep history; bounds by count (history_size) and
// by age (history_max_age_ms, measured with the host's clock, which the test moves).
#include <thread>

#include "broker_fixture.h"

namespace flowrelay::test {
namespace {

// A history message is the delivered one: lane, offset, epoch, data, and the origin as
// published or, for a broker that does not keep it, unknown ({0, 0, 0}).
void expect_history(const std::vector<Message>& got, const std::vector<Message>& expected) {
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    SCOPED_TRACE("history message " + std::to_string(i));
    Message g = got[i];
    if (g.origin.node == 0) {
      EXPECT_EQ(g.origin, Origin{}) << "a partly unknown origin";
    }
    g.origin = g.origin.node ? Origin{g.origin.node, g.origin.session, 0} : expected[i].origin;
    EXPECT_EQ(g, expected[i]);
  }
}

std::vector<Message> published(const std::vector<Message>& sent, const PublishedLog& log) {
  std::vector<Message> out = sent;
  const auto results = log.results();
  for (size_t i = 0; i < out.size(); ++i) {
    out[i].offset = results[i].offset;
    out[i].epoch = results[i].epoch;
  }
  return out;
}

TEST_F(BrokerHistory, ReturnsExactlyTheMessagesAfterSince) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string ch = channel("history");
  const auto sent = message_lane(host_, "h", 10);
  PublishedLog log(sent.size());
  ASSERT_NO_FATAL_FAILURE(publish_messages(ch, sent, log));
  const auto kept = published(sent, log);
  for (uint64_t since : {0, 4, 9, 10, 15}) {
    SCOPED_TRACE("since " + std::to_string(since));
    HistoryRead read;
    ASSERT_EQ(read_history(ch, since, read), FLOWRELAY_OK);
    EXPECT_EQ(read.calls(), 1);
    EXPECT_FALSE(read.bad_struct);
    EXPECT_EQ(read.status, FLOWRELAY_OK);
    EXPECT_EQ(read.epoch, kept[0].epoch);
    EXPECT_EQ(read.top, 10u);
    const std::vector<Message> after(kept.begin() + std::min<uint64_t>(since, 10), kept.end());
    expect_history(read.messages, after);
  }
}

TEST_F(BrokerHistory, KeepsEachMessagesLaneAndOrigin) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string ch = channel("lanes");
  const std::vector<Message> sent = {host_.message(FLOWRELAY_LANE_MESSAGE, "question", 4),
                                     host_.message(FLOWRELAY_LANE_LOG, "thinking...", 0),
                                     host_.message(FLOWRELAY_LANE_LOG, std::string("a\0b", 3), 0),
                                     host_.message(FLOWRELAY_LANE_MESSAGE, "answer", 0)};
  PublishedLog log(sent.size());
  ASSERT_NO_FATAL_FAILURE(publish_messages(ch, sent, log));
  HistoryRead read;
  ASSERT_EQ(read_history(ch, 0, read), FLOWRELAY_OK);
  expect_history(read.messages, published(sent, log));
}

TEST_F(BrokerHistory, OfAnUnknownChannelIsEmpty) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  HistoryRead read;
  ASSERT_EQ(read_history(channel("never-published"), 0, read), FLOWRELAY_OK);
  EXPECT_EQ(read.status, FLOWRELAY_OK);
  EXPECT_FALSE(read.bad_struct);
  EXPECT_EQ(read.epoch, "");
  EXPECT_EQ(read.top, 0u);
  EXPECT_TRUE(read.messages.empty());
}

// History belongs to the channel, not to this node's subscription: it outlives the last
// local session, and publishes while nobody listens here continue the sequence.
TEST_F(BrokerHistory, IsKeptAfterUnsubscribe) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string ch = channel("left");
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  const auto sent = message_lane(host_, "s", 3);
  PublishedLog log(sent.size());
  ASSERT_NO_FATAL_FAILURE(publish_messages(ch, sent, log));
  ASSERT_TRUE(host_.wait_deliveries(ch, 3, kDeliveryTimeout));
  unsubscribe(ch);
  PublishedLog later(1);
  ASSERT_NO_FATAL_FAILURE(publish_messages(ch, message_lane(host_, "unheard", 1), later));
  EXPECT_EQ(later.results()[0].offset, 4u);
  EXPECT_EQ(later.results()[0].epoch, log.results()[0].epoch);
  HistoryRead read;
  ASSERT_EQ(read_history(ch, 0, read), FLOWRELAY_OK);
  EXPECT_EQ(read.top, 4u);
  ASSERT_EQ(read.messages.size(), 4u);
  EXPECT_EQ(read.messages[0].data, "s1");
  EXPECT_EQ(read.messages[3].data, "unheard1");
}

// "A read issued after the channel's subscription completed sees at least every message
// published before any message delivered afterwards": a reader joins history and live
// messages without a gap.
TEST_F(BrokerHistory, AReadAfterADeliverySeesThatMessage) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string ch = channel("seam");
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  for (int i = 1; i <= 20; ++i) {
    ASSERT_NO_FATAL_FAILURE(publish(ch, "live" + std::to_string(i)));
    ASSERT_TRUE(host_.wait_deliveries(ch, i, kDeliveryTimeout));
    HistoryRead read;
    ASSERT_EQ(read_history(ch, i - 1, read), FLOWRELAY_OK);
    ASSERT_GE(read.top, static_cast<uint64_t>(i));
    ASSERT_FALSE(read.messages.empty()) << "message " << i << " delivered, not in history";
    EXPECT_EQ(read.messages[0].data, "live" + std::to_string(i));
    EXPECT_EQ(read.messages[0].offset, host_.messages(ch)[i - 1].offset);
  }
}

TEST_F(BrokerHistorySize, KeepsTheNewestHistorySizeMessages) {
  ASSERT_NO_FATAL_FAILURE(start_broker("history_size=5"));
  const std::string ch = channel("bounded");
  const auto sent = message_lane(host_, "b", 10);
  PublishedLog log(sent.size());
  ASSERT_NO_FATAL_FAILURE(publish_messages(ch, sent, log));
  EXPECT_EQ(log.results().back().offset, 10u);
  for (uint64_t since : {0, 3}) {
    SCOPED_TRACE("since " + std::to_string(since));
    HistoryRead read;
    ASSERT_EQ(read_history(ch, since, read), FLOWRELAY_OK);
    EXPECT_EQ(read.top, 10u);
    std::vector<uint64_t> offsets;
    for (const auto& m : read.messages) offsets.push_back(m.offset);
    EXPECT_EQ(offsets, (std::vector<uint64_t>{6, 7, 8, 9, 10}));
    ASSERT_FALSE(read.messages.empty());
    EXPECT_EQ(read.messages[0].data, "b6");
  }
}

TEST_F(BrokerHistorySize, ZeroKeepsNoHistory) {
  ASSERT_NO_FATAL_FAILURE(start_broker("history_size=0"));
  HistoryRead read;
  EXPECT_EQ(vt_->history(broker_, view(channel("none")), 0, &HistoryRead::on_done, &read),
            FLOWRELAY_EUNSUPPORTED);
  const std::string ch = channel("no-history");
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  const std::vector<Message> sent = {host_.message(FLOWRELAY_LANE_MESSAGE, "m", 1),
                                     host_.message(FLOWRELAY_LANE_LOG, "l", 1)};
  PublishedLog log(2);
  ASSERT_NO_FATAL_FAILURE(publish_messages(ch, sent, log));
  for (const auto& r : log.results()) {
    EXPECT_EQ(r.status, FLOWRELAY_OK);
    EXPECT_EQ(r.offset, 0u);
    EXPECT_EQ(r.epoch, "");
  }
  ASSERT_TRUE(host_.wait_deliveries(ch, 2, kDeliveryTimeout));
  EXPECT_EQ(without_seq(host_.messages(ch)), sent);
  std::this_thread::sleep_for(kQuietPeriod);
  EXPECT_EQ(read.calls(), 0) << "completion called although history() was refused";
}

// Messages older than history_max_age_ms are trimmed from the front; the epoch and the
// offsets of the rest stay.
TEST_F(BrokerHostClock, TrimsMessagesOlderThanTheMaxAge) {
  ASSERT_NO_FATAL_FAILURE(start_broker("history_max_age_ms=60000"));
  const std::string ch = channel("aging");
  PublishedLog old_log(2), new_log(1);
  ASSERT_NO_FATAL_FAILURE(publish_messages(ch, message_lane(host_, "old", 2), old_log));
  host_.advance(30s);
  ASSERT_NO_FATAL_FAILURE(publish_messages(ch, message_lane(host_, "new", 1), new_log));
  host_.advance(20s);  // old: 50 s, still kept
  HistoryRead before;
  ASSERT_EQ(read_history(ch, 0, before), FLOWRELAY_OK);
  EXPECT_EQ(before.messages.size(), 3u);
  host_.advance(11s);  // old: 61 s, new: 31 s
  HistoryRead after;
  ASSERT_EQ(read_history(ch, 0, after), FLOWRELAY_OK);
  EXPECT_EQ(after.epoch, old_log.results()[0].epoch);
  EXPECT_EQ(after.top, 3u);
  ASSERT_EQ(after.messages.size(), 1u) << "messages past the max age were not trimmed";
  EXPECT_EQ(after.messages[0].data, "new1");
  EXPECT_EQ(after.messages[0].offset, 3u);
}

// A history idle for longer than the max age is gone, also after its channel lost its last
// session: read as empty, and the next publish starts a new epoch at offset 1, so a client
// resuming with the old epoch is told it cannot recover.
TEST_F(BrokerHostClock, AnIdleHistoryExpiresIntoANewEpoch) {
  ASSERT_NO_FATAL_FAILURE(start_broker("history_max_age_ms=60000"));
  const std::string ch = channel("idle");
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  PublishedLog first(3);
  ASSERT_NO_FATAL_FAILURE(publish_messages(ch, message_lane(host_, "first", 3), first));
  unsubscribe(ch);
  host_.advance(59s);
  HistoryRead kept;
  ASSERT_EQ(read_history(ch, 0, kept), FLOWRELAY_OK);
  EXPECT_EQ(kept.messages.size(), 3u) << "trimmed before its max age";
  host_.advance(2s);
  HistoryRead expired;
  ASSERT_EQ(read_history(ch, 0, expired), FLOWRELAY_OK);
  EXPECT_EQ(expired.epoch, "");
  EXPECT_EQ(expired.top, 0u);
  EXPECT_TRUE(expired.messages.empty());
  PublishedLog again(1);
  ASSERT_NO_FATAL_FAILURE(publish_messages(ch, message_lane(host_, "again", 1), again));
  EXPECT_EQ(again.results()[0].offset, 1u);
  EXPECT_FALSE(again.results()[0].epoch.empty());
  EXPECT_NE(again.results()[0].epoch, first.results()[0].epoch);
}

}  // namespace
}  // namespace flowrelay::test
