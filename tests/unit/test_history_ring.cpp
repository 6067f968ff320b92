// broker-local's per-channel history of plain messages (plugins/broker-local/channel_history.h):
// offsets 1, 2, 3 ..., bounded by count, bytes and age, the origin kept, `trimmed` exact, and
// reads as resume does them (docs/PROTOCOL.md, Resume). Reply streams: test_local_replies.cpp.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "channel_history.h"

using flowrelay::local::ChannelHistory;
using flowrelay::local::HistoryBounds;
using flowrelay::local::HistoryView;
using flowrelay::local::kEntryOverhead;

namespace {

// A message as publish() gets it; `data` must outlive the call of append().
flowrelay_message message(flowrelay_lane lane, const std::string& data,
                          flowrelay_origin origin = {7, 0, 0}) {
  return {sizeof(flowrelay_message),  lane,   0, {nullptr, 0}, origin,
          {data.data(), data.size()}, nullptr};
}

HistoryBounds entries(size_t n) { return {n, UINT64_MAX}; }

// The read of a history: views valid while `view` and the history are unchanged.
std::vector<flowrelay_message> after(const ChannelHistory& h, uint64_t since, HistoryView& view) {
  h.read_after(since, view);
  return view.messages;
}

std::vector<uint64_t> offsets(const ChannelHistory& h, uint64_t since) {
  HistoryView view;
  std::vector<uint64_t> out;
  for (const auto& m : after(h, since, view)) out.push_back(m.offset);
  return out;
}

std::vector<uint64_t> range(uint64_t first, uint64_t last) {
  std::vector<uint64_t> out;
  for (uint64_t o = first; o <= last; ++o) out.push_back(o);
  return out;
}

// A history of `n` messages "m1".."mN" appended at 1001, 1002, ... ms, bounded at `max_size`.
std::unique_ptr<ChannelHistory> filled(uint64_t n, size_t max_size = 100) {
  auto h = std::make_unique<ChannelHistory>("ep-1");
  for (uint64_t i = 1; i <= n; ++i)
    h->append(message(FLOWRELAY_LANE_MESSAGE, "m" + std::to_string(i)),
              1000 + static_cast<int64_t>(i), entries(max_size));
  return h;
}

}  // namespace

TEST(HistoryRing, EmptyRingHasNothing) {
  ChannelHistory h("e");
  EXPECT_EQ(h.epoch(), "e");
  EXPECT_EQ(h.top(), 0u);
  EXPECT_EQ(h.trimmed(), 0u);
  EXPECT_TRUE(offsets(h, 0).empty());
}

TEST(HistoryRing, AppendGivesOffsetsFromOne) {
  ChannelHistory h("ep-1");
  for (uint64_t i = 1; i <= 5; ++i)
    EXPECT_EQ(h.append(message(i % 2 ? FLOWRELAY_LANE_MESSAGE : FLOWRELAY_LANE_LOG,
                               "m" + std::to_string(i), {7, i, 0}),
                       100, entries(10)),
              i);
  EXPECT_EQ(h.top(), 5u);
  EXPECT_EQ(h.last_at_ms(), 100);
  HistoryView view;
  const auto all = after(h, 0, view);
  ASSERT_EQ(all.size(), 5u);
  for (const auto& m : all) {
    EXPECT_EQ(m.struct_size, sizeof(flowrelay_message));
    EXPECT_EQ(m.lane, static_cast<flowrelay_lane>(m.offset % 2 ? FLOWRELAY_LANE_MESSAGE
                                                               : FLOWRELAY_LANE_LOG))
        << "offset " << m.offset << " lost its lane";
    EXPECT_EQ(std::string(m.data.ptr, m.data.len), "m" + std::to_string(m.offset));
    EXPECT_EQ(std::string(m.epoch.ptr, m.epoch.len), "ep-1");
    EXPECT_EQ(m.origin.node, 7u);
    EXPECT_EQ(m.origin.session, m.offset) << "offset " << m.offset << " lost its origin";
    EXPECT_EQ(m.reply, nullptr) << "a plain message has no reply info";
  }
}

// The history keeps its own copy: the publisher's buffer may change right after append().
TEST(HistoryRing, AppendCopiesTheData) {
  ChannelHistory h("e");
  std::string data = "original";
  h.append(message(FLOWRELAY_LANE_MESSAGE, data), 1, entries(10));
  data.assign("changed!");
  HistoryView view;
  const auto kept = after(h, 0, view);
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(std::string(kept[0].data.ptr, kept[0].data.len), "original");
}

