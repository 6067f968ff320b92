// Connection caps, handshake deadline, idle pings, message size, publish rate, id length and
// header size: each refused or closed as documented, and counted in GET /metrics.
#include <gtest/gtest.h>

#include <memory>
#include <thread>

#include "security_util.h"

namespace flowrelay::itest {
namespace {

using test::metric_or;
using sec::text_frame;

long ms_since(Clock::time_point t0) {
  return static_cast<long>(std::chrono::duration_cast<Millis>(Clock::now() - t0).count());
}

std::string describe(const HttpHead& h) {
  return h.status_line.empty() ? "(no response)" : h.status_line;
}

std::unique_ptr<RawClient> join(uint16_t port, const std::string& path) {
  auto c = std::make_unique<RawClient>(port);
  if (!c->upgrade(path)) return nullptr;
  return c;
}

std::string next_text(RawClient& c, Millis timeout = 3s) {
  Frame f;
  const ReadResult r = c.read_frame(f, timeout);
  if (r != ReadResult::Frame) return "<no frame: " + std::to_string(static_cast<int>(r)) + ">";
  if (f.opcode != kText) return "<" + f.describe() + ">";
  return f.payload;
}

void expect_close(RawClient& c, uint16_t code, const std::string& reason_part = "") {
  std::vector<Frame> before;
  auto f = c.read_until_close(3s, &before);
  ASSERT_TRUE(f.has_value()) << "no close frame (connection " << (c.closed() ? "closed" : "open")
                             << ")";
  EXPECT_EQ(f->close_code(), code) << f->describe();
  EXPECT_NE(f->close_reason().find(reason_part), std::string::npos) << f->describe();
  EXPECT_TRUE(c.wait_closed(3s)) << "no EOF after close " << code;
}

// ---------------------------------------------------------------------------------------------

TEST(Limits, MaxConnectionsRefuses503AndAdmitsAgainAfterACloses) {
  DaemonOptions o;
  o.transport_extra = "    max_connections: 3\n";
  Daemon d(o);
  std::vector<std::unique_ptr<RawClient>> in;
  for (int i = 0; i < 3; ++i) {
    in.push_back(join(d.ws_port(), "/ws/full"));
    ASSERT_TRUE(in.back()) << "client " << i << " of 3 refused\n" << d.stderr_text();
  }
  for (int i = 0; i < 2; ++i) {
    RawClient extra(d.ws_port());
    const HttpHead h = extra.handshake("/ws/full");
    EXPECT_EQ(h.status, 503) << describe(h);
    EXPECT_TRUE(extra.wait_closed(3s));
  }
  EXPECT_EQ(metric_or(d.http_port(), "flowrelay_limit_rejections_total"), 2);
  EXPECT_GE(metric_or(d.http_port(), "flowrelay_connections_rejected_total"), 2);
  // The refused ones did not disturb the admitted ones.
  ASSERT_TRUE(in[0]->send_text("still fine"));
  for (auto& c : in) EXPECT_EQ(next_text(*c), "still fine");
  // One leaves: a place is free again (the count is released when the daemon sees the EOF).
  in[2]->fin_close();
  in.pop_back();
  std::unique_ptr<RawClient> again;
  EXPECT_TRUE(wait_for(
      [&] {
        again = join(d.ws_port(), "/ws/full");
        return again != nullptr;
      },
      3s, 50ms))
      << "no connection admitted after one of the 3 closed";
}

TEST(Limits, MaxConnectionsPerIpRefuses429ButOtherAddressesGetIn) {
  DaemonOptions o;
  o.transport_extra = "    max_connections_per_ip: 2\n";
  Daemon d(o);
  auto a = join(d.ws_port(), "/ws/ip");
  auto b = join(d.ws_port(), "/ws/ip");
  ASSERT_TRUE(a && b) << d.stderr_text();
  RawClient third(d.ws_port());
  const HttpHead h = third.handshake("/ws/ip");
  EXPECT_EQ(h.status, 429) << describe(h);
  EXPECT_TRUE(third.wait_closed(3s));
  // The cap is per address: 127.0.0.2 still gets in (twice), then it is capped as well.
  sec::SourcedHandshake other1("127.0.0.2", d.ws_port(), "/ws/ip");
  sec::SourcedHandshake other2("127.0.0.2", d.ws_port(), "/ws/ip");
  sec::SourcedHandshake other3("127.0.0.2", d.ws_port(), "/ws/ip");
  EXPECT_EQ(other1.status(), 101) << other1.error();
  EXPECT_EQ(other2.status(), 101) << other2.error();
  EXPECT_EQ(other3.status(), 429) << other3.error();
  EXPECT_EQ(metric_or(d.http_port(), "flowrelay_limit_rejections_total"), 2);
}

TEST(Limits, SlowHeadersAreDroppedAtTheHandshakeDeadline) {
  DaemonOptions o;
  o.transport_extra = "    handshake_timeout_ms: 600\n";
  Daemon d(o);
  const std::string request = handshake_request("/ws/slow", make_ws_key());
  RawClient trickler(d.ws_port());
  RawClient silent(d.ws_port());
  const auto t0 = Clock::now();
  size_t sent = 0;
  long trickler_closed_ms = -1, silent_closed_ms = -1;
  while (ms_since(t0) < 4000 && (trickler_closed_ms < 0 || silent_closed_ms < 0)) {
    if (trickler_closed_ms < 0) {
      // One byte every 40 ms: the full request would need ~6 s.
      if (sent < request.size() && trickler.send_raw(request.substr(sent, 1))) ++sent;
      if (trickler.wait_closed(40ms)) trickler_closed_ms = ms_since(t0);
    } else {
      std::this_thread::sleep_for(40ms);
    }
    if (silent_closed_ms < 0) {
      silent.pump();  // non-blocking: notices the server's EOF
      if (silent.closed()) silent_closed_ms = ms_since(t0);
    }
  }
  EXPECT_LT(sent, request.size()) << "the whole request went out before the deadline";
  EXPECT_GE(trickler_closed_ms, 550) << "dropped before the deadline";
  EXPECT_LE(trickler_closed_ms, 2000)
      << "byte-by-byte client not dropped near the 600 ms deadline"
      << " (-1: still open after 4 s); sent " << sent << " of " << request.size() << " bytes";
  EXPECT_GE(silent_closed_ms, 550);
  EXPECT_LE(silent_closed_ms, 2000) << "silent client not dropped (-1: still open after 4 s)";
  // A prompt client meanwhile is served normally.
  auto ok = join(d.ws_port(), "/ws/slow");
  ASSERT_TRUE(ok);
  ASSERT_TRUE(ok->send_text("fast enough"));
  EXPECT_EQ(next_text(*ok), "fast enough");
}

TEST(Limits, IdleClientsArePingedAndClosed1001OnlyIfTheyNeverAnswer) {
  DaemonOptions o;
  o.transport_extra = "    idle_timeout_ms: 400\n";
  Daemon d(o);
  auto responsive = join(d.ws_port(), "/ws/idle");
  auto silent = join(d.ws_port(), "/ws/idle");
  ASSERT_TRUE(responsive && silent);
  const auto t0 = Clock::now();
  long ping_ms = -1, close_ms = -1;
  uint16_t close_code = 0;
  int pongs_sent = 0;
  bool responsive_closed = false;
  std::string timeline[2];  // what each client saw, and when
  // 2 s = five idle periods: the silent one must be pinged, then closed; the responsive one
  // answers every ping with a pong at once and must stay.
  pump_clients(
      {responsive.get(), silent.get()},
      [&](size_t i, Frame&& f) {
        timeline[i] += " " + std::to_string(ms_since(t0)) + " ms: " + f.describe() + ";";
        if (i == 0) {
          if (f.opcode == kPing) {
            FrameSpec pong;
            pong.opcode = kPong;
            pong.payload = f.payload;
            if (responsive->send_frame(pong)) ++pongs_sent;
          } else if (f.opcode == kClose) {
            responsive_closed = true;
          }
          return;
        }
        if (f.opcode == kPing && ping_ms < 0) ping_ms = ms_since(t0);
        if (f.opcode == kClose && close_ms < 0) {
          close_ms = ms_since(t0);
          close_code = f.close_code();
        }
      },
      [] { return false; }, 2000ms);
  const std::string seen = "\n  responsive client saw:" + timeline[0] +
                           "\n  silent client saw:" + timeline[1] +
                           "\n  (idle_timeout_ms 400, times from the joins)";
  // The silent client: a ping one period after its last frame, close 1001 one period later.
  EXPECT_GE(ping_ms, 350) << "pinged before idle_timeout_ms" << seen;
  EXPECT_LE(ping_ms, 700) << "no ping one idle period after the join (-1: never)" << seen;
  EXPECT_EQ(close_code, 1001) << seen;
  EXPECT_GE(close_ms, 750) << "closed before a second idle period (-1: never closed)" << seen;
  EXPECT_LE(close_ms, 1600) << seen;
  EXPECT_TRUE(silent->wait_closed(3s)) << "no EOF after close 1001";
  // The responsive client: pinged about every period, never closed.
  EXPECT_FALSE(responsive_closed) << "a client answering every ping was closed" << seen;
  EXPECT_GE(pongs_sent, 3) << "the responsive client was pinged " << pongs_sent << " times in 2 s"
                           << seen;
  EXPECT_FALSE(responsive->closed());
  EXPECT_TRUE(responsive->send_text("I am here") && next_text(*responsive) == "I am here");
  EXPECT_EQ(metric_or(d.http_port(), "flowrelay_idle_closes_total"), 1);
}

TEST(Limits, MessagesOverMaxMessageSizeAreClosed1009) {
  DaemonOptions o;
  o.max_message_size = 1024;
  Daemon d(o);
  const double before = metric_or(d.http_port(), "flowrelay_protocol_closes_total");
  auto at_limit = join(d.ws_port(), "/ws/size");
  auto over = join(d.ws_port(), "/ws/size");
  auto fragmented = join(d.ws_port(), "/ws/size");
  ASSERT_TRUE(at_limit && over && fragmented);
  const std::string exact(1024, 'a');
  ASSERT_TRUE(at_limit->send_text(exact));
  for (RawClient* c : {at_limit.get(), over.get(), fragmented.get()})
    EXPECT_EQ(next_text(*c).size(), 1024u);
  ASSERT_TRUE(over->send_text(std::string(1025, 'b')));
  expect_close(*over, 1009);
  ASSERT_TRUE(fragmented->send_text(std::string(600, 'c'), false));
  FrameSpec rest;
  rest.opcode = kCont;
  rest.payload = std::string(600, 'c');
  ASSERT_TRUE(fragmented->send_frame(rest));
  expect_close(*fragmented, 1009);
  EXPECT_EQ(metric_or(d.http_port(), "flowrelay_protocol_closes_total"), before + 2);
  ASSERT_TRUE(at_limit->send_text("small"));
  EXPECT_EQ(next_text(*at_limit), "small");
}

TEST(Limits, PublishRateTokenBucketClosesTheExcess1008) {
  DaemonOptions o;
  o.transport_extra = "    publish_rate: 5\n    publish_burst: 3\n";
  Daemon d(o);
  auto burster = join(d.ws_port(), "/ws/rate");
  auto observer = join(d.ws_port(), "/ws/rate");
  auto steady = join(d.ws_port(), "/ws/rate-steady");
  ASSERT_TRUE(burster && observer && steady);
  // The burst of 3 goes through at once; the 4th, right behind, finds the bucket empty.
  std::string four;
  for (int i = 0; i < 4; ++i) four += text_frame("m" + std::to_string(i));
  ASSERT_TRUE(burster->send_raw(four));
  std::vector<Frame> before;
  auto f = burster->read_until_close(3s, &before);
  ASSERT_TRUE(f.has_value()) << "no close after 4 messages at publish_burst 3";
  EXPECT_EQ(f->close_code(), 1008) << f->describe();
  EXPECT_NE(f->close_reason().find("rate"), std::string::npos) << f->describe();
  EXPECT_TRUE(burster->wait_closed(3s));
  // The other member of the conversation got exactly the first 3.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(next_text(*observer), "m" + std::to_string(i));
  Frame extra;
  EXPECT_EQ(observer->read_frame(extra, 300ms), ReadResult::Timeout)
      << "relayed past the burst: " << extra.describe();

  // Under the rate (one every 300 ms at 5/s), past the burst, nothing is closed.
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(steady->send_text("s" + std::to_string(i)));
    EXPECT_EQ(next_text(*steady), "s" + std::to_string(i));
    std::this_thread::sleep_for(300ms);
  }
  EXPECT_EQ(metric_or(d.http_port(), "flowrelay_rate_limited_total"), 1);
}

TEST(Limits, ConversationIdLongerThanTheMaximumIs400) {
  DaemonOptions o;
  o.transport_extra = "    max_conversation_id_length: 16\n";
  Daemon d(o);
  auto ok = join(d.ws_port(), "/ws/" + std::string(16, 'k'));
  EXPECT_TRUE(ok) << "an id of exactly 16 characters was refused";
  RawClient c(d.ws_port());
  const HttpHead h = c.handshake("/ws/" + std::string(17, 'k'));
  EXPECT_EQ(h.status, 400) << describe(h);
  EXPECT_TRUE(c.wait_closed(3s));
  EXPECT_GE(metric_or(d.http_port(), "flowrelay_connections_rejected_total"), 1);
}

TEST(Limits, HeadersOverMaxHeaderSizeAre431) {
  DaemonOptions o;
  o.transport_extra = "    max_header_size: 1024\n";
  Daemon d(o);
  {
    RawClient c(d.ws_port());
    const HttpHead h = c.handshake("/ws/h", "X-Pad: " + std::string(400, 'p') + "\r\n");
    EXPECT_EQ(h.status, 101) << describe(h);
  }
  {
    RawClient c(d.ws_port());
    const HttpHead h = c.handshake("/ws/h", "X-Pad: " + std::string(1200, 'p') + "\r\n");
    EXPECT_EQ(h.status, 431) << describe(h);
    EXPECT_TRUE(c.wait_closed(3s));
  }
  {
    // Headers that never end: refused as soon as they pass the limit, not at the deadline.
    RawClient c(d.ws_port());
    const auto t0 = Clock::now();
    const HttpHead h = c.request("GET /ws/h HTTP/1.1\r\nX-Pad: " + std::string(2000, 'p'), 3s);
    EXPECT_EQ(h.status, 431) << describe(h);
    EXPECT_LT(ms_since(t0), 1000);
  }
  EXPECT_GE(metric_or(d.http_port(), "flowrelay_connections_rejected_total"), 2);
}

}  // namespace
}  // namespace flowrelay::itest
