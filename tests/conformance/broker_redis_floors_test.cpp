// broker-redis' per-channel floors (channel_floors.h): what the regression fence compares a
// channel's history against. Newer epochs replace, the same epoch only moves forward, and the
// sweep keeps the map bounded by activity.
#include <gtest/gtest.h>

#include "channel_floors.h"

namespace flowrelay::redis {
namespace {

TEST(ChannelFloors, TheSameEpochOnlyMovesForwardAndANewOneReplaces) {
  ChannelFloors floors;
  EXPECT_EQ(floors.find("a"), nullptr);
  floors.note("a", "e1", 5, 100);
  floors.note("a", "e1", 3, 110);  // a resend answered with its first offset: not a step back
  ASSERT_NE(floors.find("a"), nullptr);
  EXPECT_EQ(floors.find("a")->epoch, "e1");
  EXPECT_EQ(floors.find("a")->offset, 5u);
  floors.note("a", "e2", 1, 120);  // the history started over (a fence, expiry, a restart)
  EXPECT_EQ(floors.find("a")->epoch, "e2");
  EXPECT_EQ(floors.find("a")->offset, 1u);
}

TEST(ChannelFloors, NothingToNoteWithoutAnEpochOrOffset) {
  ChannelFloors floors;
  floors.note("plain", "", 0, 100);  // a publish without history
  floors.note("plain", "e1", 0, 100);
  EXPECT_EQ(floors.size(), 0u);
}

TEST(ChannelFloors, TheSweepDropsChannelsQuietSinceTheCutoff) {
  ChannelFloors floors;
  floors.note("old", "e1", 1, 100);
  floors.note("busy", "e1", 1, 100);
  floors.note("busy", "e1", 2, 900);
  floors.sweep(500);
  EXPECT_EQ(floors.find("old"), nullptr);
  ASSERT_NE(floors.find("busy"), nullptr);
  EXPECT_EQ(floors.find("busy")->offset, 2u);
}

}  // namespace
}  // namespace flowrelay::redis
