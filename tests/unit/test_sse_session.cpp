// transport-sse's socket-free session (plugins/transport-sse/sse_session.h) driven as its event
// loop does (session_test_host.h's RecordingHost): streams, resume, heartbeats, closes, POST
// publishing and its refusals, keep-alive.
#include <gtest/gtest.h>

#include "session_test_host.h"
#include "sse_options.h"
#include "sse_session.h"
#include "support/sse_client.h"

using namespace flowrelay::sse;
using flowrelay::test::SseEvent;
using flowrelay::test::SseParser;
using flowrelay::ws::testing::feed;
using flowrelay::ws::testing::queued_bytes;
using flowrelay::ws::testing::RecordingHost;

namespace {

struct SseEnv {
  SseOptions options = parse_sse_options(nullptr, 0, "");
  LiveLimits limits{options};
  LoopStats stats;
  SessionConfig config{limits, "/sse/", stats};
};

class SseSessionTest : public ::testing::Test {
 protected:
  SseEnv env;
  RecordingHost host;
  std::unique_ptr<SseSession> s;
  SseParser parser;

  void SetUp() override {
    s = std::make_unique<SseSession>(host, env.config, 7);
    s->start();
  }
  // The response head queued so far (consumed), and the body after it fed to `parser`.
  std::string take_head() {
    const std::string bytes = queued_bytes(*s);
    const size_t end = bytes.find("\r\n\r\n");
    if (end == std::string::npos) return bytes;
    parser.feed(bytes.substr(end + 4));
    return bytes.substr(0, end + 4);
  }
  std::vector<SseEvent> events() {
    parser.feed(queued_bytes(*s));
    std::vector<SseEvent> out;
    while (auto e = parser.pop()) out.push_back(*e);
    return out;
  }
  void open_stream(std::string_view target = "/sse/42", std::string_view headers = {}) {
    feed(*s,
         "GET " + std::string(target) + " HTTP/1.1\r\nHost: x\r\n" + std::string(headers) + "\r\n");
    ASSERT_EQ(s->state(), Connection::State::Open);
    const std::string h = take_head();
    ASSERT_EQ(h.substr(0, 15), "HTTP/1.1 200 OK") << h;
  }
  static SharedFrame* live(std::string_view event_bytes, uint64_t offset,
                           flowrelay_lane lane = FLOWRELAY_LANE_MESSAGE) {
    SharedFrame* f = SharedFrame::make("chat:42", {}, event_bytes);
    f->set_position(lane, offset);
    return f;
  }
  static SharedFrame* message(std::string_view text, uint64_t offset,
                              flowrelay_lane lane = FLOWRELAY_LANE_MESSAGE) {
    return live(live_event(lane, nullptr, offset, "E", text), offset, lane);
  }
  std::string post(std::string_view body, std::string_view type = "text/plain",
                   std::string_view extra = {}) {
    return "POST /sse/42 HTTP/1.1\r\nHost: x\r\nContent-Type: " + std::string(type) +
           "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + std::string(extra) +
           "\r\n" + std::string(body);
  }
  static int status(const std::string& response) {
    return response.size() >= 12 ? std::atoi(response.c_str() + 9) : 0;
  }
};

TEST_F(SseSessionTest, AStreamJoinsItsConversationAndSaysRetryFirst) {
  open_stream();
  EXPECT_EQ(host.joined, std::vector<std::string>{"42"});
  EXPECT_EQ(host.opens, 1);
  EXPECT_EQ(parser.retry_ms(), 1000u);
  EXPECT_EQ(host.timer, SessionTimer::Idle) << "the heartbeat timer";
  EXPECT_FALSE(s->envelope());
}

TEST_F(SseSessionTest, DeliveriesAreWrittenAsSharedAndInputIsIgnored) {
  open_stream();
  EXPECT_TRUE(s->deliver(message("one", 1)));
  EXPECT_TRUE(s->deliver(message("two\nlines", 2)));
  feed(*s, "anything the client sends on a stream");
  const auto ev = events();
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].data, "one");
  EXPECT_EQ(ev[1].data, "two\nlines");
  EXPECT_EQ(ev[1].id, "E:2");
  EXPECT_EQ(s->state(), Connection::State::Open);
}

TEST_F(SseSessionTest, AHeartbeatOnlyWhenAWholePeriodPassedWithoutAWrite) {
  open_stream();
  s->deliver(message("busy", 1));
  events();
  s->on_timer();  // the period had a write: nothing
  EXPECT_TRUE(queued_bytes(*s).empty());
  s->on_timer();  // a silent period: a comment
  EXPECT_EQ(queued_bytes(*s), ": hb\n\n");
  EXPECT_EQ(host.timer, SessionTimer::Idle);
}

