// Reply liveness and stop (docs/PROTOCOL.md, "Stop", "Liveness"), with short timers
// (channels.reply_stall_ms 300, reply_timeout_ms 1200): a producer that stops mid-reply makes
// every viewer get `stalled`, then `end` with reason producer_lost; one that resumes after a
// stall goes on; a viewer's cancel ends the reply for everyone, the producer's next delta gets
// 409 cancelled and the backend's publish_url gets the signed cancel event; the token metrics
// move. Real flowrelayd, broker-local, transport-ws, the fake backend.
#include <gtest/gtest.h>

#include <memory>

#include "backend_proxy_fake.h"
#include "reply_daemon.h"

namespace flowrelay::itest {
namespace {

const std::string kKey = "reply-live-key";
const std::string kTimers =
    "channels: { prefix: \"chat:\", echo: true, reply_stall_ms: 300, reply_timeout_ms: 1200 }";

class ReplyLiveness : public ::testing::Test {
 protected:
  void start(const std::string& extra = "") {
    DaemonOptions o;
    o.api_key = kKey;
    o.extra = extra;
    daemon = std::make_unique<EditedDaemon>(o, kTimers);
  }
  void TearDown() override {
    if (!daemon) return;
    ASSERT_TRUE(daemon->running()) << "daemon died; stderr:\n" << daemon->stderr_text();
  }
  HttpResult post(const std::string& body) {
    return http_post(daemon->http_port(), "/api/publish", body, api_headers(kKey));
  }
  void post_ok(const std::string& body) {
    const HttpResult r = post(body);
    ASSERT_EQ(r.status, 200) << body << " -> " << r.body;
  }
  std::unique_ptr<EditedDaemon> daemon;
};

TEST_F(ReplyLiveness, AProducerThatStopsIsAnnouncedStalledThenEndedProducerLost) {
  start();
  EnvelopeClient a(daemon->ws_port(), "live-1");
  EnvelopeClient b(daemon->ws_port(), "live-1");
  post_ok(step_body("live-1", "r", delta_step(1, "The ")));
  post_ok(step_body("live-1", "r", delta_step(2, "answ")));
  const auto stopped = Clock::now();
  for (EnvelopeClient* v : {&a, &b}) {
    const Json stalled = next_of(*v, {"stalled", "end"}, 3s);
    ASSERT_TRUE(stalled) << "no stalled frame";
    EXPECT_EQ(str_of(stalled, "type"), "stalled") << "ended before it was announced stalled";
    EXPECT_EQ(str_of(stalled, "reply"), "r");
    EXPECT_FALSE(stalled->has("offset")) << "a stalled notice is not stored";
  }
  EXPECT_GE(Clock::now() - stopped, 250ms) << "stalled before reply_stall_ms";
  for (EnvelopeClient* v : {&a, &b}) {
    const Json end = next_of(*v, {"end", "stalled"}, 4s);
    ASSERT_TRUE(end) << "no end after reply_timeout_ms";
    EXPECT_EQ(str_of(end, "type"), "end") << "stalled twice in one stall";
    EXPECT_EQ(str_of(end, "reason"), "producer_lost");
    EXPECT_EQ(int_of(end->getObject("stats"), "tokens"), 2);
  }
  EXPECT_GE(Clock::now() - stopped, 1100ms) << "sealed before reply_timeout_ms";
  const HttpResult late = post(step_body("live-1", "r", delta_step(3, "er")));
  EXPECT_EQ(late.status, 409) << late.body;
  EXPECT_EQ(str_of(json_of(late.body), "ended"), "producer_lost") << late.body;
  EXPECT_EQ(metric_value(daemon->http_port(), "flowrelay_reply_stalls_total"), 1);
  EXPECT_EQ(metric_value(daemon->http_port(), "flowrelay_replies_open"), 0);
}

TEST_F(ReplyLiveness, AProducerResumingAfterAStallGoesOnNormally) {
  start();
  EnvelopeClient v(daemon->ws_port(), "live-2");
  post_ok(step_body("live-2", "r", R"("open":true)"));
  post_ok(step_body("live-2", "r", delta_step(1, "a")));
  uint64_t deltas = 0;
  for (;;) {
    const Json f = next_of(v, {"delta", "stalled"}, 3s);
    ASSERT_TRUE(f) << "no stalled frame";
    if (str_of(f, "type") == "stalled") break;
    ++deltas;
  }
  EXPECT_EQ(deltas, 1u);
  // Longer than reply_timeout_ms in all, never a gap as long as a stall.
  const auto until = Clock::now() + 1600ms;
  uint64_t seq = 1;
  while (Clock::now() < until) {
    post_ok(step_body("live-2", "r", delta_step(++seq, "b")));
    std::this_thread::sleep_for(60ms);
  }
  post_ok(step_body("live-2", "r", R"("end":true)"));
  for (;;) {
    const Json f = next_of(v, {"delta", "end", "stalled"}, 3s);
    ASSERT_TRUE(f) << "the reply did not end";
    ASSERT_NE(str_of(f, "type"), "stalled") << "stalled while deltas kept coming";
    if (str_of(f, "type") == "end") {
      EXPECT_EQ(str_of(f, "reason"), "done");
      EXPECT_EQ(int_of(f->getObject("stats"), "tokens"), static_cast<int64_t>(seq));
      break;
    }
    ++deltas;
  }
  EXPECT_EQ(deltas, seq) << "every delta once, before and after the stall";
  // The metrics of a reply accepted by this node moved.
  const uint16_t http = daemon->http_port();
  EXPECT_GE(metric_value(http, "flowrelay_reply_ttft_seconds_count"), 1);
  EXPECT_GE(metric_value(http, "flowrelay_reply_inter_token_seconds_count"),
            static_cast<double>(seq - 1));
  EXPECT_GE(metric_value(http, "flowrelay_reply_deltas_count"), 1);
  EXPECT_GE(metric_value(http, "flowrelay_reply_deltas_sum"), static_cast<double>(seq));
  EXPECT_GE(metric_value(http, "flowrelay_reply_bytes_count"), 1);
  const HttpResult page = http_get(http, "/metrics");
  EXPECT_NE(page.body.find("flowrelay_replies_total{reason=\"done\"} 1"), std::string::npos);
  EXPECT_NE(page.body.find("# TYPE flowrelay_reply_inter_token_seconds histogram"),
            std::string::npos);
}

TEST_F(ReplyLiveness, AViewersCancelEndsItEverywhereAndTellsTheBackend) {
  TempDir dir("cancel");
  FakeBackend backend;
  start(backend_section(dir, "  publish_url: " + backend.url("/flowrelay/publish") + "\n"));
  EnvelopeClient stopper(daemon->ws_port(), "live-3");
  EnvelopeClient other(daemon->ws_port(), "live-3");
  post_ok(step_body("live-3", "r17", R"("open":true)"));
  post_ok(step_body("live-3", "r17", delta_step(1, "The ")));
  stopper.send_text(R"({"type":"cancel","reply":"r17","id":"c1"})");
  // The stopper's ack and end come in either order (the end may be delivered first).
  Json ack, stopper_end;
  while (!ack || !stopper_end) {
    const Json f = next_of(stopper, {"ack", "error", "end"});
    ASSERT_TRUE(f) << "no " << (ack ? "end frame" : "answer to the cancel");
    (str_of(f, "type") == "end" ? stopper_end : ack) = f;
  }
  EXPECT_EQ(str_of(ack, "type"), "ack") << str_of(ack, "reason");
  EXPECT_EQ(str_of(ack, "id"), "c1");
  for (const Json& end : {stopper_end, next_of(other, {"end"})}) {
    ASSERT_TRUE(end) << "no end frame";
    EXPECT_EQ(str_of(end, "reason"), "cancelled");
    EXPECT_EQ(str_of(end, "reply"), "r17");
  }
  const HttpResult next = post(step_body("live-3", "r17", delta_step(2, "answer")));
  EXPECT_EQ(next.status, 409) << next.body;
  EXPECT_EQ(str_of(json_of(next.body), "ended"), "cancelled") << next.body;

  auto cancels = [&] { return backend.requests_of_type("/flowrelay/publish", "cancel"); };
  ASSERT_TRUE(wait_for([&] { return !cancels().empty(); }, 5s))
      << "the backend got no cancel event; metrics:\n"
      << http_get(daemon->http_port(), "/metrics").body << "\nstderr:\n"
      << daemon->stderr_text();
  const auto events = cancels();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(backend.count("/flowrelay/publish"), 1u) << "reply steps went through the proxy";
  const BackendRequest& e = events[0];
  EXPECT_TRUE(e.signature_ok) << "the cancel event is not signed";
  ASSERT_TRUE(e.json) << e.body;
  EXPECT_EQ(str_of(e.json, "type"), "cancel") << e.body;
  EXPECT_EQ(str_of(e.json, "conversation"), "live-3") << e.body;
  EXPECT_EQ(str_of(e.json, "reply"), "r17") << e.body;
  EXPECT_NE(str_of(e.json, "client").find('-'), std::string::npos) << e.body;
  EXPECT_EQ(str_of(e.json, "remote_addr").rfind("127.0.0.1:", 0), 0u) << e.body;
  EXPECT_TRUE(e.json->has("user")) << e.body;
  ASSERT_TRUE(
      wait_for([&] { return backend_count(daemon->http_port(), "cancel", "ok") == 1; }, 3s));

  // A second cancel of the cancelled reply: a duplicate, not told to the backend again.
  other.send_text(R"({"type":"cancel","reply":"r17","id":"c2"})");
  const Json again = next_of(other, {"ack", "error"});
  ASSERT_TRUE(again);
  EXPECT_EQ(str_of(again, "type"), "ack") << str_of(again, "reason");
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(cancels().size(), 1u) << "a duplicate cancel was told again";
}

}  // namespace
}  // namespace flowrelay::itest
