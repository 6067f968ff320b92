// transport-sse's codec (plugins/transport-sse/sse_codec.h), socket-free: event bytes read back
// by the HTML standard's parser (tests/support SseParser), event ids, and the request answers.
#include <gtest/gtest.h>

#include <string>

#include "sse_codec.h"
#include "support/sse_client.h"

using namespace flowrelay::sse;
using flowrelay::test::SseEvent;
using flowrelay::test::SseParser;

namespace {

SseEvent read_one(const std::string& bytes) {
  SseParser p;
  p.feed(bytes);
  auto e = p.pop();
  EXPECT_TRUE(e.has_value()) << bytes;
  EXPECT_FALSE(p.pop().has_value()) << "one event only: " << bytes;
  return e.value_or(SseEvent{});
}

std::string head(std::string_view target, std::string_view method = "GET",
                 std::string_view headers = {}) {
  std::string r(method);
  r += " ";
  r.append(target);
  r += " HTTP/1.1\r\nHost: x\r\n";
  r.append(headers);
  return r + "\r\n";
}

SseRequest parse(std::string_view target, std::string_view method = "GET",
                 std::string_view headers = {}, const AccessPolicy* policy = nullptr) {
  return parse_request(head(target, method, headers), "/sse/", 128, 1000, policy);
}

int status_of(const SseRequest& r) { return r.status; }

}  // namespace

TEST(SseCodec, EveryLineEndBecomesAnLfAndLeadingSpacesSurviveTheReader) {
  const std::string text = " lead\r\nsecond\rthird\nfourth\r\n\r\nlast  ";
  std::string out;
  append_event(out, "E:7", "", text);
  const SseEvent e = read_one(out);
  EXPECT_EQ(e.event, "message");
  EXPECT_EQ(e.id, "E:7");
  EXPECT_EQ(e.data, " lead\nsecond\nthird\nfourth\n\nlast  ");
}

TEST(SseCodec, TypeIdAndUtf8PassAsTheyAre) {
  std::string out;
  append_event(out, "ab12:3", "log", "héllo ✓ 日本");
  const SseEvent e = read_one(out);
  EXPECT_EQ(e.event, "log");
  EXPECT_EQ(e.data, "héllo ✓ 日本");
  EXPECT_EQ(out, "id: ab12:3\nevent: log\ndata: héllo ✓ 日本\n\n");
}

TEST(SseCodec, AMessageWithoutOffsetHasNoIdLine) {
  EXPECT_EQ(event_id("E", 0), "");
  EXPECT_EQ(event_id("E", 12), "E:12");
  const std::string out = live_event(FLOWRELAY_LANE_MESSAGE, nullptr, 0, "E", "x");
  EXPECT_EQ(out, "data: x\n\n");
}

TEST(SseCodec, EventIdsParseOnlyInTheFormGiven) {
  std::string epoch;
  uint64_t offset = 0;
  ASSERT_TRUE(parse_event_id("8bee94a7:42", epoch, offset));
  EXPECT_EQ(epoch, "8bee94a7");
  EXPECT_EQ(offset, 42u);
  for (const char* bad :
       {"", "E", ":5", "E:", "E:x", "E:-1", "E:+1", "E:99999999999999999999999", "E: 1"})
    EXPECT_FALSE(parse_event_id(bad, epoch, offset)) << bad;
}

TEST(SseCodec, AReplyStepIsItsEnvelopeJsonUnderItsKindsName) {
  const flowrelay_reply r{sizeof r, FLOWRELAY_KIND_DELTA, {"r1", 2}, 3, {}, {}, -1, -1, 0};
  const std::string out = live_event(FLOWRELAY_LANE_MESSAGE, &r, 9, "E", "tok");
  const SseEvent e = read_one(out);
  EXPECT_EQ(e.event, "delta");
  EXPECT_EQ(e.id, "E:9");
  EXPECT_NE(e.data.find("\"type\":\"delta\""), std::string::npos) << e.data;
  EXPECT_NE(e.data.find("\"data\":\"tok\""), std::string::npos) << e.data;
}

