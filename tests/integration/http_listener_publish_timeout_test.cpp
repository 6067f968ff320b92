// The publish API waits for the broker without a thread: with Redis hung (SIGSTOP) a publish is
// answered 503 at http.publish_timeout_ms while /health keeps answering at once, and the
// completion that arrives after the timeout (Redis resumed) changes nothing and breaks nothing.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <future>

#include "http_listener_client.h"
#include "support/envelope_client.h"

namespace flowrelay::itest {
namespace {

using Clock = std::chrono::steady_clock;
const std::string kKey = "listener-key";
constexpr int kPublishTimeoutMs = 400;

bool redis_answers(uint16_t port) {
  const int fd = http_connect(port);
  if (fd < 0) return false;
  const timeval limit{0, 200000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  const char ping[] = "PING\r\n";
  bool ok = ::send(fd, ping, sizeof ping - 1, MSG_NOSIGNAL) > 0;
  char reply[16] = {};
  ok = ok && ::recv(fd, reply, sizeof reply, 0) > 0 && std::string(reply).rfind("+PONG", 0) == 0;
  ::close(fd);
  return ok;
}

TEST(HttpListenerPublish, HungBrokerGets503AtTheTimeoutAndALateCompletionIsHarmless) {
  TempDir dir("publish-timeout");
  const uint16_t redis_port = free_port();
  Process redis({"redis-server", "--port", std::to_string(redis_port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", dir.path()});
  ASSERT_TRUE(wait_for([&] { return redis_answers(redis_port); }, 5s)) << "redis-server";

  const Ports ports{free_port(), free_port()};
  DaemonOptions o;
  o.api_key = kKey;
  o.http_extra = "  publish_timeout_ms: " + std::to_string(kPublishTimeoutMs) + "\n";
  std::string config = make_config(ports, o);
  const std::string local = "  plugin: broker-local\n";
  ASSERT_NE(config.find(local), std::string::npos);
  config.replace(config.find(local), local.size(),
                 "  plugin: broker-redis\n  url: redis://127.0.0.1:" + std::to_string(redis_port) +
                     "\n  command_timeout_ms: 20000\n");
  const std::string config_path = dir.write("flowrelay.yaml", config);
  Process daemon({daemon_binary(), "--config", config_path}, {"", {"REDIS_URL"}});
  ASSERT_EQ(await_ready(daemon, ports.http, 10s), Readiness::Ready) << daemon.err_text();

  HttpResult r =
      http_post(ports.http, "/api/publish", publish_body("hung", "before"), api_headers(kKey));
  ASSERT_EQ(r.status, 200) << r.body;

  redis.signal(SIGSTOP);
  const auto start = Clock::now();
  auto pending = std::async(std::launch::async, [&] {
    return http_post(ports.http, "/api/publish", publish_body("hung", "during"), api_headers(kKey),
                     10s);
  });
  // Meanwhile the listener serves others at once: nothing waits on the broker.
  std::this_thread::sleep_for(100ms);
  const auto health_start = Clock::now();
  EXPECT_EQ(http_get(ports.http, "/health", 2s).status, 200);
  EXPECT_LT(Clock::now() - health_start, 500ms) << "/health waited for the hung broker";
  r = pending.get();
  const auto waited = std::chrono::duration_cast<Millis>(Clock::now() - start).count();
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_NE(error_of(r.body).find("publish_timeout_ms"), std::string::npos) << r.body;
  EXPECT_GE(waited, kPublishTimeoutMs - 20);
  EXPECT_LT(waited, kPublishTimeoutMs + 1500);

  // The completion now arrives, long after the answer went out.
  redis.signal(SIGCONT);
  std::this_thread::sleep_for(500ms);
  r = http_post(ports.http, "/api/publish", publish_body("hung", "after"), api_headers(kKey));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(daemon.running()) << daemon.err_text();
}

}  // namespace
}  // namespace flowrelay::itest
