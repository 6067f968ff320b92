// transport-sse under auth: jwt (docs/PROTOCOL.md "SSE and NDJSON"): a stream needs a token
// (?token= or Authorization: Bearer) whose "read" names the conversation, a POST one whose
// "publish" does; the refusals are 401 (none, bad, expired) and 403 (not granted).
#include <gtest/gtest.h>

#include <memory>

#include "security_util.h"
#include "support/sse_client.h"

namespace flowrelay::itest {
namespace {

using sec::Claims;

const std::string kSecret = "sse access secret, long enough 0123456789";

std::string describe(const HttpHead& h) {
  std::string s = h.status_line.empty() ? "(no response)" : h.status_line;
  for (const auto& [k, v] : h.headers) s += " | " + k + ": " + v;
  return s;
}

class SseAccess : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir = std::make_unique<TempDir>("sse-access");
    const std::string secret = dir->write("secret.txt", kSecret + "\n");
    DaemonOptions o;
    o.sse = true;
    o.sse_extra = "    auth: jwt\n    jwt:\n      hs256_secret_file: " + secret + "\n";
    daemon = std::make_unique<Daemon>(o);
  }
  static void TearDownTestSuite() {
    daemon.reset();
    dir.reset();
  }
  void TearDown() override {
    ASSERT_TRUE(daemon->running()) << "daemon died; stderr:\n" << daemon->stderr_text();
  }
  static uint16_t sse() { return daemon->sse_port(); }
  static std::string token(const Claims& c = {}) { return sec::hs256_token(c, kSecret); }
  static Claims scoped(std::vector<std::string> read, std::vector<std::string> publish) {
    Claims c;
    c.read = std::move(read);
    c.publish = std::move(publish);
    return c;
  }
  static std::unique_ptr<TempDir> dir;
  static std::unique_ptr<Daemon> daemon;
};
std::unique_ptr<TempDir> SseAccess::dir;
std::unique_ptr<Daemon> SseAccess::daemon;

TEST_F(SseAccess, StreamWithoutAValidTokenIs401) {
  SseClient none = SseClient::connect(sse(), "/sse/room-1");
  EXPECT_EQ(none.status(), 401) << describe(none.head());
  EXPECT_TRUE(none.header("WWW-Authenticate").has_value()) << describe(none.head());
  Claims expired;
  expired.exp_in = -60;
  for (const std::string& bad : {std::string("not-a-jwt"), token(expired),
                                 sec::hs256_token({}, "another secret, not ours!")}) {
    SseClient q = SseClient::connect(sse(), "/sse/room-1?token=" + bad);
    EXPECT_EQ(q.status(), 401) << describe(q.head());
    SseClient h = SseClient::connect(sse(), "/sse/room-1", {{"Authorization", "Bearer " + bad}});
    EXPECT_EQ(h.status(), 401) << describe(h.head());
  }
  EXPECT_EQ(
      http_request(sse(), "POST", "/sse/room-1", "x", {{"Content-Type", "text/plain"}}).status,
      401);
}

TEST_F(SseAccess, TokenWithoutTheConversationInReadIs403) {
  const std::string t = token(scoped({"other-*"}, {"*"}));
  SseClient q = SseClient::connect(sse(), "/sse/room-1?token=" + t);
  EXPECT_EQ(q.status(), 403) << describe(q.head());
  SseClient h = SseClient::connect(sse(), "/sse/room-1", {{"Authorization", "Bearer " + t}});
  EXPECT_EQ(h.status(), 403) << describe(h.head());
}

TEST_F(SseAccess, ValidTokenStreamsAndPublishNeedsThePublishClaim) {
  const std::string conv = "room-2";
  SseClient by_query =
      SseClient::connect(sse(), "/sse/" + conv + "?token=" + token(scoped({"room-*"}, {})));
  ASSERT_EQ(by_query.status(), 200) << describe(by_query.head());
  SseClient by_header = SseClient::connect(
      sse(), "/sse/" + conv, {{"Authorization", "Bearer " + token(scoped({"room-2"}, {}))}});
  ASSERT_EQ(by_header.status(), 200) << describe(by_header.head());

  // Read rights only: the POST is refused and nothing is relayed.
  const std::string reader = token(scoped({"room-*"}, {"other-*"}));
  const HttpResult refused = SseClient::post(sse(), "/sse/" + conv, "text/plain", "nope",
                                             {{"Authorization", "Bearer " + reader}});
  EXPECT_EQ(refused.status, 403) << refused.body;
  const HttpResult refused_q =
      SseClient::post(sse(), "/sse/" + conv + "?token=" + reader, "text/plain", "nope");
  EXPECT_EQ(refused_q.status, 403) << refused_q.body;

  const std::string writer = token(scoped({"room-*"}, {"room-2"}));
  const HttpResult ok = SseClient::post(sse(), "/sse/" + conv, "text/plain", "granted",
                                        {{"Authorization", "Bearer " + writer}});
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_NE(ok.body.find("\"type\":\"ack\""), std::string::npos) << ok.body;
  EXPECT_NE(ok.body.find("\"offset\":1"), std::string::npos)
      << "a refused POST published something: " << ok.body;
  for (SseClient* c : {&by_query, &by_header}) {
    const auto e = c->next_event();
    ASSERT_TRUE(e.has_value()) << "stream " << (c->closed() ? "closed" : "open");
    EXPECT_EQ(e->data, "granted") << e->describe();
    EXPECT_FALSE(c->next_event(200ms).has_value()) << "a refused POST was relayed";
  }
  const HttpResult ok_q =
      SseClient::post(sse(), "/sse/" + conv + "?token=" + writer, "text/plain", "granted 2");
  EXPECT_EQ(ok_q.status, 200) << ok_q.body;
}

}  // namespace
}  // namespace flowrelay::itest
