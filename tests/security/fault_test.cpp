// Hostile load: a connection flood from one address, and a thousand clients sending garbage,
// while a well-behaved pair keeps chatting. The daemon must stay up, keep the pair's round
// trips short, close every offender cleanly and return to its baseline threads and memory.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <random>

#include "security_util.h"

namespace flowrelay::itest {
namespace {

using test::metric_or;

std::string next_text(WsClient& c) {
  auto m = c.receive(3s);
  if (!m) return "<nothing>";
  return m->payload;
}

struct Baseline {
  long threads = -1;
  long rss_kb = -1;
};

// Threads and RSS once the daemon has served some HTTP (its pool threads exist).
Baseline baseline(Daemon& d) {
  for (int i = 0; i < 3; ++i) http_get(d.http_port(), "/metrics");
  return {d.thread_count(), d.vm_rss_kb()};
}

// The daemon is back to `base`: only the `open` clients still connected, threads and RSS near
// where they were. RSS may keep some of what the allocator took, but not per-connection state.
void expect_back_to(Daemon& d, const Baseline& base, double open, long rss_slack_kb) {
  EXPECT_TRUE(wait_for([&] { return metric_or(d.http_port(), "flowrelay_connections") == open; },
                       10s, 50ms))
      << "open connections: " << metric_or(d.http_port(), "flowrelay_connections") << ", expected "
      << open;
  EXPECT_TRUE(wait_for([&] { return d.thread_count() <= base.threads + 1; }, 5s, 50ms))
      << "threads " << d.thread_count() << " (baseline " << base.threads << ")";
  const long rss = d.vm_rss_kb();
  std::printf("[ info ] daemon threads %ld (baseline %ld), VmRSS %ld kB (baseline %ld kB)\n",
              d.thread_count(), base.threads, rss, base.rss_kb);
  EXPECT_LE(rss, base.rss_kb + rss_slack_kb)
      << "VmRSS " << rss << " kB, baseline " << base.rss_kb << " kB";
}

void expect_chatter_fine(const sec::Chatter::Result& r) {
  EXPECT_TRUE(r.errors.empty()) << r.errors.front();
  EXPECT_GE(r.rounds, 20) << "the well-behaved pair barely exchanged messages";
  EXPECT_LT(r.max_rtt.count(), 1000) << "slowest round trip " << r.max_rtt.count() << " ms";
  std::printf("[ info ] well-behaved pair: %ld round trips, slowest %lld ms\n", r.rounds,
              static_cast<long long>(r.max_rtt.count()));
}

TEST(Fault, ConnectionFloodFromOneAddressIsCappedWithoutHurtingOthers) {
  ASSERT_GE(raise_nofile_limit(), 8000u);
  DaemonOptions o;
  o.transport_extra = "    max_connections_per_ip: 100\n";
  Daemon d(o);
  const Baseline base = baseline(d);
  sec::Chatter chatter(d.ws_port(), "calm");  // 2 of the 100 places of 127.0.0.1
  ASSERT_TRUE(wait_for([&] { return chatter.rounds() >= 5; }, 5s)) << "the pair cannot chat";

  // 10 waves of 1000 simultaneous attempts: each connects, sends a handshake, reads the answer;
  // the whole wave then disconnects.
  constexpr int kWaves = 10, kPerWave = 1000;
  std::map<int, int> statuses;  // HTTP status -> count (0: no answer)
  int connect_failures = 0;
  const auto t0 = Clock::now();
  for (int w = 0; w < kWaves; ++w) {
    std::vector<std::unique_ptr<RawClient>> wave;
    wave.reserve(kPerWave);
    for (int i = 0; i < kPerWave; ++i) {
      try {
        wave.push_back(std::make_unique<RawClient>(d.ws_port()));
        wave.back()->send_raw(handshake_request("/ws/flood", make_ws_key()));
      } catch (const std::exception&) {
        ++connect_failures;
      }
    }
    const auto wave_deadline = Clock::now() + 10s;
    for (auto& c : wave) {
      const auto left = std::chrono::duration_cast<Millis>(wave_deadline - Clock::now());
      ++statuses[c->read_head(std::max(left, Millis(0))).status];
    }
    ASSERT_TRUE(d.running()) << "daemon died during wave " << w << "\n" << d.stderr_text();
  }
  const auto flood_ms = std::chrono::duration_cast<Millis>(Clock::now() - t0).count();
  std::string summary;
  for (const auto& [status, n] : statuses)
    summary += std::to_string(status) + ": " + std::to_string(n) + "  ";
  std::printf("[ info ] %d attempts in %lld ms: %s(connect failures %d)\n", kWaves * kPerWave,
              static_cast<long long>(flood_ms), summary.c_str(), connect_failures);

  // Capped: at most 98 of each wave got in (the pair holds 2 places), the rest got 429.
  EXPECT_EQ(connect_failures, 0);
  EXPECT_LE(statuses[101], kWaves * 98) << summary;
  EXPECT_GE(statuses[429], kWaves * kPerWave * 9 / 10) << summary;
  EXPECT_EQ(statuses[101] + statuses[429], kWaves * kPerWave) << "other answers: " << summary;
  EXPECT_GE(metric_or(d.http_port(), "flowrelay_limit_rejections_total"), statuses[429]);

  // The pair kept chatting throughout, and still does.
  const long rounds_during = chatter.rounds();
  ASSERT_TRUE(wait_for([&] { return chatter.rounds() >= rounds_during + 10; }, 5s))
      << "the pair stopped chatting after the flood";
  expect_chatter_fine(chatter.stop());
  ASSERT_TRUE(d.running()) << d.stderr_text();
  EXPECT_EQ(http_get(d.http_port(), "/health").status, 200);
  // The flood's places were all given back: 98 newcomers fit again.
  std::vector<std::unique_ptr<RawClient>> after;
  EXPECT_TRUE(wait_for(
      [&] {
        after.clear();
        for (int i = 0; i < 98; ++i) {
          auto c = std::make_unique<RawClient>(d.ws_port());
          if (!c->upgrade("/ws/after")) return false;
          after.push_back(std::move(c));
        }
        return true;
      },
      5s, 100ms))
      << "only " << after.size() << " of 98 places free after the flood";
  after.clear();
  expect_back_to(d, base, 2, 6 * 1024);
}

// Random bytes that cannot contain the end of an HTTP head.
std::string random_bytes(std::mt19937& rng, size_t n) {
  std::string s(n, '\0');
  for (auto& c : s) {
    c = static_cast<char>(rng() & 0xff);
    if (c == '\r') c = 'x';
  }
  return s;
}

// After a valid handshake: one of several kinds of garbage frames, each a protocol violation
// the server must answer with a close frame.
std::string garbage_frames(std::mt19937& rng, int kind) {
  FrameSpec s;
  s.payload = random_bytes(rng, 1 + rng() % 200);
  switch (kind) {
    case 0:  // unmasked client frame
      s.masked = false;
      break;
    case 1:  // reserved bits without an extension
      s.rsv = 1 + rng() % 7;
      break;
    case 2:  // reserved opcode
      s.opcode = static_cast<uint8_t>(3 + rng() % 5);
      break;
    case 3:  // text that is not UTF-8
      s.payload[0] = static_cast<char>(0xff);
      break;
    case 4:  // oversized control frame
      s.opcode = kPing;
      s.payload = random_bytes(rng, 126 + rng() % 100);
      break;
    default: {  // random bytes with the RSV bits forced on in the first byte
      std::string raw = random_bytes(rng, 64 + rng() % 512);
      raw[0] = static_cast<char>(raw[0] | 0x70);
      return raw;
    }
  }
  // Followed by more random junk.
  return encode_frame(s) + random_bytes(rng, rng() % 64);
}

TEST(Fault, ThousandGarbageClientsAreClosedCleanlyWhileOthersChat) {
  ASSERT_GE(raise_nofile_limit(), 4096u);
  Daemon d;
  const Baseline base = baseline(d);
  const double rejected0 = metric_or(d.http_port(), "flowrelay_connections_rejected_total");
  const double protocol0 = metric_or(d.http_port(), "flowrelay_protocol_closes_total");
  sec::Chatter chatter(d.ws_port(), "calm");
  ASSERT_TRUE(wait_for([&] { return chatter.rounds() >= 5; }, 5s)) << "the pair cannot chat";

  constexpr int kClients = 1000;
  std::mt19937 rng(20240611);
  // Even clients: random bytes instead of a handshake, ended by a blank line (400).
  // Odd clients: a valid handshake, then garbage frames (a close frame 1002/1007).
  std::vector<std::unique_ptr<RawClient>> clients;
  clients.reserve(kClients);
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<RawClient>(d.ws_port()));
    if (i % 2) {
      ASSERT_TRUE(clients.back()->upgrade("/ws/junk" + std::to_string(i % 7))) << i;
    }
  }
  for (int i = 0; i < kClients; ++i) {
    const std::string bytes = i % 2 ? garbage_frames(rng, (i / 2) % 6)
                                    : random_bytes(rng, 16 + rng() % 4000) + "\r\n\r\n";
    clients[i]->send_raw(bytes);  // may fail once the server has closed: that is fine
  }

