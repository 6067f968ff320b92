// Envelope mode (flowrelay.v1): the JSON frames of docs/PROTOCOL.md, built by hand and parsed
// back with Poco::JSON, and the client's publish frame.
#include <gtest/gtest.h>

#include <Poco/Exception.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <string>

#include "envelope.h"
#include "frame_codec.h"

using flowrelay::ws::append_json_string;
using flowrelay::ws::ClientPublish;
using flowrelay::ws::envelope_error;
using flowrelay::ws::envelope_message;
using flowrelay::ws::envelope_resumed;
using flowrelay::ws::parse_client_frame;

namespace {

using namespace std::string_literals;

// Parses `json` as a JSON object; a parse error is a test failure naming the text.
Poco::JSON::Object::Ptr parse_object(const std::string& json) {
  try {
    const Poco::Dynamic::Var v = Poco::JSON::Parser().parse(json);
    if (v.type() == typeid(Poco::JSON::Object::Ptr)) return v.extract<Poco::JSON::Object::Ptr>();
    ADD_FAILURE() << "not a JSON object: " << json;
  } catch (const Poco::Exception& e) {
    ADD_FAILURE() << "not valid JSON (" << e.displayText() << "): " << json;
  }
  return new Poco::JSON::Object;
}

bool valid_utf8(std::string_view s) {
  flowrelay::ws::Utf8Validator v;
  return v.feed(reinterpret_cast<const uint8_t*>(s.data()), s.size()) && v.complete();
}

bool has_raw_control_char(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) < 0x20) return true;
  return false;
}

// Every awkward byte of a chat message: JSON specials, C0 controls (NUL included), DEL and
// multi-byte UTF-8 (2, 3 and 4 bytes).
const std::string kAwkward =
    "q\"uote b\\ack nl\n cr\r tab\t soh\x01 us\x1f nul\0 del\x7f caf\xc3\xa9 \xe6\x97\xa5 "
    "\xf0\x9f\x98\x80 end"s;

ClientPublish parse_ok(const std::string& text) {
  ClientPublish p;
  std::string error;
  EXPECT_TRUE(parse_client_frame(text, p, error)) << text << " was refused: " << error;
  EXPECT_TRUE(error.empty()) << text;
  return p;
}

std::string parse_error(const std::string& text) {
  ClientPublish p;
  std::string error;
  EXPECT_FALSE(parse_client_frame(text, p, error)) << text << " was accepted";
  EXPECT_FALSE(error.empty()) << text << ": refused without a reason for the error frame";
  return error;
}

}  // namespace

TEST(EnvelopeMessage, WithOffsetMatchesTheProtocolExample) {
  EXPECT_EQ(
      envelope_message(FLOWRELAY_LANE_MESSAGE, 17, "m3k9x2-1f", "Hello"),
      R"({"type":"message","lane":"message","offset":17,"epoch":"m3k9x2-1f","data":"Hello"})");
}

TEST(EnvelopeMessage, OffsetZeroLeavesOutOffsetAndEpoch) {
  const std::string json = envelope_message(FLOWRELAY_LANE_MESSAGE, 0, "ignored", "Hi");
  EXPECT_EQ(json, R"({"type":"message","lane":"message","data":"Hi"})");
  const auto o = parse_object(json);
  EXPECT_FALSE(o->has("offset")) << "a message not in history has no offset: " << json;
  EXPECT_FALSE(o->has("epoch")) << "a message not in history has no epoch: " << json;
}

TEST(EnvelopeMessage, LogLane) {
  const auto o = parse_object(envelope_message(FLOWRELAY_LANE_LOG, 3, "e", "thinking..."));
  EXPECT_EQ(o->getValue<std::string>("type"), "message");
  EXPECT_EQ(o->getValue<std::string>("lane"), "log");
  EXPECT_EQ(o->getValue<uint64_t>("offset"), 3u);
  EXPECT_EQ(o->getValue<std::string>("epoch"), "e");
  EXPECT_EQ(o->getValue<std::string>("data"), "thinking...");
}

TEST(EnvelopeMessage, LargestOffsetIsWrittenInFull) {
  const auto o =
      parse_object(envelope_message(FLOWRELAY_LANE_MESSAGE, 18446744073709551615u, "e", "x"));
  EXPECT_EQ(o->getValue<uint64_t>("offset"), 18446744073709551615u);
}

