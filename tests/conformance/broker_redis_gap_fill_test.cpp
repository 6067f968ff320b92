// broker-redis' gap fill (plugins/broker-redis/gap_fill.h) without a Redis: the per-channel
// state machine that, after a resubscribe, delivers from history what Pub/Sub missed, then the
// live messages held meanwhile, each offset once and in order; and, outside history, drops a
// resend (a node's seq delivered already).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gap_fill.h"
#include "wire_format.h"

namespace flowrelay::redis {
namespace {

struct Got {
  uint64_t offset;
  std::string epoch;
  std::string data;
  uint64_t node = 0;  // origin
  uint64_t seq = 0;
  bool operator==(const Got&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Got& g) {
  return os << "{" << g.offset << " " << g.epoch << " " << g.data << " " << g.node << "/" << g.seq
            << "}";
}

std::string seq(uint64_t offset, const std::string& epoch, const std::string& data = "") {
  return encode_wire(FLOWRELAY_LANE_MESSAGE, offset, epoch, {},
                     data.empty() ? "d" + std::to_string(offset) : data);
}

// A message outside history (history_size 0) from `node`'s publish number `seq`.
std::string plain(uint64_t node, uint64_t seq, const std::string& data) {
  return encode_wire(FLOWRELAY_LANE_MESSAGE, 0, "", {node, 42, seq}, data);
}

// History as the read script answers it: `epoch`, `top` and the entries first..last.
struct History {
  History(std::string e, uint64_t top, uint64_t first = 1, uint64_t last = 0)
      : epoch(std::move(e)) {
    for (uint64_t o = first; o <= last; ++o) data.push_back("d" + std::to_string(o));
    for (uint64_t o = first; o <= last; ++o) {
      flowrelay_message m{};
      m.struct_size = sizeof m;
      m.lane = FLOWRELAY_LANE_MESSAGE;
      m.offset = o;
      m.epoch = {epoch.data(), epoch.size()};
      m.origin = {9, 1, o};
      m.data = {data[o - first].data(), data[o - first].size()};
      messages.push_back(m);
    }
    h.struct_size = sizeof h;
    h.epoch = {epoch.data(), epoch.size()};
    h.top = top;
    h.messages = messages.empty() ? nullptr : messages.data();
    h.count = messages.size();
    h.trimmed = first - 1;  // ABI 2.2: contiguous from `first`, so everything above first - 1
  }
  std::string epoch;
  std::vector<std::string> data;
  std::vector<flowrelay_message> messages;
  flowrelay_history h{};
};

class ChannelGapTest : public ::testing::Test {
 protected:
  // Feeds one live payload; records it if the gap says to deliver it now.
  ChannelGap::Live live(const std::string& payload) {
    const WireMessage w = decode_wire(payload);
    const auto verdict = gap.live(payload, w);
    if (verdict == ChannelGap::Live::Deliver) record(w);
    return verdict;
  }
  void record(const WireMessage& w) {
    got.push_back(
        {w.offset, std::string(w.epoch), std::string(w.data), w.origin.node, w.origin.seq});
  }
  ChannelGap::Sink sink() {
    return [this](const WireMessage& w) { record(w); };
  }
  std::vector<Got> seqs(const std::string& epoch, uint64_t first, uint64_t last) {
    std::vector<Got> out;
    for (uint64_t o = first; o <= last; ++o) out.push_back({o, epoch, "d" + std::to_string(o)});
    return out;
  }
  // The same, as replayed from History (origin {9, 1, offset}).
  std::vector<Got> replayed(const std::string& epoch, uint64_t first, uint64_t last) {
    auto out = seqs(epoch, first, last);
    for (auto& g : out) g.node = 9, g.seq = g.offset;
    return out;
  }

