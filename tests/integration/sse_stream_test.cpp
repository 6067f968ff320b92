// transport-sse's streams against the real daemon (docs/PROTOCOL.md "SSE and NDJSON"): event
// framing of multi-line and non-ASCII text, ids, the log lane and NDJSON; resume by
// Last-Event-ID and ?since= (recovered or not); routing errors; heartbeats on a quiet stream only.
#include <gtest/gtest.h>

#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "sse_test_helpers.h"

namespace flowrelay::itest {
namespace {

using namespace sse;

TEST_F(SseProtocol, MultiLineAndNonAsciiTextIsOneEventWithLfLineEndsAndTheApisId) {
  const std::string conv = "sse-framing";
  SseClient c = SseClient::connect(sse(), "/sse/" + conv);
  ASSERT_EQ(c.status(), 200) << describe(c.head());
  EXPECT_EQ(c.header("Content-Type").value_or(""), "text/event-stream");
  EXPECT_EQ(c.header("Cache-Control").value_or(""), "no-cache");
  EXPECT_EQ(c.header("X-Accel-Buffering").value_or(""), "no");
  EXPECT_FALSE(c.header("Transfer-Encoding").has_value()) << describe(c.head());

  struct Case {
    std::string text, expected;
  };
  const std::vector<Case> cases = {
      {"plain", "plain"},
      {" leading space", " leading space"},
      {"lf\nline", "lf\nline"},
      {"cr\rline", "cr\nline"},
      {"crlf\r\nline", "crlf\nline"},
      {"mixed\r\n\rends\n\nhere", "mixed\n\nends\n\nhere"},
      {"trailing\n", "trailing\n"},
      {"\r\nleading end", "\nleading end"},
      {"caf\xC3\xA9 \xE2\x9C\x93 \xF0\x9F\x98\x80 \xE4\xB8\xAD\xE6\x96\x87",
       "caf\xC3\xA9 \xE2\x9C\x93 \xF0\x9F\x98\x80 \xE4\xB8\xAD\xE6\x96\x87"},
      {" \xC3\xBC\r\n data: not a field\r: not a comment\nid: 99",
       " \xC3\xBC\n data: not a field\n: not a comment\nid: 99"},
  };
  HttpSession api(daemon->http_port());
  std::vector<std::string> ids;
  for (const Case& k : cases) ids.push_back(id_of(publish(api, conv, k.text)));
  ASSERT_FALSE(HasFailure());
  const auto got = events(c, cases.size());
  ASSERT_EQ(got.size(), cases.size()) << "stream " << (c.closed() ? "closed" : "open");
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(got[i].event, "message") << i << ": " << got[i].describe();
    EXPECT_EQ(got[i].data, cases[i].expected) << i << ": " << got[i].describe();
    EXPECT_EQ(got[i].id, ids[i]) << i << ": " << got[i].describe();
  }
  EXPECT_EQ(c.parser().retry_ms(), std::optional<uint64_t>(1000));
  // Nothing else came: no stray events from the lines that looked like fields.
  EXPECT_FALSE(c.next_event(200ms).has_value());
  EXPECT_FALSE(c.closed());
}

TEST_F(SseProtocol, LogLaneArrivesAsLogEventsAndMessagesWithoutAnEventLine) {
  const std::string conv = "sse-lanes";
  SseClient c = SseClient::connect(sse(), "/sse/" + conv);
  ASSERT_EQ(c.status(), 200) << describe(c.head());
  HttpSession api(daemon->http_port());
  const Published a = publish(api, conv, "thinking...", "log");
  const Published b = publish(api, conv, "answer", "message");
  const Published l2 = publish(api, conv, "more\nlog", "log");
  ASSERT_FALSE(HasFailure());
  const auto got = events(c, 3);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].event, "log") << got[0].describe();
  EXPECT_EQ(got[0].data, "thinking...");
  EXPECT_EQ(got[0].id, id_of(a));
  EXPECT_EQ(got[1].event, "message") << got[1].describe();
  EXPECT_EQ(got[1].data, "answer");
  EXPECT_EQ(got[1].id, id_of(b));
  EXPECT_EQ(got[2].event, "log") << got[2].describe();
  EXPECT_EQ(got[2].data, "more\nlog");
  EXPECT_EQ(got[2].id, id_of(l2));
}

