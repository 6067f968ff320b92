// SIGHUP: the config file is rewritten in place; live limits and keys apply to new connections,
// connected clients stay; a changed listen address is logged as needing a restart.
#include <gtest/gtest.h>

#include <memory>

#include "security_util.h"

namespace flowrelay::itest {
namespace {

using sec::bearer;
using test::metric_or;
using sec::text_frame;

std::unique_ptr<RawClient> join(uint16_t port, const std::string& path,
                                const std::string& extra = "") {
  auto c = std::make_unique<RawClient>(port);
  const HttpHead h = c->handshake(path, extra);
  EXPECT_EQ(h.status, 101) << path << ": " << h.status_line;
  if (h.status != 101) return nullptr;
  return c;
}

std::string next_text(RawClient& c, Millis timeout = 3s) {
  Frame f;
  const ReadResult r = c.read_frame(f, timeout);
  if (r != ReadResult::Frame) return "<no frame: " + std::to_string(static_cast<int>(r)) + ">";
  if (f.opcode != kText) return "<" + f.describe() + ">";
  return f.payload;
}

int handshake_status(uint16_t port, const std::string& path, const std::string& extra = "") {
  RawClient c(port);
  return c.handshake(path, extra).status;
}

TEST(Reload, ChangedPublishRateAppliesToNewConnectionsAndKeepsExistingOnes) {
  DaemonOptions o;
  o.transport_extra = "    publish_rate: 1000\n    publish_burst: 1000\n";
  Daemon d(o);
  auto old_client = join(d.ws_port(), "/ws/hup");
  ASSERT_TRUE(old_client);
  // Before the reload a burst of 5 is fine.
  auto before = join(d.ws_port(), "/ws/hup-before");
  ASSERT_TRUE(before);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(before->send_text("b" + std::to_string(i)));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(next_text(*before), "b" + std::to_string(i));

  ASSERT_TRUE(sec::rewrite_config_and_reload(d, "    publish_rate: 1000\n    publish_burst: 1000\n",
                                             "    publish_rate: 1\n    publish_burst: 2\n"))
      << d.stderr_text();
  EXPECT_EQ(d.stderr_text().find("reload failed"), std::string::npos) << d.stderr_text();

  auto fresh = join(d.ws_port(), "/ws/hup");
  ASSERT_TRUE(fresh);
  ASSERT_TRUE(fresh->send_raw(text_frame("n0") + text_frame("n1") + text_frame("n2")));
  auto f = fresh->read_until_close(3s);
  ASSERT_TRUE(f.has_value()) << "3 messages at the reloaded publish_burst 2 were not limited\n"
                             << d.stderr_text();
  EXPECT_EQ(f->close_code(), 1008) << f->describe();
  // The client connected before the reload is still there and got the two relayed messages.
  EXPECT_EQ(next_text(*old_client), "n0");
  EXPECT_EQ(next_text(*old_client), "n1");
  Frame extra;
  EXPECT_EQ(old_client->read_frame(extra, 300ms), ReadResult::Timeout)
      << "relayed past the reloaded burst: " << extra.describe();
  ASSERT_TRUE(old_client->send_text("old one talks"));
  EXPECT_EQ(next_text(*old_client), "old one talks");
  EXPECT_FALSE(before->closed());
  EXPECT_EQ(metric_or(d.http_port(), "flowrelay_rate_limited_total"), 1);
}

TEST(Reload, NewHs256SecretFileAppliesToNewConnectionsAndKeepsExistingOnes) {
  TempDir dir;
  const std::string secret1 = "first secret, long enough 123456";
  const std::string secret2 = "second secret, long enough 98765";
  const std::string file1 = dir.write("secret1.txt", secret1);
  const std::string file2 = dir.write("secret2.txt", secret2);
  DaemonOptions o;
  o.transport_extra = "    auth: jwt\n    jwt.hs256_secret_file: " + file1 + "\n";
  Daemon d(o);
  const std::string token1 = sec::hs256_token({}, secret1);
  const std::string token2 = sec::hs256_token({}, secret2);
  auto old_client = join(d.ws_port(), "/ws/keys", bearer(token1));
  ASSERT_TRUE(old_client) << d.stderr_text();
  EXPECT_EQ(handshake_status(d.ws_port(), "/ws/keys", bearer(token2)), 401);

  ASSERT_TRUE(sec::rewrite_config_and_reload(d, file1, file2)) << d.stderr_text();
  EXPECT_EQ(d.stderr_text().find("reload failed"), std::string::npos) << d.stderr_text();

  EXPECT_EQ(handshake_status(d.ws_port(), "/ws/keys", bearer(token1)), 401)
      << "a token signed with the replaced secret still admitted\n"
      << d.stderr_text();
  auto new_client = join(d.ws_port(), "/ws/keys", bearer(token2));
  ASSERT_TRUE(new_client) << d.stderr_text();
  ASSERT_TRUE(new_client->send_text("new key"));
  EXPECT_EQ(next_text(*old_client), "new key");
  EXPECT_EQ(next_text(*new_client), "new key");
  ASSERT_TRUE(old_client->send_text("old key, still connected"));
  EXPECT_EQ(next_text(*new_client), "old key, still connected");
  EXPECT_EQ(next_text(*old_client), "old key, still connected");
}

TEST(Reload, ChangedListenIsLoggedAsNeedingARestart) {
  Daemon d;
  auto client = join(d.ws_port(), "/ws/stay");
  ASSERT_TRUE(client);
  uint16_t other = free_port();
  while (other == d.ws_port() || other == d.http_port()) other = free_port();
  ASSERT_TRUE(sec::rewrite_config_and_reload(d, "listen: 127.0.0.1:" + std::to_string(d.ws_port()),
                                             "listen: 127.0.0.1:" + std::to_string(other)))
      << d.stderr_text();
  const std::string log = d.stderr_text();
  bool logged = false;
  for (const std::string& line : non_empty_lines(log))
    if (line.find("listen") != std::string::npos && line.find("restart") != std::string::npos)
      logged = true;
  EXPECT_TRUE(logged) << "no log line names listen as needing a restart:\n" << log;
  // Nothing moved: the old port still serves, the client is still connected.
  EXPECT_TRUE(d.running());
  ASSERT_TRUE(client->send_text("after HUP"));
  EXPECT_EQ(next_text(*client), "after HUP");
  EXPECT_EQ(handshake_status(d.ws_port(), "/ws/stay"), 101);
}

}  // namespace
}  // namespace flowrelay::itest