  ChannelGap gap;
  std::vector<Got> got;
};

TEST_F(ChannelGapTest, SteadyStateSkipsOnlyOffsetsAlreadyDeliveredInTheSameEpoch) {
  using L = ChannelGap::Live;
  EXPECT_EQ(live(seq(1, "e1")), L::Deliver);
  EXPECT_EQ(live(seq(2, "e1")), L::Deliver);
  EXPECT_EQ(live(seq(2, "e1")), L::Duplicate);
  EXPECT_EQ(live(seq(1, "e1")), L::Duplicate);
  EXPECT_EQ(live("raw"), L::Deliver) << "offset 0 is never a duplicate";
  EXPECT_EQ(live("raw"), L::Deliver);
  EXPECT_EQ(live(seq(1, "e2")), L::Deliver) << "a new epoch restarts at 1";
  EXPECT_EQ(live(seq(2, "e2")), L::Deliver);
  EXPECT_EQ(got.size(), 6u);
}

TEST_F(ChannelGapTest, WithoutAPlaceThereIsNothingToFillFrom) {
  EXPECT_FALSE(gap.placed());
  EXPECT_EQ(gap.begin_fill(), std::nullopt);
  EXPECT_FALSE(gap.filling());
  EXPECT_EQ(live("raw"), ChannelGap::Live::Deliver) << "nothing is held";
}

TEST_F(ChannelGapTest, FillsFromHistoryThenReleasesHeldMessagesWithoutDuplicates) {
  for (uint64_t o = 1; o <= 3; ++o) live(seq(o, "e"));
  ASSERT_EQ(gap.begin_fill(), 3u);
  // Live again after the SUBSCRIBE: 6 and 7 were published before the read ran, 8 after.
  for (const auto& p : {seq(6, "e"), std::string("raw"), seq(7, "e"), seq(8, "e")})
    EXPECT_EQ(live(p), ChannelGap::Live::Held);
  EXPECT_GT(gap.held_bytes(), 0u);
  const History history("e", 7, 4, 7);
  const auto outcome = gap.finish_fill(history.h, sink());
  EXPECT_FALSE(outcome.unrecovered);
  EXPECT_EQ(outcome.filled, 4u);
  EXPECT_EQ(outcome.skipped, 2u);
  auto expected = seqs("e", 1, 3);
  for (const auto& g : replayed("e", 4, 7)) expected.push_back(g);  // with their origin
  expected.push_back({0, "", "raw"});
  expected.push_back({8, "e", "d8"});
  EXPECT_EQ(got, expected);
  EXPECT_FALSE(gap.filling());
  EXPECT_EQ(gap.held_bytes(), 0u);
  EXPECT_EQ(live(seq(8, "e")), ChannelGap::Live::Duplicate) << "the place moved to 8";
  EXPECT_EQ(live(seq(9, "e")), ChannelGap::Live::Deliver);
}

TEST_F(ChannelGapTest, NothingMissedNothingFilled) {
  live(seq(1, "e"));
  ASSERT_EQ(gap.begin_fill(), 1u);
  const History history("e", 1);
  const auto outcome = gap.finish_fill(history.h, sink());
  EXPECT_FALSE(outcome.unrecovered);
  EXPECT_EQ(outcome.filled, 0u);
  EXPECT_EQ(got, seqs("e", 1, 1));
}

TEST_F(ChannelGapTest, AnEpochChangeResumesLiveAndCountsTheNewEpochsMissedOffsets) {
  for (uint64_t o = 1; o <= 5; ++o) live(seq(o, "old"));
  ASSERT_EQ(gap.begin_fill(), 5u);
  live(seq(3, "new"));
  live(seq(4, "new"));
  const History history("new", 4);  // the read (since 5) found nothing past 5
  const auto outcome = gap.finish_fill(history.h, sink());
  EXPECT_TRUE(outcome.unrecovered);
  EXPECT_TRUE(outcome.reset);
  EXPECT_EQ(outcome.lost, 2u) << "offsets 1 and 2 of the new epoch";
  EXPECT_EQ(outcome.from, 5u);
  auto expected = seqs("old", 1, 5);
  expected.push_back({3, "new", "d3"});
  expected.push_back({4, "new", "d4"});
  EXPECT_EQ(got, expected);
}

TEST_F(ChannelGapTest, HistoryTrimmedPastThePlaceResumesLive) {
  for (uint64_t o = 1; o <= 5; ++o) live(seq(o, "e"));
  ASSERT_EQ(gap.begin_fill(), 5u);
  live(seq(100, "e"));
  live(seq(101, "e"));
  const History history("e", 100, 51, 100);  // 6..50 trimmed
  const auto outcome = gap.finish_fill(history.h, sink());
  EXPECT_TRUE(outcome.unrecovered);
  EXPECT_FALSE(outcome.reset);
  EXPECT_EQ(outcome.lost, 94u) << "6..99: 100 arrived live";
  EXPECT_EQ(outcome.filled, 0u) << "no partial replay";
  auto expected = seqs("e", 1, 5);
  expected.push_back({100, "e", "d100"});
  expected.push_back({101, "e", "d101"});
  EXPECT_EQ(got, expected);
}

TEST_F(ChannelGapTest, HistoryGoneWithNothingNewIsNotReported) {
  for (uint64_t o = 1; o <= 2; ++o) live(seq(o, "e"));
  ASSERT_EQ(gap.begin_fill(), 2u);
  live("raw");
  const History history("", 0);  // expired (idle) or lost
  const auto outcome = gap.finish_fill(history.h, sink());
  EXPECT_FALSE(outcome.unrecovered);
  auto expected = seqs("e", 1, 2);
  expected.push_back({0, "", "raw"});
  EXPECT_EQ(got, expected);
}

TEST_F(ChannelGapTest, AFloorWithoutHistoryFillsTheNewEpochFromOne) {
  gap.set_floor("", 0);
  EXPECT_TRUE(gap.placed());
  ASSERT_EQ(gap.begin_fill(), 0u);
  live(seq(3, "e"));
  const History history("e", 3, 1, 3);
  const auto outcome = gap.finish_fill(history.h, sink());
  EXPECT_FALSE(outcome.unrecovered);
  EXPECT_EQ(outcome.filled, 3u);
  EXPECT_EQ(outcome.skipped, 1u);
  EXPECT_EQ(got, replayed("e", 1, 3));
}

TEST_F(ChannelGapTest, AFloorIsNeverUsedToSkip) {
  gap.set_floor("e", 10);
  // Published between the SUBSCRIBE and the floor read: still on their way, not delivered yet.
  EXPECT_EQ(live(seq(9, "e")), ChannelGap::Live::Deliver);
  EXPECT_EQ(live(seq(10, "e")), ChannelGap::Live::Deliver);
  gap.set_floor("e", 20);  // ignored: a delivered message is the better place
  ASSERT_EQ(gap.begin_fill(), 10u);
}

TEST_F(ChannelGapTest, AFloorInTheSameEpochFillsPastIt) {
  gap.set_floor("e", 10);
  ASSERT_EQ(gap.begin_fill(), 10u);
  const History history("e", 12, 11, 12);
  EXPECT_EQ(gap.finish_fill(history.h, sink()).filled, 2u);
  EXPECT_EQ(got, replayed("e", 11, 12));
}

TEST_F(ChannelGapTest, ABeginWhileFillingKeepsWhatIsHeld) {
  live(seq(1, "e"));
  ASSERT_EQ(gap.begin_fill(), 1u);
  live(seq(3, "e"));
  ASSERT_EQ(gap.begin_fill(), 1u) << "the link dropped again: the new read starts at the place";
  live(seq(5, "e"));
  const History history("e", 4, 2, 4);
  const auto outcome = gap.finish_fill(history.h, sink());
  EXPECT_EQ(outcome.filled, 3u);
  EXPECT_EQ(outcome.skipped, 1u);
  auto expected = seqs("e", 1, 1);
  for (const auto& g : replayed("e", 2, 4)) expected.push_back(g);
  expected.push_back({5, "e", "d5"});
  EXPECT_EQ(got, expected);
}

TEST_F(ChannelGapTest, AbandonReleasesHeldMessagesAndCountsTheKnownHole) {
  for (uint64_t o = 1; o <= 5; ++o) live(seq(o, "e"));
  ASSERT_EQ(gap.begin_fill(), 5u);
  live("raw");
  live(seq(8, "e"));
  live(seq(9, "e"));
  const auto outcome = gap.abandon_fill(sink());
  EXPECT_TRUE(outcome.unrecovered);
  EXPECT_EQ(outcome.lost, 2u) << "6 and 7";
  auto expected = seqs("e", 1, 5);
  expected.push_back({0, "", "raw"});
  expected.push_back({8, "e", "d8"});
  expected.push_back({9, "e", "d9"});
  EXPECT_EQ(got, expected);
  EXPECT_FALSE(gap.filling());
}

// Outside history a resend carries the same origin again: the second copy of a node's seq is
// dropped, per node; raw payloads (no origin) always pass.
TEST_F(ChannelGapTest, OutsideHistoryARepeatedNodeSeqIsADuplicate) {
  using L = ChannelGap::Live;
  EXPECT_EQ(live(plain(5, 1, "a")), L::Deliver);
  EXPECT_EQ(live(plain(5, 2, "b")), L::Deliver);
  EXPECT_EQ(live(plain(5, 1, "a")), L::Duplicate) << "resent after a lost reply";
  EXPECT_EQ(live(plain(5, 2, "b")), L::Duplicate);
  EXPECT_EQ(live(plain(6, 1, "other node")), L::Deliver) << "seqs are per node";
  EXPECT_EQ(live(plain(5, 3, "c")), L::Deliver);
  EXPECT_EQ(live("raw"), L::Deliver);
  EXPECT_EQ(live("raw"), L::Deliver);
  EXPECT_EQ(got.size(), 6u);
  EXPECT_EQ(got[0], (Got{0, "", "a", 5, 1}));
}

TEST_F(ChannelGapTest, HeldMessagesOutsideHistoryAreDeduplicatedOnRelease) {
  live(seq(1, "e"));
  live(plain(5, 1, "a"));
  ASSERT_EQ(gap.begin_fill(), 1u);
  EXPECT_EQ(live(plain(5, 1, "a")), ChannelGap::Live::Held);
  EXPECT_EQ(live(plain(5, 2, "b")), ChannelGap::Live::Held);
  const History history("e", 1);
  const auto outcome = gap.finish_fill(history.h, sink());
  EXPECT_EQ(outcome.skipped, 1u);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[2], (Got{0, "", "b", 5, 2}));
}

// Redis' history ends before the place (it lost writes, e.g. a failover to a lagging replica):
// new offsets from its top on must not be taken for duplicates.
TEST_F(ChannelGapTest, HistoryBehindThePlaceMovesThePlaceBackToItsTop) {
  for (uint64_t o = 1; o <= 8; ++o) live(seq(o, "e"));
  ASSERT_EQ(gap.begin_fill(), 8u);
  live(seq(6, "e", "new 6"));
  const History history("e", 5, 1, 5);
  const auto outcome = gap.finish_fill(history.h, sink());
  EXPECT_TRUE(outcome.unrecovered);
  EXPECT_TRUE(outcome.behind);
  EXPECT_EQ(outcome.filled, 0u);
  EXPECT_EQ(got.back(), (Got{6, "e", "new 6"}));
  EXPECT_EQ(live(seq(7, "e", "new 7")), ChannelGap::Live::Deliver);
}

// ---------------------------------------------------------------------------------- GapFill

class GapFillTest : public ::testing::Test {
 protected:
  GapFillTest()
      : fill({[this](std::string_view ch, const WireMessage& w) {
                got.push_back(
                    {std::string(ch), {w.offset, std::string(w.epoch), std::string(w.data)}});
              },
              [this](flowrelay_log_level level, const std::string& text) {
                if (level <= FLOWRELAY_LOG_WARNING) warnings.push_back(text);
              }}) {}