TEST_F(SseProtocol, NdjsonByQueryOrAcceptGivesEnvelopeJsonLines) {
  const std::string conv = "sse-ndjson";
  SseClient by_query = SseClient::connect(sse(), "/sse/" + conv + "?format=ndjson");
  SseClient by_accept =
      SseClient::connect(sse(), "/sse/" + conv, {{"Accept", "application/x-ndjson"}});
  // ?format= wins over Accept.
  SseClient sse_by_query = SseClient::connect(sse(), "/sse/" + conv + "?format=sse",
                                              {{"Accept", "application/x-ndjson"}});
  for (SseClient* c : {&by_query, &by_accept}) {
    ASSERT_EQ(c->status(), 200) << describe(c->head());
    EXPECT_EQ(c->header("Content-Type").value_or(""), "application/x-ndjson");
  }
  ASSERT_EQ(sse_by_query.status(), 200) << describe(sse_by_query.head());
  EXPECT_EQ(sse_by_query.header("Content-Type").value_or(""), "text/event-stream");

  HttpSession api(daemon->http_port());
  const std::string text = "two\r\nlines \xE2\x9C\x93 \"quoted\"";
  const Published m = publish(api, conv, text);
  const Published l = publish(api, conv, "a log", "log");
  ASSERT_FALSE(HasFailure());
  for (SseClient* c : {&by_query, &by_accept}) {
    const auto first = c->next_line();
    const auto second = c->next_line();
    ASSERT_TRUE(first && second) << "stream " << (c->closed() ? "closed" : "open");
    const Envelope e1 = parse_envelope(*first), e2 = parse_envelope(*second);
    ASSERT_TRUE(e1.json_object) << *first;
    EXPECT_EQ(e1.type, "message") << *first;
    EXPECT_EQ(e1.lane, "message") << *first;
    EXPECT_EQ(e1.offset, m.offset) << *first;
    EXPECT_EQ(e1.epoch, m.epoch) << *first;
    EXPECT_EQ(e1.data, std::optional<std::string>(text)) << *first;  // JSON keeps the CR
    ASSERT_TRUE(e2.json_object) << *second;
    EXPECT_EQ(e2.type, "message") << *second;
    EXPECT_EQ(e2.lane, "log") << *second;
    EXPECT_EQ(e2.offset, l.offset) << *second;
    EXPECT_EQ(e2.data, std::optional<std::string>("a log")) << *second;
    EXPECT_FALSE(c->next_line(200ms).has_value()) << "NDJSON has no retry: or other lines";
  }
  const auto e = sse_by_query.next_event();
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->data, "two\nlines \xE2\x9C\x93 \"quoted\"") << e->describe();
}

// ---------------------------------------------------------------------------------------------
// Resume

class SseResume : public SseProtocol {
 protected:
  // Publishes m1..m10 into `conv`; their answers.
  std::vector<Published> ten(const std::string& conv) {
    HttpSession api(daemon->http_port());
    std::vector<Published> out;
    for (int i = 1; i <= 10; ++i) out.push_back(publish(api, conv, "m" + std::to_string(i)));
    for (size_t i = 0; i < out.size(); ++i)
      EXPECT_EQ(out[i].offset, std::optional<uint64_t>(i + 1)) << out[i].body;
    return out;
  }
  // The stream replays m<from>..m10 with their ids, then `resumed` recovered:true at 10, then a
  // live message.
  void expect_replay_from(SseClient& c, const std::string& conv, const std::vector<Published>& p,
                          int from) {
    ASSERT_EQ(c.status(), 200) << describe(c.head());
    const size_t n = static_cast<size_t>(10 - from + 1);
    const auto got = events(c, n + 1);
    ASSERT_EQ(got.size(), n + 1) << "stream " << (c.closed() ? "closed" : "open");
    for (size_t i = 0; i < n; ++i) {
      const size_t k = static_cast<size_t>(from - 1) + i;
      EXPECT_EQ(got[i].event, "message") << got[i].describe();
      EXPECT_EQ(got[i].data, "m" + std::to_string(k + 1)) << got[i].describe();
      EXPECT_EQ(got[i].id, id_of(p[k])) << got[i].describe();
    }
    const SseEvent& r = got[n];
    EXPECT_EQ(r.event, "resumed") << r.describe();
    const Envelope e = parse_envelope(r.data);
    EXPECT_EQ(e.type, "resumed") << r.data;
    EXPECT_EQ(e.recovered, std::optional<bool>(true)) << r.data;
    EXPECT_EQ(e.offset, std::optional<uint64_t>(10)) << r.data;
    EXPECT_EQ(e.epoch, p[0].epoch) << r.data;
    EXPECT_EQ(r.id, id_of(p[9])) << r.describe();
    expect_live(c, conv, "live after replay");
  }
  // A live message published now arrives next, and nothing before it.
  void expect_live(SseClient& c, const std::string& conv, const std::string& text) {
    HttpSession api(daemon->http_port());
    const Published live = publish(api, conv, text);
    const auto e = c.next_event();
    ASSERT_TRUE(e.has_value()) << "no live event after the resume";
    EXPECT_EQ(e->event, "message") << e->describe();
    EXPECT_EQ(e->data, text) << e->describe();
    EXPECT_EQ(e->id, id_of(live)) << e->describe();
  }
  // The first event is `resumed` recovered:false at the top (no replay), then live.
  void expect_unrecovered(SseClient& c, const std::string& conv, const std::vector<Published>& p,
                          uint64_t top, const std::string& what) {
    ASSERT_EQ(c.status(), 200) << what << ": " << describe(c.head());
    const auto r = c.next_event();
    ASSERT_TRUE(r.has_value()) << what << ": no resumed event";
    EXPECT_EQ(r->event, "resumed") << what << ": " << r->describe();
    const Envelope e = parse_envelope(r->data);
    EXPECT_EQ(e.type, "resumed") << what << ": " << r->data;
    EXPECT_EQ(e.recovered, std::optional<bool>(false)) << what << ": " << r->data;
    EXPECT_EQ(e.epoch, p[0].epoch) << what << ": " << r->data;
    EXPECT_EQ(e.offset, std::optional<uint64_t>(top)) << what << ": " << r->data;
    expect_live(c, conv, "live after " + what);
  }
};