  std::map<std::string, int> outcomes;
  std::vector<std::string> bad;
  for (int i = 0; i < kClients; ++i) {
    RawClient& c = *clients[i];
    std::string outcome;
    if (i % 2 == 0) {
      const HttpHead h = c.read_head(3s);
      outcome = "http " + std::to_string(h.status);
      if (h.status != 400 && bad.size() < 10)
        bad.push_back("client " + std::to_string(i) + " (random bytes): " +
                      (h.status_line.empty() ? "no HTTP answer" : h.status_line));
    } else {
      std::vector<Frame> skipped;
      auto f = c.read_until_close(3s, &skipped);
      const uint16_t code = f ? f->close_code() : 0;
      outcome = "close " + std::to_string(code);
      if ((code != 1002 && code != 1007) && bad.size() < 10)
        bad.push_back("client " + std::to_string(i) + " (garbage frames, kind " +
                      std::to_string((i / 2) % 6) + "): " + (f ? f->describe() : "no close frame"));
      for (const Frame& s : skipped)
        if (s.opcode == kText && bad.size() < 10)
          bad.push_back("client " + std::to_string(i) + " got a message: " + s.describe());
    }
    const bool eof = c.wait_closed(3s);
    if (!eof && bad.size() < 10)
      bad.push_back("client " + std::to_string(i) + ": no EOF after " + outcome);
    ++outcomes[outcome];
  }
  std::string summary;
  for (const auto& [k, n] : outcomes) summary += k + ": " + std::to_string(n) + "  ";
  std::printf("[ info ] %d garbage clients: %s\n", kClients, summary.c_str());
  EXPECT_TRUE(bad.empty()) << bad.size() << "+ offenders not closed cleanly, e.g.:\n"
                           << [&] {
                                std::string s;
                                for (const auto& b : bad) s += "  " + b + "\n";
                                return s;
                              }();
  EXPECT_EQ(outcomes["http 400"], kClients / 2) << summary;
  EXPECT_EQ(outcomes["close 1002"] + outcomes["close 1007"], kClients / 2) << summary;
  EXPECT_GE(metric_or(d.http_port(), "flowrelay_connections_rejected_total"),
            rejected0 + kClients / 2);
  EXPECT_GE(metric_or(d.http_port(), "flowrelay_protocol_closes_total"), protocol0 + kClients / 2);
  clients.clear();

  ASSERT_TRUE(d.running()) << d.stderr_text();
  const long rounds_during = chatter.rounds();
  ASSERT_TRUE(wait_for([&] { return chatter.rounds() >= rounds_during + 10; }, 5s))
      << "the pair stopped chatting after the garbage";
  expect_chatter_fine(chatter.stop());
  expect_back_to(d, base, 2, 6 * 1024);
  // And a newcomer is served normally.
  WsClient late(d.ws_port(), "calm");
  late.send_text("all quiet");
  EXPECT_EQ(next_text(late), "all quiet");
}

}  // namespace
}  // namespace flowrelay::itest
