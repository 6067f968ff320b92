// Conformance: the ABI 2 message — offsets and epoch, lanes, origin, completions.
#include <thread>

#include "broker_fixture.h"

namespace flowrelay::test {
namespace {

// One epoch and offsets 1..N in publish order when the broker keeps history; offset 0 and no
// epoch when it does not. Each completion once; deliveries carry the same lane/offset/epoch
// and the origin as published (seq: see expect_seq_numbering).
TEST_F(BrokerConformance, PublishAssignsOffsetsInOrderAndDeliversThem) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const bool history = keeps_history();
  const std::string ch = channel("offsets");
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  const auto sent = message_lane(host_, "m", 50);
  PublishedLog log(sent.size());
  ASSERT_NO_FATAL_FAILURE(publish_messages(ch, sent, log));
  ASSERT_TRUE(host_.wait_deliveries(ch, sent.size(), kDeliveryTimeout));
  std::this_thread::sleep_for(kQuietPeriod);
  const auto results = log.results();
  const std::string epoch = results[0].epoch;
  EXPECT_EQ(epoch.empty(), !history) << "epoch '" << epoch << "'";
  std::vector<Message> expected;
  for (size_t i = 0; i < sent.size(); ++i) {
    SCOPED_TRACE("message " + std::to_string(i + 1));
    EXPECT_EQ(results[i].calls, 1) << "completion not called exactly once";
    EXPECT_EQ(results[i].status, FLOWRELAY_OK);
    EXPECT_EQ(results[i].offset, history ? i + 1 : 0);
    EXPECT_EQ(results[i].epoch, epoch);
    expected.push_back(sent[i]);
    expected.back().offset = results[i].offset;
    expected.back().epoch = epoch;
  }
  const auto got = host_.messages(ch);
  EXPECT_EQ(without_seq(got), expected);
  expect_seq_numbering(got);
}

// Echo suppression (channels.echo: false) compares a delivery's origin with the local
// sessions: node and session must arrive exactly as published, whatever the lane.
TEST_F(BrokerConformance, DeliveriesCarryThePublishedOriginNodeAndSession) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string ch = channel("origin");
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  const std::vector<Message> sent = {
      host_.message(FLOWRELAY_LANE_MESSAGE, "from session 1", 1),
      host_.message(FLOWRELAY_LANE_LOG, "log of session 1", 1),
      host_.message(FLOWRELAY_LANE_MESSAGE, "from session 2", 2),
      host_.message(FLOWRELAY_LANE_MESSAGE, "from the publish API", 0),
      host_.message(FLOWRELAY_LANE_MESSAGE, "from a large session id", UINT64_MAX),
  };
  PublishedLog log(sent.size());
  ASSERT_NO_FATAL_FAILURE(publish_messages(ch, sent, log));
  ASSERT_TRUE(host_.wait_deliveries(ch, sent.size(), kDeliveryTimeout));
  const auto got = host_.messages(ch);
  ASSERT_EQ(got.size(), sent.size());
  for (size_t i = 0; i < sent.size(); ++i) {
    SCOPED_TRACE(sent[i].data);
    EXPECT_EQ(got[i].data, sent[i].data);
    EXPECT_EQ(got[i].lane, sent[i].lane);
    EXPECT_EQ(got[i].origin.node, host_.node_id());
    EXPECT_EQ(got[i].origin.session, sent[i].origin.session);
  }
  expect_seq_numbering(got);
}

// `done` exactly once for every publish that returned FLOWRELAY_OK, whether it runs inside
// publish() (a synchronous broker) or later from another thread.
TEST_F(BrokerConformance, DoneRunsExactlyOncePerAcceptedPublish) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string on = channel("done.subscribed");
  const std::string off = channel("done.nobody");
  ASSERT_NO_FATAL_FAILURE(subscribe(on));
  constexpr int kEach = 300;
  std::vector<Message> sent;
  for (int i = 0; i < kEach; ++i)
    sent.push_back(host_.message(i % 3 ? FLOWRELAY_LANE_MESSAGE : FLOWRELAY_LANE_LOG,
                                 "d" + std::to_string(i), 5));
  PublishedLog on_log(kEach), off_log(kEach);
  ASSERT_EQ(test::publish_messages(vt_, broker_, on, sent, on_log, kDeliveryTimeout), FLOWRELAY_OK);
  ASSERT_EQ(test::publish_messages(vt_, broker_, off, sent, off_log, kDeliveryTimeout),
            FLOWRELAY_OK);
  ASSERT_TRUE(on_log.wait(kDeliveryTimeout)) << "a publish on a subscribed channel never done";
  ASSERT_TRUE(off_log.wait(kDeliveryTimeout)) << "a publish nobody listens to never done";
  ASSERT_NO_FATAL_FAILURE(flush_through(on));
  for (const PublishedLog* log : {&on_log, &off_log})
    for (const auto& r : log->results()) {
      ASSERT_EQ(r.calls, 1) << "a completion ran " << r.calls << " times";
      ASSERT_EQ(r.status, FLOWRELAY_OK);
    }
  EXPECT_EQ(host_.deliveries(on).size(), kEach + 1u);
  EXPECT_TRUE(host_.deliveries(off).empty());
}