TEST(EnvelopeMessage, EscapesDataAndEpochAndParsesBackToTheSameBytes) {
  const std::string epoch = "ep\"och\\\x01";
  const std::string json = envelope_message(FLOWRELAY_LANE_MESSAGE, 5, epoch, kAwkward);
  EXPECT_FALSE(has_raw_control_char(json)) << "control characters must be escaped: " << json;
  EXPECT_TRUE(valid_utf8(json)) << "a text frame must be UTF-8: " << json;
  EXPECT_NE(json.find(R"(q\"uote b\\ack nl\n cr\r tab\t soh\u0001 us\u001)"), std::string::npos)
      << json;
  EXPECT_NE(json.find(R"(nul\u0000 del)"), std::string::npos) << json;
  EXPECT_NE(json.find("caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80 end"), std::string::npos)
      << "UTF-8 must be left as it is, not turned into \\u escapes: " << json;
  const auto o = parse_object(json);
  EXPECT_EQ(o->getValue<std::string>("data"), kAwkward);
  EXPECT_EQ(o->getValue<std::string>("epoch"), epoch);
}

TEST(EnvelopeResumed, RecoveredMatchesTheProtocolExample) {
  EXPECT_EQ(envelope_resumed(true, 117, "m3k9x2-1f"),
            R"({"type":"resumed","recovered":true,"offset":117,"epoch":"m3k9x2-1f"})");
}

TEST(EnvelopeResumed, NotRecoveredCarriesTheCurrentOffsetAndEpoch) {
  const auto o = parse_object(envelope_resumed(false, 42, "new-epoch"));
  EXPECT_EQ(o->getValue<std::string>("type"), "resumed");
  EXPECT_FALSE(o->getValue<bool>("recovered"));
  EXPECT_EQ(o->getValue<uint64_t>("offset"), 42u);
  EXPECT_EQ(o->getValue<std::string>("epoch"), "new-epoch");
}

TEST(EnvelopeResumed, UnknownOffsetAndEpochAreLeftOut) {
  EXPECT_EQ(envelope_resumed(false, 0, ""), R"({"type":"resumed","recovered":false})");
}

TEST(EnvelopeError, MatchesTheProtocolExample) {
  EXPECT_EQ(envelope_error(400, "not a JSON object"),
            R"({"type":"error","code":400,"reason":"not a JSON object"})");
}

TEST(EnvelopeError, ReasonIsEscaped) {
  const std::string reason = "bad \"lane\"\n\\ \x02 \xc3\xa9";
  const std::string json = envelope_error(501, reason);
  EXPECT_FALSE(has_raw_control_char(json)) << json;
  const auto o = parse_object(json);
  EXPECT_EQ(o->getValue<int>("code"), 501);
  EXPECT_EQ(o->getValue<std::string>("reason"), reason);
}

TEST(AppendJsonString, AppendsWithoutClearing) {
  std::string out = "prefix:";
  append_json_string(out, "");
  EXPECT_EQ(out, "prefix:");
  append_json_string(out, "plain text");
  EXPECT_EQ(out, "prefix:plain text");
  append_json_string(out, "\"");
  EXPECT_EQ(out, "prefix:plain text\\\"");
}

TEST(AppendJsonString, ShortEscapesAndUnicodeEscapes) {
  std::string out;
  append_json_string(out, "\"\\\n\r\t\x01\x08\x0c\x1f");
  EXPECT_EQ(out.substr(0, 10), R"(\"\\\n\r\t)");
  EXPECT_EQ(out.substr(10, 6), R"(\u0001)");
  EXPECT_FALSE(has_raw_control_char(out)) << out;
  EXPECT_EQ(parse_object("{\"s\":\"" + out + "\"}")->getValue<std::string>("s"),
            "\"\\\n\r\t\x01\x08\x0c\x1f");
}

TEST(AppendJsonString, EveryControlCharacterRoundTrips) {
  for (int c = 0; c < 0x20; ++c) {
    const std::string s = "a"s + static_cast<char>(c) + "b";
    std::string out;
    append_json_string(out, s);
    EXPECT_FALSE(has_raw_control_char(out)) << "byte " << c << " left raw";
    EXPECT_EQ(parse_object("{\"s\":\"" + out + "\"}")->getValue<std::string>("s"), s)
        << "byte " << c << " escaped as " << out;
  }
}

TEST(AppendJsonString, Utf8AndDelAreLeftAsTheyAre) {
  const std::string s = "\x7f \xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80";
  std::string out;
  append_json_string(out, s);
  EXPECT_EQ(out, s);
}

