// transport-ws and the backend's calls of ABI 2.1, in process (ws_transport_fixture.h): client
// publishes through publish_client() with who sent them, acks and error frames for envelope
// publishes with an id, resends not published twice, raw clients closed for refusals, outcomes
// arriving after the client left, the connect proxy at the handshake, join/leave events, and
// the fallback to publish() on a 2.0 host.
#include "ws_transport_fixture.h"

namespace ws_transport_test {
namespace {

const std::string kEnvelope(kEnvelopeOffer);

std::string publish_frame(const std::string& id, const std::string& data) {
  return R"({"type":"publish",)" + (id.empty() ? "" : R"("id":")" + id + R"(",)") + R"("data":")" +
         data + R"("})";
}

class WsProxy : public WsTransport {
 protected:
  size_t publishes() {
    std::lock_guard lock(host.mutex);
    return host.publishers.size();
  }
};

TEST_F(WsProxy, AckCarriesTheOffsetOfTheMessageFrameAndWhoPublished) {
  start(true);
  Client a(port, "/ws/1", kEnvelope);
  ASSERT_TRUE(a.upgraded());
  ASSERT_TRUE(a.send_text(publish_frame("c1", "hi")));
  EXPECT_EQ(text_of(a.next()), R"({"type":"message","lane":"message","offset":1,"epoch":"E",)"
                               R"("data":"hi"})");
  EXPECT_EQ(text_of(a.next()), R"({"type":"ack","id":"c1","offset":1,"epoch":"E"})");
  std::lock_guard lock(host.mutex);
  ASSERT_EQ(host.publishers.size(), 1u);
  const ClientSeen& p = host.publishers[0];
  EXPECT_NE(p.session, 0u);
  EXPECT_EQ(p.conversation, "1");
  EXPECT_EQ(p.user, "") << "anonymous without a token";
  EXPECT_EQ(p.remote_addr.rfind("127.0.0.1:", 0), 0u) << p.remote_addr;
  EXPECT_NE(p.remote_addr, "127.0.0.1:0");
  EXPECT_EQ(p.transport, "ws");
}

TEST_F(WsProxy, PrivateAcceptIsAckedRelayedFalse) {
  start(true);
  host.reply = flowrelay_host::Reply::Private;
  Client a(port, "/ws/1", kEnvelope);
  ASSERT_TRUE(a.upgraded() && a.send_text(publish_frame("p1", "secret")));
  EXPECT_EQ(text_of(a.next()), R"({"type":"ack","id":"p1","relayed":false})");
  ASSERT_TRUE(a.send_text(publish_frame("", "quiet")));
  EXPECT_EQ(text_of(a.next(300)), "<nothing>") << "no id: no ack, nothing relayed";
}

TEST_F(WsProxy, RefusalsWithAnIdAreErrorFramesAndTheConnectionStays) {
  start(true);
  host.reply = flowrelay_host::Reply::Refuse;
  host.refuse_reason = "not in this room";
  Client a(port, "/ws/1", kEnvelope);
  ASSERT_TRUE(a.upgraded() && a.send_text(publish_frame("r1", "x")));
  EXPECT_EQ(text_of(a.next()),
            R"({"type":"error","id":"r1","code":403,"reason":"not in this room"})");
  host.refuse_code = 503;
  host.refuse_reason = "backend down";
  ASSERT_TRUE(a.send_text(publish_frame("r2", "x")));
  EXPECT_EQ(text_of(a.next()), R"({"type":"error","id":"r2","code":503,"reason":"backend down"})");
  host.reply = flowrelay_host::Reply::Publish;
  ASSERT_TRUE(a.send_text(publish_frame("r2", "x")));  // a refused id may be tried again
  EXPECT_EQ(text_of(a.next()), R"({"type":"message","lane":"message","offset":1,"epoch":"E",)"
                               R"("data":"x"})");
  EXPECT_EQ(text_of(a.next()), R"({"type":"ack","id":"r2","offset":1,"epoch":"E"})");
  const std::string m = metrics();
  EXPECT_NE(m.find("\nflowrelay_publishes_refused_total{code=\"4xx\"} 1\n"), std::string::npos)
      << m;
  EXPECT_NE(m.find("\nflowrelay_publishes_refused_total{code=\"503\"} 1\n"), std::string::npos);
  EXPECT_NE(m.find("\nflowrelay_acks_total 1\n"), std::string::npos);
}

