// Many clients, abrupt disconnects, SIGTERM, and the threads/memory of thousands of idle clients.
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdio>
#include <map>
#include <memory>

#include "support/itest.h"

namespace flowrelay::itest {
namespace {

// Opens `n` raw clients, client i on conversation id_of(i). Fails the test if any handshake
// does not get a valid 101.
void connect_clients(Daemon& d, size_t n, const std::function<std::string(size_t)>& id_of,
                     std::vector<RawClient>& out) {
  out.reserve(out.size() + n);
  for (size_t i = 0; i < n; ++i) {
    RawClient c(d.ws_port());
    ASSERT_TRUE(c.upgrade("/ws/" + id_of(i)))
        << "handshake " << i << " of " << n << " failed; daemon "
        << (d.running() ? "running" : "exited") << "\n"
        << d.stderr_text();
    out.push_back(std::move(c));
  }
}

std::vector<RawClient*> pointers(std::vector<RawClient>& v) {
  std::vector<RawClient*> p;
  for (auto& c : v) p.push_back(&c);
  return p;
}

TEST(Scale, ThousandClientsInTenConversationsReceiveEveryMessage) {
  ASSERT_GE(raise_nofile_limit(), 4096u);
  Daemon d;
  constexpr size_t kConversations = 10, kPerConversation = 100, kMessagesPerConversation = 10;
  constexpr size_t kClients = kConversations * kPerConversation;
  std::vector<RawClient> clients;
  auto conv_of = [&](size_t i) { return i % kConversations; };
  connect_clients(
      d, kClients, [&](size_t i) { return "crowd" + std::to_string(conv_of(i)); }, clients);
  ASSERT_EQ(clients.size(), kClients);

  // In every conversation, ten different members send one message each.
  for (size_t m = 0; m < kMessagesPerConversation; ++m) {
    for (size_t c = 0; c < kConversations; ++c) {
      const size_t sender = c + m * kConversations;  // conv_of(sender) == c
      ASSERT_TRUE(
          clients[sender].send_text("conv" + std::to_string(c) + "/msg" + std::to_string(m)));
    }
  }

  std::vector<std::map<std::string, int>> got(kClients);
  std::vector<std::string> unexpected;
  size_t complete = 0;
  auto on_frame = [&](size_t i, Frame&& f) {
    const std::string prefix = "conv" + std::to_string(conv_of(i)) + "/";
    if (f.opcode != kText || !f.fin || f.payload.rfind(prefix, 0) != 0) {
      if (unexpected.size() < 10) {
        unexpected.push_back("client " + std::to_string(i) + ": " + f.describe());
      }
      return;
    }
    if (++got[i][f.payload] == 1 && got[i].size() == kMessagesPerConversation) ++complete;
  };
  bool done = pump_clients(
      pointers(clients), on_frame, [&] { return complete == kClients || !unexpected.empty(); },
      30s);
  EXPECT_TRUE(unexpected.empty()) << unexpected.front();
  ASSERT_TRUE(done && complete == kClients)
      << complete << " of " << kClients << " clients received all " << kMessagesPerConversation
      << " messages of their conversation";
  // Exactly once each.
  for (size_t i = 0; i < kClients; ++i) {
    for (const auto& [payload, count] : got[i]) {
      ASSERT_EQ(count, 1) << "client " << i << " got " << payload << " " << count << " times";
    }
  }
  EXPECT_TRUE(d.running());
}

TEST(Scale, AbruptDisconnectsDoNotDisturbOthers) {
  ASSERT_GE(raise_nofile_limit(), 1024u);
  Daemon d;
  constexpr size_t kSurvivors = 10, kAbrupt = 50;
  std::vector<RawClient> survivors, abrupt;
  connect_clients(
      d, kSurvivors, [](size_t) { return std::string("rough"); }, survivors);
  connect_clients(
      d, kAbrupt, [](size_t) { return std::string("rough"); }, abrupt);
  ASSERT_EQ(abrupt.size(), kAbrupt);
  auto sp = pointers(survivors);

  // Phase 1: a burst the abrupt clients never read, so the daemon has output queued for them.
  constexpr int kBurst = 20;
  for (int i = 0; i < kBurst; ++i) {
    ASSERT_TRUE(
        survivors[0].send_text("burst" + std::to_string(i) + ":" + std::string(32 * 1024, 'b')));
  }
  std::vector<int> count(kSurvivors, 0);
  std::vector<std::string> bad;
  auto count_frames = [&](const std::string& prefix) {
    return [&, prefix](size_t i, Frame&& f) {
      if (f.opcode == kText && f.payload.rfind(prefix, 0) == 0) {
        ++count[i];
      } else if (bad.size() < 10) {
        bad.push_back("survivor " + std::to_string(i) + ": " + f.describe());
      }
    };
  };
  auto all_reached = [&](int n) {
    return [&, n] {
      for (int c : count) {
        if (c < n) return !bad.empty();
      }
      return true;
    };
  };
  ASSERT_TRUE(pump_clients(sp, count_frames("burst"), all_reached(kBurst), 20s));
  ASSERT_TRUE(bad.empty()) << bad.front();

  // Phase 2: 50 clients vanish without a close frame: RST, FIN, some in the middle of a frame.
  for (size_t i = 0; i < kAbrupt; ++i) {
    if (i % 5 == 0) {
      FrameSpec s;
      s.opcode = kText;
      s.payload = std::string(200, 'h');
      std::string wire = encode_frame(s);
      abrupt[i].send_raw(wire.substr(0, wire.size() / 2));
    }
    if (i % 2 == 0) {
      abrupt[i].reset_close();
    } else {
      abrupt[i].fin_close();
    }
  }

  // Phase 3: right away, the survivors keep talking; each gets every message.
  std::fill(count.begin(), count.end(), 0);
  constexpr int kRounds = 10;
  for (int r = 0; r < kRounds; ++r) {
    for (size_t s = 0; s < kSurvivors; ++s) {
      ASSERT_TRUE(survivors[s].send_text("after" + std::to_string(r) + "-" + std::to_string(s)))
          << "survivor " << s << " lost its connection";
    }
  }
  const int expected = kRounds * static_cast<int>(kSurvivors);
  EXPECT_TRUE(pump_clients(sp, count_frames("after"), all_reached(expected), 20s))
      << "survivors did not all receive " << expected << " messages";
  EXPECT_TRUE(bad.empty()) << bad.front();
  for (size_t s = 0; s < kSurvivors; ++s) {
    EXPECT_EQ(count[s], expected) << "survivor " << s;
    EXPECT_FALSE(survivors[s].closed()) << "survivor " << s << " was disconnected";
  }

  ASSERT_TRUE(d.running()) << d.stderr_text();
  EXPECT_EQ(http_get(d.http_port(), "/health").status, 200);
  RawClient late(d.ws_port());
  ASSERT_TRUE(late.upgrade("/ws/rough"));
  ASSERT_TRUE(late.send_text("late joiner"));
  Frame f;
  ASSERT_EQ(late.read_frame(f, 5s), ReadResult::Frame);
  EXPECT_EQ(f.payload, "late joiner");
}

// Clients are told 1001 on SIGTERM; `answer` = they reply with their own close frame.
void sigterm_test(bool answer) {
  DaemonOptions o;
  o.shutdown_timeout_ms = answer ? 3000 : 1000;
  Daemon d(o);
  constexpr size_t kClients = 20;
  std::vector<RawClient> clients;
  connect_clients(
      d, kClients, [](size_t i) { return "term" + std::to_string(i % 4); }, clients);
  ASSERT_EQ(clients.size(), kClients);
  // Silent clients neither answer the close nor close their end after the server's EOF.
  if (!answer) {
    for (auto& c : clients) c.set_close_on_eof(false);
  }
  // One Poco client too.
  WsClient poco(d.ws_port(), "term0");
  // A client in the middle of a fragmented message still gets its 1001.
  ASSERT_TRUE(clients[1].send_text("unfinished", false));
  // Connections that never completed a handshake must not hold the shutdown up: one silent,
  // one with half a request.
  RawClient silent(d.ws_port());
  RawClient half(d.ws_port());
  ASSERT_TRUE(half.send_raw("GET /ws/term0 HTTP/1.1\r\nHost: 127.0.0.1\r\n"));
  // The pong proves the daemon has read the fragment before the signal (and, the accept loop
  // being the same, has most likely accepted the two connections opened before it).
  {
    FrameSpec ping;
    ping.opcode = kPing;
    ASSERT_TRUE(clients[1].send_frame(ping));
    Frame pong;
    ASSERT_EQ(clients[1].read_frame(pong, 5s), ReadResult::Frame);
    ASSERT_EQ(pong.opcode, kPong) << pong.describe();
  }

  const auto t0 = Clock::now();
  ASSERT_EQ(::kill(d.pid(), SIGTERM), 0);

  std::vector<int> code(kClients, -1);
  size_t closes = 0;
  std::vector<std::string> other;
  auto on_frame = [&](size_t i, Frame&& f) {
    if (f.opcode != kClose) {
      if (other.size() < 10) other.push_back(std::to_string(i) + ": " + f.describe());
      return;
    }
    if (code[i] == -1) ++closes;
    code[i] = f.close_code();
    if (answer) {
      FrameSpec reply;
      reply.opcode = kClose;
      reply.payload = close_payload(1001);
      clients[i].send_frame(reply);
    }
  };
  auto cp = pointers(clients);
  EXPECT_TRUE(pump_clients(
      cp, on_frame, [&] { return closes == kClients; }, 10s))
      << closes << " of " << kClients << " clients got a close frame";
  EXPECT_TRUE(other.empty()) << other.front();
  for (size_t i = 0; i < kClients; ++i) EXPECT_EQ(code[i], 1001) << "client " << i;

  auto m = poco.receive(5s);
  ASSERT_TRUE(m && !m->eof) << "Poco client got no close frame";
  EXPECT_EQ(m->opcode(), Poco::Net::WebSocket::FRAME_OP_CLOSE);
  ASSERT_GE(m->payload.size(), 2u);
  EXPECT_EQ((static_cast<uint8_t>(m->payload[0]) << 8) | static_cast<uint8_t>(m->payload[1]), 1001);
  if (answer) {
    poco.close(1001);
    poco.socket().close();
    // Close handshake complete: the server now closes each connection (the clients close their
    // end on the server's EOF, as browsers do).
    for (size_t i = 0; i < kClients; ++i) {
      EXPECT_TRUE(clients[i].wait_closed(5s)) << "client " << i << ": no EOF after the handshake";
    }
  }

  ExitStatus st = d.wait_exit(o.shutdown_timeout_ms * 1ms + 5s);
  const auto took = std::chrono::duration_cast<Millis>(Clock::now() - t0);
  ASSERT_TRUE(st.finished) << "daemon still running " << took.count() << " ms after SIGTERM";
  EXPECT_TRUE(st.exited && st.code == 0) << st.describe() << "\nstderr:\n" << d.stderr_text();
  for (size_t i = 0; i < kClients; ++i) {
    EXPECT_TRUE(clients[i].wait_closed(2s)) << "client " << i << " still connected after exit";
  }
  EXPECT_TRUE(silent.wait_closed(2s)) << "pre-handshake connection still open after exit";
  EXPECT_TRUE(half.wait_closed(2s)) << "half-handshake connection still open after exit";
  std::printf("[ info ] daemon exited %lld ms after SIGTERM (clients %s)\n",
              static_cast<long long>(took.count()), answer ? "answered" : "silent");
}

TEST(Shutdown, SigtermSends1001ToEveryClientAndExitsZero) { sigterm_test(true); }

TEST(Shutdown, SigtermWithSilentClientsExitsZeroWithinShutdownTimeout) { sigterm_test(false); }

TEST(Scale, FiveThousandIdleClientsUseFewThreads) {
  ASSERT_GE(raise_nofile_limit(), 12000u) << "need fds for 5000 clients (+5000 in the daemon)";
  Daemon d;
  const long rss_before = d.vm_rss_kb();
  const long threads_before = d.thread_count();
  constexpr size_t kClients = 5000, kConversations = 50;
  std::vector<RawClient> clients;
  const auto t0 = Clock::now();
  connect_clients(
      d, kClients, [](size_t i) { return "idle" + std::to_string(i % kConversations); }, clients);
  ASSERT_EQ(clients.size(), kClients);
  const auto connect_ms = std::chrono::duration_cast<Millis>(Clock::now() - t0).count();

  const long threads = d.thread_count();
  const long rss_after = d.vm_rss_kb();
  ASSERT_GT(threads, 0) << "cannot read /proc/" << d.pid() << "/status";
  EXPECT_LT(threads, 32) << "threads before clients: " << threads_before;
  std::printf(
      "[ info ] %zu idle clients connected in %lld ms; daemon threads %ld (before: %ld); "
      "VmRSS %ld kB -> %ld kB; %.2f kB per idle connection\n",
      kClients, static_cast<long long>(connect_ms), threads, threads_before, rss_before, rss_after,
      static_cast<double>(rss_after - rss_before) / kClients);

  // The connections are live: a message in one conversation reaches all its 100 members.
  ASSERT_TRUE(clients[7].send_text("wake up"));
  std::vector<RawClient*> members;
  for (size_t i = 7; i < kClients; i += kConversations) members.push_back(&clients[i]);
  size_t woke = 0;
  std::vector<std::string> bad;
  bool ok = pump_clients(
      members,
      [&](size_t, Frame&& f) {
        if (f.opcode == kText && f.payload == "wake up") {
          ++woke;
        } else if (bad.size() < 5) {
          bad.push_back(f.describe());
        }
      },
      [&] { return woke == members.size(); }, 10s);
  EXPECT_TRUE(ok) << woke << " of " << members.size() << " members received the message";
  EXPECT_TRUE(bad.empty()) << bad.front();
  EXPECT_LT(d.thread_count(), 32);
}

}  // namespace
}  // namespace flowrelay::itest
