// broker-local's reply streams in a channel's history (plugins/broker-local/reply_steps.cpp):
// stats on the host's clock, exact memory accounting across compaction, bounds that never touch
// an open reply; and the node-wide order of use (history_memory.h). The rules as every broker
// follows them: tests/conformance/conformance_replies_test.cpp.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "channel_history.h"
#include "history_memory.h"

using namespace flowrelay::local;

namespace {

const HistoryBounds kRoomy{100, 1 << 20};

// Runs one step; `data` etc. must outlive it (the step's views point into them).
struct Producer {
  explicit Producer(ChannelHistory& history, HistoryBounds b = kRoomy) : h(history), bounds(b) {}
  ChannelHistory& h;
  HistoryBounds bounds;
  std::string id = "r1";
  ReplyStep last;

  ReplyStep& step(flowrelay_kind kind, int64_t now, uint64_t seq = 0, const std::string& data = "",
                  const std::string& reason = "") {
    const flowrelay_reply r{sizeof(flowrelay_reply),
                            kind,
                            {id.data(), id.size()},
                            seq,
                            {reason.data(), reason.size()},
                            {nullptr, 0},
                            -1,
                            -1,
                            0};
    flowrelay_message m{sizeof(flowrelay_message),
                        FLOWRELAY_LANE_MESSAGE,
                        0,
                        {nullptr, 0},
                        {9, 1, 0},
                        {data.data(), data.size()},
                        &r};
    h.apply_reply(m, now, bounds, last);
    return last;
  }
};

struct Entry {
  uint64_t offset;
  flowrelay_kind kind;
  std::string data;
  bool operator==(const Entry&) const = default;
};
std::vector<Entry> read(const ChannelHistory& h, uint64_t since) {
  HistoryView view;
  h.read_after(since, view);
  std::vector<Entry> out;
  for (const auto& m : view.messages)
    out.push_back({m.offset, m.reply ? m.reply->kind : FLOWRELAY_KIND_MESSAGE,
                   std::string(m.data.ptr, m.data.len)});
  return out;
}

flowrelay_message plain(const std::string& data) {
  return {sizeof(flowrelay_message),
          FLOWRELAY_LANE_MESSAGE,
          0,
          {nullptr, 0},
          {9, 0, 0},
          {data.data(), data.size()},
          nullptr};
}

}  // namespace

TEST(LocalReplies, StatsAreMeasuredOnTheHostClock) {
  ChannelHistory h("e");
  Producer p{h};
  p.step(FLOWRELAY_KIND_OPEN, 1000);
  p.step(FLOWRELAY_KIND_DELTA, 1040, 1, "ab");
  p.step(FLOWRELAY_KIND_DELTA, 1100, 2, "cde");
  const ReplyStep& end = p.step(FLOWRELAY_KIND_END, 1900, 0, "", "done");
  ASSERT_TRUE(end.deliver);
  EXPECT_EQ(end.message.reply, &end.reply);
  EXPECT_EQ(end.reply.seq, 2u);
  EXPECT_EQ(end.reply.ttft_ms, 40);
  EXPECT_EQ(end.reply.duration_ms, 900);
  EXPECT_EQ(end.reply.bytes, 5u);
  // Without an OPEN the first delta opened it: ttft 0.
  p.id = "r2";
  p.step(FLOWRELAY_KIND_DELTA, 2000, 1, "x");
  EXPECT_EQ(p.step(FLOWRELAY_KIND_END, 2500, 0, "", "done").reply.ttft_ms, 0);
  // Without a delta: -1.
  p.id = "r3";
  p.step(FLOWRELAY_KIND_OPEN, 3000);
  EXPECT_EQ(p.step(FLOWRELAY_KIND_END, 3010, 0, "", "cancelled").reply.ttft_ms, -1);
}

TEST(LocalReplies, MemoryIsAccountedExactlyAcrossCompaction) {
  ChannelHistory h("e");
  Producer p{h};
  p.step(FLOWRELAY_KIND_DELTA, 1, 1, "abc");
  p.step(FLOWRELAY_KIND_DELTA, 2, 2, "de");
  EXPECT_EQ(h.data_bytes(), 5u);
  EXPECT_EQ(h.memory_bytes(), 5 + kEntryOverhead + kReplyOverhead + 2 * kDeltaOverhead);
  EXPECT_EQ(h.entries(), 1u) << "an open reply is one entry";
  p.step(FLOWRELAY_KIND_END, 3, 0, "", "done");
  EXPECT_EQ(h.data_bytes(), 5u);
  EXPECT_EQ(h.memory_bytes(), 5 + kEntryOverhead + kReplyOverhead);
  h.enforce({0, 1 << 20});  // the REPLY entry goes, with its ended state
  EXPECT_EQ(h.memory_bytes(), 0u);
  EXPECT_EQ(h.trimmed(), 3u);
  EXPECT_EQ(p.step(FLOWRELAY_KIND_DELTA, 4, 3, "f").expected_seq, 1u) << "an unknown reply now";
}

TEST(LocalReplies, ADuplicateAnswersTheFirstCopysOffset) {
  ChannelHistory h("e");
  h.append(plain("q"), 1, kRoomy);
  Producer p{h};
  const uint64_t d1 = p.step(FLOWRELAY_KIND_DELTA, 2, 1, "a").offset;
  p.step(FLOWRELAY_KIND_DELTA, 3, 2, "b");
  const ReplyStep& again = p.step(FLOWRELAY_KIND_DELTA, 4, 1, "a");
  EXPECT_TRUE(again.duplicate);
  EXPECT_FALSE(again.deliver);
  EXPECT_EQ(again.offset, d1);
  EXPECT_EQ(h.top(), 3u) << "a duplicate takes no offset";
}

