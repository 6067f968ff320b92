// broker-local's per-channel history (plugins/broker-local/history_ring.h): offsets 1, 2, 3 ...,
// bounded by count and age, the origin kept, and after(since) as resume reads it
// (docs/PROTOCOL.md, Resume).
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "history_ring.h"

using flowrelay::local::HistoryRing;

namespace {

std::vector<uint64_t> offsets(const std::vector<flowrelay_message>& messages) {
  std::vector<uint64_t> out;
  for (const auto& m : messages) out.push_back(m.offset);
  return out;
}

// A message as publish() gets it; `data` must outlive the call of append().
flowrelay_message message(flowrelay_lane lane, const std::string& data,
                          flowrelay_origin origin = {7, 0, 0}) {
  return {sizeof(flowrelay_message), lane, 0, {nullptr, 0}, origin, {data.data(), data.size()}};
}

std::vector<uint64_t> range(uint64_t first, uint64_t last) {
  std::vector<uint64_t> out;
  for (uint64_t o = first; o <= last; ++o) out.push_back(o);
  return out;
}

// A ring of `n` messages "m1".."mN" appended at 1000, 1001, ... ms, bounded at `max_size`.
HistoryRing filled(uint64_t n, size_t max_size = 100) {
  HistoryRing ring("ep-1");
  for (uint64_t i = 1; i <= n; ++i)
    ring.append(message(FLOWRELAY_LANE_MESSAGE, "m" + std::to_string(i)),
                1000 + static_cast<int64_t>(i), max_size);
  return ring;
}

}  // namespace

TEST(HistoryRing, EmptyRingHasNothing) {
  HistoryRing ring("e");
  EXPECT_EQ(ring.epoch(), "e");
  EXPECT_EQ(ring.top(), 0u);
  EXPECT_TRUE(ring.after(0).empty());
}

TEST(HistoryRing, AppendGivesOffsetsFromOne) {
  HistoryRing ring("ep-1");
  for (uint64_t i = 1; i <= 5; ++i)
    EXPECT_EQ(ring.append(message(i % 2 ? FLOWRELAY_LANE_MESSAGE : FLOWRELAY_LANE_LOG,
                                  "m" + std::to_string(i), {7, i, 0}),
                          100, 10),
              i);
  EXPECT_EQ(ring.top(), 5u);
  EXPECT_EQ(ring.last_at_ms(), 100);
  const auto all = ring.after(0);
  ASSERT_EQ(offsets(all), range(1, 5));
  for (const auto& m : all) {
    EXPECT_EQ(m.struct_size, sizeof(flowrelay_message));
    EXPECT_EQ(m.lane, static_cast<flowrelay_lane>(m.offset % 2 ? FLOWRELAY_LANE_MESSAGE
                                                               : FLOWRELAY_LANE_LOG))
        << "offset " << m.offset << " lost its lane";
    EXPECT_EQ(std::string(m.data.ptr, m.data.len), "m" + std::to_string(m.offset));
    EXPECT_EQ(std::string(m.epoch.ptr, m.epoch.len), "ep-1");
    EXPECT_EQ(m.origin.node, 7u);
    EXPECT_EQ(m.origin.session, m.offset) << "offset " << m.offset << " lost its origin";
  }
}

// The ring keeps its own copy: the publisher's buffer may change right after append().
TEST(HistoryRing, AppendCopiesTheData) {
  HistoryRing ring("e");
  std::string data = "original";
  ring.append(message(FLOWRELAY_LANE_MESSAGE, data), 1, 10);
  data.assign("changed!");
  const auto kept = ring.after(0);
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(std::string(kept[0].data.ptr, kept[0].data.len), "original");
}

TEST(HistoryRing, MaxSizeKeepsTheNewest) {
  HistoryRing ring = filled(10, 3);
  EXPECT_EQ(ring.top(), 10u) << "trimming must not reuse offsets";
  const auto kept = ring.after(0);
  ASSERT_EQ(offsets(kept), range(8, 10));
  EXPECT_EQ(std::string(kept[0].data.ptr, kept[0].data.len), "m8");
}

TEST(HistoryRing, AfterReturnsTheContiguousOffsetsAboveSince) {
  HistoryRing ring = filled(10);
  EXPECT_EQ(offsets(ring.after(4)), range(5, 10));
  EXPECT_EQ(offsets(ring.after(9)), range(10, 10));
  EXPECT_EQ(offsets(ring.after(0)), range(1, 10));
}

// Resume: a first offset of since + 1 means recovered; a larger one means the gap was trimmed.
TEST(HistoryRing, SinceBeforeTheOldestKeptReturnsAllKept) {
  HistoryRing ring = filled(10, 3);  // keeps 8, 9, 10
  const auto from2 = ring.after(2);
  ASSERT_EQ(offsets(from2), range(8, 10));
  EXPECT_GT(from2.front().offset, 2u + 1) << "the caller must see the gap";
  EXPECT_EQ(offsets(ring.after(0)), range(8, 10));
  const auto from7 = ring.after(7);
  ASSERT_EQ(offsets(from7), range(8, 10));
  EXPECT_EQ(from7.front().offset, 7u + 1) << "no gap: recovered";
}

TEST(HistoryRing, SinceAtOrPastTheTopIsEmpty) {
  HistoryRing ring = filled(10);
  EXPECT_TRUE(ring.after(10).empty());
  EXPECT_TRUE(ring.after(11).empty());
  EXPECT_TRUE(ring.after(UINT64_MAX).empty());
}

TEST(HistoryRing, TrimOlderThanDropsOnlyOlderMessages) {
  HistoryRing ring = filled(5);  // at 1001 .. 1005 ms
  ring.trim_older_than(1003);
  EXPECT_EQ(offsets(ring.after(0)), range(3, 5)) << "a message exactly at the bound is kept";
  EXPECT_EQ(ring.top(), 5u);
  ring.trim_older_than(1003);
  EXPECT_EQ(offsets(ring.after(0)), range(3, 5));
  ring.trim_older_than(2000);
  EXPECT_TRUE(ring.after(0).empty());
  EXPECT_EQ(ring.top(), 5u) << "trimming everything keeps the epoch's offsets going";
  EXPECT_EQ(ring.append(message(FLOWRELAY_LANE_MESSAGE, "m6"), 2001, 100), 6u);
  EXPECT_EQ(offsets(ring.after(0)), range(6, 6));
  EXPECT_EQ(offsets(ring.after(3)), range(6, 6));
}
