// Conformance: reply streams in history (plugin_reply.h) — an open reply is one SNAPSHOT at its
// newest delta's offset, an ended one one REPLY entry at its END's offset (compaction), bounds
// count entries after compaction, and `trimmed` tells a reader what it can trust.
#include "broker_replies.h"

namespace flowrelay::test {
namespace {

struct Seen {
  uint64_t offset;
  flowrelay_kind kind;  // FLOWRELAY_KIND_MESSAGE for a plain message
  std::string data;
  uint64_t seq = 0;
  bool operator==(const Seen&) const = default;
};
void PrintTo(const Seen& s, std::ostream* out) {
  *out << "{offset " << s.offset << ", kind " << s.kind << ", '" << s.data << "', seq " << s.seq
       << "}";
}

std::vector<Seen> seen(const HistoryRead& read) {
  std::vector<Seen> out;
  for (const Message& m : read.messages)
    out.push_back({m.offset, m.reply ? m.reply->kind : FLOWRELAY_KIND_MESSAGE, m.data,
                   m.reply ? m.reply->seq : 0});
  return out;
}

class ReplyHistory : public BrokerReplyHistory {
 protected:
  uint64_t message(const std::string& ch, const std::string& data) {
    PublishedLog log(1);
    publish_messages(ch, {host_.message(FLOWRELAY_LANE_MESSAGE, data)}, log);
    return log.results()[0].offset;
  }
  std::vector<Seen> read(const std::string& ch, uint64_t since, uint64_t* trimmed = nullptr) {
    HistoryRead r;
    EXPECT_EQ(read_history(ch, since, r), FLOWRELAY_OK);
    EXPECT_EQ(r.status, FLOWRELAY_OK);
    EXPECT_FALSE(r.bad_struct);
    EXPECT_TRUE(r.has_trimmed) << "an ABI 2.2 broker with replies says what it trimmed";
    if (trimmed) *trimmed = r.trimmed;
    return seen(r);
  }
};

TEST_F(ReplyHistory, AnEndedReplyIsOneReplyEntryAtTheEndsOffset) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string ch = channel("compaction");
  const uint64_t q = message(ch, "question");
  stored(ch, open_step("r1"));
  stored(ch, delta_step("r1", 1, "The "));
  stored(ch, delta_step("r1", 2, "answer "));
  const uint64_t aside = message(ch, "aside");
  stored(ch, delta_step("r1", 3, "is 42"));
  const uint64_t end = stored(ch, end_step("r1"));
  uint64_t trimmed = 99;
  const auto got = read(ch, 0, &trimmed);
  EXPECT_EQ(got, (std::vector<Seen>{{q, FLOWRELAY_KIND_MESSAGE, "question"},
                                    {aside, FLOWRELAY_KIND_MESSAGE, "aside"},
                                    {end, FLOWRELAY_KIND_REPLY, "The answer is 42", 3}}))
      << "the deltas and the OPEN are compacted into the REPLY entry";
  EXPECT_EQ(trimmed, 0u) << "nothing was dropped";
  HistoryRead r;
  ASSERT_EQ(read_history(ch, 0, r), FLOWRELAY_OK);
  ASSERT_EQ(r.messages.size(), 3u);
  EXPECT_EQ(r.top, end);
  const ReplyInfo& info = *r.messages[2].reply;
  EXPECT_EQ(info.id, "r1");
  EXPECT_EQ(info.reason, "done");
  EXPECT_EQ(info.bytes, 16u);
  EXPECT_GE(info.ttft_ms, 0);
  EXPECT_GE(info.duration_ms, info.ttft_ms);
  EXPECT_EQ(r.messages[2].lane, FLOWRELAY_LANE_MESSAGE);
  EXPECT_EQ(r.messages[2].epoch, r.epoch);
}

TEST_F(ReplyHistory, AReadMidReplyHoldsOneSnapshotAtTheNewestDeltasOffset) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string ch = channel("snapshot");
  const uint64_t q = message(ch, "question");
  stored(ch, open_step("r1"));
  const uint64_t d1 = stored(ch, delta_step("r1", 1, "a"));
  stored(ch, delta_step("r1", 2, "b"));
  const uint64_t aside = message(ch, "aside");
  const uint64_t d3 = stored(ch, delta_step("r1", 3, "c"));
  const Seen snap{d3, FLOWRELAY_KIND_SNAPSHOT, "abc", 3};
  EXPECT_EQ(read(ch, 0), (std::vector<Seen>{{q, FLOWRELAY_KIND_MESSAGE, "question"},
                                            {aside, FLOWRELAY_KIND_MESSAGE, "aside"},
                                            snap}));
  EXPECT_EQ(read(ch, d1), (std::vector<Seen>{{aside, FLOWRELAY_KIND_MESSAGE, "aside"}, snap}))
      << "a since inside the open reply: its whole text so far, from seq 1";
  EXPECT_EQ(read(ch, aside), (std::vector<Seen>{snap}));
  EXPECT_TRUE(read(ch, d3).empty()) << "the reader has the newest delta";
  // A reply with no delta yet stands at its OPEN.
  const uint64_t open2 = stored(ch, open_step("r2"));
  EXPECT_EQ(read(ch, d3), (std::vector<Seen>{{open2, FLOWRELAY_KIND_SNAPSHOT, "", 0}}));
}