  std::vector<uint64_t> offsets(const std::string& ch) const {
    std::vector<uint64_t> out;
    for (const auto& [c, g] : got)
      if (c == ch) out.push_back(g.offset);
    return out;
  }

  GapFill fill;
  std::vector<std::pair<std::string, Got>> got;
  std::vector<std::string> warnings;
};

TEST_F(GapFillTest, ReadsTheFloorOnceThenFillsAfterAResubscribe) {
  fill.add("ch");
  auto floor = fill.confirmed("ch", false, 1000);
  ASSERT_TRUE(floor);
  EXPECT_EQ(floor->since, GapFill::kFloorSince);
  EXPECT_FALSE(fill.confirmed("ch", false, 1000)) << "a floor read is already awaited";
  const History empty("", 0);
  fill.answered("ch", floor->id, FLOWRELAY_OK, &empty.h);
  EXPECT_FALSE(fill.confirmed("ch", false, 1000)) << "placed: nothing more to read";

  auto read = fill.confirmed("ch", true, 1000);
  ASSERT_TRUE(read);
  EXPECT_EQ(read->since, 0u);
  fill.live("ch", seq(2, "e"), 1 << 20);
  EXPECT_TRUE(got.empty()) << "held while filling";
  const History history("e", 2, 1, 2);
  fill.answered("ch", read->id, FLOWRELAY_OK, &history.h);
  EXPECT_EQ(offsets("ch"), (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(fill.filled(), 2u);
  EXPECT_EQ(fill.duplicates(), 1u);
  EXPECT_EQ(fill.unrecovered(), 0u);
  EXPECT_TRUE(warnings.empty());
}

TEST_F(GapFillTest, StaleAnswersAreIgnored) {
  fill.add("ch");
  fill.live("ch", seq(1, "e"), 1 << 20);
  auto first = fill.confirmed("ch", true, 1000);
  auto second = fill.confirmed("ch", true, 1000);  // the link dropped again
  ASSERT_TRUE(first && second);
  EXPECT_NE(first->id, second->id);
  const History early("e", 1);
  fill.answered("ch", first->id, FLOWRELAY_OK, &early.h);
  fill.live("ch", seq(3, "e"), 1 << 20);
  EXPECT_EQ(offsets("ch"), (std::vector<uint64_t>{1})) << "still held: the answer was stale";
  const History history("e", 3, 2, 3);
  fill.answered("ch", second->id, FLOWRELAY_OK, &history.h);
  EXPECT_EQ(offsets("ch"), (std::vector<uint64_t>{1, 2, 3}));

  // Unsubscribed while a read is out: its answer finds nothing.
  auto third = fill.confirmed("ch", true, 1000);
  ASSERT_TRUE(third);
  fill.remove("ch");
  fill.answered("ch", third->id, FLOWRELAY_OK, &history.h);
  fill.live("ch", seq(4, "e"), 1 << 20);  // straggler after the unsubscribe: passed on
  EXPECT_EQ(offsets("ch"), (std::vector<uint64_t>{1, 2, 3, 4}));
}

TEST_F(GapFillTest, GivesUpPastTheHeldBoundAndCountsIt) {
  fill.add("ch");
  fill.live("ch", seq(1, "e"), 1 << 20);
  auto read = fill.confirmed("ch", true, 1000);
  ASSERT_TRUE(read);
  const std::string big(600, 'x');
  fill.live("ch", seq(3, "e", big), 1024);
  EXPECT_EQ(offsets("ch"), (std::vector<uint64_t>{1}));
  fill.live("ch", seq(4, "e", big), 1024);  // 1200 held > 1024
  EXPECT_EQ(offsets("ch"), (std::vector<uint64_t>{1, 3, 4}));
  EXPECT_EQ(fill.unrecovered(), 1u);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("buffer_max_bytes"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("at least 1 message"), std::string::npos) << warnings[0];
  const History history("e", 4, 2, 4);
  fill.answered("ch", read->id, FLOWRELAY_OK, &history.h);  // too late
  EXPECT_EQ(offsets("ch"), (std::vector<uint64_t>{1, 3, 4}));
  fill.live("ch", seq(5, "e"), 1024);
  EXPECT_EQ(offsets("ch"), (std::vector<uint64_t>{1, 3, 4, 5})) << "live again";
}

TEST_F(GapFillTest, GivesUpAtTheDeadlineAndOnAFailedRead) {
  fill.add("a");
  fill.add("b");
  fill.live("a", seq(1, "e"), 1 << 20);
  fill.live("b", seq(1, "e"), 1 << 20);
  auto ra = fill.confirmed("a", true, 1000);
  auto rb = fill.confirmed("b", true, 2000);
  ASSERT_TRUE(ra && rb);
  fill.live("a", "raw a", 1 << 20);
  EXPECT_EQ(fill.expire(999), 1000);
  EXPECT_EQ(fill.expire(1000), 2000) << "a given up, b left";
  EXPECT_EQ(offsets("a"), (std::vector<uint64_t>{1, 0}));
  fill.answered("b", rb->id, FLOWRELAY_EINTERNAL, nullptr);
  EXPECT_EQ(fill.expire(1000), INT64_MAX);
  EXPECT_EQ(fill.unrecovered(), 2u);
  EXPECT_EQ(warnings.size(), 2u);
}

TEST_F(GapFillTest, AnEpochChangeIsWarnedOnceAndCounted) {
  fill.add("ch");
  fill.live("ch", seq(7, "old"), 1 << 20);
  auto read = fill.confirmed("ch", true, 1000);
  ASSERT_TRUE(read);
  EXPECT_EQ(read->since, 7u);
  fill.live("ch", seq(3, "new"), 1 << 20);
  const History history("new", 3);
  fill.answered("ch", read->id, FLOWRELAY_OK, &history.h);
  EXPECT_EQ(offsets("ch"), (std::vector<uint64_t>{7, 3}));
  EXPECT_EQ(fill.unrecovered(), 1u);
  EXPECT_EQ(fill.filled(), 0u);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("2 message(s) of the new epoch"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("after offset 7"), std::string::npos) << warnings[0];
}

}  // namespace
}  // namespace flowrelay::redis
