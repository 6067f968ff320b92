// The event-driven HTTP listener, request by request: header timeout (408, also for a body that
// trickles), idle keep-alive timeout, pipelined requests answered in order, the listener's own
// refusals (400, 411, 413, 431), HTTP/1.0 and Connection: close, HEAD and 405.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>

#include "http_listener_client.h"
#include "support/envelope_client.h"

namespace flowrelay::itest {
namespace {

using Clock = std::chrono::steady_clock;
const std::string kKey = "listener-key";
constexpr int kHeaderTimeoutMs = 600;
constexpr int kIdleTimeoutMs = 800;
constexpr size_t kMaxBody = 2048;

class HttpListener : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    DaemonOptions o;
    o.api_key = kKey;
    o.http_extra = "  header_timeout_ms: " + std::to_string(kHeaderTimeoutMs) +
                   "\n  idle_timeout_ms: " + std::to_string(kIdleTimeoutMs) +
                   "\n  max_body_bytes: " + std::to_string(kMaxBody) + "\n";
    daemon = std::make_unique<Daemon>(o);
  }
  static void TearDownTestSuite() { daemon.reset(); }
  void SetUp() override {
    fd = http_connect(daemon->http_port());
    ASSERT_GE(fd, 0);
  }
  void TearDown() override {
    if (fd >= 0) ::close(fd);
    ASSERT_TRUE(daemon->running()) << "daemon died; stderr:\n" << daemon->stderr_text();
  }
  // Sends `raw`, expects one answer with `status` and then the server closing the connection.
  void expect_refused_and_closed(const std::string& raw, int status) {
    ASSERT_TRUE(send_all(fd, raw));
    const auto r = read_response(fd, buf);
    ASSERT_TRUE(r) << "no answer to: " << raw.substr(0, 80);
    EXPECT_EQ(r->head.status, status) << r->head.status_line << " " << r->body;
    EXPECT_FALSE(error_of(r->body).empty()) << "no {\"error\":...} body: " << r->body;
    EXPECT_EQ(r->head.header("Connection").value_or(""), "close");
    EXPECT_TRUE(wait_eof(fd, buf, 5s)) << "the connection stayed open after " << status;
  }
  static std::string get(const std::string& path, const std::string& extra = "") {
    return "GET " + path + " HTTP/1.1\r\nHost: t\r\n" + extra + "\r\n";
  }
  static std::string publish(const std::string& conv, const std::string& data) {
    const std::string body = publish_body(conv, data);
    return "POST /api/publish HTTP/1.1\r\nHost: t\r\nX-API-Key: " + kKey +
           "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n\r\n" + body;
  }
  static std::unique_ptr<Daemon> daemon;
  int fd = -1;
  std::string buf;
};
std::unique_ptr<Daemon> HttpListener::daemon;

TEST_F(HttpListener, PartialHeadGets408AfterHeaderTimeoutAndIsClosed) {
  const auto start = Clock::now();
  ASSERT_TRUE(send_all(fd, "GET /health HTTP/1.1\r\nHost: t\r\n"));  // no blank line
  const auto r = read_response(fd, buf, 10s);
  const auto waited = std::chrono::duration_cast<Millis>(Clock::now() - start).count();
  ASSERT_TRUE(r) << "no 408 within 10 s";
  EXPECT_EQ(r->head.status, 408) << r->body;
  EXPECT_GE(waited, kHeaderTimeoutMs - 50) << "answered before header_timeout_ms";
  EXPECT_LT(waited, kHeaderTimeoutMs + 1500) << "408 came late";
  EXPECT_TRUE(wait_eof(fd, buf, 5s));
}

TEST_F(HttpListener, BodyThatTricklesGets408) {
  // Slowloris on the body: a byte now and then does not push the deadline back.
  ASSERT_TRUE(send_all(fd, "POST /api/publish HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n"));
  std::optional<RawResponse> r;
  for (int i = 0; i < 40 && !r; ++i) {
    send_all(fd, "x");
    r = read_response(fd, buf, 100ms);
  }
  ASSERT_TRUE(r) << "a trickling body was never cut off";
  EXPECT_EQ(r->head.status, 408) << r->body;
  EXPECT_TRUE(wait_eof(fd, buf, 5s));
}

TEST_F(HttpListener, SilentConnectionGets408) {
  const auto r = read_response(fd, buf, 10s);
  ASSERT_TRUE(r) << "a connection that sends nothing was never answered";
  EXPECT_EQ(r->head.status, 408);
  EXPECT_TRUE(wait_eof(fd, buf, 5s));
}

TEST_F(HttpListener, IdleKeepAliveConnectionIsClosedAfterIdleTimeout) {
  ASSERT_TRUE(send_all(fd, get("/health")));
  const auto r = read_response(fd, buf);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->head.status, 200);
  EXPECT_FALSE(r->head.header("Connection")) << "HTTP/1.1 keeps the connection by default";
  const auto start = Clock::now();
  EXPECT_TRUE(wait_eof(fd, buf, 10s)) << "an idle keep-alive connection stayed open";
  const auto waited = std::chrono::duration_cast<Millis>(Clock::now() - start).count();
  EXPECT_GE(waited, kIdleTimeoutMs - 50);
  EXPECT_TRUE(buf.empty()) << "an idle connection is closed without an answer: " << buf;
}