TEST(HistoryRing, MaxSizeKeepsTheNewestAndSaysWhatWasTrimmed) {
  auto h = filled(10, 3);
  EXPECT_EQ(h->top(), 10u) << "trimming must not reuse offsets";
  EXPECT_EQ(offsets(*h, 0), range(8, 10));
  EXPECT_EQ(h->trimmed(), 7u) << "the newest offset dropped";
  EXPECT_EQ(h->entries(), 3u);
}

TEST(HistoryRing, AfterReturnsTheOffsetsAboveSince) {
  auto h = filled(10);
  EXPECT_EQ(offsets(*h, 4), range(5, 10));
  EXPECT_EQ(offsets(*h, 9), range(10, 10));
  EXPECT_EQ(offsets(*h, 0), range(1, 10));
  EXPECT_EQ(h->trimmed(), 0u);
}

// Resume: since >= trimmed means recovered; below it, the reader missed what was trimmed.
TEST(HistoryRing, SinceBeforeTheOldestKeptReturnsAllKept) {
  auto h = filled(10, 3);  // keeps 8, 9, 10
  EXPECT_EQ(offsets(*h, 2), range(8, 10));
  EXPECT_LT(2u, h->trimmed()) << "the caller must see the gap";
  EXPECT_EQ(offsets(*h, 7), range(8, 10));
  EXPECT_GE(7u, h->trimmed()) << "no gap: recovered";
}

TEST(HistoryRing, SinceAtOrPastTheTopIsEmpty) {
  auto h = filled(10);
  EXPECT_TRUE(offsets(*h, 10).empty());
  EXPECT_TRUE(offsets(*h, 11).empty());
  EXPECT_TRUE(offsets(*h, UINT64_MAX).empty());
}

TEST(HistoryRing, TrimOlderThanDropsOnlyOlderMessages) {
  auto h = filled(5);  // at 1001 .. 1005 ms
  h->trim_older_than(1003);
  EXPECT_EQ(offsets(*h, 0), range(3, 5)) << "a message exactly at the bound is kept";
  EXPECT_EQ(h->trimmed(), 2u);
  EXPECT_EQ(h->top(), 5u);
  h->trim_older_than(1003);
  EXPECT_EQ(offsets(*h, 0), range(3, 5));
  h->trim_older_than(2000);
  EXPECT_TRUE(offsets(*h, 0).empty());
  EXPECT_EQ(h->trimmed(), 5u);
  EXPECT_EQ(h->top(), 5u) << "trimming everything keeps the epoch's offsets going";
  EXPECT_EQ(h->append(message(FLOWRELAY_LANE_MESSAGE, "m6"), 2001, entries(100)), 6u);
  EXPECT_EQ(offsets(*h, 0), range(6, 6));
  EXPECT_EQ(offsets(*h, 3), range(6, 6));
}

TEST(HistoryRing, MaxBytesDropsTheOldestFirst) {
  ChannelHistory h("e");
  const HistoryBounds bounds{100, 10};
  const std::string four(4, 'x');
  for (int i = 0; i < 3; ++i) h.append(message(FLOWRELAY_LANE_MESSAGE, four), 1, bounds);
  EXPECT_EQ(offsets(h, 0), range(2, 3)) << "12 bytes > 10: the oldest went";
  EXPECT_EQ(h.data_bytes(), 8u);
  EXPECT_EQ(h.trimmed(), 1u);
  h.append(message(FLOWRELAY_LANE_MESSAGE, std::string(9, 'y')), 2, bounds);
  EXPECT_EQ(offsets(h, 0), range(4, 4));
  EXPECT_EQ(h.trimmed(), 3u);
  // A message larger than the bound alone is not kept, and trimmed says so.
  h.append(message(FLOWRELAY_LANE_MESSAGE, std::string(11, 'z')), 3, bounds);
  EXPECT_TRUE(offsets(h, 0).empty());
  EXPECT_EQ(h.trimmed(), 5u);
  EXPECT_EQ(h.data_bytes(), 0u);
}

TEST(HistoryRing, MemoryBytesAreDataPlusAnOverheadPerEntry) {
  auto h = filled(3);  // "m1", "m2", "m3"
  EXPECT_EQ(h->data_bytes(), 6u);
  EXPECT_EQ(h->memory_bytes(), 6u + 3 * kEntryOverhead);
  h->enforce(entries(1));  // a bound lowered by a reload
  EXPECT_EQ(h->memory_bytes(), 2u + kEntryOverhead);
  EXPECT_EQ(h->trimmed(), 2u);
}
