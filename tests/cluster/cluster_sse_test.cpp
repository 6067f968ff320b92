// SSE and WebSocket viewers of one conversation in cluster mode (docs/PROTOCOL.md "SSE and
// NDJSON"): two replicas, each with transport-ws and transport-sse, behind nginx (the shipped
// template plus an unbuffered /sse/ location). Whatever the way in (WebSocket envelope on a
// replica or through nginx, SSE through nginx or on the other replica) every viewer sees the same
// messages at the same offsets in the same epoch (the SSE id is "<epoch>:<offset>"), whatever
// way they were published (publish API, envelope publish, POST to /sse/ through nginx); an SSE
// viewer that reconnects through nginx with Last-Event-ID gets what it missed.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cluster.h"
#include "cluster_fixture.h"
#include "support/envelope_client.h"
#include "support/http.h"
#include "support/sse_client.h"

namespace flowrelay::ctest {
namespace {

using test::Envelope;
using test::EnvelopeClient;
using test::HttpSession;
using test::Published;
using test::SseClient;
using test::SseEvent;

const std::string kKey = "cluster-sse-key";

// A message as a viewer saw it, whichever transport brought it.
struct Seen {
  std::string lane;  // "message" or "log"; otherwise "<type>?" (what should not be here)
  std::string epoch;
  uint64_t offset = 0;
  std::string data;
  std::string raw;  // as received, for failure messages
};

// WebSocket envelope frame -> Seen.
Seen seen_of(const Envelope& e) {
  Seen s;
  s.lane = e.type == "message" ? (e.lane.empty() ? "message" : e.lane) : e.type + "?";
  s.epoch = e.epoch.value_or("");
  s.offset = e.offset.value_or(0);
  s.data = e.data.value_or("");
  s.raw = e.describe();
  return s;
}

// SSE event -> Seen: the message lane has no event: line, the log lane "event: log"; the id is
// "<epoch>:<offset>" (an epoch is opaque: the offset is after the last colon).
Seen seen_of(const SseEvent& e) {
  Seen s;
  s.lane = (e.event == "message" || e.event == "log") ? e.event : e.event + "?";
  const size_t colon = e.id.rfind(':');
  if (colon != std::string::npos) {
    s.epoch = e.id.substr(0, colon);
    try {
      s.offset = std::stoull(e.id.substr(colon + 1));
    } catch (...) {
      s.lane += " (bad id)";
    }
  }
  s.data = e.data;
  s.raw = e.describe();
  return s;
}

// A viewer: its name and its next message (nullopt on timeout or end).
struct Viewer {
  std::string name;
  std::function<std::optional<Seen>(Millis)> next;
  bool warm = false;
};

Viewer ws_viewer(const std::string& name, EnvelopeClient& c) {
  return {name, [&c](Millis t) -> std::optional<Seen> {
            auto e = c.next(t);
            if (!e) return std::nullopt;
            return seen_of(*e);
          }};
}

Viewer sse_viewer(const std::string& name, SseClient& c) {
  return {name, [&c](Millis t) -> std::optional<Seen> {
            auto e = c.next_event(t);
            if (!e) return std::nullopt;
            return seen_of(*e);
          }};
}

// The text an EventSource shows for `text`: every CRLF, CR or LF becomes LF (the server sends
// one data: line per line).
std::string lf_lines(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r') {
      out += '\n';
      if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
    } else {
      out += text[i];
    }
  }
  return out;
}

bool is_probe(const Seen& s) { return s.data.rfind("probe-", 0) == 0; }

class ClusterSseTest : public ClusterFixture {
 protected:
  // Two replicas (publish API with kKey, transport-sse beside transport-ws) and nginx proxying
  // /ws/ and /sse/ to both.
  void SetUp() override {
    ClusterFixture::SetUp();
    ReplicaOptions o;
    o.api_key = kKey;
    o.sse = true;
    start_replicas(2, o);
    Replica& A = *replicas[0];
    Replica& B = *replicas[1];
    // The template names three WebSocket upstreams: A twice.
    nginx = std::make_unique<Nginx>(
        dir, std::array<std::string, 3>{A.ws_address(), B.ws_address(), A.ws_address()}, 10s,
        std::vector<std::string>{A.sse_address(), B.sse_address()});
  }

  // Redis Pub/Sub delivers only to subscribed replicas, and nothing says a replica has
  // subscribed when its client got the 101 or the 200: probes are published (through A's API)
  // until every viewer has received one. Later probes still in flight are skipped by next().
  void warm_up(std::vector<Viewer*> viewers, const std::string& conv) {
    HttpSession api(replicas[0]->http_port());
    const auto deadline = Clock::now() + 10s;
    for (int n = 0; Clock::now() < deadline; ++n) {
      const Published p = test::publish_via_api(api, kKey, conv, "probe-" + std::to_string(n));
      ASSERT_EQ(p.status, 200) << p.body;
      for (Viewer* v : viewers) {
        while (!v->warm) {
          auto s = v->next(50ms);
          if (!s) break;
          ASSERT_TRUE(is_probe(*s)) << v->name << " got " << s->raw << " before any probe";
          v->warm = true;
        }
      }
      if (std::all_of(viewers.begin(), viewers.end(), [](Viewer* v) { return v->warm; })) return;
    }
    for (Viewer* v : viewers) EXPECT_TRUE(v->warm) << v->name << " received no probe in 10 s";
    FAIL() << "not every viewer is subscribed";
  }

