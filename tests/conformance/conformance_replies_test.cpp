// Conformance: reply streams (ABI 2.2 publish_reply, plugin_reply.h) — the rules of a reply's
// steps, what is delivered for them, and their stats. History after compaction:
// conformance_reply_history_test.cpp.
#include <thread>

#include "broker_replies.h"

namespace flowrelay::test {
namespace {

bool host_clock() { return env("FLOWRELAY_BROKER_HOST_CLOCK") == "1"; }

// Exactly one of two answers, for every broker: reply streams, or a clean refusal.
class BrokerReplySupport : public BrokerFixture {};

TEST_F(BrokerReplySupport, PublishReplyIsAcceptedOrRefusedAsUnsupported) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string ch = channel("support");
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  const ReplyResult r = publish_step(vt_, broker_, host_, ch, delta_step("r1", 1, "Hi"));
  if (!replies_missing().empty()) {
    EXPECT_EQ(r.returned, FLOWRELAY_EUNSUPPORTED) << replies_missing();
    EXPECT_EQ(r.calls, 0) << "a refused publish_reply() must not complete";
    ASSERT_NO_FATAL_FAILURE(flush_through(ch));
    EXPECT_EQ(host_.deliveries(ch).size(), 1u) << "only the marker: nothing of the reply";
    return;
  }
  EXPECT_EQ(r.returned, FLOWRELAY_OK);
  EXPECT_EQ(r.calls, 1);
  EXPECT_EQ(r.status, FLOWRELAY_OK);
  ASSERT_TRUE(host_.wait_deliveries(ch, 1, kDeliveryTimeout));
  ASSERT_TRUE(host_.messages(ch)[0].reply.has_value()) << "a delta delivered without reply info";
}

TEST_F(BrokerReplies, OpenDeltaEndAreDeliveredWithKindsAndOffsets) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string ch = channel("stream");
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  PublishedLog log(1);
  ASSERT_NO_FATAL_FAILURE(publish_messages(ch, message_lane(host_, "question", 1), log));
  const uint64_t before = log.results()[0].offset;
  const uint64_t open = stored(ch, open_step("r1"));
  const uint64_t d1 = stored(ch, delta_step("r1", 1, "Hel"));
  const uint64_t d2 = stored(ch, delta_step("r1", 2, "lo"));
  const ReplyResult end = step(ch, end_step("r1"));
  ASSERT_EQ(end.status, FLOWRELAY_OK);
  ASSERT_TRUE(host_.wait_deliveries(ch, 5, kDeliveryTimeout));
  if (before != 0) {  // the broker keeps history: every step took the channel's next offset
    EXPECT_EQ(open, before + 1);
    EXPECT_EQ(d1, before + 2);
    EXPECT_EQ(d2, before + 3);
    EXPECT_EQ(end.offset, before + 4);
    EXPECT_EQ(end.epoch, log.results()[0].epoch);
  }
  const auto got = host_.messages(ch);
  ASSERT_EQ(got.size(), 5u);
  EXPECT_FALSE(got[0].reply.has_value()) << "a plain message has no reply info";
  const flowrelay_kind kinds[] = {FLOWRELAY_KIND_OPEN, FLOWRELAY_KIND_DELTA, FLOWRELAY_KIND_DELTA,
                                  FLOWRELAY_KIND_END};
  const uint64_t offsets[] = {open, d1, d2, end.offset};
  const uint64_t seqs[] = {0, 1, 2, 2};
  const char* data[] = {"", "Hel", "lo", ""};
  for (size_t i = 0; i < 4; ++i) {
    SCOPED_TRACE("step " + std::to_string(i));
    const Message& m = got[i + 1];
    ASSERT_TRUE(m.reply.has_value());
    EXPECT_EQ(m.reply->kind, kinds[i]);
    EXPECT_EQ(m.reply->id, "r1");
    EXPECT_EQ(m.reply->seq, seqs[i]);
    EXPECT_EQ(m.offset, offsets[i]);
    EXPECT_EQ(m.data, data[i]);
    EXPECT_EQ(m.lane, FLOWRELAY_LANE_MESSAGE);
    EXPECT_EQ(m.origin.node, host_.node_id());
  }
  const ReplyInfo& e = *got[4].reply;
  EXPECT_EQ(e.reason, "done");
  EXPECT_EQ(e.error, "");
  EXPECT_EQ(e.bytes, 5u);
  EXPECT_GE(e.ttft_ms, 0);
  EXPECT_GE(e.duration_ms, e.ttft_ms);
}