// One offset sequence across lanes; the lane travels with the message.
TEST_F(BrokerConformance, LogLaneTakesItsPlaceInTheOneOffsetSequence) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const bool history = keeps_history();
  const std::string ch = channel("lanes");
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  const std::vector<Message> sent = {host_.message(FLOWRELAY_LANE_MESSAGE, "question"),
                                     host_.message(FLOWRELAY_LANE_LOG, "thinking..."),
                                     host_.message(FLOWRELAY_LANE_LOG, std::string("a\nb\0c", 5)),
                                     host_.message(FLOWRELAY_LANE_MESSAGE, "answer")};
  PublishedLog log(sent.size());
  ASSERT_NO_FATAL_FAILURE(publish_messages(ch, sent, log));
  ASSERT_TRUE(host_.wait_deliveries(ch, sent.size(), kDeliveryTimeout));
  const auto results = log.results();
  std::vector<Message> expected = sent;
  for (size_t i = 0; i < sent.size(); ++i) {
    EXPECT_EQ(results[i].offset, history ? i + 1 : 0) << "message " << i + 1;
    expected[i].offset = results[i].offset;
    expected[i].epoch = results[i].epoch;
  }
  EXPECT_EQ(without_seq(host_.messages(ch)), expected);
}

// A lane this broker cannot carry (a future one): refused as the ABI's "not supported", the
// daemon's 501, rather than delivered under a number the host does not know.
TEST_F(BrokerConformance, PublishRefusesAnUnknownLane) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string ch = channel("bad-lane");
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  std::string data = "lane 7";
  flowrelay_message m{};
  m.struct_size = sizeof m;
  m.lane = 7;
  m.origin = {host_.node_id(), 1, 0};
  m.data = view(data);
  PublishedLog log(1);
  EXPECT_EQ(vt_->publish(broker_, view(ch), &m, &PublishedLog::on_done, log.ctx(0)),
            FLOWRELAY_EUNSUPPORTED);
  ASSERT_NO_FATAL_FAILURE(flush_through(ch));
  EXPECT_EQ(host_.deliveries(ch).size(), 1u) << "the refused message was delivered";
  EXPECT_EQ(log.results()[0].calls, 0) << "completion called although publish() failed";
  if (!keeps_history()) return;  // what follows is about the offset sequence
  PublishedLog next(1);
  ASSERT_NO_FATAL_FAILURE(publish_messages(ch, message_lane(host_, "next", 1), next));
  EXPECT_EQ(next.results()[0].offset, 2u) << "the refused message took an offset (1: marker)";
}

// Whatever is still queued when destroy() is called is completed (with an error) before it
// returns; nothing completes twice or later.
TEST_F(BrokerConformance, EveryCompletionRunsOnceBeforeDestroyReturns) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const bool history = keeps_history();
  const std::string ch = channel("destroy");
  constexpr size_t kCount = 2000;
  PublishedLog log(kCount);
  std::vector<HistoryRead> reads(history ? 10 : 0);
  std::string data = "queued";
  flowrelay_message m{};
  m.struct_size = sizeof m;
  m.origin = {host_.node_id(), 3, 0};
  m.data = view(data);
  for (size_t i = 0; i < kCount; ++i) {
    ASSERT_EQ(vt_->publish(broker_, view(ch), &m, &PublishedLog::on_done, log.ctx(i)),
              FLOWRELAY_OK);
    if (i % 200 == 0 && i / 200 < reads.size()) {
      ASSERT_EQ(vt_->history(broker_, view(ch), 0, &HistoryRead::on_done, &reads[i / 200]),
                FLOWRELAY_OK);
    }
  }
  destroy_broker();
  auto check = [&] {
    for (const auto& r : log.results()) {
      ASSERT_EQ(r.calls, 1) << "a publish() completion ran " << r.calls << " times";
      ASSERT_TRUE(r.status == FLOWRELAY_OK || r.status == FLOWRELAY_EUNAVAIL) << r.status;
    }
    for (const auto& read : reads) {
      ASSERT_EQ(read.calls(), 1) << "a history() completion ran " << read.calls() << " times";
      ASSERT_TRUE(read.status == FLOWRELAY_OK || read.status == FLOWRELAY_EUNAVAIL) << read.status;
    }
  };
  ASSERT_NO_FATAL_FAILURE(check());
  std::this_thread::sleep_for(kQuietPeriod);
  ASSERT_NO_FATAL_FAILURE(check());
}

}  // namespace
}  // namespace flowrelay::test
