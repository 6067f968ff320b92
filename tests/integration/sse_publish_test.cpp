// transport-sse's POST publishing against the real daemon (docs/PROTOCOL.md "Publishing over
// HTTP"): acks, JSON frames, refusals, keep-alive, the publish rate per connection and address.
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

// ---------------------------------------------------------------------------------------------
// POST publishing

class SsePublish : public ::testing::Test {
 protected:
  static constexpr uint64_t kMax = 1024;
  static void SetUpTestSuite() {
    DaemonOptions o = sse_options();
    o.max_message_size = kMax;
    daemon = std::make_unique<Daemon>(o);
  }
  static void TearDownTestSuite() { daemon.reset(); }
  void TearDown() override {
    ASSERT_TRUE(daemon->running()) << "daemon died; stderr:\n" << daemon->stderr_text();
  }
  static uint16_t sse() { return daemon->sse_port(); }
  static std::unique_ptr<Daemon> daemon;
};
std::unique_ptr<Daemon> SsePublish::daemon;

TEST_F(SsePublish, TextPlainIsAckedAndDeliveredToSseAndWebSocketReaders) {
  const std::string conv = "post-text";
  SseClient reader = SseClient::connect(sse(), "/sse/" + conv);
  ASSERT_EQ(reader.status(), 200) << describe(reader.head());
  WsClient ws(daemon->ws_port(), conv);
  const std::string text = "hello from POST\nsecond line \xC3\xA9";
  const HttpResult r = SseClient::post(sse(), "/sse/" + conv, "text/plain; charset=utf-8", text);
  const Ack a = parse_ack(r);
  ASSERT_TRUE(a.ok) << describe(r);
  EXPECT_EQ(a.offset, 1u);
  EXPECT_FALSE(a.id.has_value()) << r.body;
  EXPECT_FALSE(a.relayed.has_value()) << r.body;
  const auto e = reader.next_event();
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->event, "message") << e->describe();
  EXPECT_EQ(e->data, text) << e->describe();
  EXPECT_EQ(e->id, a.id_string()) << e->describe();
  const auto m = ws.receive();
  ASSERT_TRUE(m.has_value()) << "the WebSocket reader got nothing";
  EXPECT_EQ(m->payload, text);

  // No Content-Type: the text too; a second publish gets the next offset.
  RawHttp untyped(sse());
  const RawAnswer r2 = untyped.request("POST", "/sse/" + conv, "", "untyped");
  const Ack a2 = parse_ack(r2.head.status, r2.head.header("Content-Type").value_or(""), r2.body);
  EXPECT_EQ(a2.offset, 2u) << describe(r2.head) << " " << r2.body;
  EXPECT_EQ(a2.epoch, a.epoch);
  const auto e2 = reader.next_event();
  ASSERT_TRUE(e2.has_value());
  EXPECT_EQ(e2->data, "untyped");
  const auto m2 = ws.receive();
  ASSERT_TRUE(m2.has_value());
  EXPECT_EQ(m2->payload, "untyped");
}

TEST_F(SsePublish, JsonPublishFrameGoesToItsLaneAndTheAckCarriesItsId) {
  const std::string conv = "post-json";
  SseClient reader = SseClient::connect(sse(), "/sse/" + conv);
  ASSERT_EQ(reader.status(), 200) << describe(reader.head());
  const HttpResult r = SseClient::post(sse(), "/sse/" + conv, "application/json",
                                       R"({"type":"publish","lane":"log","data":"d","id":"c1"})");
  const Ack a = parse_ack(r);
  ASSERT_TRUE(a.ok) << describe(r);
  EXPECT_EQ(a.id, std::optional<std::string>("c1")) << r.body;
  const auto e = reader.next_event();
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->event, "log") << e->describe();
  EXPECT_EQ(e->data, "d") << e->describe();
  EXPECT_EQ(e->id, a.id_string()) << e->describe();

  const HttpResult m = SseClient::post(sse(), "/sse/" + conv, "application/json; charset=utf-8",
                                       R"({"type":"publish","data":"x\r\ny"})");
  const Ack am = parse_ack(m);
  ASSERT_TRUE(am.ok) << describe(m);
  EXPECT_EQ(am.offset, a.offset + 1);
  EXPECT_FALSE(am.id.has_value()) << m.body;
  const auto e2 = reader.next_event();
  ASSERT_TRUE(e2.has_value());
  EXPECT_EQ(e2->event, "message") << e2->describe();
  EXPECT_EQ(e2->data, "x\ny") << e2->describe();
}

TEST_F(SsePublish, RefusalsAre400413415AndPublishNothing) {
  const std::string conv = "post-refused";
  SseClient reader = SseClient::connect(sse(), "/sse/" + conv);
  ASSERT_EQ(reader.status(), 200) << describe(reader.head());
  struct Case {
    std::string what, content_type, body;
    int status;
  };
  const std::vector<Case> cases = {
      {"invalid JSON", "application/json", "{\"type\":\"publish\",", 400},
      {"JSON not an object", "application/json", "\"text\"", 400},
      {"JSON frame without data", "application/json", R"({"type":"publish"})", 400},
      {"JSON frame of another type", "application/json", R"({"type":"nonsense","data":"x"})", 400},
      {"text not UTF-8", "text/plain", "bad \xFF\xFE bytes", 400},
      {"JSON string not UTF-8", "application/json", "{\"type\":\"publish\",\"data\":\"\xC3\"}",
       400},
      {"text over max_message_size", "text/plain", std::string(kMax + 1, 'x'), 413},
      {"form body", "application/x-www-form-urlencoded", "a=b", 415},
      {"octet stream", "application/octet-stream", "bytes", 415},
  };
  for (const Case& k : cases) {
    const HttpResult r = SseClient::post(sse(), "/sse/" + conv, k.content_type, k.body);
    EXPECT_EQ(r.status, k.status) << k.what << ": " << describe(r);
    EXPECT_EQ(r.content_type.substr(0, 10), "text/plain") << k.what << ": " << describe(r);
    EXPECT_FALSE(trim(r.body).empty()) << k.what << ": no reason in the body";
  }
  // Exactly max_message_size is fine.
  const HttpResult at_max =
      SseClient::post(sse(), "/sse/" + conv, "text/plain", std::string(kMax, 'y'));
  const Ack a = parse_ack(at_max);
  EXPECT_EQ(a.offset, 1u) << "a refused POST published something: " << describe(at_max);
  const auto e = reader.next_event();
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->data, std::string(kMax, 'y'));
}