TEST_F(BrokerReplies, AResentSeqIsADuplicateAndDeliversNothing) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string ch = channel("duplicate");
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  const uint64_t d1 = stored(ch, delta_step("r1", 1, "a"));
  const uint64_t d2 = stored(ch, delta_step("r1", 2, "b"));
  ASSERT_TRUE(host_.wait_deliveries(ch, 2, kDeliveryTimeout));
  for (const auto& [seq, first] : {std::pair<uint64_t, uint64_t>{2, d2}, {1, d1}}) {
    SCOPED_TRACE("resent seq " + std::to_string(seq));
    const ReplyResult r = step(ch, delta_step("r1", seq, seq == 1 ? "a" : "b"));
    EXPECT_EQ(r.returned, FLOWRELAY_OK);
    EXPECT_EQ(r.status, FLOWRELAY_OK);
    EXPECT_TRUE(r.duplicate);
    EXPECT_TRUE(r.offset == first || r.offset == 0) << "the first copy's offset, or 0";
  }
  const ReplyResult reopened = step(ch, open_step("r1"));
  EXPECT_EQ(reopened.status, FLOWRELAY_OK);
  EXPECT_TRUE(reopened.duplicate) << "an OPEN of a known reply";
  ASSERT_NO_FATAL_FAILURE(flush_through(ch));
  EXPECT_EQ(reply_deliveries(ch).size(), 2u) << "a duplicate was delivered again";
  const uint64_t d3 = stored(ch, delta_step("r1", 3, "c"));
  if (d2 != 0) {
    EXPECT_EQ(d3, d2 + 2) << "the marker took one offset, the duplicates none";
  }
}

TEST_F(BrokerReplies, AGapIsAConflictWithTheExpectedSeq) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string ch = channel("gap");
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  stored(ch, delta_step("r1", 1, "a"));
  const ReplyResult gap = step(ch, delta_step("r1", 3, "c"));
  EXPECT_EQ(gap.returned, FLOWRELAY_OK);
  EXPECT_EQ(gap.status, FLOWRELAY_ECONFLICT);
  EXPECT_EQ(gap.expected_seq, 2u);
  EXPECT_EQ(gap.ended, "");
  const ReplyResult unknown = step(ch, delta_step("r2", 2, "b"));
  EXPECT_EQ(unknown.status, FLOWRELAY_ECONFLICT) << "a new reply starts at seq 1";
  EXPECT_EQ(unknown.expected_seq, 1u);
  ASSERT_NO_FATAL_FAILURE(flush_through(ch));
  EXPECT_EQ(reply_deliveries(ch).size(), 1u) << "a refused step was delivered";
  stored(ch, delta_step("r1", 2, "b"));  // the expected seq is accepted
}

TEST_F(BrokerReplies, ADeltaAfterTheEndIsAConflictNamingHowItEnded) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string ch = channel("ended");
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  stored(ch, delta_step("r1", 1, "a"));
  stored(ch, end_step("r1", "cancelled"));
  for (uint64_t seq : {1, 2, 7}) {
    SCOPED_TRACE("seq " + std::to_string(seq));
    const ReplyResult r = step(ch, delta_step("r1", seq, "x"));
    EXPECT_EQ(r.status, FLOWRELAY_ECONFLICT);
    EXPECT_EQ(r.ended, "cancelled");
    EXPECT_EQ(r.expected_seq, 0u);
  }
  ASSERT_NO_FATAL_FAILURE(flush_through(ch));
  EXPECT_EQ(reply_deliveries(ch).size(), 2u);
}

TEST_F(BrokerReplies, AnEndTwiceIsADuplicateForTheSameReasonElseAConflict) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string ch = channel("end-twice");
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  stored(ch, delta_step("r1", 1, "a"));
  const uint64_t end = stored(ch, end_step("r1", "done"));
  const ReplyResult again = step(ch, end_step("r1", "done"));
  EXPECT_EQ(again.status, FLOWRELAY_OK);
  EXPECT_TRUE(again.duplicate);
  EXPECT_TRUE(again.offset == end || again.offset == 0);
  const ReplyResult cancel = step(ch, end_step("r1", "cancelled"));
  EXPECT_EQ(cancel.status, FLOWRELAY_ECONFLICT) << "a cancel that lost the race to done";
  EXPECT_EQ(cancel.ended, "done");
  const ReplyResult lost = step(ch, end_step("r1", "producer_lost"));
  EXPECT_EQ(lost.status, FLOWRELAY_ECONFLICT);
  EXPECT_EQ(lost.ended, "done");
  ASSERT_NO_FATAL_FAILURE(flush_through(ch));
  EXPECT_EQ(reply_deliveries(ch).size(), 2u) << "one delta, one end";
}

