// The publish proxy under load and against a hanging backend: each connection's messages
// arrive in the order it sent them, and a backend that does not answer stops neither the
// transport's I/O threads nor the publish API.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

#include "backend_proxy_fake.h"
#include "support/envelope_client.h"

namespace flowrelay::itest {
namespace {

Daemon start(const TempDir& dir, const std::string& keys) {
  DaemonOptions options;
  options.extra = backend_section(dir, keys);
  options.api_key = "test-api-key-123";
  return Daemon(options);
}

TEST(PublishProxyLoad, EveryConnectionKeepsItsOrder) {
  TempDir dir("backend");
  FakeBackend backend;
  std::mutex rng_mutex;
  std::mt19937 rng(14);
  backend.answer([&](const BackendRequest&) {
    std::lock_guard lock(rng_mutex);
    return BackendReply{200, "{}", static_cast<int>(rng() % 4)};  // 0-3 ms, out of step
  });
  DaemonOptions options;
  options.extra = backend_section(dir, "  publish_url: " + backend.url("/publish") + "\n");
  Daemon daemon(options);
  constexpr int kClients = 5, kMessages = 200;
  RawClient watcher(daemon.ws_port());
  ASSERT_TRUE(watcher.upgrade("/ws/load"));
  std::vector<RawClient> senders;
  for (int i = 0; i < kClients; ++i) {
    senders.emplace_back(daemon.ws_port());
    ASSERT_TRUE(senders.back().upgrade("/ws/load"));
  }
  for (int k = 0; k < kMessages; ++k)
    for (int i = 0; i < kClients; ++i)
      ASSERT_TRUE(senders[i].send_text(std::to_string(i) + ":" + std::to_string(k)));
  std::map<int, std::vector<int>> got;
  int total = 0;
  const auto deadline = Clock::now() + 60s;
  while (total < kClients * kMessages && Clock::now() < deadline) {
    Frame f;
    if (watcher.read_frame(f, Millis(remaining_ms(deadline))) != ReadResult::Frame) break;
    if (f.opcode != kText) continue;
    const size_t colon = f.payload.find(':');
    ASSERT_NE(colon, std::string::npos) << f.payload;
    got[std::stoi(f.payload.substr(0, colon))].push_back(std::stoi(f.payload.substr(colon + 1)));
    ++total;
  }
  ASSERT_EQ(total, kClients * kMessages);
  for (int i = 0; i < kClients; ++i) {
    ASSERT_EQ(got[i].size(), static_cast<size_t>(kMessages)) << "client " << i;
    for (int k = 0; k < kMessages; ++k) ASSERT_EQ(got[i][k], k) << "client " << i;
  }
  // The proxy counts an answer just after relaying its message, which may reach the watcher
  // first: wait (bounded) for the last count.
  const int want = kClients * kMessages;
  EXPECT_TRUE(
      wait_for([&] { return backend_count(daemon.http_port(), "publish", "ok") == want; }, 2s))
      << backend_count(daemon.http_port(), "publish", "ok") << " of " << want;
  EXPECT_EQ(metric_value(daemon.http_port(), "flowrelay_backend_queued"), 0);
}

TEST(PublishProxyLoad, AHangingBackendStopsNobodyElse) {
  TempDir dir("backend");
  FakeBackend backend;
  backend.answer([](const BackendRequest& r) {
    BackendReply reply;
    reply.hang = r.json && r.json->getValue<std::string>("conversation") == "slow";
    return reply;
  });
  Daemon daemon = start(dir, "  publish_url: " + backend.url("/publish") +
                                 "\n  timeout_ms: 20000\n  max_in_flight: 8\n");
  // Three clients whose messages the backend holds (three workers busy, not the I/O thread).
  std::vector<RawClient> stuck;
  for (int i = 0; i < 3; ++i) {
    stuck.emplace_back(daemon.ws_port());
    ASSERT_TRUE(stuck.back().upgrade("/ws/slow"));
    ASSERT_TRUE(stuck.back().send_text("held " + std::to_string(i)));
  }
  ASSERT_TRUE(backend.wait_count("/publish", 3, 5s));
  // Meanwhile: new handshakes, another conversation through the proxy, the publish API into
  // the stuck conversation, health checks.
  const auto start_time = Clock::now();
  RawClient a(daemon.ws_port()), b(daemon.ws_port());
  ASSERT_TRUE(a.upgrade("/ws/fast"));
  ASSERT_TRUE(b.upgrade("/ws/fast"));
  ASSERT_TRUE(a.send_text("quick"));
  Frame f;
  ASSERT_EQ(b.read_frame(f, 3s), ReadResult::Frame);
  EXPECT_EQ(f.payload, "quick");
  HttpSession api(daemon.http_port());
  const HttpResult r = api.post("/api/publish", publish_body("slow", "from the api"),
                                api_headers("test-api-key-123"));
  EXPECT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(stuck[0].read_frame(f, 3s), ReadResult::Frame);
  EXPECT_EQ(f.payload, "from the api");
  EXPECT_EQ(http_get(daemon.http_port(), "/health").status, 200);
  EXPECT_LT(Clock::now() - start_time, 3s);
  EXPECT_EQ(metric_value(daemon.http_port(), "flowrelay_backend_queued"), 3);
  // Released: the held messages go out after all, in order behind what was served.
  backend.release();
  std::vector<std::string> later;
  while (later.size() < 4 && stuck[1].read_frame(f, 5s) == ReadResult::Frame)
    later.push_back(f.payload);
  ASSERT_EQ(later.size(), 4u);
  EXPECT_EQ(later[0], "from the api");
  std::sort(later.begin() + 1, later.end());  // three sessions: any order among them
  EXPECT_EQ(later[1], "held 0");
  EXPECT_EQ(later[3], "held 2");
}

TEST(PublishProxyLoad, StoppingWithABackendThatHangsIsPrompt) {
  TempDir dir("backend");
  FakeBackend backend;
  backend.answer([](const BackendRequest&) {
    BackendReply reply;
    reply.hang = true;
    return reply;
  });
  Daemon daemon =
      start(dir, "  publish_url: " + backend.url("/publish") + "\n  timeout_ms: 30000\n");
  RawClient c(daemon.ws_port());
  ASSERT_TRUE(c.upgrade("/ws/stop"));
  ASSERT_TRUE(c.send_text("never answered"));
  ASSERT_TRUE(backend.wait_count("/publish", 1, 5s));
  const auto t0 = Clock::now();
  const ExitStatus st = daemon.stop(10s);
  EXPECT_LT(Clock::now() - t0, 5s);
  EXPECT_TRUE(st.exited && st.code == 0) << daemon.stderr_text();
}

}  // namespace
}  // namespace flowrelay::itest