TEST_F(SseSessionTest, NdjsonStreamsTakeTheEnvelopeFrame) {
  open_stream("/sse/42?format=ndjson");
  EXPECT_TRUE(s->envelope());
  s->on_timer();
  s->on_timer();
  EXPECT_EQ(queued_bytes(*s), "{\"type\":\"heartbeat\"}\n");
}

TEST_F(SseSessionTest, CloseSaysWhyThenLeavesAndWaitsForTheEnd) {
  open_stream();
  s->close(close_code::GoingAway, "server shutting down");
  const auto ev = events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].event, "close");
  EXPECT_NE(ev[0].data.find("\"code\":1001"), std::string::npos);
  EXPECT_EQ(s->state(), Connection::State::Closing);
  EXPECT_EQ(host.leaves, 1);
  EXPECT_EQ(host.timer, SessionTimer::Closing);
}

TEST_F(SseSessionTest, LastEventIdResumesThroughTheSeam) {
  open_stream("/sse/42", "Last-Event-ID: E:3\r\n");
  ASSERT_EQ(host.history_reads, std::vector<uint64_t>{3});
  // Live frames during the read are held; 5 is also in the answer, 6 is newer.
  EXPECT_FALSE(s->deliver(message("five", 5)));
  EXPECT_FALSE(s->deliver(message("six", 6)));
  EXPECT_TRUE(events().empty());
  HistoryResult h;
  h.status = FLOWRELAY_OK;
  h.epoch = "E";
  h.top = 5;
  h.entries.push_back({4, FLOWRELAY_LANE_MESSAGE, "four"});
  h.entries.push_back({5, FLOWRELAY_LANE_LOG, "five"});
  s->replay(h);
  const auto ev = events();
  ASSERT_EQ(ev.size(), 4u);
  EXPECT_EQ(ev[0].data, "four");
  EXPECT_EQ(ev[1].event, "log");
  EXPECT_EQ(ev[1].id, "E:5");
  EXPECT_EQ(ev[2].event, "resumed");
  EXPECT_NE(ev[2].data.find("\"recovered\":true"), std::string::npos) << ev[2].data;
  EXPECT_EQ(ev[3].data, "six");
  EXPECT_EQ(env.stats.resumes_recovered.get(), 1u);
}

TEST_F(SseSessionTest, AnUnknownEpochIsAnsweredRecoveredFalseAtTheTop) {
  open_stream("/sse/42", "Last-Event-ID: gibberish\r\n");
  HistoryResult h;
  h.status = FLOWRELAY_OK;
  h.epoch = "E";
  h.top = 9;
  h.entries.push_back({9, FLOWRELAY_LANE_MESSAGE, "nine"});
  s->replay(h);
  const auto ev = events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].event, "resumed");
  EXPECT_NE(ev[0].data.find("\"recovered\":false"), std::string::npos) << ev[0].data;
  EXPECT_EQ(ev[0].id, "E:9");
}

TEST_F(SseSessionTest, ASlowReaderLosesLogEventsFirstThenIsClosedWithinTheBound) {
  env.limits.max_outbound_bytes = 4096;
  open_stream();
  const std::string big(1500, 'x');
  s->deliver(message(big, 1));
  s->deliver(message(big, 2));  // past half: a log event would be shed now
  s->deliver(message("log", 3, FLOWRELAY_LANE_LOG));
  EXPECT_EQ(env.stats.log_frames_shed.get(), 1u);
  EXPECT_EQ(s->state(), Connection::State::Open);
  s->deliver(message(big, 4));  // past the bound
  EXPECT_EQ(s->state(), Connection::State::Closing);
  EXPECT_EQ(env.stats.slow_consumer_closes.get(), 1u);
  const auto ev = events();
  ASSERT_FALSE(ev.empty());
  EXPECT_EQ(ev.back().event, "close");
  EXPECT_NE(ev.back().data.find("\"code\":1008"), std::string::npos);
}

TEST_F(SseSessionTest, APostPublishesIntoTheConversationAndIsAnsweredWithItsAck) {
  feed(*s, post("hello"));
  ASSERT_EQ(host.published_to, std::vector<std::string>{"42"});
  EXPECT_EQ(host.published[0].data, "hello");
  EXPECT_TRUE(queued_bytes(*s).empty()) << "answered once the broker answers";
  PublishOutcome o;
  o.ok = true;
  o.offset = 4;
  o.epoch = "E";
  s->published(o);
  const std::string r = queued_bytes(*s);
  EXPECT_EQ(status(r), 200) << r;
  EXPECT_NE(r.find("{\"type\":\"ack\",\"offset\":4,\"epoch\":\"E\"}"), std::string::npos) << r;
  EXPECT_EQ(s->state(), Connection::State::Handshake) << "kept alive for the next request";
  EXPECT_TRUE(host.joined.empty()) << "a publisher joins no channel";
}