TEST_F(BrokerReplies, AnEndOfAnUnknownReplyOpensAndEndsAnEmptyOne) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string ch = channel("empty");
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  stored(ch, end_step("r9", "error", "model overloaded"));
  ASSERT_TRUE(host_.wait_deliveries(ch, 1, kDeliveryTimeout));
  const Message m = host_.messages(ch)[0];
  ASSERT_TRUE(m.reply.has_value());
  EXPECT_EQ(m.reply->kind, FLOWRELAY_KIND_END);
  EXPECT_EQ(m.reply->seq, 0u) << "no delta: tokens 0";
  EXPECT_EQ(m.reply->reason, "error");
  EXPECT_EQ(m.reply->error, "model overloaded");
  EXPECT_EQ(m.reply->bytes, 0u);
  EXPECT_EQ(m.reply->ttft_ms, -1) << "no delta: no first token";
  EXPECT_EQ(step(ch, delta_step("r9", 1, "late")).status, FLOWRELAY_ECONFLICT);
}

TEST_F(BrokerReplies, StatsCountTokensBytesAndTimes) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string ch = channel("stats");
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  // With an OPEN, time to first token runs from it; the host clock is moved where the broker
  // reads it (else a little real time passes).
  stored(ch, open_step("timed"));
  if (host_clock())
    host_.advance(300ms);
  else
    std::this_thread::sleep_for(30ms);
  stored(ch, delta_step("timed", 1, "one "));
  if (host_clock()) host_.advance(700ms);
  stored(ch, delta_step("timed", 2, "two "));
  stored(ch, delta_step("timed", 3, "three"));
  stored(ch, end_step("timed"));
  // Without one, it is 0: the reply opened with its first delta.
  stored(ch, delta_step("untimed", 1, "x"));
  stored(ch, end_step("untimed"));
  ASSERT_TRUE(host_.wait_deliveries(ch, 7, kDeliveryTimeout));
  const auto got = reply_deliveries(ch);
  ASSERT_EQ(got.size(), 7u);
  const ReplyInfo& timed = *got[4].reply;
  ASSERT_EQ(timed.kind, FLOWRELAY_KIND_END);
  EXPECT_EQ(timed.seq, 3u) << "tokens";
  EXPECT_EQ(timed.bytes, 13u);
  EXPECT_GE(timed.ttft_ms, host_clock() ? 300 : 0);
  EXPECT_GE(timed.duration_ms, timed.ttft_ms + (host_clock() ? 700 : 0));
  if (host_clock()) {
    EXPECT_LT(timed.ttft_ms, 300 + 5000) << "measured with another clock?";
  }
  const ReplyInfo& untimed = *got[6].reply;
  EXPECT_EQ(untimed.seq, 1u);
  EXPECT_EQ(untimed.bytes, 1u);
  EXPECT_EQ(untimed.ttft_ms, 0);
  EXPECT_GE(untimed.duration_ms, 0);
}

TEST_F(BrokerReplies, ATextPastHistoryMaxBytesIsTooBigAndNotStored) {
  ASSERT_NO_FATAL_FAILURE(start_with_option("history_max_bytes=100"));
  if (IsSkipped()) return;
  const std::string ch = channel("too-big");
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  stored(ch, delta_step("r1", 1, std::string(60, 'a')));
  const ReplyResult big = step(ch, delta_step("r1", 2, std::string(50, 'b')));
  EXPECT_EQ(big.returned, FLOWRELAY_OK);
  EXPECT_EQ(big.status, FLOWRELAY_ETOOBIG);
  stored(ch, delta_step("r1", 2, std::string(40, 'c')));  // seq 2 is still the one expected
  stored(ch, end_step("r1"));
  ASSERT_TRUE(host_.wait_deliveries(ch, 3, kDeliveryTimeout));
  const auto got = reply_deliveries(ch);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[1].data, std::string(40, 'c'));
  EXPECT_EQ(got[2].reply->bytes, 100u);
}

}  // namespace
}  // namespace flowrelay::test