TEST(ParseClientFrame, Publish) {
  const ClientPublish p = parse_ok(R"({"type":"publish","lane":"message","data":"Hello"})");
  EXPECT_EQ(p.lane, static_cast<flowrelay_lane>(FLOWRELAY_LANE_MESSAGE));
  EXPECT_EQ(p.data, "Hello");
}

TEST(ParseClientFrame, LaneDefaultsToMessage) {
  const ClientPublish p = parse_ok(R"({"type":"publish","data":"Hi"})");
  EXPECT_EQ(p.lane, static_cast<flowrelay_lane>(FLOWRELAY_LANE_MESSAGE));
  EXPECT_EQ(p.data, "Hi");
}

TEST(ParseClientFrame, LogLane) {
  const ClientPublish p = parse_ok(R"({"data":"step 1","lane":"log","type":"publish"})");
  EXPECT_EQ(p.lane, static_cast<flowrelay_lane>(FLOWRELAY_LANE_LOG));
  EXPECT_EQ(p.data, "step 1");
}

TEST(ParseClientFrame, NullLaneIsTheDefault) {
  const ClientPublish p = parse_ok(R"({"type":"publish","lane":null,"data":"x"})");
  EXPECT_EQ(p.lane, static_cast<flowrelay_lane>(FLOWRELAY_LANE_MESSAGE));
}

TEST(ParseClientFrame, DataIsUnescapedExactly) {
  std::string frame = R"({"type":"publish","data":")";
  append_json_string(frame, kAwkward);
  frame += "\"}";
  EXPECT_EQ(parse_ok(frame).data, kAwkward);
  EXPECT_EQ(parse_ok(R"({"type":"publish","data":""})").data, "");
  EXPECT_EQ(parse_ok(R"({"type":"publish","data":"\u00e9\ud83d\ude00"})").data,
            "\xc3\xa9\xf0\x9f\x98\x80");
}

TEST(ParseClientFrame, NotJson) {
  EXPECT_NE(parse_error("Hello").find("JSON"), std::string::npos);
  parse_error("");
  parse_error(R"({"type":"publish","data":"x")");
  parse_error(R"({"type":"publish","data":"x"} trailing)");
}

TEST(ParseClientFrame, TopLevelMustBeAnObject) {
  EXPECT_EQ(parse_error(R"([{"type":"publish","data":"x"}])"), "not a JSON object");
  parse_error(R"("publish")");
  parse_error("42");
  parse_error("null");
}

TEST(ParseClientFrame, UnknownOrMissingType) {
  EXPECT_NE(parse_error(R"({"type":"subscribe","data":"x"})").find("type"), std::string::npos);
  parse_error(R"({"data":"x"})");
  parse_error(R"({"type":"Publish","data":"x"})");
  parse_error(R"({"type":1,"data":"x"})");
}

TEST(ParseClientFrame, DataMustBeAString) {
  EXPECT_EQ(parse_error(R"({"type":"publish","data":5})"), "data must be a string");
  parse_error(R"({"type":"publish"})");
  parse_error(R"({"type":"publish","data":null})");
  parse_error(R"({"type":"publish","data":["x"]})");
  parse_error(R"({"type":"publish","data":{"x":1}})");
}

TEST(ParseClientFrame, UnknownLane) {
  EXPECT_NE(parse_error(R"({"type":"publish","lane":"video","data":"x"})").find("lane"),
            std::string::npos);
  parse_error(R"({"type":"publish","lane":"LOG","data":"x"})");
  parse_error(R"({"type":"publish","lane":1,"data":"x"})");
  parse_error(R"({"type":"publish","lane":"","data":"x"})");
}

// The reason goes back to the client in an error frame, a text frame: it must be UTF-8, or the
// client (RFC 6455 8.1) fails the connection that docs/PROTOCOL.md says stays open.
TEST(ParseClientFrame, ErrorReasonIsValidUtf8EvenForNonAsciiInput) {
  for (const std::string& text :
       {"\xc3\xa9"s, "{\"a\":\xc3\xa9}"s, "\xe6\x97\xa5\xe6\x9c\xac"s, "nul"s,
        "{\"type\":\"publish\",\"data\":\"x\"} \xf0\x9f\x98\x80"s}) {
    const std::string error = parse_error(text);
    EXPECT_TRUE(valid_utf8(envelope_error(400, error)))
        << "error frame for input '" << text << "' is not UTF-8: reason '" << error << "'";
  }
}