TEST(SseCodec, StreamHeadCloseResumedAndHeartbeat) {
  const std::string h = stream_head(false, "Vary: Origin\r\n", 1500);
  EXPECT_EQ(h.substr(0, 17), "HTTP/1.1 200 OK\r\n");
  EXPECT_NE(h.find("Content-Type: text/event-stream\r\n"), std::string::npos);
  EXPECT_NE(h.find("Cache-Control: no-cache\r\n"), std::string::npos);
  EXPECT_NE(h.find("Connection: close\r\n"), std::string::npos);
  EXPECT_NE(h.find("Vary: Origin\r\n"), std::string::npos);
  SseParser p;
  p.feed(h.substr(h.find("\r\n\r\n") + 4));
  EXPECT_EQ(p.retry_ms(), 1500u);
  EXPECT_NE(stream_head(true, "", 1500).find("application/x-ndjson"), std::string::npos);
  EXPECT_EQ(stream_head(true, "", 1500).find("retry:"), std::string::npos);

  const SseEvent c = read_one(close_event(false, 1001, "bye \"now\""));
  EXPECT_EQ(c.event, "close");
  EXPECT_EQ(c.data, R"({"type":"close","code":1001,"reason":"bye \"now\""})");
  EXPECT_EQ(close_event(true, 1008, "slow"),
            "{\"type\":\"close\",\"code\":1008,\"reason\":\"slow\"}\n");

  const SseEvent r = read_one(resumed_event(false, true, 5, "E"));
  EXPECT_EQ(r.event, "resumed");
  EXPECT_EQ(r.id, "E:5") << "a reconnect after it resumes from the seam";
  SseParser hb;
  hb.feed(std::string(heartbeat(false)));
  auto comment = hb.pop();
  ASSERT_TRUE(comment.has_value());
  EXPECT_TRUE(comment->comment);
  EXPECT_EQ(heartbeat(true), "{\"type\":\"heartbeat\"}\n");
}

TEST(SseRequest, TheStreamFormFollowsFormatThenAccept) {
  EXPECT_FALSE(parse("/sse/42").ndjson);
  EXPECT_FALSE(parse("/sse/42", "GET", "Accept: text/event-stream\r\n").ndjson);
  EXPECT_FALSE(parse("/sse/42", "GET", "Accept: */*\r\n").ndjson);
  EXPECT_TRUE(parse("/sse/42", "GET", "Accept: application/x-ndjson\r\n").ndjson);
  EXPECT_TRUE(parse("/sse/42?format=ndjson", "GET", "Accept: text/event-stream\r\n").ndjson);
  EXPECT_EQ(status_of(parse("/sse/42", "GET", "Accept: text/html\r\n")), 406);
  EXPECT_EQ(status_of(parse("/sse/42?format=xml")), 400);
}

TEST(SseRequest, ResumeComesFromTheQueryOrLastEventId) {
  SseRequest q = parse("/sse/42?since=7&epoch=E");
  EXPECT_TRUE(q.resume);
  EXPECT_EQ(q.since, 7u);
  EXPECT_EQ(q.epoch, "E");
  SseRequest h = parse("/sse/42", "GET", "Last-Event-ID: F:9\r\n");
  EXPECT_TRUE(h.resume);
  EXPECT_EQ(h.since, 9u);
  EXPECT_EQ(h.epoch, "F");
  SseRequest both = parse("/sse/42?since=3&epoch=E", "GET", "Last-Event-ID: F:9\r\n");
  EXPECT_EQ(both.since, 3u) << "the query wins";
  SseRequest garbage = parse("/sse/42", "GET", "Last-Event-ID: not-ours\r\n");
  EXPECT_TRUE(garbage.resume) << "placed in no epoch: answered recovered:false, never a gap";
  EXPECT_EQ(garbage.epoch, "-");
  EXPECT_FALSE(parse("/sse/42").resume);
  EXPECT_EQ(status_of(parse("/sse/42?since=x")), 400);
  EXPECT_EQ(status_of(parse("/sse/42?epoch=E")), 400);
}

