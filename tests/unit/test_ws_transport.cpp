// transport-ws as the daemon loads it, with a fake host (ws_transport_fixture.h): echo
// suppression by origin, a subscription lost for good, the host-decided fields, reloads,
// metrics. No daemon process. The backend's calls are in test_ws_transport_proxy.cpp.
#include "ws_transport_fixture.h"

namespace ws_transport_test {
namespace {

TEST_F(WsTransport, EchoOffSkipsExactlyTheSendingSessionOfThisNode) {
  start(false);
  Client a(port, "/ws/1"), b(port, "/ws/1");
  ASSERT_TRUE(a.upgraded() && b.upgraded());
  ASSERT_TRUE(a.send_text("from a"));
  EXPECT_EQ(text_of(b.next()), "from a");
  ASSERT_TRUE(b.send_text("from b"));
  EXPECT_EQ(text_of(a.next()), "from b") << "a got its own message back";
  EXPECT_EQ(text_of(a.next(300)), "<nothing>");
  EXPECT_EQ(text_of(b.next(300)), "<nothing>") << "b got its own message back";

  flowrelay_origin a_origin;
  {
    std::lock_guard lock(host.mutex);
    ASSERT_EQ(host.origins.size(), 2u);
    a_origin = host.origins[0];
  }
  EXPECT_NE(a_origin.session, 0u) << "a publish names its session";
  // However late it comes back (a resend after any outage), a's message skips a alone...
  deliver("a again", a_origin);
  EXPECT_EQ(text_of(b.next()), "a again");
  // ...while the same session number on another node is someone else.
  deliver("other node", {a_origin.node + 1, a_origin.session, 0});
  EXPECT_EQ(text_of(a.next()), "other node");
  EXPECT_EQ(text_of(b.next()), "other node");
}

TEST_F(WsTransport, EchoOnTheSenderGetsItsOwnMessage) {
  start(true);
  Client a(port, "/ws/1");
  ASSERT_TRUE(a.upgraded());
  ASSERT_TRUE(a.send_text("hello"));
  EXPECT_EQ(text_of(a.next()), "hello");
}

TEST_F(WsTransport, LostSubscriptionClosesItsOpenSessions1013AndTheyUnsubscribe) {
  start(true);
  Client a(port, "/ws/1"), other(port, "/ws/2");
  ASSERT_TRUE(a.upgraded() && other.upgraded());
  EXPECT_EQ(members("chat:1"), 1);
  host.vt->subscribed(host.self, {"chat:1", 6}, FLOWRELAY_EUNAVAIL);
  const auto f = a.next();
  ASSERT_TRUE(f && f->opcode == uint8_t(Opcode::Close)) << text_of(f);
  EXPECT_EQ(f->close_code(), 1013);
  EXPECT_EQ(f->payload.substr(2), "subscription lost, reconnect");
  for (int i = 0; i < 100 && members("chat:1") != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(members("chat:1"), 0) << "the closed session did not unsubscribe";
  EXPECT_EQ(members("chat:2"), 1) << "another conversation is not affected";
  ASSERT_TRUE(other.send_text("still here"));
  EXPECT_EQ(text_of(other.next()), "still here");
}

TEST_F(WsTransport, WhatTheHostDecidesIsNoOption) {
  for (const char* key : {"echo", "channel_prefix", "config_dir"}) {
    std::string err;
    EXPECT_EQ(create({{key, "x"}}, &err), FLOWRELAY_EINVAL) << key;
    EXPECT_NE(err.find(std::string("unknown option '") + key + "'"), std::string::npos) << err;
    EXPECT_EQ(host.self, nullptr);
  }
}

TEST_F(WsTransport, ReloadAppliesLimitsAndNamesRestartOnlyKeys) {
  start(true);
  const std::string same = "127.0.0.1:" + std::to_string(port);
  const std::string moved = "127.0.0.1:" + std::to_string(port + 1);
  const flowrelay_option live[] = {{{"listen", 6}, {same.data(), same.size()}},
                                   {{"io_threads", 10}, {"2", 1}},
                                   {{"publish_rate", 12}, {"5", 1}}};
  char err[256] = "";
  EXPECT_EQ(host.vt->reconfigure(host.self, live, 3, err, sizeof err), FLOWRELAY_OK) << err;
  const flowrelay_option restart[] = {{{"listen", 6}, {moved.data(), moved.size()}},
                                      {{"io_threads", 10}, {"2", 1}}};
  EXPECT_EQ(host.vt->reconfigure(host.self, restart, 2, err, sizeof err), FLOWRELAY_EUNSUPPORTED);
  EXPECT_EQ(std::string(err), "'listen' changed: takes effect after a restart");
  const flowrelay_option bad[] = {{{"publish_rate", 12}, {"fast", 4}}};
  EXPECT_EQ(host.vt->reconfigure(host.self, bad, 1, err, sizeof err), FLOWRELAY_EINVAL);
  EXPECT_NE(std::string(err).find("'publish_rate'"), std::string::npos) << err;
}

TEST_F(WsTransport, MetricsKeepTheirNamesAndLabels) {
  start(true);
  Client a(port, "/ws/1");
  ASSERT_TRUE(a.upgraded() && a.send_text("one"));
  EXPECT_EQ(text_of(a.next()), "one");
  // The loop books a written frame just after its write: the client may read it first. Waits
  // for delivery_latency's own line: relay_latency's bucket may be booked before it.
  const std::string delivered = "flowrelay_delivery_latency_seconds_bucket{le=\"+Inf\"} 1\n";
  std::string text;
  for (int i = 0; i < 100; ++i) {
    text.clear();
    host.vt->metrics(
        host.self,
        [](void* ctx, flowrelay_str piece) {
          static_cast<std::string*>(ctx)->append(piece.ptr, piece.len);
        },
        &text);
    if (text.find(delivered) != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_NE(text.find("\nflowrelay_connections 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nflowrelay_messages_in_total{lane=\"message\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("\nflowrelay_messages_in_total{lane=\"log\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find("\nflowrelay_resumes_total{recovered=\"false\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE flowrelay_delivery_latency_seconds histogram\n"), std::string::npos);
  EXPECT_NE(text.find(delivered), std::string::npos) << text;
}

}  // namespace
}  // namespace ws_transport_test