TEST_F(SseSessionTest, PipelinedPostsAreAnsweredInOrderOneAtATime) {
  feed(*s, post("a") + post("{\"type\":\"publish\",\"lane\":\"log\",\"data\":\"b\",\"id\":\"c2\"}",
                            "application/json"));
  ASSERT_EQ(host.published.size(), 1u) << "the second waits for the first's answer";
  PublishOutcome o;
  o.ok = true;
  o.offset = 1;
  s->published(o);
  ASSERT_EQ(host.published.size(), 2u);
  EXPECT_EQ(host.published[1].lane, FLOWRELAY_LANE_LOG);
  EXPECT_EQ(host.published[1].id, "c2");
  o.offset = 2;
  o.id = "c2";
  s->published(o);
  const std::string r = queued_bytes(*s);
  EXPECT_NE(r.find("\"offset\":1"), std::string::npos);
  EXPECT_LT(r.find("\"offset\":1"), r.find("\"id\":\"c2\",\"offset\":2")) << r;
}

TEST_F(SseSessionTest, ABodySplitAcrossReadsIsPublishedOnceWhole) {
  const std::string req = post("split body");
  feed(*s, req.substr(0, req.size() - 4));
  EXPECT_TRUE(host.published.empty());
  feed(*s, req.substr(req.size() - 4));
  ASSERT_EQ(host.published.size(), 1u);
  EXPECT_EQ(host.published[0].data, "split body");
}

TEST_F(SseSessionTest, PostRefusalsHaveTheirStatusAndPublishNothing) {
  feed(*s, post("\xff\xfe"));
  EXPECT_EQ(status(queued_bytes(*s)), 400);
  feed(*s, post("{not json", "application/json"));
  EXPECT_EQ(status(queued_bytes(*s)), 400);
  feed(*s,
       post("{\"type\":\"delta\",\"reply\":\"r\",\"seq\":1,\"data\":\"x\"}", "application/json"));
  EXPECT_EQ(status(queued_bytes(*s)), 400) << "reply steps are not POSTed here";
  EXPECT_TRUE(host.published.empty());
  EXPECT_EQ(s->state(), Connection::State::Handshake);
}

TEST_F(SseSessionTest, PublishRateIsEnforcedWith429AndRetryAfter) {
  env.limits.publish_rate = 1;
  env.limits.publish_burst = 1;
  s = std::make_unique<SseSession>(host, env.config, 8);
  s->start();
  feed(*s, post("first"));
  PublishOutcome o;
  o.ok = true;
  o.offset = 1;
  s->published(o);
  queued_bytes(*s);
  feed(*s, post("second"));
  const std::string r = queued_bytes(*s);
  EXPECT_EQ(status(r), 429) << r;
  EXPECT_NE(r.find("Retry-After: 1\r\n"), std::string::npos);
  EXPECT_EQ(host.published.size(), 1u);
}

TEST_F(SseSessionTest, ARefusedPublishTellsTheCodeAndConnectionCloseEnds) {
  feed(*s, post("x", "text/plain", "Connection: close\r\n"));
  PublishOutcome o;
  o.ok = false;
  o.code = 403;
  o.reason = "the backend refused it";
  s->published(o);
  const std::string r = queued_bytes(*s);
  EXPECT_EQ(status(r), 403);
  EXPECT_NE(r.find("the backend refused it"), std::string::npos);
  EXPECT_EQ(s->state(), Connection::State::Closing);
}

TEST_F(SseSessionTest, AnAnswerNeverComingClosesWithoutAFalseOne) {
  feed(*s, post("x"));
  s->on_timer();
  EXPECT_EQ(s->state(), Connection::State::Handshake) << "one more period first";
  s->on_timer();
  EXPECT_EQ(s->state(), Connection::State::Closed);
  EXPECT_TRUE(queued_bytes(*s).empty()) << "no refusal that may be false";
}

TEST_F(SseSessionTest, ABrokerThatCannotJoinIsA503AndTheConnectProxyDecidesFirst) {
  host.join_status = FLOWRELAY_EUNAVAIL;
  feed(*s, "GET /sse/42 HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(status(queued_bytes(*s)), 503);
  EXPECT_EQ(s->state(), Connection::State::Closing);

  RecordingHost proxied;
  proxied.authorize_status = FLOWRELAY_OK;
  SseSession p(proxied, env.config, 9);
  p.start();
  feed(p, "GET /sse/42 HTTP/1.1\r\nHost: x\r\nCookie: c=1\r\n\r\n");
  EXPECT_EQ(p.state(), Connection::State::Authorizing);
  ASSERT_EQ(proxied.authorizations, std::vector<std::string>{"42|c=1|"});
  ConnectAnswer a;
  a.code = 403;
  p.authorized(a);
  EXPECT_EQ(status(queued_bytes(p)), 403);
  EXPECT_TRUE(proxied.joined.empty());
}

}  // namespace