TEST(LocalReplies, BoundsNeverTrimAnOpenReply) {
  ChannelHistory h("e");
  Producer p(h, {100, 5});
  p.step(FLOWRELAY_KIND_DELTA, 1, 1, "abcde");
  const std::string x = "x";
  const uint64_t m = h.append(plain(x), 2, p.bounds);
  EXPECT_EQ(read(h, 0), (std::vector<Entry>{{1, FLOWRELAY_KIND_SNAPSHOT, "abcde"}}))
      << "the message went, the open reply stays";
  EXPECT_EQ(h.trimmed(), m);
  EXPECT_EQ(p.step(FLOWRELAY_KIND_DELTA, 3, 2, "f").status, FLOWRELAY_ETOOBIG);
  EXPECT_EQ(h.top(), m) << "a refused delta takes no offset";
  EXPECT_EQ(h.data_bytes(), 5u);
  p.bounds = {1, 5};
  h.append(plain(x), 4, p.bounds);  // count 1: only the open reply fits
  EXPECT_EQ(read(h, 0).size(), 1u);
  EXPECT_EQ(read(h, 0)[0].kind, FLOWRELAY_KIND_SNAPSHOT);
}

TEST(LocalReplies, AReadMergesOpenRepliesAtTheirNewestDeltas) {
  ChannelHistory h("e");
  Producer a{h}, b{h};
  b.id = "r2";
  a.step(FLOWRELAY_KIND_DELTA, 1, 1, "a1");      // 1
  b.step(FLOWRELAY_KIND_OPEN, 2);                // 2
  h.append(plain("m"), 3, kRoomy);               // 3
  a.step(FLOWRELAY_KIND_DELTA, 4, 2, "a2");      // 4
  b.step(FLOWRELAY_KIND_DELTA, 5, 1, "b1");      // 5
  a.step(FLOWRELAY_KIND_DELTA, 6, 3, "a3");      // 6
  h.append(plain("n"), 7, kRoomy);               // 7
  b.step(FLOWRELAY_KIND_END, 8, 0, "", "done");  // 8
  EXPECT_EQ(read(h, 0), (std::vector<Entry>{{3, FLOWRELAY_KIND_MESSAGE, "m"},
                                            {6, FLOWRELAY_KIND_SNAPSHOT, "a1a2a3"},
                                            {7, FLOWRELAY_KIND_MESSAGE, "n"},
                                            {8, FLOWRELAY_KIND_REPLY, "b1"}}));
  EXPECT_EQ(read(h, 6), (std::vector<Entry>{{7, FLOWRELAY_KIND_MESSAGE, "n"},
                                            {8, FLOWRELAY_KIND_REPLY, "b1"}}));
}

TEST(LocalReplies, MalformedStepsAreRefused) {
  auto step = [](std::string id, flowrelay_kind kind, uint64_t seq, std::string reason) {
    const flowrelay_reply r{sizeof(flowrelay_reply),
                            kind,
                            {id.data(), id.size()},
                            seq,
                            {reason.data(), reason.size()},
                            {nullptr, 0},
                            -1,
                            -1,
                            0};
    return valid_reply_step(r);
  };
  EXPECT_TRUE(step("r1", FLOWRELAY_KIND_DELTA, 1, ""));
  EXPECT_TRUE(step(std::string(64, 'a'), FLOWRELAY_KIND_OPEN, 0, ""));
  EXPECT_FALSE(step(std::string(65, 'a'), FLOWRELAY_KIND_OPEN, 0, ""));
  EXPECT_FALSE(step("", FLOWRELAY_KIND_OPEN, 0, ""));
  EXPECT_FALSE(step("a b", FLOWRELAY_KIND_OPEN, 0, ""));
  EXPECT_FALSE(step("r1", FLOWRELAY_KIND_DELTA, 0, "")) << "seq counts from 1";
  EXPECT_FALSE(step("r1", FLOWRELAY_KIND_END, 0, "finished"));
  EXPECT_TRUE(step("r1", FLOWRELAY_KIND_END, 0, "producer_lost"));
  EXPECT_FALSE(step("r1", FLOWRELAY_KIND_SNAPSHOT, 1, "")) << "not a producer's kind";
}

TEST(LocalHistoryMemory, DropsInOrderOfLastUseButNeverTheNewest) {
  HistoryMemory memory;
  LruLink a, b, c;
  EXPECT_EQ(memory.least_recent(), nullptr);
  memory.touch(a);
  EXPECT_EQ(memory.least_recent(), nullptr) << "the only one is the one in use";
  memory.touch(b);
  memory.touch(c);
  EXPECT_EQ(memory.least_recent(), &a);
  memory.touch(a);  // used again
  EXPECT_EQ(memory.least_recent(), &b);
  memory.touch(a);  // already the newest: nothing changes
  EXPECT_EQ(memory.least_recent(), &b);
  memory.remove(b);
  EXPECT_FALSE(b.linked);
  EXPECT_EQ(memory.least_recent(), &c);
  memory.remove(c);
  EXPECT_EQ(memory.least_recent(), nullptr);
  memory.remove(a);
  memory.touch(c);  // a link removed and used again is the newest
  memory.touch(a);
  EXPECT_EQ(memory.least_recent(), &c);
}

TEST(LocalHistoryMemory, IsOverItsLimitOnlyWithOne) {
  HistoryMemory memory;
  memory.add_bytes(1000);
  EXPECT_FALSE(memory.over_limit()) << "limit 0: none";
  memory.set_limit(999);
  EXPECT_TRUE(memory.over_limit());
  memory.add_bytes(-1);
  EXPECT_FALSE(memory.over_limit());
  EXPECT_EQ(memory.bytes(), 999u);
}
