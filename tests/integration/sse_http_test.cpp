// transport-sse's HTTP edges against the real daemon: CORS (preflight, streams, posts), the
// close event on shutdown, and the flowrelay_sse_* metric families beside transport-ws' own.
#include <gtest/gtest.h>

#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "sse_test_helpers.h"

namespace flowrelay::itest {
namespace {

using namespace sse;

// ---------------------------------------------------------------------------------------------
// CORS

class SseCors : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    daemon = std::make_unique<Daemon>(sse_options("    allowed_origins: \"http://a.example\"\n"));
  }
  static void TearDownTestSuite() { daemon.reset(); }
  void TearDown() override {
    ASSERT_TRUE(daemon->running()) << "daemon died; stderr:\n" << daemon->stderr_text();
  }
  static uint16_t sse() { return daemon->sse_port(); }
  static std::unique_ptr<Daemon> daemon;
};
std::unique_ptr<Daemon> SseCors::daemon;

TEST_F(SseCors, PreflightFromAnAllowedOriginIs204WithTheCorsHeaders) {
  const HttpResult r = http_request(sse(), "OPTIONS", "/sse/cors-1", "",
                                    {{"Origin", "http://a.example"},
                                     {"Access-Control-Request-Method", "POST"},
                                     {"Access-Control-Request-Headers", "content-type"}});
  ASSERT_EQ(r.status, 204) << describe(r);
  EXPECT_EQ(r.header("Access-Control-Allow-Origin").value_or(""), "http://a.example");
  EXPECT_EQ(r.header("Access-Control-Allow-Methods").value_or(""), "GET, POST, OPTIONS");
  EXPECT_EQ(r.header("Access-Control-Allow-Headers").value_or(""),
            "Authorization, Content-Type, Last-Event-ID");
  EXPECT_EQ(r.header("Access-Control-Allow-Credentials").value_or(""), "true");
  EXPECT_EQ(r.header("Access-Control-Max-Age").value_or(""), "600");
  EXPECT_EQ(r.header("Vary").value_or(""), "Origin");
  EXPECT_TRUE(r.body.empty()) << r.body;

  const HttpResult b =
      http_request(sse(), "OPTIONS", "/sse/cors-1", "",
                   {{"Origin", "http://b.example"}, {"Access-Control-Request-Method", "POST"}});
  EXPECT_EQ(b.status, 403) << describe(b);
  EXPECT_FALSE(b.header("Access-Control-Allow-Origin").has_value()) << describe(b);

  const HttpResult none = http_request(sse(), "OPTIONS", "/sse/cors-1");
  EXPECT_EQ(none.status, 204) << describe(none);
  EXPECT_FALSE(none.header("Access-Control-Allow-Origin").has_value()) << describe(none);
  EXPECT_FALSE(none.header("Access-Control-Allow-Methods").has_value()) << describe(none);
}

TEST_F(SseCors, StreamsAndPostsFromTheAllowedOriginCarryCorsAndOthersAre403) {
  SseClient a = SseClient::connect(sse(), "/sse/cors-2", {{"Origin", "http://a.example"}});
  ASSERT_EQ(a.status(), 200) << describe(a.head());
  EXPECT_EQ(a.header("Access-Control-Allow-Origin").value_or(""), "http://a.example");
  EXPECT_EQ(a.header("Access-Control-Allow-Credentials").value_or(""), "true");
  EXPECT_EQ(a.header("Vary").value_or(""), "Origin");

  SseClient b = SseClient::connect(sse(), "/sse/cors-2", {{"Origin", "http://b.example"}});
  EXPECT_EQ(b.status(), 403) << describe(b.head());
  EXPECT_FALSE(b.header("Access-Control-Allow-Origin").has_value()) << describe(b.head());
  // A near miss is not the allowed origin.
  SseClient near = SseClient::connect(sse(), "/sse/cors-2", {{"Origin", "http://a.example:81"}});
  EXPECT_EQ(near.status(), 403) << describe(near.head());

  const HttpResult pb = SseClient::post(sse(), "/sse/cors-2", "text/plain", "from b",
                                        {{"Origin", "http://b.example"}});
  EXPECT_EQ(pb.status, 403) << describe(pb);
  const HttpResult pa = SseClient::post(sse(), "/sse/cors-2", "text/plain", "from a",
                                        {{"Origin", "http://a.example"}});
  const Ack ack = parse_ack(pa);
  ASSERT_TRUE(ack.ok) << describe(pa);
  EXPECT_EQ(ack.offset, 1u) << "the 403 POST published something";
  EXPECT_EQ(pa.header("Access-Control-Allow-Origin").value_or(""), "http://a.example")
      << describe(pa);
  const auto e = a.next_event();
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->data, "from a");
  // Errors to an allowed Origin carry CORS too, so the page can read them.
  const HttpResult bad = SseClient::post(sse(), "/sse/cors-2", "application/x-www-form-urlencoded",
                                         "a=b", {{"Origin", "http://a.example"}});
  EXPECT_EQ(bad.status, 415) << describe(bad);
  EXPECT_EQ(bad.header("Access-Control-Allow-Origin").value_or(""), "http://a.example")
      << describe(bad);
}

// ---------------------------------------------------------------------------------------------
// Shutdown

