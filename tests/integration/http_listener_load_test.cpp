// The HTTP listener under load: 10,000 idle connections do not hold up /health, /ready,
// /metrics or a publish (Poco's thread-per-connection server stopped answering at 16), and
// 1,000 keep-alive backend connections publish concurrently, every message delivered once.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <set>

#include "http_listener_client.h"
#include "support/envelope_client.h"

namespace flowrelay::itest {
namespace {

using Clock = std::chrono::steady_clock;
const std::string kKey = "listener-key";

std::string publish_request(const std::string& conv, const std::string& data) {
  const std::string body = publish_body(conv, data);
  return "POST /api/publish HTTP/1.1\r\nHost: t\r\nX-API-Key: " + kKey +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

TEST(HttpListenerLoad, TenThousandIdleConnectionsDoNotDelayOperatorEndpointsOrPublish) {
  constexpr size_t kIdle = 10000;
  ASSERT_GE(raise_nofile_limit(), kIdle + 2000) << "RLIMIT_NOFILE hard limit too low";
  DaemonOptions o;
  o.api_key = kKey;
  o.http_extra = "  header_timeout_ms: 300000\n";  // they stay for the whole test
  Daemon d(o);
  FdSet idle;
  for (size_t i = 0; i < kIdle; ++i) {
    const int fd = http_connect(d.http_port());
    ASSERT_GE(fd, 0) << "connect " << i << ": " << std::strerror(errno);
    idle.fds.push_back(fd);
  }
  // Accepted by the daemon, not just queued in the kernel's backlog.
  ASSERT_TRUE(wait_for(
      [&] {
        return metric_or(d.http_port(), "flowrelay_http_connections") >= static_cast<double>(kIdle);
      },
      20s))
      << "the daemon holds " << metric_or(d.http_port(), "flowrelay_http_connections");

  auto timed = [](const char* what, const std::function<HttpResult()>& request) {
    const auto start = Clock::now();
    const HttpResult r = request();
    const auto ms = std::chrono::duration_cast<Millis>(Clock::now() - start).count();
    EXPECT_LT(ms, 1000) << what << " took " << ms << " ms with 10,000 idle connections";
    return r;
  };
  const uint16_t port = d.http_port();
  EXPECT_EQ(timed("/health", [&] { return http_get(port, "/health", 5s); }).status, 200);
  EXPECT_EQ(timed("/ready", [&] { return http_get(port, "/ready", 5s); }).status, 200);
  const HttpResult m = timed("/metrics", [&] { return http_get(port, "/metrics", 5s); });
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("flowrelay_http_connections"), std::string::npos);
  EnvelopeClient sub(d.ws_port(), "idle-load");
  const HttpResult p = timed("publish", [&] {
    return http_post(port, "/api/publish", publish_body("idle-load", "through"), api_headers(kKey),
                     5s);
  });
  EXPECT_EQ(p.status, 200) << p.body;
  const auto got = sub.next(5s);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->data.value_or(""), "through");
  EXPECT_TRUE(d.running());
}

TEST(HttpListenerLoad, ThousandKeepAliveConnectionsPublishConcurrently) {
  constexpr size_t kConns = 1000, kPerConn = 5;
  ASSERT_GE(raise_nofile_limit(), kConns + 1000);
  DaemonOptions o;
  o.api_key = kKey;
  Daemon d(o);
  EnvelopeClient sub(d.ws_port(), "ka-load");

  struct Backend {
    int fd = -1;
    size_t sent = 0, answered = 0;
    std::string buf;
    uint64_t last_offset = 0;
  };
  std::vector<Backend> conns(kConns);
  FdSet owned;
  for (size_t i = 0; i < kConns; ++i) {
    conns[i].fd = http_connect(d.http_port());
    ASSERT_GE(conns[i].fd, 0) << i;
    owned.fds.push_back(conns[i].fd);
  }
  auto send_next = [&](size_t i) {
    Backend& b = conns[i];
    ASSERT_TRUE(send_all(
        b.fd, publish_request("ka-load", std::to_string(i) + "/" + std::to_string(b.sent))));
    ++b.sent;
  };
  for (size_t i = 0; i < kConns; ++i) send_next(i);  // all in flight at once
  for (auto& b : conns) fcntl(b.fd, F_SETFL, fcntl(b.fd, F_GETFL) | O_NONBLOCK);

  size_t done = 0, failures = 0;
  std::string first_failure;
  std::vector<pollfd> polls(kConns);
  const auto deadline = Clock::now() + 60s;
  while (done < kConns * kPerConn && Clock::now() < deadline) {
    for (size_t i = 0; i < kConns; ++i) polls[i] = {conns[i].fd, POLLIN, 0};
    if (::poll(polls.data(), polls.size(), 1000) <= 0) continue;
    for (size_t i = 0; i < kConns; ++i) {
      if (!(polls[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      Backend& b = conns[i];
      char chunk[16384];
      const ssize_t n = ::recv(b.fd, chunk, sizeof chunk, 0);
      ASSERT_GT(n, 0) << "connection " << i << " closed after " << b.answered << " answers";
      b.buf.append(chunk, static_cast<size_t>(n));
      while (auto r = take_response(b.buf)) {
        ++b.answered;
        ++done;
        const Published pub = parse_published(r->head.status, r->body);
        if (r->head.status != 200 || !pub.offset) {
          if (failures++ == 0) first_failure = r->head.status_line + " " + r->body;
        } else {
          EXPECT_GT(*pub.offset, b.last_offset) << "answers of one connection out of order";
          b.last_offset = *pub.offset;
        }
        if (b.sent < kPerConn) send_next(i);
      }
    }
  }
  ASSERT_EQ(done, kConns * kPerConn) << "answers missing after 60 s";
  EXPECT_EQ(failures, 0u) << "first failure: " << first_failure;

  // The subscriber gets every message exactly once.
  std::map<std::string, int> seen;
  while (seen.size() < kConns * kPerConn) {
    const auto e = sub.next(10s);
    ASSERT_TRUE(e) << "delivered " << seen.size() << " of " << kConns * kPerConn;
    if (e->is_message()) ++seen[e->data.value_or("")];
  }
  for (const auto& [data, count] : seen) EXPECT_EQ(count, 1) << data << " delivered " << count;
  for (size_t i = 0; i < kConns; ++i)
    for (size_t k = 0; k < kPerConn; ++k)
      EXPECT_EQ(seen.count(std::to_string(i) + "/" + std::to_string(k)), 1u) << i << "/" << k;
  const auto extra = sub.next(300ms);
  EXPECT_FALSE(extra && extra->is_message()) << "a message too many: " << extra->describe();
}

}  // namespace
}  // namespace flowrelay::itest
