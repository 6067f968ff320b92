// The seam between a history read and live delivery (plugins/common/seam_replay.h), shared by
// the transport's resume and broker-redis' gap fill: what is held, what the answer decides,
// what is released or dropped at the seam, and when the seam closes.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "seam_replay.h"

namespace flowrelay {
namespace {

// A held item as an owner might keep it: a name, and its place (epoch "" when the owner's items
// do not carry one, as the transport's frames).
struct Item {
  std::string name;
  uint64_t offset = 0;
  std::string epoch;
};
struct ItemPosition {
  SeamPosition operator()(const Item& i) const { return {i.offset, i.epoch}; }
};
using Seam = SeamReplay<Item, ItemPosition>;

SeamAnswer answer(std::string_view epoch, uint64_t top, uint64_t first = 0, uint64_t last = 0) {
  return {true, epoch, top, first, last};
}

struct Released {
  std::vector<std::string> kept, dropped;
};
Released release(Seam& seam) {
  Released r;
  seam.release([&](Item&& i) { r.kept.push_back(i.name); },
               [&](Item&& i) { r.dropped.push_back(i.name); });
  return r;
}

using Names = std::vector<std::string>;

TEST(SeamReplay, HoldsOnlyBetweenBeginAndSettle) {
  Seam seam;
  EXPECT_FALSE(seam.holding());
  seam.begin(3, "e");
  EXPECT_TRUE(seam.holding());
  seam.hold({"a", 4, "e"}, 10);
  seam.hold({"b", 5, "e"}, 7);
  EXPECT_EQ(seam.held_count(), 2u);
  EXPECT_EQ(seam.held_bytes(), 17u);
  seam.settle(answer("e", 5, 4, 5));
  EXPECT_FALSE(seam.holding());
  release(seam);
  EXPECT_EQ(seam.held_count(), 0u);
  EXPECT_EQ(seam.held_bytes(), 0u);
}

TEST(SeamReplay, RecoveredReplaysPastSinceAndDropsWhatTheReplayCarried) {
  Seam seam;
  seam.begin(3, "e");
  // Live again after joining: 5 and 6 were published before the read ran, 7 after.
  for (const Item& i :
       {Item{"5", 5, "e"}, Item{"raw", 0, ""}, Item{"6", 6, "e"}, Item{"7", 7, "e"}})
    seam.hold(i, 1);
  const auto v = seam.settle(answer("e", 6, 4, 6));
  ASSERT_EQ(v.result, SeamResult::Recovered);
  EXPECT_TRUE(v.recovered());
  EXPECT_EQ(v.replay_after, 3u);
  EXPECT_EQ(seam.seam_offset(), 6u);
  EXPECT_EQ(seam.seam_epoch(), "e");
  const Released r = release(seam);
  EXPECT_EQ(r.kept, (Names{"raw", "7"})) << "raw items are never dropped";
  EXPECT_EQ(r.dropped, (Names{"5", "6"}));
  // The first newer item closed the seam: nothing more is taken for a repeat.
  EXPECT_FALSE(seam.repeats({6, "e"}));
}

TEST(SeamReplay, LiveItemsAfterTheReleaseRepeatUntilTheFirstNewerOne) {
  Seam seam;
  seam.begin(0, "");
  seam.settle(answer("e", 4, 1, 4));
  EXPECT_TRUE(release(seam).kept.empty());
  EXPECT_TRUE(seam.repeats({3, "e"})) << "a live copy of what the replay sent";
  EXPECT_FALSE(seam.repeats({0, ""})) << "raw: passes, the seam stays";
  EXPECT_TRUE(seam.repeats({4, ""})) << "no epoch: taken to be the answer's";
  EXPECT_FALSE(seam.repeats({5, "e"}));
  EXPECT_FALSE(seam.repeats({2, "e"})) << "closed for good";
}

TEST(SeamReplay, DecidesFromTheAnswer) {
  struct Case {
    uint64_t since;
    std::string reader_epoch;
    bool ok;
    std::string epoch;
    uint64_t top, first;
    SeamResult expected;
  };
  const Case cases[] = {
      {5, "e", true, "e", 9, 6, SeamResult::Recovered},
      {5, "e", true, "e", 9, 4, SeamResult::Recovered},  // more than asked: replay_after filters
      {5, "e", true, "e", 5, 0, SeamResult::Recovered},  // nothing missed
      {5, "e", true, "e", 9, 7, SeamResult::Trimmed},
      {5, "e", true, "e", 9, 0, SeamResult::Trimmed},  // all of it trimmed
      {5, "e", true, "f", 9, 1, SeamResult::Reset},
      {5, "e", true, "", 0, 0, SeamResult::Gone},
      {0, "", true, "", 0, 0, SeamResult::Recovered},  // never any history: nothing to miss
      {3, "", true, "", 0, 0, SeamResult::Gone},
      {0, "", true, "f", 2, 1, SeamResult::Recovered},  // no epoch known: any epoch is new
      {9, "e", true, "e", 5, 0, SeamResult::Ahead},
      {5, "e", false, "e", 9, 6, SeamResult::Failed},
  };
  for (const Case& c : cases) {
    Seam seam;
    seam.begin(c.since, c.reader_epoch);
    SeamAnswer a = answer(c.epoch, c.top, c.first, c.first ? c.top : 0);
    a.ok = c.ok;
    EXPECT_EQ(seam.settle(a).result, c.expected)
        << "since " << c.since << " of '" << c.reader_epoch << "', answer '" << c.epoch << "' top "
        << c.top << " first " << c.first;
  }
}

// The transport's resume: a reader told "recovered":false now stands at the answer's top.
TEST(SeamReplay, JumpToTopDropsWhatTheTopCovers) {
  Seam seam(SeamUnrecovered::JumpToTop);
  seam.begin(5, "e");
  for (const Item& i : {Item{"100", 100, ""}, Item{"101", 101, ""}}) seam.hold(i, 1);
  const auto v = seam.settle(answer("e", 100, 51, 100));  // 6..50 trimmed
  EXPECT_EQ(v.result, SeamResult::Trimmed);
  EXPECT_EQ(seam.seam_offset(), 100u);
  const Released r = release(seam);
  EXPECT_EQ(r.kept, (Names{"101"}));
  EXPECT_EQ(r.dropped, (Names{"100"}));
}

// The broker's gap fill: live sessions cannot be told, so they keep their place and get every
// newer held item; the known hole is counted.
TEST(SeamReplay, KeepPlaceReleasesEverythingNewerThanThePlace) {
  Seam seam(SeamUnrecovered::KeepPlace);
  seam.begin(5, "e");
  for (const Item& i : {Item{"5", 5, "e"}, Item{"100", 100, "e"}, Item{"101", 101, "e"}})
    seam.hold(i, 1);
  const auto v = seam.settle(answer("e", 100, 51, 100));
  EXPECT_EQ(v.result, SeamResult::Trimmed);
  EXPECT_EQ(v.lost, 94u) << "6..99: 100 arrived live";
  const Released r = release(seam);
  EXPECT_EQ(r.kept, (Names{"100", "101"}));
  EXPECT_EQ(r.dropped, (Names{"5"}));
}

TEST(SeamReplay, AResetKeepsTheNewEpochsItemsAndCountsItsMissedOffsets) {
  Seam seam(SeamUnrecovered::KeepPlace);
  seam.begin(5, "old");
  for (const Item& i : {Item{"new 3", 3, "new"}, Item{"new 4", 4, "new"}}) seam.hold(i, 1);
  const auto v = seam.settle(answer("new", 4));
  EXPECT_EQ(v.result, SeamResult::Reset);
  EXPECT_EQ(v.lost, 2u) << "offsets 1 and 2 of the new epoch";
  EXPECT_EQ(release(seam).kept, (Names{"new 3", "new 4"})) << "offsets of another epoch";
}

TEST(SeamReplay, AFailedReadCountsOnlyWhatArrivedLive) {
  Seam seam(SeamUnrecovered::KeepPlace);
  seam.begin(5, "e");
  for (const Item& i : {Item{"raw", 0, ""}, Item{"8", 8, "e"}}) seam.hold(i, 1);
  const auto v = seam.settle({});
  EXPECT_EQ(v.result, SeamResult::Failed);
  EXPECT_EQ(v.lost, 2u) << "6 and 7";
  EXPECT_EQ(release(seam).kept, (Names{"raw", "8"}));

  Seam nothing_held(SeamUnrecovered::KeepPlace);
  nothing_held.begin(5, "e");
  EXPECT_EQ(nothing_held.settle({}).lost, 0u) << "nothing tells what was missed";
}

TEST(SeamReplay, PastTheTopTheSeamIsTheTop) {
  for (auto policy : {SeamUnrecovered::KeepPlace, SeamUnrecovered::JumpToTop}) {
    Seam seam(policy);
    seam.begin(8, "e");
    seam.hold({"6", 6, "e"}, 1);
    EXPECT_EQ(seam.settle(answer("e", 5, 1, 5)).result, SeamResult::Ahead);
    EXPECT_EQ(seam.seam_offset(), 5u);
    EXPECT_EQ(release(seam).kept, (Names{"6"}));
  }
}

TEST(SeamReplay, ABeginWhileHoldingKeepsWhatIsHeld) {
  Seam seam;
  seam.begin(1, "e");
  seam.hold({"3", 3, "e"}, 1);
  seam.begin(1, "e");  // the read was superseded: the new one covers what is held too
  seam.hold({"5", 5, "e"}, 1);
  EXPECT_EQ(seam.held_count(), 2u);
  ASSERT_TRUE(seam.settle(answer("e", 4, 2, 4)).recovered());
  const Released r = release(seam);
  EXPECT_EQ(r.kept, (Names{"5"}));
  EXPECT_EQ(r.dropped, (Names{"3"}));
}

TEST(SeamReplay, ClearHandsEveryHeldItemBack) {
  Seam seam;
  seam.begin(0, "");
  seam.hold({"a", 1, ""}, 3);
  seam.hold({"b", 2, ""}, 4);
  Names disposed;
  seam.clear([&](Item&& i) { disposed.push_back(i.name); });
  EXPECT_EQ(disposed, (Names{"a", "b"}));
  EXPECT_FALSE(seam.holding());
  EXPECT_EQ(seam.held_bytes(), 0u);
  EXPECT_FALSE(seam.repeats({1, ""}));
}

}  // namespace
}  // namespace flowrelay