  // The next message of `v` that is not a probe.
  static std::optional<Seen> next(Viewer& v, Millis timeout = 5s) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      auto s = v.next(Millis(remaining_ms(deadline)));
      if (!s || !is_probe(*s)) return s;
    }
  }
};

// A message that was published, as every viewer must see it.
struct Expected {
  std::string lane;
  std::string data;
  std::optional<uint64_t> offset;  // known from the publish answer (not for envelope publishes)
  std::optional<std::string> epoch;
};

TEST_F(ClusterSseTest, WebSocketAndSseViewersSeeTheSameMessagesAtTheSameOffsetsAndEpoch) {
  Replica& A = *replicas[0];
  Replica& B = *replicas[1];
  const std::string conv = "mixed-1";
  EnvelopeClient ws_on_a(A.ws_port(), conv);
  EnvelopeClient ws_front(nginx->port(), conv);
  SseClient sse_front = SseClient::connect(nginx->port(), "/sse/" + conv);
  ASSERT_EQ(sse_front.status(), 200) << sse_front.head().status_line << "\n"
                                     << tail_lines(nginx->error_log(), 10);
  EXPECT_EQ(sse_front.header("Content-Type").value_or(""), "text/event-stream");
  SseClient sse_on_b = SseClient::connect(B.sse_port(), "/sse/" + conv);
  ASSERT_EQ(sse_on_b.status(), 200) << sse_on_b.head().status_line;
  // The head as the replica sends it (nginx consumes X-Accel-Buffering).
  EXPECT_EQ(sse_on_b.header("Content-Type").value_or(""), "text/event-stream");
  EXPECT_EQ(sse_on_b.header("Cache-Control").value_or(""), "no-cache");
  EXPECT_EQ(sse_on_b.header("X-Accel-Buffering").value_or(""), "no");
  EXPECT_EQ(test::lower(sse_on_b.header("Connection").value_or("")), "close");

  std::vector<Viewer> viewers{ws_viewer("ws on A", ws_on_a), ws_viewer("ws via nginx", ws_front),
                              sse_viewer("sse via nginx", sse_front),
                              sse_viewer("sse on B", sse_on_b)};
  std::vector<Viewer*> all;
  for (auto& v : viewers) all.push_back(&v);
  warm_up(all, conv);
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(sse_front.parser().retry_ms(), std::optional<uint64_t>(1000)) << "no retry: first";

  // Published every way there is, in this order (each answered before the next is sent).
  std::vector<Expected> sent;
  auto answered = [&](const std::string& what, const test::HttpResult& r, const std::string& lane,
                      const std::string& data) {
    const Published p = test::parse_published(r.status, r.body);
    ASSERT_EQ(p.status, 200) << what << ": " << r.body;
    ASSERT_TRUE(p.offset && p.epoch) << what << ": " << r.body;
    sent.push_back({lane, data, p.offset, p.epoch});
  };
  HttpSession api_a(A.http_port());
  answered("publish API on A",
           api_a.post("/api/publish", test::publish_body(conv, "via api"), test::api_headers(kKey)),
           "message", "via api");
  const std::string path = "/sse/" + conv;
  answered("POST text via nginx",
           SseClient::post(nginx->port(), path, "text/plain", "via sse post"), "message",
           "via sse post");
  answered("POST JSON via nginx",
           SseClient::post(nginx->port(), path, "application/json",
                           R"({"type":"publish","data":"sse log line","lane":"log"})"),
           "log", "sse log line");
  const std::string lines = "line 1\r\nline 2\rline 3\nline 4";
  answered("POST multi-line via nginx",
           SseClient::post(nginx->port(), path, "text/plain; charset=utf-8", lines), "message",
           lines);
  answered("POST on B", SseClient::post(B.sse_port(), path, "text/plain", "via sse on B"),
           "message", "via sse on B");
  ASSERT_FALSE(HasFailure());
  ws_on_a.publish("via ws envelope");  // no id: no ack, its offset is what the viewers see
  sent.push_back({"message", "via ws envelope", std::nullopt, std::nullopt});
  const std::string epoch = *sent.front().epoch;

  // Every viewer: exactly these, in order, at the answered offsets, in one epoch.
  std::vector<std::vector<Seen>> got(viewers.size());
  for (size_t v = 0; v < viewers.size(); ++v) {
    const bool sse = viewers[v].name.rfind("sse", 0) == 0;
    for (size_t m = 0; m < sent.size(); ++m) {
      auto s = next(viewers[v]);
      ASSERT_TRUE(s) << viewers[v].name << ": message " << m << " (" << sent[m].data
                     << ") did not come";
      EXPECT_EQ(s->lane, sent[m].lane) << viewers[v].name << ": " << s->raw;
      EXPECT_EQ(s->data, sse ? lf_lines(sent[m].data) : sent[m].data)
          << viewers[v].name << ": " << s->raw;
      EXPECT_EQ(s->epoch, epoch) << viewers[v].name << ": " << s->raw;
      if (sent[m].offset) {
        EXPECT_EQ(s->offset, *sent[m].offset) << viewers[v].name << ": " << s->raw;
      }
      got[v].push_back(std::move(*s));
    }
    auto extra = next(viewers[v], 300ms);
    EXPECT_FALSE(extra) << viewers[v].name << ": unexpected " << extra->raw;
  }
  ASSERT_FALSE(HasFailure());
  // The envelope publish too has one offset for all, after the POST on B's.
  for (size_t v = 1; v < viewers.size(); ++v) {
    EXPECT_EQ(got[v].back().offset, got[0].back().offset) << viewers[v].name;
  }
  EXPECT_GT(got[0].back().offset, *sent[sent.size() - 2].offset);
  EXPECT_FALSE(sse_front.closed()) << "the stream through nginx ended";
  EXPECT_FALSE(sse_on_b.closed()) << "the stream on B ended";
}

