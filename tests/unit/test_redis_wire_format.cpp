// broker-redis wire format (plugins/broker-redis/wire_format.h): what a replica makes of a
// payload on a Redis channel. Anything not exactly in the form is a raw external PUBLISH.
#include <gtest/gtest.h>

#include <string>

#include "wire_format.h"

namespace flowrelay::redis {
namespace {

using namespace std::string_literals;

void expect_raw(const std::string& payload) {
  const WireMessage m = decode_wire(payload);
  EXPECT_EQ(m.lane, static_cast<flowrelay_lane>(FLOWRELAY_LANE_MESSAGE)) << payload;
  EXPECT_EQ(m.offset, 0u) << payload;
  EXPECT_TRUE(m.epoch.empty()) << payload;
  EXPECT_EQ(m.data, payload) << "raw data must be the whole payload";
}

TEST(RedisWireFormat, DecodesWhatItEncodes) {
  const std::string data = "line 1\nline 2\0\x1e"s;
  const std::string wire = encode_wire(FLOWRELAY_LANE_LOG, 17, "m3k9x2-1f", data);
  EXPECT_EQ(wire,
            "\x1e"
            "fr1 l 17 m3k9x2-1f\n"s +
                data);
  const WireMessage m = decode_wire(wire);
  EXPECT_EQ(m.lane, static_cast<flowrelay_lane>(FLOWRELAY_LANE_LOG));
  EXPECT_EQ(m.offset, 17u);
  EXPECT_EQ(m.epoch, "m3k9x2-1f");
  EXPECT_EQ(m.data, data);
}

TEST(RedisWireFormat, MessageLaneAndEmptyData) {
  const WireMessage m = decode_wire(
      "\x1e"
      "fr1 m 18446744073709551615 e\n");
  EXPECT_EQ(m.lane, static_cast<flowrelay_lane>(FLOWRELAY_LANE_MESSAGE));
  EXPECT_EQ(m.offset, 18446744073709551615u);
  EXPECT_EQ(m.epoch, "e");
  EXPECT_EQ(m.data, "");
}

// A log-lane message of a broker without history: offset 0 and no epoch.
TEST(RedisWireFormat, OffsetZeroWithoutEpoch) {
  EXPECT_EQ(encode_wire(FLOWRELAY_LANE_LOG, 0, "", "x"),
            "\x1e"
            "fr1 l 0 \nx");
  const WireMessage m = decode_wire(
      "\x1e"
      "fr1 l 0 \nx");
  EXPECT_EQ(m.lane, static_cast<flowrelay_lane>(FLOWRELAY_LANE_LOG));
  EXPECT_EQ(m.offset, 0u);
  EXPECT_EQ(m.epoch, "");
  EXPECT_EQ(m.data, "x");
}

TEST(RedisWireFormat, PlainTextIsRaw) {
  expect_raw("");
  expect_raw("hello");
  expect_raw("fr1 m 1 e\nno record separator");
  expect_raw(
      " \x1e"
      "fr1 m 1 e\nnot at the start");
}

TEST(RedisWireFormat, MalformedHeadersAreRaw) {
  for (const std::string& payload : {
           "\x1e"
           "fr1 m 1 e"s,  // no newline
           "\x1e"
           "fr1 m 1 e no newline at all"s,
           "\x1e"
           "fr1 x 1 e\ndata"s,  // unknown lane
           "\x1e"
           "fr1 mm 1 e\ndata"s,
           "\x1e"
           "fr1 m 1a e\ndata"s,  // non-digit offset
           "\x1e"
           "fr1 m -1 e\ndata"s,
           "\x1e"
           "fr1 m +1 e\ndata"s,
           "\x1e"
           "fr1 m  1 e\ndata"s,
           "\x1e"
           "fr1 m e\ndata"s,  // no offset
           "\x1e"
           "fr1 m 1\ndata"s,  // no epoch separator
           "\x1e"
           "fr1 m 99999999999999999999 e\ndata"s,  // offset overflows 64 bits
           "\x1e"
           "fr1 m 1 \ndata"s,  // offset without epoch
           "\x1e"
           "fr1 m 0 e\ndata"s,  // epoch without offset
           "\x1e"
           "fr1 m 1 E\ndata"s,  // epoch outside [0-9a-z-]
           "\x1e"
           "fr1 m 1 a b\ndata"s,
           "\x1e"
           "fr1 m 1 "s +
               std::string(65, 'a') + "\ndata",  // epoch too long
           "\x1e"
           "fr2 m 1 e\ndata"s,  // another version
           "\x1e"
           "fr1\n"s,
       })
    expect_raw(payload);
}

TEST(RedisWireFormat, OnlyMessageAndLogLanesHaveAWireName) {
  EXPECT_EQ(wire_lane(FLOWRELAY_LANE_MESSAGE), 'm');
  EXPECT_EQ(wire_lane(FLOWRELAY_LANE_LOG), 'l');
  EXPECT_FALSE(wire_lane(2).has_value());
}

}  // namespace
}  // namespace flowrelay::redis
