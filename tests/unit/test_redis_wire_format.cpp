// broker-redis wire format (plugins/broker-redis/wire_format.h): what a replica makes of a
// payload on a Redis channel. Anything not exactly in the form is a raw external PUBLISH.
#include <gtest/gtest.h>

#include <string>

#include "wire_format.h"

namespace flowrelay::redis {
namespace {

using namespace std::string_literals;

const std::string kPrefix =
    "\x1e"
    "fr2 ";

void expect_raw(const std::string& payload) {
  const WireMessage m = decode_wire(payload);
  EXPECT_EQ(m.lane, static_cast<flowrelay_lane>(FLOWRELAY_LANE_MESSAGE)) << payload;
  EXPECT_EQ(m.offset, 0u) << payload;
  EXPECT_TRUE(m.epoch.empty()) << payload;
  EXPECT_EQ(m.origin.node, 0u) << payload;
  EXPECT_EQ(m.origin.session, 0u) << payload;
  EXPECT_EQ(m.origin.seq, 0u) << payload;
  EXPECT_EQ(m.data, payload) << "raw data must be the whole payload";
}

TEST(RedisWireFormat, DecodesWhatItEncodes) {
  const std::string data = "line 1\nline 2\0\x1e"s;
  const std::string wire =
      encode_wire(FLOWRELAY_LANE_LOG, 17, "m3k9x2-1f", {18446744073709551615u, 7, 3}, data);
  EXPECT_EQ(wire, kPrefix + "l 17 18446744073709551615 7 3 m3k9x2-1f\n" + data);
  const WireMessage m = decode_wire(wire);
  EXPECT_EQ(m.lane, static_cast<flowrelay_lane>(FLOWRELAY_LANE_LOG));
  EXPECT_EQ(m.offset, 17u);
  EXPECT_EQ(m.epoch, "m3k9x2-1f");
  EXPECT_EQ(m.origin.node, 18446744073709551615u);
  EXPECT_EQ(m.origin.session, 7u);
  EXPECT_EQ(m.origin.seq, 3u);
  EXPECT_EQ(m.data, data);
}

// What the append script writes (history_scripts.h builds the same line in Lua).
TEST(RedisWireFormat, DecodesTheScriptsForm) {
  const std::string payload = kPrefix + "m 18446744073709551615 12 0 9 e\n";  // m views it
  const WireMessage m = decode_wire(payload);
  EXPECT_EQ(m.lane, static_cast<flowrelay_lane>(FLOWRELAY_LANE_MESSAGE));
  EXPECT_EQ(m.offset, 18446744073709551615u);
  EXPECT_EQ(m.epoch, "e");
  EXPECT_EQ(m.origin.node, 12u);
  EXPECT_EQ(m.origin.session, 0u) << "the publish API has no session";
  EXPECT_EQ(m.origin.seq, 9u);
  EXPECT_EQ(m.data, "");
}

// A message of a broker without history: offset 0 and no epoch, the origin still there (the
// subscribers' echo suppression and resend drop need it).
TEST(RedisWireFormat, OffsetZeroWithoutEpochKeepsTheOrigin) {
  EXPECT_EQ(encode_wire(FLOWRELAY_LANE_MESSAGE, 0, "", {5, 6, 7}, "x"), kPrefix + "m 0 5 6 7 \nx");
  const std::string payload = kPrefix + "m 0 5 6 7 \nx";  // m views it
  const WireMessage m = decode_wire(payload);
  EXPECT_EQ(m.offset, 0u);
  EXPECT_EQ(m.epoch, "");
  EXPECT_EQ(m.origin.node, 5u);
  EXPECT_EQ(m.origin.session, 6u);
  EXPECT_EQ(m.origin.seq, 7u);
  EXPECT_EQ(m.data, "x");
}

TEST(RedisWireFormat, ToMessageCarriesEveryField) {
  const std::string wire = encode_wire(FLOWRELAY_LANE_LOG, 4, "ep", {1, 2, 3}, "data");
  const flowrelay_message m = to_message(decode_wire(wire));
  EXPECT_EQ(m.struct_size, sizeof(flowrelay_message));
  EXPECT_EQ(m.lane, static_cast<flowrelay_lane>(FLOWRELAY_LANE_LOG));
  EXPECT_EQ(m.offset, 4u);
  EXPECT_EQ(std::string(m.epoch.ptr, m.epoch.len), "ep");
  EXPECT_EQ(m.origin.node, 1u);
  EXPECT_EQ(m.origin.session, 2u);
  EXPECT_EQ(m.origin.seq, 3u);
  EXPECT_EQ(std::string(m.data.ptr, m.data.len), "data");
}

TEST(RedisWireFormat, PlainTextIsRaw) {
  expect_raw("");
  expect_raw("hello");
  expect_raw("fr2 m 1 0 0 0 e\nno record separator");
  expect_raw(" " + kPrefix + "m 1 0 0 0 e\nnot at the start");
}

TEST(RedisWireFormat, MalformedHeadersAreRaw) {
  for (const std::string& header : {
           "m 1 0 0 0 e"s,  // no newline
           "m 1 0 0 0 e no newline at all"s,
           "x 1 0 0 0 e\ndata"s,  // unknown lane
           "mm 1 0 0 0 e\ndata"s,
           "m 1a 0 0 0 e\ndata"s,  // non-digit offset
           "m -1 0 0 0 e\ndata"s,
           "m +1 0 0 0 e\ndata"s,
           "m  1 0 0 0 e\ndata"s,
           "m 1 -2 0 0 e\ndata"s,                    // negative origin node
           "m 1 0 +3 0 e\ndata"s,                    // signed session
           "m 1 0 0 x e\ndata"s,                     // non-digit seq
           "m 1 0 0 e\ndata"s,                       // an origin field missing
           "m 1 0 0 0\ndata"s,                       // no epoch separator
           "m e\ndata"s,                             // no offset
           "m 99999999999999999999 0 0 0 e\ndata"s,  // offset overflows 64 bits
           "m 1 18446744073709551616 0 0 e\ndata"s,  // node overflows 64 bits
           "m 1 0 0 0 \ndata"s,                      // offset without epoch
           "m 0 0 0 0 e\ndata"s,                     // epoch without offset
           "m 1 0 0 0 E\ndata"s,                     // epoch outside [0-9a-z-]
           "m 1 0 0 0 a b\ndata"s,
           "m 1 0 0 0 "s + std::string(65, 'a') + "\ndata",  // epoch too long
           "\n"s,
       })
    expect_raw(kPrefix + header);
  // Another version of the form (fr1 had no origin).
  expect_raw(
      "\x1e"
      "fr1 m 1 e\ndata"s);
  expect_raw(
      "\x1e"
      "fr3 m 1 0 0 0 e\ndata"s);
}

// A reply step as the reply script PUBLISHes it (reply_scripts.h): the fr2 fields, then kind, id,
// seq, reason, ttft, duration, bytes and the error's length; the payload is error then data.
TEST(RedisWireFormat, DecodesTheReplyScriptsForms) {
  const std::string delta =
      "\x1e"
      "fr3 m 12 7 3 0 e1-x d r17 4 - -1 -1 0 0\nThe \n"s;
  const WireMessage d = decode_wire(delta);
  ASSERT_TRUE(d.has_reply);
  EXPECT_EQ(d.offset, 12u);
  EXPECT_EQ(d.epoch, "e1-x");
  EXPECT_EQ(d.origin.node, 7u);
  EXPECT_EQ(d.reply.kind, static_cast<flowrelay_kind>(FLOWRELAY_KIND_DELTA));
  EXPECT_EQ(std::string_view(d.reply.id.ptr, d.reply.id.len), "r17");
  EXPECT_EQ(d.reply.seq, 4u);
  EXPECT_EQ(d.reply.reason.len, 0u);
  EXPECT_EQ(d.data, "The \n");
  const flowrelay_message m = to_message(d);
  ASSERT_EQ(m.reply, &d.reply);

  const std::string end =
      "\x1e"
      "fr3 m 13 7 3 0 e1-x e r17 4 error 40 900 345 4\noops"s;
  const WireMessage e = decode_wire(end);
  ASSERT_TRUE(e.has_reply);
  EXPECT_EQ(e.reply.kind, static_cast<flowrelay_kind>(FLOWRELAY_KIND_END));
  EXPECT_EQ(std::string_view(e.reply.reason.ptr, e.reply.reason.len), "error");
  EXPECT_EQ(std::string_view(e.reply.error.ptr, e.reply.error.len), "oops");
  EXPECT_EQ(e.reply.ttft_ms, 40);
  EXPECT_EQ(e.reply.duration_ms, 900);
  EXPECT_EQ(e.reply.bytes, 345u);
  EXPECT_EQ(e.data, "");
  EXPECT_FALSE(decode_wire(kPrefix + "m 1 0 0 0 e\nx").has_reply) << "fr2 has no reply";
}

TEST(RedisWireFormat, EncodesRepliesAsItDecodesThem) {
  flowrelay_reply r{};
  r.struct_size = sizeof r;
  r.kind = FLOWRELAY_KIND_REPLY;
  r.id = {"r1", 2};
  r.seq = 9;
  r.reason = {"done", 4};
  r.error = {"", 0};
  r.ttft_ms = -1;
  r.duration_ms = 5;
  r.bytes = 4;
  const std::string wire = encode_wire(FLOWRELAY_LANE_MESSAGE, 3, "e", {1, 2, 0}, "text", r);
  EXPECT_EQ(wire,
            "\x1e"
            "fr3 m 3 1 2 0 e r r1 9 done -1 5 4 0\ntext"s);
  const WireMessage w = decode_wire(wire);
  ASSERT_TRUE(w.has_reply);
  EXPECT_EQ(w.reply.kind, static_cast<flowrelay_kind>(FLOWRELAY_KIND_REPLY));
  EXPECT_EQ(w.reply.ttft_ms, -1);
  EXPECT_EQ(w.data, "text");
}

TEST(RedisWireFormat, AMalformedReplyHeaderIsRaw) {
  const std::string p =
      "\x1e"
      "fr3 m 1 0 0 0 e ";
  for (const std::string& tail : {
           "x r 1 - -1 -1 0 0"s,                            // unknown kind
           "m r 1 - -1 -1 0 0"s,                            // a plain message is not a reply
           "d  1 - -1 -1 0 0"s,                             // empty id
           "d " + std::string(65, 'a') + " 1 - -1 -1 0 0",  // id too long
           "d r -1 - -1 -1 0 0"s,                           // negative seq
           "d r 1 - -2 -1 0 0"s,                            // ttft below -1
           "d r 1 - -1 -1 0 5"s,                            // error longer than the payload
           "d r 1 - -1 -1 0"s,                              // a field missing
       })
    expect_raw(p + tail + "\nab");
}

TEST(RedisWireFormat, OnlyMessageAndLogLanesHaveAWireName) {
  EXPECT_EQ(wire_lane(FLOWRELAY_LANE_MESSAGE), 'm');
  EXPECT_EQ(wire_lane(FLOWRELAY_LANE_LOG), 'l');
  EXPECT_FALSE(wire_lane(2).has_value());
}

}  // namespace
}  // namespace flowrelay::redis