TEST_F(ClusterSseTest, SseViewerReconnectingThroughNginxWithLastEventIdGetsWhatItMissed) {
  const std::string conv = "mixed-resume";
  EnvelopeClient ws_on_a(replicas[0]->ws_port(), conv);
  auto sse = std::make_unique<SseClient>(SseClient::connect(nginx->port(), "/sse/" + conv));
  ASSERT_EQ(sse->status(), 200) << sse->head().status_line;
  std::vector<Viewer> viewers{ws_viewer("ws on A", ws_on_a), sse_viewer("sse via nginx", *sse)};
  warm_up({&viewers[0], &viewers[1]}, conv);
  ASSERT_FALSE(HasFailure());

  const std::string path = "/sse/" + conv;
  auto post = [&](const std::string& text) {
    const test::HttpResult r = SseClient::post(nginx->port(), path, "text/plain", text);
    const Published p = test::parse_published(r.status, r.body);
    EXPECT_EQ(p.status, 200) << r.body;
    return p;
  };
  const Published before = post("before");
  auto s = next(viewers[1]);
  ASSERT_TRUE(s && s->data == "before") << (s ? s->raw : "nothing");
  const std::string last_id = sse->parser().last_event_id();
  ASSERT_EQ(last_id, before.epoch.value_or("?") + ":" + std::to_string(before.offset.value_or(0)));
  viewers.pop_back();
  sse.reset();  // the viewer goes away

  std::vector<Published> missed;
  for (int i = 0; i < 3; ++i) missed.push_back(post("missed " + std::to_string(i)));
  ASSERT_FALSE(HasFailure());
  // What EventSource sends by itself when it reconnects; nginx may pick either replica.
  SseClient back = SseClient::connect(nginx->port(), path, {{"Last-Event-ID", last_id}});
  ASSERT_EQ(back.status(), 200) << back.head().status_line;
  for (size_t i = 0; i < missed.size(); ++i) {
    auto e = back.next_event();
    ASSERT_TRUE(e) << "missed message " << i << " did not come";
    EXPECT_EQ(e->event, "message") << e->describe();
    EXPECT_EQ(e->data, "missed " + std::to_string(i));
    EXPECT_EQ(e->id, *missed[i].epoch + ":" + std::to_string(*missed[i].offset));
  }
  auto resumed = back.next_event();
  ASSERT_TRUE(resumed) << "no resumed event after the history";
  EXPECT_EQ(resumed->event, "resumed") << resumed->describe();
  const Envelope r = test::parse_envelope(resumed->data);
  EXPECT_EQ(r.type, "resumed") << r.describe();
  EXPECT_EQ(r.recovered, std::optional<bool>(true)) << r.describe();
  EXPECT_EQ(r.epoch, missed.back().epoch) << r.describe();
  EXPECT_EQ(r.offset, missed.back().offset) << r.describe();
  EXPECT_EQ(resumed->id, *missed.back().epoch + ":" + std::to_string(*missed.back().offset));

  // Then live, from any side: a WebSocket publish on A.
  ws_on_a.publish("live");
  auto live = back.next_event();
  ASSERT_TRUE(live) << "no live message after resumed";
  EXPECT_EQ(live->data, "live") << live->describe();
  EXPECT_EQ(live->id, *missed.back().epoch + ":" + std::to_string(*missed.back().offset + 1));
}

}  // namespace
}  // namespace flowrelay::ctest