TEST_F(WsProxy, RawClientsAreClosed1008For4xxAnd1013For503) {
  start(true);
  host.reply = flowrelay_host::Reply::Refuse;
  host.refuse_reason = "no links allowed";
  Client a(port, "/ws/1");
  ASSERT_TRUE(a.upgraded() && a.send_text("http://spam"));
  auto f = a.next();
  ASSERT_TRUE(f && f->opcode == uint8_t(Opcode::Close)) << text_of(f);
  EXPECT_EQ(f->close_code(), 1008);
  EXPECT_EQ(f->payload.substr(2), "no links allowed");
  host.refuse_code = 503;
  host.refuse_reason = "backend down";
  Client b(port, "/ws/1");
  ASSERT_TRUE(b.upgraded() && b.send_text("hello"));
  f = b.next();
  ASSERT_TRUE(f && f->opcode == uint8_t(Opcode::Close)) << text_of(f);
  EXPECT_EQ(f->close_code(), 1013);
}

TEST_F(WsProxy, ResendOfAnIdIsPublishedOnceAndAckedEachTime) {
  start(true);
  host.reply = flowrelay_host::Reply::Hold;
  Client a(port, "/ws/1", kEnvelope);
  ASSERT_TRUE(a.upgraded());
  ASSERT_TRUE(a.send_text(publish_frame("d1", "once")));
  ASSERT_TRUE(a.send_text(publish_frame("d1", "once")));  // while in flight
  ASSERT_TRUE(wait_for([&] { return host.held.size() == 1; }));
  EXPECT_EQ(text_of(a.next(300)), "<nothing>") << "no answer before the outcome";
  fire_held();
  const std::string ack = R"({"type":"ack","id":"d1","offset":1,"epoch":"E"})";
  EXPECT_EQ(text_of(a.next()), R"({"type":"message","lane":"message","offset":1,"epoch":"E",)"
                               R"("data":"once"})");
  EXPECT_EQ(text_of(a.next()), ack);
  EXPECT_EQ(text_of(a.next()), ack) << "the resend in flight is answered too";
  ASSERT_TRUE(a.send_text(publish_frame("d1", "once")));  // after the ack
  EXPECT_EQ(text_of(a.next()), ack);
  EXPECT_EQ(text_of(a.next(300)), "<nothing>") << "delivered once";
  EXPECT_EQ(publishes(), 1u);
  EXPECT_NE(metrics().find("\nflowrelay_publish_resends_total 2\n"), std::string::npos);
}

TEST_F(WsProxy, OutcomeAfterTheClientLeftIsDropped) {
  start(true);
  host.reply = flowrelay_host::Reply::Hold;
  {
    Client a(port, "/ws/1", kEnvelope);
    ASSERT_TRUE(a.upgraded() && a.send_text(publish_frame("gone", "x")) &&
                a.send_text(publish_frame("", "y")));
    ASSERT_TRUE(wait_for([&] { return host.held.size() == 2; }));
  }
  ASSERT_TRUE(wait_for([&] { return host.members["chat:1"] == 0; })) << "not closed";
  fire_held();  // both sessions' completions find it gone
  host.reply = flowrelay_host::Reply::Publish;
  Client b(port, "/ws/1", kEnvelope);
  ASSERT_TRUE(b.upgraded() && b.send_text(publish_frame("b1", "still works")));
  EXPECT_NE(text_of(b.next()).find("still works"), std::string::npos);
  EXPECT_EQ(text_of(b.next()), R"({"type":"ack","id":"b1","offset":3,"epoch":"E"})");
}

TEST_F(WsProxy, ConnectProxyAdmitsWithItsUserAndPublishRight) {
  start(true);
  host.connect_proxy = true;
  Client a(port, "/ws/7", kEnvelope + "Cookie: sid=abc\r\nAuthorization: Basic dTpw\r\n", false);
  ASSERT_TRUE(wait_for([&] { return host.held_connects.size() == 1; }));
  {
    std::lock_guard lock(host.mutex);
    const ClientSeen& c = host.connects[0];
    EXPECT_EQ(c.conversation, "7");
    EXPECT_EQ(c.cookie, "sid=abc");
    EXPECT_EQ(c.authorization, "Basic dTpw");
    EXPECT_EQ(c.remote_addr.rfind("127.0.0.1:", 0), 0u) << c.remote_addr;
    EXPECT_EQ(c.transport, "ws");
    EXPECT_EQ(host.members["chat:7"], 0) << "not in the channel before the verdict";
  }
  EXPECT_EQ(a.read_head(200), 0) << "answered before the verdict";
  fire_connects(200, 1, R"({"id":"u1"})", "");
  ASSERT_EQ(a.read_head(), 101) << a.head();
  ASSERT_TRUE(a.send_text(publish_frame("c1", "hi")));
  EXPECT_NE(text_of(a.next()).find("\"hi\""), std::string::npos);
  std::lock_guard lock(host.mutex);
  ASSERT_EQ(host.publishers.size(), 1u);
  EXPECT_EQ(host.publishers[0].user, R"({"id":"u1"})");
}