TEST_F(SseResume, LastEventIdOfTheThirdOfTenReplaysFourToTenThenResumedThenLive) {
  const std::string conv = "sse-resume-header";
  const auto p = ten(conv);
  ASSERT_FALSE(HasFailure());
  SseClient c = SseClient::connect(sse(), "/sse/" + conv, {{"Last-Event-ID", id_of(p[2])}});
  expect_replay_from(c, conv, p, 4);
}

TEST_F(SseResume, SinceAndEpochInTheQueryReplayTheSameAndWinOverTheHeader) {
  const std::string conv = "sse-resume-query";
  const auto p = ten(conv);
  ASSERT_FALSE(HasFailure());
  SseClient q =
      SseClient::connect(sse(), "/sse/" + conv + "?since=3&epoch=" + url_encode(*p[0].epoch));
  expect_replay_from(q, conv, p, 4);
  // The header says 3, the query 8: the query wins (m9, m10, then the live message 11 that
  // expect_replay_from published, then resumed at 11).
  SseClient both =
      SseClient::connect(sse(), "/sse/" + conv + "?since=8&epoch=" + url_encode(*p[0].epoch),
                         {{"Last-Event-ID", id_of(p[2])}});
  ASSERT_EQ(both.status(), 200) << describe(both.head());
  const auto got = events(both, 4);
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0].data, "m9") << got[0].describe();
  EXPECT_EQ(got[1].data, "m10") << got[1].describe();
  EXPECT_EQ(got[2].data, "live after replay") << got[2].describe();
  EXPECT_EQ(got[3].event, "resumed") << got[3].describe();
  EXPECT_EQ(parse_envelope(got[3].data).offset, std::optional<uint64_t>(11)) << got[3].data;
  EXPECT_EQ(parse_envelope(got[3].data).recovered, std::optional<bool>(true)) << got[3].data;
}

TEST_F(SseResume, NdjsonResumeReplaysEnvelopesThenResumed) {
  const std::string conv = "sse-resume-ndjson";
  const auto p = ten(conv);
  ASSERT_FALSE(HasFailure());
  SseClient c = SseClient::connect(sse(), "/sse/" + conv + "?format=ndjson",
                                   {{"Last-Event-ID", id_of(p[7])}});
  ASSERT_EQ(c.status(), 200) << describe(c.head());
  std::vector<Envelope> got;
  while (got.size() < 3) {
    auto l = c.next_line();
    if (!l) break;
    got.push_back(parse_envelope(*l));
  }
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].data, std::optional<std::string>("m9")) << got[0].describe();
  EXPECT_EQ(got[0].offset, std::optional<uint64_t>(9)) << got[0].describe();
  EXPECT_EQ(got[1].data, std::optional<std::string>("m10")) << got[1].describe();
  EXPECT_EQ(got[2].type, "resumed") << got[2].describe();
  EXPECT_EQ(got[2].recovered, std::optional<bool>(true)) << got[2].describe();
  EXPECT_EQ(got[2].offset, std::optional<uint64_t>(10)) << got[2].describe();
}