TEST(SseShutdown, SigtermSendsACloseEvent1001BeforeEof) {
  Daemon d(sse_options());
  SseClient c = SseClient::connect(d.sse_port(), "/sse/bye");
  SseClient n = SseClient::connect(d.sse_port(), "/sse/bye?format=ndjson");
  ASSERT_EQ(c.status(), 200) << describe(c.head());
  ASSERT_EQ(n.status(), 200) << describe(n.head());
  const ExitStatus st = d.stop(10s);
  EXPECT_TRUE(st.exited && st.code == 0) << st.describe() << "\n" << d.stderr_text();
  const auto e = c.next_event(3s);
  ASSERT_TRUE(e.has_value()) << "no event before EOF (closed: " << c.closed() << ")";
  EXPECT_EQ(e->event, "close") << e->describe();
  const Envelope j = parse_envelope(e->data);
  EXPECT_EQ(j.type, "close") << e->data;
  EXPECT_EQ(j.code, std::optional<int>(1001)) << e->data;
  EXPECT_FALSE(j.reason.empty()) << e->data;
  EXPECT_FALSE(c.next_event(3s).has_value());
  EXPECT_TRUE(c.closed()) << "no EOF after the close event";

  const auto l = n.next_line(3s);
  ASSERT_TRUE(l.has_value()) << "no NDJSON line before EOF";
  const Envelope nj = parse_envelope(*l);
  EXPECT_EQ(nj.type, "close") << *l;
  EXPECT_EQ(nj.code, std::optional<int>(1001)) << *l;
  EXPECT_FALSE(n.next_line(3s).has_value());
  EXPECT_TRUE(n.closed());
}

// ---------------------------------------------------------------------------------------------
// Metrics

// The `# TYPE` lines of a /metrics page: name -> how many times.
std::map<std::string, int> type_lines(const std::string& page) {
  std::map<std::string, int> out;
  std::istringstream in(page);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("# TYPE ", 0) != 0) continue;
    std::istringstream words(line.substr(7));
    std::string name;
    words >> name;
    ++out[name];
  }
  return out;
}

TEST(SseMetrics, SseFamiliesMoveAndTransportWsFamiliesStayTheirOwn) {
  Daemon d(sse_options());
  const uint16_t http = d.http_port();
  const HttpResult page = http_get(http, "/metrics");
  ASSERT_EQ(page.status, 200) << page.body;
  const auto types = type_lines(page.body);
  for (const auto& [name, count] : types) EXPECT_EQ(count, 1) << "# TYPE " << name;
  for (const std::string name : {"flowrelay_connections", "flowrelay_sse_connections",
                                 "flowrelay_deliveries_total", "flowrelay_sse_deliveries_total"})
    EXPECT_EQ(types.count(name), 1u) << name << " has no # TYPE line";
  EXPECT_EQ(metric_value(http, "flowrelay_sse_connections"), 0);
  EXPECT_EQ(metric_value(http, "flowrelay_connections"), 0);

  const std::string conv = "metrics-1";
  double v = -1;
  {
    SseClient a = SseClient::connect(d.sse_port(), "/sse/" + conv);
    SseClient b = SseClient::connect(d.sse_port(), "/sse/" + conv + "?format=ndjson");
    ASSERT_EQ(a.status(), 200);
    ASSERT_EQ(b.status(), 200);
    WsClient ws(d.ws_port(), conv);
    EXPECT_TRUE(wait_for([&] { return (v = metric_value(http, "flowrelay_sse_connections")) == 2; },
                         5s, 20ms))
        << "flowrelay_sse_connections: " << v;
    EXPECT_TRUE(
        wait_for([&] { return (v = metric_value(http, "flowrelay_connections")) == 1; }, 5s, 20ms))
        << "flowrelay_connections (transport-ws only): " << v;

    HttpSession api(http);
    for (int i = 0; i < 3; ++i)
      ASSERT_EQ(publish_via_api(api, kKey, conv, "m" + std::to_string(i)).status, 200);
    EXPECT_EQ(events(a, 3).size(), 3u);
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(b.next_line().has_value());
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(ws.receive().has_value());
    EXPECT_TRUE(wait_for(
        [&] { return (v = metric_value(http, "flowrelay_sse_deliveries_total")) == 6; }, 5s, 20ms))
        << "flowrelay_sse_deliveries_total: " << v;
    EXPECT_TRUE(wait_for(
        [&] { return (v = metric_value(http, "flowrelay_deliveries_total")) == 3; }, 5s, 20ms))
        << "flowrelay_deliveries_total (transport-ws only): " << v;
    // A POST counts in transport-sse's messages in.
    ASSERT_EQ(SseClient::post(d.sse_port(), "/sse/" + conv, "text/plain", "posted").status, 200);
    EXPECT_TRUE(wait_for(
        [&] { return (v = metric_value(http, "flowrelay_sse_deliveries_total")) == 8; }, 5s, 20ms))
        << "flowrelay_sse_deliveries_total after the POST: " << v;
  }
  EXPECT_TRUE(wait_for([&] { return (v = metric_value(http, "flowrelay_sse_connections")) == 0; },
                       5s, 20ms))
      << "flowrelay_sse_connections after the readers left: " << v;
  const auto after = type_lines(http_get(http, "/metrics").body);
  for (const auto& [name, count] : after) EXPECT_EQ(count, 1) << "# TYPE " << name;
  EXPECT_EQ(after.size(), types.size()) << "families appeared or vanished";
  EXPECT_TRUE(d.running()) << d.stderr_text();
}

}  // namespace
}  // namespace flowrelay::itest
