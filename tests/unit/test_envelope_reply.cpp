// Reply streams in envelope mode (plugins/transport-ws/envelope_reply.h): the exact server
// frames of every step, their JSON escaping and UTF-8, the merge of two queued deltas, and the
// producer's client frames with their 400s.
#include <gtest/gtest.h>

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <string>

#include "delta_merge.h"
#include "envelope.h"

namespace flowrelay::ws {
namespace {

using namespace std::string_literals;

flowrelay_str str(std::string_view s) { return {s.data(), s.size()}; }

flowrelay_reply step(flowrelay_kind kind, std::string_view id, uint64_t seq = 0,
                     std::string_view reason = {}, std::string_view error = {}, int64_t ttft = -1,
                     int64_t duration = -1, uint64_t bytes = 0) {
  return {
      sizeof(flowrelay_reply), kind, str(id), seq, str(reason), str(error), ttft, duration, bytes};
}

Poco::JSON::Object::Ptr object_of(const std::string& json) {
  return Poco::JSON::Parser().parse(json).extract<Poco::JSON::Object::Ptr>();
}

// ---------------------------------------------------------------------------- server frames

TEST(ReplyFrames, EveryKindHasItsExactForm) {
  EXPECT_EQ(envelope_reply(step(FLOWRELAY_KIND_OPEN, "r17"), 3, "E", {}),
            R"({"type":"open","reply":"r17","offset":3,"epoch":"E"})");
  EXPECT_EQ(envelope_reply(step(FLOWRELAY_KIND_DELTA, "r17", 2), 5, "E", "The "),
            R"({"type":"delta","reply":"r17","seq":2,"offset":5,"epoch":"E","data":"The "})");
  EXPECT_EQ(
      envelope_reply(step(FLOWRELAY_KIND_END, "r17", 12, "done", {}, 40, 900, 345), 9, "E", {}),
      R"({"type":"end","reply":"r17","offset":9,"epoch":"E","reason":"done",)"
      R"("stats":{"tokens":12,"ttft_ms":40,"duration_ms":900,"bytes":345}})");
  EXPECT_EQ(envelope_reply(step(FLOWRELAY_KIND_SNAPSHOT, "r17", 4), 8, "E", "text so far"),
            R"({"type":"snapshot","reply":"r17","seq":4,"offset":8,"epoch":"E",)"
            R"("data":"text so far"})");
  EXPECT_EQ(
      envelope_reply(step(FLOWRELAY_KIND_REPLY, "r17", 2, "done", {}, 0, 10, 5), 9, "E", "whole"),
      R"({"type":"reply","reply":"r17","seq":2,"offset":9,"epoch":"E","data":"whole",)"
      R"("reason":"done","stats":{"tokens":2,"ttft_ms":0,"duration_ms":10,"bytes":5}})");
  EXPECT_EQ(envelope_reply(step(FLOWRELAY_KIND_STALLED, "r17"), 0, {}, {}),
            R"({"type":"stalled","reply":"r17"})");
}

TEST(ReplyFrames, ErrorTextOnlyWithReasonErrorAndUnknownTimesLeftOut) {
  EXPECT_EQ(
      envelope_reply(step(FLOWRELAY_KIND_END, "r", 0, "error", "model \"x\" failed"), 4, "E", {}),
      R"({"type":"end","reply":"r","offset":4,"epoch":"E","reason":"error",)"
      R"("error":"model \"x\" failed","stats":{"tokens":0,"bytes":0}})");
  EXPECT_EQ(envelope_reply(step(FLOWRELAY_KIND_END, "r", 1, "error", {}, 3, 4, 1), 4, "E", {}),
            R"({"type":"end","reply":"r","offset":4,"epoch":"E","reason":"error",)"
            R"("stats":{"tokens":1,"ttft_ms":3,"duration_ms":4,"bytes":1}})")
      << "an empty error text is left out";
  EXPECT_EQ(envelope_reply(step(FLOWRELAY_KIND_END, "r", 1, "cancelled", "ignored"), 4, "E", {}),
            R"({"type":"end","reply":"r","offset":4,"epoch":"E","reason":"cancelled",)"
            R"("stats":{"tokens":1,"bytes":0}})");
}

TEST(ReplyFrames, OffsetAndEpochLeftOutWhenNotInHistory) {
  EXPECT_EQ(envelope_reply(step(FLOWRELAY_KIND_DELTA, "r", 1), 0, {}, "x"),
            R"({"type":"delta","reply":"r","seq":1,"data":"x"})");
  EXPECT_EQ(envelope_reply(step(FLOWRELAY_KIND_DELTA, "r", 1), 7, {}, "x"),
            R"({"type":"delta","reply":"r","seq":1,"offset":7,"data":"x"})");
}

TEST(ReplyFrames, TextIsEscapedAsJsonAndKeepsUtf8) {
  const std::string data = "caf\xc3\xa9 \xe2\x9c\x93 \"q\" \\ \n\t\x01";
  const std::string frame =
      envelope_reply(step(FLOWRELAY_KIND_DELTA, "a\"b\\c", 1), 2, "e\"1", data);
  EXPECT_NE(frame.find("caf\xc3\xa9 \xe2\x9c\x93"), std::string::npos) << "UTF-8 kept as is";
  EXPECT_NE(frame.find(R"(\"q\" \\ \n\t\u0001)"), std::string::npos) << frame;
  const auto o = object_of(frame);
  EXPECT_EQ(o->getValue<std::string>("data"), data);
  EXPECT_EQ(o->getValue<std::string>("reply"), "a\"b\\c");
  EXPECT_EQ(o->getValue<std::string>("epoch"), "e\"1");
}

TEST(ReplyFrames, BrokerStringsThatAreNotUtf8AreRepaired) {
  const std::string frame =
      envelope_reply(step(FLOWRELAY_KIND_END, "r\xff", 1, "error", "bad \xc3 byte"), 3, "E", {});
  const auto o = object_of(frame);
  EXPECT_EQ(o->getValue<std::string>("reply"), "r\xef\xbf\xbd");
  EXPECT_EQ(o->getValue<std::string>("error"), "bad \xef\xbf\xbd byte");
}

// ---------------------------------------------------------------------------- merging

SharedFrame* delta(std::string_view id, uint64_t seq, uint64_t offset, std::string_view data,
                   std::string_view epoch = "E") {
  return delta_frame("chat:1", step(FLOWRELAY_KIND_DELTA, id, seq), offset, epoch, data);
}

TEST(DeltaMerge, ConcatenatesTheTextWithFromTheFirstSeqAndTheLastOffset) {
  SharedFrame* a = delta("r1", 3, 10, "Hel\"");
  SharedFrame* b = delta("r1", 4, 12, "lo \xe2\x9c\x93");
  ASSERT_TRUE(can_merge(*a, *b));
  SharedFrame* ab = merge_deltas(*a, *b);
  EXPECT_EQ(ab->payload(), R"({"type":"delta","reply":"r1","from":3,"seq":4,"offset":12,)"
                           R"("epoch":"E","data":"Hel\"lo )"
                           "\xe2\x9c\x93\"}");
  EXPECT_EQ(ab->offset(), 12u);
  EXPECT_EQ(ab->from(), 3u);
  EXPECT_EQ(ab->seq(), 4u);
  EXPECT_EQ(ab->channel(), "") << "the session's own frame";
  // A merged frame merges again, and its layout still points at the right parts.
  SharedFrame* c = delta("r1", 5, 13, "!");
  ASSERT_TRUE(can_merge(*ab, *c));
  SharedFrame* abc = merge_deltas(*ab, *c);
  const auto o = object_of(std::string(abc->payload()));
  EXPECT_EQ(o->getValue<std::string>("type"), "delta");
  EXPECT_EQ(o->getValue<uint64_t>("from"), 3u);
  EXPECT_EQ(o->getValue<uint64_t>("seq"), 5u);
  EXPECT_EQ(o->getValue<uint64_t>("offset"), 13u);
  EXPECT_EQ(o->getValue<std::string>("data"), "Hel\"lo \xe2\x9c\x93!");
  EXPECT_EQ(abc->epoch_json(), "E");
  EXPECT_EQ(abc->reply_json(), "r1");
  // The WebSocket header is right for the new length.
  EXPECT_EQ(abc->size(), abc->payload().size() + 2);
  for (SharedFrame* f : {a, b, ab, c, abc}) f->unref();
}

TEST(DeltaMerge, OnlyTheNextSeqOfTheSameReplyAndEpoch) {
  SharedFrame* a = delta("r1", 3, 10, "x");
  SharedFrame* gap = delta("r1", 5, 11, "x");
  SharedFrame* same = delta("r1", 3, 11, "x");
  SharedFrame* other = delta("r2", 4, 11, "x");
  SharedFrame* epoch = delta("r1", 4, 11, "x", "F");
  SharedFrame* plain = ws_frame("chat:1", Opcode::Text, "x");
  SharedFrame* big = delta("r1", 4, 11, std::string(kMaxMergedData, 'b'));
  EXPECT_FALSE(can_merge(*a, *gap));
  EXPECT_FALSE(can_merge(*a, *same));
  EXPECT_FALSE(can_merge(*a, *other));
  EXPECT_FALSE(can_merge(*a, *epoch));
  EXPECT_FALSE(can_merge(*a, *plain));
  EXPECT_FALSE(can_merge(*plain, *a));
  EXPECT_FALSE(can_merge(*a, *big)) << "a merged frame stops growing at kMaxMergedData";
  for (SharedFrame* f : {a, gap, same, other, epoch, plain, big}) f->unref();
}

// ---------------------------------------------------------------------------- client frames

TEST(ReplyStep, ProducerFramesParse) {
  ClientPublish p;
  std::string error;
  ASSERT_TRUE(parse_client_frame(R"({"type":"open","reply":"r17","id":"c1"})", p, error)) << error;
  EXPECT_TRUE(p.is_reply);
  EXPECT_EQ(p.reply.kind, FLOWRELAY_KIND_OPEN);
  EXPECT_EQ(p.reply.reply, "r17");
  EXPECT_EQ(p.id, "c1");

  ClientPublish d;
  ASSERT_TRUE(
      parse_client_frame(R"({"type":"delta","reply":"r17","seq":2,"data":"The \u00e9"})", d, error))
      << error;
  EXPECT_EQ(d.reply.kind, FLOWRELAY_KIND_DELTA);
  EXPECT_EQ(d.reply.seq, 2u);
  EXPECT_EQ(d.data, "The \xc3\xa9");
  EXPECT_EQ(d.id, "");

  ClientPublish e;
  ASSERT_TRUE(parse_client_frame(R"({"type":"end","reply":"r17"})", e, error));
  EXPECT_EQ(e.reply.kind, FLOWRELAY_KIND_END);
  EXPECT_FALSE(e.reply.has_error);
  EXPECT_FALSE(e.reply.cancel);

  ClientPublish ee;
  ASSERT_TRUE(parse_client_frame(R"({"type":"end","reply":"r17","error":"boom"})", ee, error));
  EXPECT_TRUE(ee.reply.has_error);
  EXPECT_EQ(ee.reply.error, "boom");

  ClientPublish c;
  ASSERT_TRUE(parse_client_frame(R"({"type":"cancel","reply":"r17","id":"c4"})", c, error));
  EXPECT_EQ(c.reply.kind, FLOWRELAY_KIND_END);
  EXPECT_TRUE(c.reply.cancel);
  EXPECT_EQ(c.id, "c4");
}

TEST(ReplyStep, BadFramesAreRefusedWithAReasonAndKeepTheirId) {
  const std::string too_long(65, 'r');
  const std::pair<std::string, std::string> cases[] = {
      {R"({"type":"delta","seq":1,"data":"x","id":"c9"})", "reply must be"},
      {R"({"type":"delta","reply":"","seq":1,"data":"x","id":"c9"})", "reply must be"},
      {R"({"type":"delta","reply":")" + too_long + R"(","seq":1,"data":"x","id":"c9"})",
       "reply must be"},
      {R"({"type":"delta","reply":"a b","seq":1,"data":"x","id":"c9"})", "reply must be"},
      {R"({"type":"open","reply":7,"id":"c9"})", "reply must be"},
      {R"({"type":"delta","reply":"r","data":"x","id":"c9"})", "seq must be"},
      {R"({"type":"delta","reply":"r","seq":0,"data":"x","id":"c9"})", "seq must be"},
      {R"({"type":"delta","reply":"r","seq":-3,"data":"x","id":"c9"})", "seq must be"},
      {R"({"type":"delta","reply":"r","seq":1.5,"data":"x","id":"c9"})", "seq must be"},
      {R"({"type":"delta","reply":"r","seq":"1","data":"x","id":"c9"})", "seq must be"},
      {R"({"type":"delta","reply":"r","seq":true,"data":"x","id":"c9"})", "seq must be"},
      {R"({"type":"delta","reply":"r","seq":1,"id":"c9"})", "data must be a string"},
      {R"({"type":"delta","reply":"r","seq":1,"data":5,"id":"c9"})", "data must be a string"},
      {R"({"type":"end","reply":"r","error":{},"id":"c9"})", "error must be a string"},
  };
  for (const auto& [frame, reason] : cases) {
    ClientPublish p;
    std::string error;
    EXPECT_FALSE(parse_client_frame(frame, p, error)) << frame;
    EXPECT_EQ(error.rfind(reason, 0), 0u) << frame << " -> " << error;
    EXPECT_EQ(p.id, "c9") << "the error frame names the id: " << frame;
  }
}

TEST(ReplyStep, AckAndErrorFramesCarryTheReplyAnswers) {
  EXPECT_EQ(envelope_ack("c2", 8, "E", true, true),
            R"({"type":"ack","id":"c2","offset":8,"epoch":"E","duplicate":true})");
  EXPECT_EQ(envelope_error(409, "out of order", "c2", R"(,"expected_seq":4)"),
            R"({"type":"error","id":"c2","code":409,"reason":"out of order","expected_seq":4})");
}

}  // namespace
}  // namespace flowrelay::ws