TEST_F(SsePublish, KeepAliveConnectionAnswersThreePostsInOrder) {
  const std::string conv = "post-keepalive";
  SseClient reader = SseClient::connect(sse(), "/sse/" + conv);
  ASSERT_EQ(reader.status(), 200) << describe(reader.head());
  RawHttp c(sse());
  std::string epoch;
  for (uint64_t i = 1; i <= 3; ++i) {
    const std::string text = "keep " + std::to_string(i);
    const RawAnswer r = c.request("POST", "/sse/" + conv, "text/plain", text);
    ASSERT_EQ(r.head.status, 200) << "POST " << i << ": " << describe(r.head);
    EXPECT_NE(lower(r.head.header("Connection").value_or("")), "close") << describe(r.head);
    const Ack a = parse_ack(r.head.status, r.head.header("Content-Type").value_or(""), r.body);
    EXPECT_EQ(a.offset, i) << r.body;
    if (i == 1) epoch = a.epoch;
    EXPECT_EQ(a.epoch, epoch);
    const auto e = reader.next_event();
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->data, text);
  }
  // A refusal that leaves the request framing intact keeps the connection too (400 not UTF-8).
  const RawAnswer bad = c.request("POST", "/sse/" + conv, "text/plain", "\xFF");
  EXPECT_EQ(bad.head.status, 400) << describe(bad.head);
  const RawAnswer after = c.request("POST", "/sse/" + conv, "text/plain", "after");
  EXPECT_EQ(after.head.status, 200) << describe(after.head) << " " << after.body;
  // Connection: close is honoured: answered, then the server closes.
  const RawAnswer last =
      c.request("POST", "/sse/" + conv, "text/plain", "last", "Connection: close\r\n");
  EXPECT_EQ(last.head.status, 200) << describe(last.head);
  EXPECT_TRUE(c.raw().wait_closed(3s)) << "the server kept a Connection: close connection";
}

TEST(SsePublishRate, PostsBeyondPublishRateAre429WithRetryAfter) {
  DaemonOptions o = sse_options("    publish_rate: 1\n    publish_burst: 1\n");
  Daemon d(o);
  const std::string conv = "post-rate";
  RawHttp c(d.sse_port());
  const RawAnswer first = c.request("POST", "/sse/" + conv, "text/plain", "one");
  ASSERT_EQ(first.head.status, 200) << describe(first.head) << " " << first.body;
  const RawAnswer second = c.request("POST", "/sse/" + conv, "text/plain", "two");
  EXPECT_EQ(second.head.status, 429) << describe(second.head) << " " << second.body;
  const auto retry = second.head.header("Retry-After");
  ASSERT_TRUE(retry.has_value()) << describe(second.head);
  EXPECT_GE(std::stoi(*retry), 1) << *retry;
  // The refused one was not published: the next allowed publish gets offset 2.
  std::this_thread::sleep_for(1100ms);
  const RawAnswer third = c.request("POST", "/sse/" + conv, "text/plain", "three");
  ASSERT_EQ(third.head.status, 200) << describe(third.head) << " " << third.body;
  EXPECT_EQ(parse_ack(third.head.status, third.head.header("Content-Type").value_or(""), third.body)
                .offset,
            2u);
  EXPECT_GE(metric_value(d.http_port(), "flowrelay_sse_rate_limited_total"), 1);
  EXPECT_TRUE(d.running()) << d.stderr_text();
}

// A publisher cannot reset the rate by opening a new connection for each POST: the bucket is
// also the client address's (all of this test's connections come from 127.0.0.1).
TEST(SsePublishRate, ANewConnectionPerPostSharesTheAddresssBucket) {
  DaemonOptions o = sse_options("    publish_rate: 1\n    publish_burst: 2\n");
  Daemon d(o);
  const std::string conv = "post-rate-conns";
  std::vector<int> statuses;
  for (int i = 0; i < 4; ++i) {
    RawHttp c(d.sse_port());  // a fresh connection each time
    statuses.push_back(c.request("POST", "/sse/" + conv, "text/plain", "m").head.status);
  }
  EXPECT_EQ(statuses, (std::vector<int>{200, 200, 429, 429}));
  // What was refused was not published: a reader from the start sees the two.
  SseClient r = SseClient::connect(d.sse_port(), "/sse/" + conv + "?since=0");
  ASSERT_EQ(r.status(), 200);
  const auto ev = events(r, 3, 2s);
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(ev[0].data, "m");
  EXPECT_EQ(ev[1].data, "m");
  EXPECT_EQ(ev[2].event, "resumed");
  EXPECT_NE(ev[2].data.find("\"offset\":2"), std::string::npos) << ev[2].data;
}

}  // namespace
}  // namespace flowrelay::itest