TEST_F(HttpListener, KeepAliveServesManyRequestsWithinTheIdleTimeout) {
  for (int i = 0; i < 5; ++i) {
    std::this_thread::sleep_for(Millis(kIdleTimeoutMs / 2));  // 5 x 400 ms > idle timeout
    ASSERT_TRUE(send_all(fd, get("/health")));
    const auto r = read_response(fd, buf);
    ASSERT_TRUE(r) << "request " << i;
    EXPECT_EQ(r->head.status, 200);
  }
}

TEST_F(HttpListener, PipelinedRequestsAreAnsweredInOrder) {
  ASSERT_TRUE(send_all(fd, publish("pipe-1", "first") + get("/nope") + get("/health") +
                               publish("pipe-1", "second") + "HEAD /ready HTTP/1.1\r\n\r\n" +
                               publish("pipe-1", "third")));
  std::vector<RawResponse> got;
  while (got.size() < 6) {
    auto r = read_response(fd, buf, 5s, got.size() == 4);  // the fifth is a HEAD
    ASSERT_TRUE(r) << "only " << got.size() << " of 6 answers";
    got.push_back(std::move(*r));
  }
  EXPECT_EQ(got[0].head.status, 200);
  EXPECT_EQ(parse_published(200, got[0].body).offset, std::optional<uint64_t>(1)) << got[0].body;
  EXPECT_EQ(got[1].head.status, 404);
  EXPECT_EQ(got[2].head.status, 200);
  EXPECT_NE(got[2].body.find("\"status\":\"ok\""), std::string::npos) << got[2].body;
  EXPECT_EQ(parse_published(200, got[3].body).offset, std::optional<uint64_t>(2)) << got[3].body;
  EXPECT_EQ(got[4].head.status, 200);
  EXPECT_TRUE(got[4].body.empty()) << "HEAD answers carry no body";
  EXPECT_NE(got[4].head.header("Content-Length").value_or("0"), "0");
  EXPECT_EQ(parse_published(200, got[5].body).offset, std::optional<uint64_t>(3)) << got[5].body;
  EXPECT_TRUE(buf.empty());
}

TEST_F(HttpListener, OversizedHeadIs431) {
  expect_refused_and_closed(get("/health", "X-Big: " + std::string(20000, 'a') + "\r\n"), 431);
}

TEST_F(HttpListener, OversizedHeadWithoutEndIs431) {
  // Never a blank line: refused once past the limit, not buffered forever.
  expect_refused_and_closed("GET /health HTTP/1.1\r\nX-Big: " + std::string(40000, 'a'), 431);
}

TEST_F(HttpListener, BodyOverMaxBodyBytesIs413BeforeItIsSent) {
  expect_refused_and_closed("POST /api/publish HTTP/1.1\r\nHost: t\r\nX-API-Key: " + kKey +
                                "\r\nContent-Length: " + std::to_string(kMaxBody + 1) + "\r\n\r\n",
                            413);
}

TEST_F(HttpListener, ChunkedBodyIs411) {
  expect_refused_and_closed(
      "POST /api/publish HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: "
      "chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
      411);
}

TEST_F(HttpListener, GarbageRequestLineIs400) {
  expect_refused_and_closed("\x16\x03\x01 hello there\r\n\r\n", 400);
}

TEST_F(HttpListener, BadContentLengthIs400) {
  expect_refused_and_closed("POST /api/publish HTTP/1.1\r\nContent-Length: 12abc\r\n\r\n", 400);
}

TEST_F(HttpListener, ConnectionCloseIsHonoured) {
  ASSERT_TRUE(send_all(fd, get("/health", "Connection: close\r\n")));
  const auto r = read_response(fd, buf);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->head.status, 200);
  EXPECT_EQ(r->head.header("Connection").value_or(""), "close");
  EXPECT_TRUE(wait_eof(fd, buf, 3s));
}

TEST_F(HttpListener, Http10ClosesUnlessAskedToKeepAlive) {
  ASSERT_TRUE(send_all(fd, "GET /health HTTP/1.0\r\n\r\n"));
  auto r = read_response(fd, buf);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->head.status, 200);
  EXPECT_TRUE(wait_eof(fd, buf, 3s)) << "HTTP/1.0 without keep-alive: closed after the answer";

  const int fd2 = http_connect(daemon->http_port());
  ASSERT_GE(fd2, 0);
  std::string buf2;
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(send_all(fd2, "GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    r = read_response(fd2, buf2);
    ASSERT_TRUE(r) << "request " << i << " on an HTTP/1.0 keep-alive connection";
    EXPECT_EQ(r->head.status, 200);
    EXPECT_EQ(r->head.header("Connection").value_or(""), "keep-alive");
  }
  ::close(fd2);
}

TEST_F(HttpListener, OperatorEndpointsAnswer405WithAllowToOtherMethods) {
  for (const char* path : {"/health", "/ready", "/metrics"}) {
    ASSERT_TRUE(send_all(
        fd, std::string("POST ") + path + " HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"));
    const auto r = read_response(fd, buf);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->head.status, 405) << path;
    EXPECT_EQ(r->head.header("Allow").value_or(""), "GET, HEAD") << path;
  }
}

}  // namespace
}  // namespace flowrelay::itest