TEST_F(SseResume, LastEventIdOfAnotherEpochOrGarbageIsResumedUnrecoveredThenLive) {
  const std::string conv = "sse-resume-unrecovered";
  const auto p = ten(conv);
  ASSERT_FALSE(HasFailure());
  {
    SseClient c = SseClient::connect(sse(), "/sse/" + conv, {{"Last-Event-ID", "not-ours:3"}});
    expect_unrecovered(c, conv, p, 10, "another epoch");
  }
  for (const std::string garbage : {"garbage", "3", ":3", "x:", "x:-1", "x:3y"}) {
    SseClient c = SseClient::connect(sse(), "/sse/" + conv, {{"Last-Event-ID", garbage}});
    ASSERT_EQ(c.status(), 200) << garbage << ": " << describe(c.head());
    const auto r = c.next_event();
    ASSERT_TRUE(r.has_value()) << garbage << ": no resumed event";
    EXPECT_EQ(r->event, "resumed") << garbage << ": " << r->describe();
    EXPECT_EQ(parse_envelope(r->data).recovered, std::optional<bool>(false))
        << garbage << ": " << r->data;
  }
  SseClient g = SseClient::connect(sse(), "/sse/" + conv, {{"Last-Event-ID", "garbage"}});
  expect_unrecovered(g, conv, p, 11, "a garbage Last-Event-ID");  // after one live message
}

TEST_F(SseResume, MalformedSinceOrFormatIs400) {
  for (const std::string query :
       {"?since=x", "?since=-1", "?since=", "?since=3x", "?format=xml", "?format=", "?epoch=e"}) {
    SseClient c = SseClient::connect(sse(), "/sse/sse-bad-query" + query);
    EXPECT_EQ(c.status(), 400) << query << ": " << describe(c.head());
    EXPECT_EQ(c.header("Content-Type").value_or("").substr(0, 10), "text/plain") << query;
  }
}

// ---------------------------------------------------------------------------------------------
// Routing

TEST_F(SseProtocol, RoutingErrors404400405406) {
  const HttpResult other = http_request(sse(), "GET", "/other/x");
  EXPECT_EQ(other.status, 404) << describe(other);
  EXPECT_EQ(other.content_type.substr(0, 10), "text/plain") << describe(other);
  EXPECT_FALSE(other.body.empty());
  EXPECT_EQ(http_request(sse(), "GET", "/ss/x").status, 404);
  EXPECT_EQ(http_request(sse(), "GET", "/").status, 404);

  for (const std::string& bad : std::vector<std::string>{
           "/sse/", "/sse/bad!id", "/sse/a/b", "/sse/" + std::string(129, 'a'), "/sse/%41"}) {
    const HttpResult r = http_request(sse(), "GET", bad, "", {{"Accept", "text/event-stream"}});
    EXPECT_EQ(r.status, 400) << bad << ": " << describe(r);
    const HttpResult p = SseClient::post(sse(), bad, "text/plain", "x");
    EXPECT_EQ(p.status, 400) << "POST " << bad << ": " << describe(p);
  }
  SseClient longest = SseClient::connect(sse(), "/sse/" + std::string(128, 'a'));
  EXPECT_EQ(longest.status(), 200) << describe(longest.head());

  for (const std::string method : {"PUT", "DELETE", "PATCH"}) {
    const HttpResult r =
        http_request(sse(), method, "/sse/x", "body", {{"Content-Type", "text/plain"}});
    EXPECT_EQ(r.status, 405) << method << ": " << describe(r);
    EXPECT_EQ(r.header("Allow").value_or(""), "GET, POST, OPTIONS")
        << method << ": " << describe(r);
  }

  SseClient html = SseClient::connect(sse(), "/sse/x", {{"Accept", "text/html"}});
  EXPECT_EQ(html.status(), 406) << describe(html.head());
  SseClient json = SseClient::connect(sse(), "/sse/x", {{"Accept", "application/json"}});
  EXPECT_EQ(json.status(), 406) << describe(json.head());
  // What SSE accepts: */*, text/*, no Accept at all.
  for (const std::string accept : {"*/*", "text/*", "", "text/html, text/event-stream;q=0.9"}) {
    SseClient c = SseClient::connect(sse(), "/sse/x", {{"Accept", accept}});
    EXPECT_EQ(c.status(), 200) << "Accept \"" << accept << "\": " << describe(c.head());
    EXPECT_EQ(c.header("Content-Type").value_or(""), "text/event-stream") << accept;
  }
}