// The resume's parameters are read by the stream library (resume_query.h), format by the codec:
// still in one walk, so the first mistake in the query is the one told.
TEST(SseRequest, TheFirstQueryMistakeIsTheOneTold) {
  const auto told = [](std::string_view target, std::string_view why) {
    const SseRequest r = parse(target);
    EXPECT_EQ(r.status, 400) << target;
    EXPECT_NE(r.response.find(why), std::string::npos) << target << ": " << r.response;
  };
  told("/sse/42?format=xml&since=x", "format must be sse or ndjson");
  told("/sse/42?since=x&format=xml", "since must be a decimal offset, got 'x'");
  told("/sse/42?epoch=E&format=xml", "format must be sse or ndjson");
  told("/sse/42?epoch=E&format=ndjson", "epoch needs since");
  told("/sse/42?since=%zz", "malformed query string: ");
  const SseRequest ok = parse("/sse/42?format=ndjson&since=4&epoch=E");
  EXPECT_EQ(ok.status, 0);
  EXPECT_TRUE(ok.ndjson && ok.resume);
  EXPECT_EQ(ok.since, 4u);
}

TEST(SseRequest, RoutesMethodsAndIds) {
  EXPECT_EQ(status_of(parse("/other/42")), 404);
  EXPECT_EQ(status_of(parse("/sse/")), 400);
  EXPECT_EQ(status_of(parse("/sse/a%20b")), 400);
  const SseRequest put = parse("/sse/42", "PUT");
  EXPECT_EQ(put.status, 405);
  EXPECT_NE(put.response.find("Allow: GET, POST, OPTIONS\r\n"), std::string::npos);
  EXPECT_EQ(parse("/sse/42", "POST").kind, RequestKind::Publish);
  EXPECT_EQ(parse("/sse/42", "OPTIONS").kind, RequestKind::Preflight);
  EXPECT_EQ(parse_request("garbage\r\n\r\n", "/sse/", 128, 1000, nullptr).status, 400);
}

TEST(SseRequest, PublishBodiesAreTextOrJsonWithinTheSizeLimit) {
  const SseRequest text =
      parse("/sse/42", "POST", "Content-Type: text/plain; charset=utf-8\r\nContent-Length: 5\r\n");
  EXPECT_EQ(text.status, 0);
  EXPECT_EQ(text.body_type, BodyType::Text);
  EXPECT_EQ(text.content_length, 5u);
  EXPECT_EQ(parse("/sse/42", "POST", "Content-Type: application/json\r\n").body_type,
            BodyType::Json);
  EXPECT_EQ(parse("/sse/42", "POST", "Content-Type: application/x-www-form-urlencoded\r\n").status,
            415);
  EXPECT_EQ(parse("/sse/42", "POST", "Content-Length: 1001\r\n").status, 413);
  EXPECT_EQ(parse("/sse/42", "POST", "Transfer-Encoding: chunked\r\n").status, 411);
  EXPECT_EQ(parse("/sse/42", "POST", "Content-Length: x\r\n").status, 400);
}

TEST(SseRequest, KeepAliveFollowsTheHttpVersion) {
  EXPECT_TRUE(parse("/sse/42", "POST").keep_alive);
  EXPECT_FALSE(parse("/sse/42", "POST", "Connection: close\r\n").keep_alive);
  const std::string v10 = "POST /sse/42 HTTP/1.0\r\nHost: x\r\n\r\n";
  EXPECT_FALSE(parse_request(v10, "/sse/", 128, 1000, nullptr).keep_alive);
}

TEST(SseRequest, CorsEchoesOnlyAllowedOrigins) {
  AccessSettings settings;
  settings.allowed_origins = {"http://a.example"};
  const AccessPolicy policy(settings);
  const SseRequest ok = parse("/sse/42", "OPTIONS", "Origin: http://a.example\r\n", &policy);
  EXPECT_EQ(ok.status, 0);
  EXPECT_NE(ok.cors.find("Access-Control-Allow-Origin: http://a.example\r\n"), std::string::npos);
  EXPECT_NE(
      ok.cors.find("Access-Control-Allow-Headers: Authorization, Content-Type, Last-Event-ID"),
      std::string::npos);
  EXPECT_EQ(parse("/sse/42", "OPTIONS", "Origin: http://b.example\r\n", &policy).status, 403);
  const SseRequest stream = parse("/sse/42", "GET", "Origin: http://a.example\r\n", &policy);
  EXPECT_EQ(stream.status, 0);
  EXPECT_NE(stream.cors.find("Access-Control-Allow-Origin: http://a.example"), std::string::npos);
  const SseRequest denied = parse("/sse/42", "GET", "Origin: http://b.example\r\n", &policy);
  EXPECT_EQ(denied.status, 403);
  EXPECT_EQ(denied.cors, "") << "a refused origin is not told it may read";
}