TEST_F(ReplyHistory, ASinceInsideAnEndedReplyGetsItsReplyEntry) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string ch = channel("seam");
  const uint64_t d1 = stored(ch, delta_step("r1", 1, "x"));
  const uint64_t d2 = stored(ch, delta_step("r1", 2, "y"));
  stored(ch, delta_step("r1", 3, "z"));
  const uint64_t end = stored(ch, end_step("r1"));
  for (uint64_t since : {d1, d2}) {
    SCOPED_TRACE("since " + std::to_string(since));
    EXPECT_EQ(read(ch, since), (std::vector<Seen>{{end, FLOWRELAY_KIND_REPLY, "xyz", 3}}))
        << "the compacted reply, never half of it";
  }
  EXPECT_TRUE(read(ch, end).empty());
}

TEST_F(ReplyHistory, HistorySizeCountsReplies) {
  ASSERT_NO_FATAL_FAILURE(start_with_option("history_size=3"));
  if (IsSkipped()) return;
  const std::string ch = channel("count");
  std::vector<uint64_t> ends;
  for (int r = 1; r <= 5; ++r) {
    const std::string id = "r" + std::to_string(r);
    for (uint64_t seq = 1; seq <= 10; ++seq) stored(ch, delta_step(id, seq, "t"));
    ends.push_back(stored(ch, end_step(id)));
  }
  uint64_t trimmed = 0;
  const auto got = read(ch, 0, &trimmed);
  ASSERT_EQ(got.size(), 3u) << "3 replies of 10 deltas each, not 3 deltas";
  for (size_t i = 0; i < 3; ++i)
    EXPECT_EQ(got[i], (Seen{ends[i + 2], FLOWRELAY_KIND_REPLY, std::string(10, 't'), 10}));
  EXPECT_GE(trimmed, ends[1]) << "reply 2's entry was dropped: trimmed must say so";
  EXPECT_LT(trimmed, ends[2]) << "reply 3's entry is in the answer";
  // A dropped reply entry takes the ended reply's memory with it; a kept one keeps it.
  const ReplyResult forgotten = step(ch, delta_step("r1", 11, "t"));
  EXPECT_EQ(forgotten.status, FLOWRELAY_ECONFLICT);
  EXPECT_EQ(forgotten.ended, "") << "r1 left history: an unknown reply now";
  EXPECT_EQ(forgotten.expected_seq, 1u);
  const ReplyResult kept = step(ch, delta_step("r4", 11, "t"));
  EXPECT_EQ(kept.status, FLOWRELAY_ECONFLICT);
  EXPECT_EQ(kept.ended, "done");
}

TEST_F(ReplyHistory, AnOpenReplyIsNeverTrimmed) {
  ASSERT_NO_FATAL_FAILURE(start_with_option("history_size=2"));
  if (IsSkipped()) return;
  const std::string ch = channel("open-kept");
  stored(ch, delta_step("r1", 1, "a"));
  std::vector<uint64_t> m;
  for (int i = 1; i <= 5; ++i) m.push_back(message(ch, "m" + std::to_string(i)));
  const uint64_t d2 = stored(ch, delta_step("r1", 2, "b"));
  uint64_t trimmed = 0;
  EXPECT_EQ(read(ch, 0, &trimmed), (std::vector<Seen>{{m[4], FLOWRELAY_KIND_MESSAGE, "m5"},
                                                      {d2, FLOWRELAY_KIND_SNAPSHOT, "ab", 2}}))
      << "the open reply is one entry, whole from seq 1";
  EXPECT_GE(trimmed, m[3]);
  EXPECT_LT(trimmed, m[4]);
  const uint64_t end = stored(ch, end_step("r1"));
  EXPECT_EQ(read(ch, 0), (std::vector<Seen>{{m[4], FLOWRELAY_KIND_MESSAGE, "m5"},
                                            {end, FLOWRELAY_KIND_REPLY, "ab", 2}}));
}

TEST_F(ReplyHistory, TrimmedIsTheNewestOffsetDropped) {
  ASSERT_NO_FATAL_FAILURE(start_with_option("history_size=3"));
  if (IsSkipped()) return;
  const std::string ch = channel("trimmed");
  std::vector<uint64_t> m;
  for (int i = 1; i <= 2; ++i) m.push_back(message(ch, "m" + std::to_string(i)));
  uint64_t trimmed = 99;
  EXPECT_EQ(read(ch, 0, &trimmed).size(), 2u);
  EXPECT_EQ(trimmed, 0u) << "nothing dropped yet";
  for (int i = 3; i <= 10; ++i) m.push_back(message(ch, "m" + std::to_string(i)));
  const auto got = read(ch, 0, &trimmed);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].offset, m[7]);
  EXPECT_EQ(trimmed, m[6]) << "every offset above it is in the answer, m7's is not";
}

}  // namespace
}  // namespace flowrelay::test