// ---------------------------------------------------------------------------------------------
// Heartbeats

class SseHeartbeat : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    daemon = std::make_unique<Daemon>(sse_options("    heartbeat_ms: 200\n"));
  }
  static void TearDownTestSuite() { daemon.reset(); }
  void TearDown() override {
    ASSERT_TRUE(daemon->running()) << "daemon died; stderr:\n" << daemon->stderr_text();
  }
  static std::unique_ptr<Daemon> daemon;
};
std::unique_ptr<Daemon> SseHeartbeat::daemon;

TEST_F(SseHeartbeat, AQuietStreamGetsHeartbeatComments) {
  SseClient c = SseClient::connect(daemon->sse_port(), "/sse/hb-quiet");
  SseClient n = SseClient::connect(daemon->sse_port(), "/sse/hb-quiet?format=ndjson");
  ASSERT_EQ(c.status(), 200) << describe(c.head());
  ASSERT_EQ(n.status(), 200) << describe(n.head());
  size_t beats = 0, other = 0;
  std::string unexpected;
  const auto deadline = Clock::now() + 1500ms;
  while (Clock::now() < deadline) {
    const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
    auto e = c.next_event(std::max(left, Millis(1)), true);
    if (!e) continue;
    if (e->comment && e->data == " hb") {
      ++beats;
    } else {
      ++other;
      unexpected = e->describe();
    }
  }
  // One every 200 to 400 ms: 3 to 7 in 1.5 s; at least 2 under load.
  EXPECT_GE(beats, 2u);
  EXPECT_LE(beats, 8u);
  EXPECT_EQ(other, 0u) << unexpected;
  EXPECT_FALSE(c.closed());
  size_t lines = 0;
  while (auto l = n.next_line(10ms)) {
    EXPECT_EQ(*l, "{\"type\":\"heartbeat\"}");
    ++lines;
  }
  EXPECT_GE(lines, 2u) << "NDJSON heartbeats";
  EXPECT_LE(lines, 8u);
}

TEST_F(SseHeartbeat, AStreamWithAMessageEveryHundredMsGetsNoHeartbeat) {
  const std::string conv = "hb-busy";
  SseClient c = SseClient::connect(daemon->sse_port(), "/sse/" + conv);
  ASSERT_EQ(c.status(), 200) << describe(c.head());
  HttpSession api(daemon->http_port());
  size_t sent = 0, received = 0, beats = 0;
  auto next_send = Clock::now();
  const auto end = Clock::now() + 1500ms;
  Millis worst_gap{0};
  auto last_send = Clock::now();
  while (Clock::now() < end) {
    if (Clock::now() >= next_send) {
      const auto now = Clock::now();
      worst_gap = std::max(worst_gap, std::chrono::duration_cast<Millis>(now - last_send));
      last_send = now;
      const Published p = publish_via_api(api, kKey, conv, "tick " + std::to_string(sent));
      ASSERT_EQ(p.status, 200) << p.body;
      ++sent;
      next_send += 100ms;
    }
    const auto wait = std::chrono::duration_cast<Millis>(next_send - Clock::now());
    while (auto e = c.next_event(std::max(wait, Millis(0)), true)) {
      if (e->comment)
        ++beats;
      else
        ++received;
      if (Clock::now() >= next_send) break;
    }
  }
  while (received < sent) {
    auto e = c.next_event(2s, true);
    if (!e) break;
    (e->comment ? beats : received)++;
  }
  EXPECT_EQ(received, sent);
  EXPECT_GE(sent, 12u);
  // A heartbeat needs a whole 200 ms period without a write; the test's own publishing gaps
  // (worst_gap) stay under that unless the machine stalls.
  if (worst_gap < 190ms)
    EXPECT_EQ(beats, 0u) << "largest gap between publishes: " << worst_gap.count() << " ms";
  else
    GTEST_LOG_(WARNING) << "publishing stalled " << worst_gap.count()
                        << " ms: heartbeat count not checked (" << beats << ")";
}

}  // namespace
}  // namespace flowrelay::itest