TEST_F(WsProxy, ConnectProxyWithoutPublishRightClosesAPublisher) {
  start(true);
  host.connect_proxy = true;
  Client a(port, "/ws/7", {}, false);
  ASSERT_TRUE(wait_for([&] { return host.held_connects.size() == 1; }));
  fire_connects(200, 0, "", "");
  ASSERT_EQ(a.read_head(), 101);
  ASSERT_TRUE(a.send_text("hello"));
  const auto f = a.next();
  ASSERT_TRUE(f && f->opcode == uint8_t(Opcode::Close)) << text_of(f);
  EXPECT_EQ(f->close_code(), 1008);
  EXPECT_EQ(publishes(), 0u);
}

TEST_F(WsProxy, ConnectProxyRefusalsReachTheClient) {
  start(true);
  host.connect_proxy = true;
  for (const auto& [code, expected] :
       {std::pair{401u, 401}, {403u, 403}, {503u, 503}, {500u, 503}}) {
    Client a(port, "/ws/7", {}, false);
    ASSERT_TRUE(wait_for([&] { return host.held_connects.size() == 1; }));
    fire_connects(code, 0, "", "session expired");
    EXPECT_EQ(a.read_head(), expected) << code;
    if (code == 401 || code == 403) {
      EXPECT_NE(a.head().find("session expired"), std::string::npos) << a.head();
    }
  }
  EXPECT_EQ(members("chat:7"), 0);
}

TEST_F(WsProxy, ClientLeavingWhileParkedIsCleanedUp) {
  start(true);
  host.connect_proxy = true;
  {
    Client a(port, "/ws/7", {}, false);
    ASSERT_TRUE(wait_for([&] { return host.held_connects.size() == 1; }));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the loop sees the EOF
  fire_connects(200, 1, "", "");                                // finds nobody
  EXPECT_EQ(members("chat:7"), 0);
  EXPECT_NE(metrics().find("\nflowrelay_connections 0\n"), std::string::npos);
  host.connect_proxy = false;
  Client b(port, "/ws/7");
  EXPECT_TRUE(b.upgraded());
}

TEST_F(WsProxy, JoinAndLeaveEvents) {
  start(true);
  {
    Client a(port, "/ws/3");
    ASSERT_TRUE(a.upgraded());
    ASSERT_TRUE(wait_for([&] { return host.events.size() == 1; }));
  }
  ASSERT_TRUE(wait_for([&] { return host.events.size() == 2; }));
  std::lock_guard lock(host.mutex);
  EXPECT_EQ(host.events[0].joined, 1);
  EXPECT_EQ(host.events[1].joined, 0);
  EXPECT_EQ(host.events[0].conversation, "3");
  EXPECT_EQ(host.events[1].session, host.events[0].session);
  EXPECT_EQ(host.events[0].transport, "ws");
}

TEST_F(WsProxy, RefusedHandshakeHasNoEvents) {
  start(true);
  host.connect_proxy = true;
  Client a(port, "/ws/3", {}, false);
  ASSERT_TRUE(wait_for([&] { return host.held_connects.size() == 1; }));
  fire_connects(403, 0, "", "no");
  EXPECT_EQ(a.read_head(), 403);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::lock_guard lock(host.mutex);
  EXPECT_TRUE(host.events.empty());
}

TEST_F(WsProxy, A20HostIsAskedThroughPublishAndStillAcks) {
  api.struct_size = offsetof(flowrelay_transport_host_api, publish_client);
  start(true);
  Client a(port, "/ws/1", kEnvelope);
  ASSERT_TRUE(a.upgraded() && a.send_text(publish_frame("old", "hi")));
  EXPECT_NE(text_of(a.next()).find("\"hi\""), std::string::npos);
  EXPECT_EQ(text_of(a.next()), R"({"type":"ack","id":"old","offset":1,"epoch":"E"})");
  EXPECT_EQ(publishes(), 0u) << "publish_client is not in a 2.0 table";
}

}  // namespace
}  // namespace ws_transport_test
