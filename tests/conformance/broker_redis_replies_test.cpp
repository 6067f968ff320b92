// broker-redis reply streams against a real Redis (with_redis.sh): what the shared conformance
// suite cannot see from one broker instance: the keys the reply script keeps (and drops at
// END), what it PUBLISHes (fr3, wire_format.h), compaction racing readers, two nodes sharing
// one reply, a step resent after a killed link, the byte bound, and stats on Redis' clock.
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "broker_redis_reply_fixture.h"
#include "gap_fill.h"

namespace flowrelay::test {
namespace {

using namespace std::chrono_literals;

// Every reply of a read once, and nothing else twice (what compaction promises readers).
std::multiset<std::string> reply_ids(const std::vector<ReplyMessage>& messages) {
  std::multiset<std::string> ids;
  for (const auto& m : messages)
    if (m.kind != FLOWRELAY_KIND_MESSAGE) ids.insert(m.id);
  return ids;
}

TEST_F(BrokerRedisReplies, EndCompactsTheReplyIntoOneEntryAndDropsItsText) {
  ReplyNode& node = start_node();
  const std::string ch = channel("compact");
  RawSubscriber raw(socket(), ch);
  ASSERT_EQ(open(node, ch, "r1").status, FLOWRELAY_OK);
  std::this_thread::sleep_for(30ms);  // time to first token, on Redis' clock
  const std::vector<std::string> pieces{"The ", "cat ", "sat."};
  for (size_t i = 0; i < pieces.size(); ++i)
    ASSERT_EQ(delta(node, ch, "r1", i + 1, pieces[i]).status, FLOWRELAY_OK);
  EXPECT_EQ(command({"GET", text_key(ch, "r1")})->str, std::string("The cat sat."));
  EXPECT_EQ(integer({"XLEN", stream_key(ch)}), 0) << "an open reply has no stream entry";
  const StepResult ended = end(node, ch, "r1");
  ASSERT_EQ(ended.status, FLOWRELAY_OK);
  EXPECT_EQ(ended.offset, 5u);
  EXPECT_FALSE(ended.duplicate);

  EXPECT_EQ(integer({"EXISTS", text_key(ch, "r1")}), 0) << "the text key outlived END";
  EXPECT_EQ(integer({"XLEN", stream_key(ch)}), 1);
  EXPECT_EQ(command({"HGET", replies_key(ch), "r1"})->str, std::string("e done 5"));
  for (const auto& key : {stream_key(ch), seq_key(ch), replies_key(ch)})
    EXPECT_GT(integer({"PTTL", key}), 0) << key << " does not expire";

  const ReplyHistory h = history(node, ch, 0);
  ASSERT_EQ(h.status, FLOWRELAY_OK);
  EXPECT_EQ(h.top, 5u);
  ASSERT_TRUE(h.trimmed_known);
  EXPECT_EQ(h.trimmed, 0u);
  ASSERT_EQ(h.messages.size(), 1u);
  const ReplyMessage& r = h.messages[0];
  EXPECT_EQ(r.kind, FLOWRELAY_KIND_REPLY);
  EXPECT_EQ(r.offset, 5u);
  EXPECT_EQ(r.data, "The cat sat.");
  EXPECT_EQ(r.seq, 3u);
  EXPECT_EQ(r.reason, "done");
  EXPECT_EQ(r.bytes, 12u);
  EXPECT_GE(r.ttft_ms, 25) << "opened (OPEN) to the first delta";
  EXPECT_GE(r.duration_ms, r.ttft_ms);

  // Live: OPEN, three DELTAs, END with the same stats, in the fr3 form.
  const auto live = raw.collect(200ms);
  ASSERT_EQ(live.size(), 5u);
  EXPECT_EQ(live[0].kind, FLOWRELAY_KIND_OPEN);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(live[i + 1].kind, FLOWRELAY_KIND_DELTA);
    EXPECT_EQ(live[i + 1].seq, i + 1);
    EXPECT_EQ(live[i + 1].data, pieces[i]);
    EXPECT_EQ(live[i + 1].offset, i + 2);
    EXPECT_EQ(live[i + 1].origin.node, node.host.node_id());
  }
  EXPECT_EQ(live[4].kind, FLOWRELAY_KIND_END);
  EXPECT_EQ(live[4].data, "");
  EXPECT_EQ(live[4].seq, 3u);
  EXPECT_EQ(live[4].ttft_ms, r.ttft_ms);
  EXPECT_EQ(live[4].duration_ms, r.duration_ms);
  EXPECT_EQ(live[4].bytes, 12u);
  EXPECT_EQ(live[4].epoch, h.epoch);
}

TEST_F(BrokerRedisReplies, SeqRulesHoldAcrossTwoNodes) {
  ReplyNode& a = start_node();
  ReplyNode& b = start_node();
  const std::string ch = channel("two-nodes");
  ASSERT_EQ(delta(a, ch, "r", 1, "a1").status, FLOWRELAY_OK);
  const StepResult second = delta(b, ch, "r", 2, "b2");
  ASSERT_EQ(second.status, FLOWRELAY_OK);
  const StepResult again = delta(a, ch, "r", 2, "b2, resent by a");
  EXPECT_EQ(again.status, FLOWRELAY_OK);
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(again.offset, second.offset) << "the last delta's first offset is known";
  const StepResult older = delta(b, ch, "r", 1, "a1");
  EXPECT_TRUE(older.duplicate);
  EXPECT_EQ(older.offset, 0u) << "an older delta's offset is not kept";
  const StepResult gap = delta(b, ch, "r", 4, "x");
  EXPECT_EQ(gap.status, FLOWRELAY_ECONFLICT);
  EXPECT_EQ(gap.expected_seq, 3u);
  const StepResult fresh = delta(a, ch, "new", 2, "x");
  EXPECT_EQ(fresh.status, FLOWRELAY_ECONFLICT);
  EXPECT_EQ(fresh.expected_seq, 1u) << "a new reply starts at seq 1";
  EXPECT_TRUE(open(b, ch, "r").duplicate);

  const StepResult cancelled = end(b, ch, "r", "cancelled");
  ASSERT_EQ(cancelled.status, FLOWRELAY_OK);
  const StepResult done = end(a, ch, "r", "done");
  EXPECT_EQ(done.status, FLOWRELAY_ECONFLICT) << "done lost the race to cancel";
  EXPECT_EQ(done.ended, "cancelled");
  const StepResult twice = end(a, ch, "r", "cancelled");
  EXPECT_TRUE(twice.duplicate);
  EXPECT_EQ(twice.offset, cancelled.offset);
  const StepResult late = delta(a, ch, "r", 3, "late");
  EXPECT_EQ(late.status, FLOWRELAY_ECONFLICT);
  EXPECT_EQ(late.ended, "cancelled");
  EXPECT_EQ(late.expected_seq, 0u);

  // END of an unknown reply opens and ends it at once.
  ASSERT_EQ(end(b, ch, "empty", "error", "no model").status, FLOWRELAY_OK);
  const ReplyHistory h = history(a, ch, 0);
  ASSERT_EQ(h.messages.size(), 2u);
  EXPECT_EQ(h.messages[0].data, "a1b2");
  EXPECT_EQ(h.messages[0].reason, "cancelled");
  EXPECT_EQ(h.messages[1].id, "empty");
  EXPECT_EQ(h.messages[1].seq, 0u);
  EXPECT_EQ(h.messages[1].error, "no model");
  EXPECT_EQ(h.messages[1].ttft_ms, -1);
  EXPECT_EQ(h.top, h.messages[1].offset);
}

TEST_F(BrokerRedisReplies, AMidReplyReadGetsTheSnapshotInOffsetOrder) {
  ReplyNode& node = start_node();
  const std::string ch = channel("snapshot");
  ASSERT_EQ(publish(node, ch, "m1").offset, 1u);
  ASSERT_EQ(delta(node, ch, "r", 1, "Hel").offset, 2u);
  ASSERT_EQ(publish(node, ch, "m3").offset, 3u);
  ASSERT_EQ(delta(node, ch, "r", 2, "lo").offset, 4u);
  ASSERT_EQ(publish(node, ch, "m5").offset, 5u);
  const ReplyHistory h = history(node, ch, 0);
  ASSERT_EQ(h.messages.size(), 4u);
  std::vector<uint64_t> offsets;
  for (const auto& m : h.messages) offsets.push_back(m.offset);
  EXPECT_EQ(offsets, (std::vector<uint64_t>{1, 3, 4, 5}));
  EXPECT_EQ(h.messages[2].kind, FLOWRELAY_KIND_SNAPSHOT);
  EXPECT_EQ(h.messages[2].data, "Hello");
  EXPECT_EQ(h.messages[2].seq, 2u);
  EXPECT_EQ(h.trimmed, 0u);
  // since inside the reply: its snapshot (the whole text); past its newest delta: nothing of it.
  const ReplyHistory inside = history(node, ch, 2);
  ASSERT_EQ(inside.messages.size(), 3u);
  EXPECT_EQ(inside.messages[1].data, "Hello");
  EXPECT_EQ(history(node, ch, 4).messages.size(), 1u);
}

TEST_F(BrokerRedisReplies, TheByteBoundIsExactAndRefusesAnOpenReplyPastIt) {
  ReplyNode& node = start_node("history_max_bytes=1024");
  const std::string ch = channel("bytes");
  for (int i = 0; i < 10; ++i) publish(node, ch, std::string(300, 'a' + i));
  // 3 x 300 fit in 1024, 4 do not: the oldest left first, the newest offset dropped is 7.
  ReplyHistory h = history(node, ch, 0);
  ASSERT_EQ(h.messages.size(), 3u);
  EXPECT_EQ(h.messages[0].offset, 8u);
  EXPECT_EQ(h.trimmed, 7u);
  EXPECT_EQ(command({"HGET", seq_key(ch), "b"})->str, std::string("900"));
  ASSERT_EQ(delta(node, ch, "r", 1, std::string(1000, 'x')).status, FLOWRELAY_OK);
  h = history(node, ch, 0);
  ASSERT_EQ(h.messages.size(), 1u) << "messages leave for the open reply, never the reverse";
  EXPECT_EQ(h.messages[0].kind, FLOWRELAY_KIND_SNAPSHOT);
  EXPECT_EQ(h.trimmed, 10u);
  const StepResult big = delta(node, ch, "r", 2, std::string(100, 'y'));
  EXPECT_EQ(big.status, FLOWRELAY_ETOOBIG);
  EXPECT_EQ(command({"STRLEN", text_key(ch, "r")})->integer, 1000) << "nothing stored";
  EXPECT_EQ(delta(node, ch, "r", 2, std::string(24, 'y')).status, FLOWRELAY_OK) << "1024 fits";
  ASSERT_EQ(end(node, ch, "r").status, FLOWRELAY_OK);
  EXPECT_EQ(command({"HGET", seq_key(ch), "b"})->str, std::string("1024"));
  EXPECT_EQ(command({"HGET", seq_key(ch), "ob"})->str, std::string("0"));
}

// history_size counts replies; a compacted reply that leaves takes its ended state with it.
TEST_F(BrokerRedisReplies, AReplyTrimmedAwayIsForgotten) {
  ReplyNode& node = start_node("history_size=2");
  const std::string ch = channel("forget");
  for (int r = 0; r < 3; ++r) {
    const std::string id = "r" + std::to_string(r);
    for (uint64_t s = 1; s <= 5; ++s) ASSERT_EQ(delta(node, ch, id, s, "t").status, FLOWRELAY_OK);
    ASSERT_EQ(end(node, ch, id).status, FLOWRELAY_OK);
  }
  const ReplyHistory h = history(node, ch, 0);
  EXPECT_EQ(reply_ids(h.messages), (std::multiset<std::string>{"r1", "r2"}));
  EXPECT_EQ(h.trimmed, 6u) << "r0's entry was at its END's offset";
  EXPECT_EQ(integer({"HEXISTS", replies_key(ch), "r0"}), 0);
  EXPECT_EQ(delta(node, ch, "r0", 1, "again").status, FLOWRELAY_OK) << "r0 is unknown now";
  EXPECT_EQ(delta(node, ch, "r1", 6, "x").status, FLOWRELAY_ECONFLICT) << "r1 is still known";
}

// END replaces the open reply by its entry atomically: a reader racing it sees every reply
// whose OPEN was acknowledged before the read exactly once, as SNAPSHOT or REPLY.
TEST_F(BrokerRedisReplies, ReadersRacingCompactionSeeEachReplyExactlyOnce) {
  ReplyNode& writer = start_node("history_size=100000");
  ReplyNode& reader = start_node("history_size=100000");
  const std::string ch = channel("race");
  constexpr int kReplies = 150;
  std::atomic<int> opened{0};
  std::atomic<bool> stop{false};
  std::thread producer([&] {
    for (int r = 0; r < kReplies; ++r) {
      const std::string id = "r" + std::to_string(r);
      if (open(writer, ch, id).status != FLOWRELAY_OK) break;
      opened = r + 1;
      for (uint64_t s = 1; s <= 4; ++s) delta(writer, ch, id, s, "x");
      end(writer, ch, id);
    }
    stop = true;
  });
  int reads = 0, both = 0;
  while (!stop) {
    const int before = opened.load();
    const ReplyHistory h = history(reader, ch, 0);
    const auto ids = reply_ids(h.messages);
    for (int r = 0; r < before; ++r) {
      const size_t n = ids.count("r" + std::to_string(r));
      if (n != 1) ADD_FAILURE() << "r" << r << " seen " << n << " times in read " << reads;
    }
    for (const auto& m : h.messages) both += m.kind == FLOWRELAY_KIND_SNAPSHOT;
    ++reads;
  }
  producer.join();
  EXPECT_EQ(opened.load(), kReplies);
  EXPECT_GT(reads, 10);
  EXPECT_GT(both, 0) << "no read met an open reply: the race was not exercised";
}

// A killed publisher link: what Redis had run is resent and found a duplicate by seq, so the
// text holds each delta once, and each is published once.
TEST_F(BrokerRedisReplies, AStepResentAfterAKilledLinkIsNotDoubled) {
  allow_errors_ = true;
  ReplyNode& node = start_node();
  const std::string ch = channel("resend");
  RawSubscriber raw(socket(), ch);
  constexpr size_t kDeltas = 3000;
  StepLog log(kDeltas + 1);
  std::string expected;
  for (size_t i = 0; i < kDeltas; ++i) {
    const std::string piece = std::to_string(i) + ",";
    expected += piece;
    ASSERT_EQ(send_step(node, ch, FLOWRELAY_KIND_DELTA, "r", i + 1, piece, "", log, i),
              FLOWRELAY_OK);
    if (i == kDeltas / 3) command({"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"});
  }
  ASSERT_EQ(send_step(node, ch, FLOWRELAY_KIND_END, "r", 0, "", "done", log, kDeltas),
            FLOWRELAY_OK);
  ASSERT_TRUE(log.wait(3 * kTimeout));
  for (const auto& r : log.results()) ASSERT_EQ(r.status, FLOWRELAY_OK);
  const ReplyHistory h = history(node, ch, 0);
  ASSERT_EQ(h.messages.size(), 1u);
  EXPECT_EQ(h.messages[0].data, expected);
  EXPECT_EQ(h.messages[0].seq, kDeltas);
  std::map<uint64_t, int> seen;
  for (const auto& m : raw.collect(300ms))
    if (m.kind == FLOWRELAY_KIND_DELTA) ++seen[m.seq];
  for (const auto& [seq, n] : seen) EXPECT_EQ(n, 1) << "delta " << seq << " published twice";
}

TEST_F(BrokerRedisReplies, RefusesStepsItCannotStore) {
  ReplyNode& node = start_node();
  const std::string ch = channel("bad");
  StepLog log(4);
  EXPECT_EQ(send_step(node, ch, FLOWRELAY_KIND_DELTA, "r", 0, "x", "", log, 0), FLOWRELAY_EINVAL);
  EXPECT_EQ(send_step(node, ch, FLOWRELAY_KIND_DELTA, "a b", 1, "x", "", log, 1), FLOWRELAY_EINVAL);
  EXPECT_EQ(send_step(node, ch, FLOWRELAY_KIND_END, "r", 0, "", "maybe", log, 2), FLOWRELAY_EINVAL);
  EXPECT_EQ(send_step(node, ch, FLOWRELAY_KIND_SNAPSHOT, "r", 1, "x", "", log, 3),
            FLOWRELAY_EINVAL);
  ReplyNode& off = start_node("history_size=0");
  EXPECT_EQ(send_step(off, ch, FLOWRELAY_KIND_OPEN, "r", 0, "", "", log, 0),
            FLOWRELAY_EUNSUPPORTED);
}

// The gap fill (gap_fill.h) after a subscriber outage in the middle of a reply: the history's
// SNAPSHOT reaches live sessions with its kind, and the live deltas it covers are dropped.
TEST(BrokerRedisReplyGapFill, DeliversTheSnapshotWithItsKindAndDropsWhatItCovers) {
  using redis::ChannelGap;
  using redis::WireMessage;
  ChannelGap gap;
  std::vector<ReplyMessage> delivered;
  const auto sink = [&](const WireMessage& w) {
    delivered.push_back(copy_message(redis::to_message(w)));
  };
  auto wire = [](uint64_t offset, uint64_t seq, const std::string& data) {
    flowrelay_reply r{};
    r.struct_size = sizeof r;
    r.kind = FLOWRELAY_KIND_DELTA;
    r.id = {"r", 1};
    r.seq = seq;
    r.ttft_ms = r.duration_ms = -1;
    return redis::encode_wire(FLOWRELAY_LANE_MESSAGE, offset, "e", {}, data, r);
  };
  const std::string first = wire(1, 1, "a");
  ASSERT_EQ(gap.live(first, redis::decode_wire(first)), ChannelGap::Live::Deliver);
  ASSERT_EQ(gap.begin_fill(), std::optional<uint64_t>(1));
  // Live during the read: delta 3 (offset 3, covered by the snapshot), then delta 4.
  const std::string held3 = wire(3, 3, "c"), held4 = wire(4, 4, "d");
  ASSERT_EQ(gap.live(held3, redis::decode_wire(held3)), ChannelGap::Live::Held);
  ASSERT_EQ(gap.live(held4, redis::decode_wire(held4)), ChannelGap::Live::Held);
  // The read: reply r as a SNAPSHOT "abc" (seq 3) at its newest delta's offset, top 3.
  flowrelay_reply snap{};
  snap.struct_size = sizeof snap;
  snap.kind = FLOWRELAY_KIND_SNAPSHOT;
  snap.id = {"r", 1};
  snap.seq = 3;
  snap.ttft_ms = snap.duration_ms = -1;
  flowrelay_message m{};
  m.struct_size = sizeof m;
  m.offset = 3;
  m.epoch = {"e", 1};
  m.data = {"abc", 3};
  m.reply = &snap;
  flowrelay_history h{};
  h.struct_size = sizeof h;
  h.epoch = {"e", 1};
  h.top = 3;
  h.messages = &m;
  h.count = 1;
  h.trimmed = 0;
  const auto outcome = gap.finish_fill(h, sink);
  EXPECT_FALSE(outcome.unrecovered);
  ASSERT_EQ(delivered.size(), 2u);
  EXPECT_EQ(delivered[0].kind, FLOWRELAY_KIND_SNAPSHOT);
  EXPECT_EQ(delivered[0].data, "abc");
  EXPECT_EQ(delivered[0].seq, 3u);
  EXPECT_EQ(delivered[0].id, "r");
  EXPECT_EQ(delivered[1].kind, FLOWRELAY_KIND_DELTA);
  EXPECT_EQ(delivered[1].seq, 4u) << "delta 3 is in the snapshot: dropped";
  EXPECT_EQ(outcome.skipped, 1u);
}

}  // namespace
}  // namespace flowrelay::test
