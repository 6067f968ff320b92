// transport-sse at scale (docs/PROTOCOL.md "SSE and NDJSON"): 10,000 idle EventSource-like
// clients on one daemon (transport-sse beside transport-ws) each get their 200 head and a
// message published through the HTTP publish API, with few threads; the memory per idle
// connection is printed (as scale_test does for WebSocket clients).
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "support/envelope_client.h"
#include "support/itest.h"
#include "support/sse_client.h"

namespace flowrelay::itest {
namespace {

const std::string kKey = "sse-scale-key";

TEST(SseScale, TenThousandIdleSseClientsUseFewThreadsAndEachGetsThePublishedMessage) {
  constexpr size_t kClients = 10000, kConversations = 50;
  ASSERT_GE(raise_nofile_limit(), kClients + 1000)
      << "need a descriptor per client here (and per connection in the daemon, which inherits "
         "the limit)";
  DaemonOptions o;
  o.sse = true;
  o.api_key = kKey;
  Daemon d(o);
  const long rss_before = d.vm_rss_kb();
  const long threads_before = d.thread_count();
  auto conversation = [](size_t i) { return "sse-idle" + std::to_string(i % kConversations); };

  std::vector<SseClient> clients;
  clients.reserve(kClients);
  const auto t0 = Clock::now();
  for (size_t i = 0; i < kClients; ++i) {
    clients.push_back(SseClient::connect(d.sse_port(), "/sse/" + conversation(i)));
    const SseClient& c = clients.back();
    ASSERT_EQ(c.status(), 200) << "client " << i << " of " << kClients << ": \""
                               << c.head().status_line << "\"; daemon "
                               << (d.running() ? "running" : "exited") << "\n"
                               << tail_lines(d.stderr_text(), 20);
    ASSERT_EQ(c.header("Content-Type").value_or(""), "text/event-stream") << "client " << i;
  }
  const auto connect_ms = std::chrono::duration_cast<Millis>(Clock::now() - t0).count();

  const long threads = d.thread_count();
  const long rss_after = d.vm_rss_kb();
  ASSERT_GT(threads, 0) << "cannot read /proc/" << d.pid() << "/status";
  EXPECT_LT(threads, 32) << "threads before the clients: " << threads_before;
  // The stats the metrics read may lag a little behind the loops: a bounded wait.
  double gauge = -1;
  EXPECT_TRUE(wait_for(
      [&] {
        return (gauge = metric_value(d.http_port(), "flowrelay_sse_connections")) == kClients;
      },
      5s, 50ms))
      << "flowrelay_sse_connections: " << gauge;
  std::printf(
      "[ info ] %zu idle SSE clients connected in %lld ms; daemon threads %ld (before: %ld); "
      "VmRSS %ld kB -> %ld kB; %.2f kB per idle SSE connection\n",
      kClients, static_cast<long long>(connect_ms), threads, threads_before, rss_before, rss_after,
      static_cast<double>(rss_after - rss_before) / kClients);

  // One message per conversation through the publish API; every member must get it, as a
  // message event whose id is "<epoch>:<offset>" of the API's answer.
  HttpSession api(d.http_port());
  std::vector<std::string> text(kConversations), id(kConversations);
  for (size_t k = 0; k < kConversations; ++k) {
    text[k] = "wake up " + std::to_string(k);
    const Published p = publish_via_api(api, kKey, conversation(k), text[k]);
    ASSERT_EQ(p.status, 200) << p.body;
    ASSERT_TRUE(p.offset && p.epoch) << p.body;
    id[k] = *p.epoch + ":" + std::to_string(*p.offset);
  }
  std::vector<SseClient*> all;
  for (auto& c : clients) all.push_back(&c);
  std::vector<bool> got(kClients, false);
  size_t woke = 0;
  std::vector<std::string> bad;
  const bool ok = pump_sse_clients(
      all,
      [&](size_t i, SseEvent&& e) {
        const size_t k = i % kConversations;
        if (e.event == "message" && e.data == text[k] && e.id == id[k] && !got[i]) {
          got[i] = true;
          ++woke;
        } else if (bad.size() < 10) {
          bad.push_back("client " + std::to_string(i) + ": " + e.describe());
        }
      },
      [&] { return woke == kClients || !bad.empty(); }, 30s);
  EXPECT_TRUE(bad.empty()) << bad.front();
  ASSERT_TRUE(ok && woke == kClients)
      << woke << " of " << kClients << " SSE clients received their conversation's message";
  size_t streams_ended = 0, wrong_retry = 0;
  for (auto& c : clients) {
    streams_ended += c.closed();
    wrong_retry += c.parser().retry_ms() != std::optional<uint64_t>(1000);
  }
  EXPECT_EQ(streams_ended, 0u) << "streams ended while idle";
  EXPECT_EQ(wrong_retry, 0u) << "streams that did not start with \"retry: 1000\"";
  double deliveries = -1;
  EXPECT_TRUE(wait_for(
      [&] {
        return (deliveries = metric_value(d.http_port(), "flowrelay_sse_deliveries_total")) >=
               kClients;
      },
      5s, 50ms))
      << "flowrelay_sse_deliveries_total: " << deliveries;
  EXPECT_LT(d.thread_count(), 32);
  EXPECT_TRUE(d.running()) << d.stderr_text();
}

}  // namespace
}  // namespace flowrelay::itest
