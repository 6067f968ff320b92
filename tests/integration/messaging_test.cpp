// Relaying: broadcast within a conversation, isolation, fragmentation, ping/pong, close handshake.
#include <gtest/gtest.h>

#include <map>
#include <memory>

#include "support/itest.h"

namespace flowrelay::itest {
namespace {

class MessagingTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { daemon = std::make_unique<Daemon>(); }
  static void TearDownTestSuite() { daemon.reset(); }
  void TearDown() override {
    ASSERT_TRUE(daemon->running()) << "daemon died; stderr:\n" << daemon->stderr_text();
  }
  static uint16_t port() { return daemon->ws_port(); }
  static std::unique_ptr<Daemon> daemon;
};
std::unique_ptr<Daemon> MessagingTest::daemon;

// The next frame must be one unfragmented text frame with exactly `payload`.
void expect_text(WsClient& c, const std::string& payload, Millis timeout = 5s) {
  auto m = c.receive(timeout);
  ASSERT_TRUE(m.has_value()) << "no message within " << timeout.count()
                             << " ms; expected: " << payload.substr(0, 80);
  ASSERT_FALSE(m->eof) << "connection closed; expected: " << payload.substr(0, 80);
  EXPECT_EQ(m->opcode(), Poco::Net::WebSocket::FRAME_OP_TEXT);
  EXPECT_TRUE(m->fin()) << "relayed message must be one unfragmented frame";
  EXPECT_EQ(m->payload.size(), payload.size());
  EXPECT_TRUE(m->payload == payload)
      << "payload differs (first 80 bytes: " << m->payload.substr(0, 80) << ")";
}

void expect_text(RawClient& c, const std::string& payload, Millis timeout = 5s) {
  Frame f;
  ReadResult r = c.read_frame(f, timeout);
  ASSERT_EQ(r, ReadResult::Frame) << "no frame; expected: " << payload.substr(0, 80);
  EXPECT_EQ(f.opcode, kText) << f.describe();
  EXPECT_TRUE(f.fin) << f.describe();
  EXPECT_FALSE(f.masked);
  EXPECT_EQ(f.rsv, 0);
  EXPECT_TRUE(f.payload == payload) << f.describe();
}

TEST_F(MessagingTest, BroadcastWithinConversationReachesEveryoneInOrder) {
  std::vector<std::unique_ptr<WsClient>> clients;
  for (int i = 0; i < 3; ++i) clients.push_back(std::make_unique<WsClient>(port(), "bcast"));

  // Each client sends 5 messages, interleaved across the three connections.
  constexpr int kPerSender = 5;
  for (int j = 0; j < kPerSender; ++j) {
    for (int i = 0; i < 3; ++i) {
      clients[i]->send_text("sender" + std::to_string(i) + "-msg" + std::to_string(j));
    }
  }
  // Every client (the sender too) receives all 15, each sender's messages in send order.
  for (int r = 0; r < 3; ++r) {
    SCOPED_TRACE("receiver " + std::to_string(r));
    std::map<int, int> next;  // sender -> next expected message index
    for (int k = 0; k < 3 * kPerSender; ++k) {
      auto m = clients[r]->receive(5s);
      ASSERT_TRUE(m && !m->eof) << "got " << k << " of " << 3 * kPerSender << " messages";
      ASSERT_EQ(m->opcode(), Poco::Net::WebSocket::FRAME_OP_TEXT);
      ASSERT_TRUE(m->fin());
      int s = -1, j = -1;
      ASSERT_EQ(std::sscanf(m->payload.c_str(), "sender%d-msg%d", &s, &j), 2) << m->payload;
      ASSERT_TRUE(s >= 0 && s < 3) << m->payload;
      EXPECT_EQ(j, next[s]) << "out of order or duplicated: " << m->payload;
      next[s] = j + 1;
    }
    for (int s = 0; s < 3; ++s) EXPECT_EQ(next[s], kPerSender) << "sender " << s;
  }
}

TEST_F(MessagingTest, ConversationsAreIsolated) {
  // Ids chosen to catch prefix/pattern matching and case folding of channel names.
  const std::vector<std::string> others = {"iso:1", "iso.1", "ISO", "is", "iso-", "iso_"};
  WsClient a1(port(), "iso"), a2(port(), "iso");
  std::vector<std::unique_ptr<WsClient>> b;
  for (const auto& id : others) b.push_back(std::make_unique<WsClient>(port(), id));

  // (One sender at a time: the relative order of two connections' messages is not defined.)
  a1.send_text("for iso only 1");
  for (WsClient* c : {&a1, &a2}) expect_text(*c, "for iso only 1");
  a2.send_text("for iso only 2");
  for (WsClient* c : {&a1, &a2}) expect_text(*c, "for iso only 2");
  // The iso messages have been fanned out. Each other conversation now gets its own marker:
  // the marker must be the first thing its client sees.
  for (size_t i = 0; i < b.size(); ++i) {
    SCOPED_TRACE("id " + others[i]);
    b[i]->send_text("marker " + others[i]);
    expect_text(*b[i], "marker " + others[i]);
  }
  // ... and the iso clients saw none of the markers.
  a1.send_text("iso end");
  expect_text(a2, "iso end");
  expect_text(a1, "iso end");
}

TEST_F(MessagingTest, QueryStringDoesNotChangeTheConversation) {
  WsClient plain(port(), "qroom");
  WsClient with_query(port(), "qroom?token=abc&v=2");
  with_query.send_text("hello from query");
  expect_text(plain, "hello from query");
  expect_text(with_query, "hello from query");
}

TEST_F(MessagingTest, SizesAndContentRelayedIntact) {
  WsClient sender(port(), "sizes"), receiver(port(), "sizes");
  std::vector<std::string> payloads = {
      "",
      "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80 multi-byte \xE4\xB8\xAD",
      std::string(125, 'a'),
      std::string(126, 'b'),
      std::string(65535, 'c'),
      std::string(65536, 'd'),
      std::string(1048576, 'e'),  // exactly max_message_size
  };
  for (const auto& p : payloads) {
    SCOPED_TRACE("payload size " + std::to_string(p.size()));
    sender.send_text(p);
    expect_text(receiver, p, 10s);
    expect_text(sender, p, 10s);
  }
}

TEST_F(MessagingTest, PingGetsPongWithIdenticalPayload) {
  RawClient c(port());
  ASSERT_TRUE(c.upgrade("/ws/pinger"));
  std::string binary;
  for (int i = 0; i < 125; ++i) binary.push_back(static_cast<char>(i * 7));
  for (const std::string& payload : {std::string(), std::string("hello"), binary}) {
    SCOPED_TRACE("ping payload size " + std::to_string(payload.size()));
    FrameSpec ping;
    ping.opcode = kPing;
    ping.payload = payload;
    ASSERT_TRUE(c.send_frame(ping));
    Frame f;
    ASSERT_EQ(c.read_frame(f, 5s), ReadResult::Frame);
    EXPECT_EQ(f.opcode, kPong) << f.describe();
    EXPECT_TRUE(f.fin);
    EXPECT_FALSE(f.masked);
    EXPECT_TRUE(f.payload == payload) << f.describe();
  }
}

TEST_F(MessagingTest, PocoClientPingGetsPong) {
  WsClient c(port(), "pocoping");
  c.send_ping("poco");
  auto m = c.receive(5s);
  ASSERT_TRUE(m && !m->eof);
  EXPECT_EQ(m->opcode(), Poco::Net::WebSocket::FRAME_OP_PONG);
  EXPECT_EQ(m->payload, "poco");
}

TEST_F(MessagingTest, UnsolicitedPongIsIgnored) {
  RawClient c(port());
  ASSERT_TRUE(c.upgrade("/ws/ponger"));
  FrameSpec pong;
  pong.opcode = kPong;
  pong.payload = "unsolicited";
  ASSERT_TRUE(c.send_frame(pong));
  ASSERT_TRUE(c.send_text("after pong"));
  expect_text(c, "after pong");
}

TEST_F(MessagingTest, FragmentedTextIsReassembledAndPingsBetweenFragmentsAnswered) {
  RawClient sender(port());
  ASSERT_TRUE(sender.upgrade("/ws/frag"));
  WsClient observer(port(), "frag");

  auto ping_and_expect_pong = [&](const std::string& payload) {
    FrameSpec ping;
    ping.opcode = kPing;
    ping.payload = payload;
    ASSERT_TRUE(sender.send_frame(ping));
    Frame f;
    // Answered while the message is still open, before any further fragment is sent.
    ASSERT_EQ(sender.read_frame(f, 5s), ReadResult::Frame) << "no pong for " << payload;
    EXPECT_EQ(f.opcode, kPong) << f.describe();
    EXPECT_EQ(f.payload, payload);
  };

  FrameSpec first;
  first.opcode = kText;
  first.fin = false;
  first.payload = "Hel";
  ASSERT_TRUE(sender.send_frame(first));
  ping_and_expect_pong("p1");
  FrameSpec cont;
  cont.opcode = kCont;
  cont.fin = false;
  cont.payload = "lo wo";
  ASSERT_TRUE(sender.send_frame(cont));
  ping_and_expect_pong("p2");
  // A euro sign (E2 82 AC) split across the last two fragments.
  cont.payload = "rld \xE2\x82";
  ASSERT_TRUE(sender.send_frame(cont));
  cont.fin = true;
  cont.payload = "\xAC!";
  ASSERT_TRUE(sender.send_frame(cont));

  const std::string whole = "Hello world \xE2\x82\xAC!";
  expect_text(observer, whole);
  expect_text(sender, whole);

  // The connection is back to normal after the message.
  ASSERT_TRUE(sender.send_text("next"));
  expect_text(observer, "next");
  expect_text(sender, "next");
}

TEST_F(MessagingTest, ManySmallFragmentsAreReassembled) {
  RawClient sender(port());
  ASSERT_TRUE(sender.upgrade("/ws/frag-many"));
  std::string whole;
  std::string wire;
  for (int i = 0; i < 100; ++i) {
    FrameSpec s;
    s.opcode = i == 0 ? kText : kCont;
    s.fin = i == 99;
    s.payload = std::to_string(i % 10);
    whole += s.payload;
    wire += encode_frame(s);
  }
  ASSERT_TRUE(sender.send_raw(wire));
  expect_text(sender, whole);
}

TEST_F(MessagingTest, EmptyFragmentsAreAllowed) {
  RawClient sender(port());
  ASSERT_TRUE(sender.upgrade("/ws/frag-empty"));
  FrameSpec s;
  s.opcode = kText;
  s.fin = false;
  s.payload = "";
  std::string wire = encode_frame(s);
  s.opcode = kCont;
  s.payload = "x";
  wire += encode_frame(s);
  s.fin = true;
  s.payload = "";
  wire += encode_frame(s);
  ASSERT_TRUE(sender.send_raw(wire));
  expect_text(sender, "x");
}

TEST_F(MessagingTest, BinaryFrameIsClosedWith1003) {
  RawClient c(port());
  ASSERT_TRUE(c.upgrade("/ws/binary"));
  WsClient observer(port(), "binary");
  FrameSpec bin;
  bin.opcode = kBinary;
  bin.payload = std::string("\x00\x01\x02", 3);
  ASSERT_TRUE(c.send_frame(bin));
  auto close = c.read_until_close(5s);
  ASSERT_TRUE(close.has_value()) << "no close frame";
  EXPECT_EQ(close->close_code(), 1003) << close->describe();
  EXPECT_TRUE(c.wait_closed(5s)) << "TCP connection not closed after the close frame";
  // Nothing was relayed.
  observer.send_text("only this");
  expect_text(observer, "only this");
}

TEST_F(MessagingTest, FrameTrickledByteByByteIsParsed) {
  RawClient c(port());
  ASSERT_TRUE(c.upgrade("/ws/trickle"));
  std::string payload;
  for (int i = 0; i < 300; ++i) payload.push_back(static_cast<char>('a' + i % 26));
  FrameSpec s;
  s.opcode = kText;
  s.payload = payload;  // 16-bit extended length
  const std::string wire = encode_frame(s);
  for (char b : wire) ASSERT_TRUE(c.send_raw(std::string_view(&b, 1)));
  expect_text(c, payload);
}

TEST_F(MessagingTest, HandshakeTrickledByteByByteIsAccepted) {
  RawClient c(port());
  const std::string key = make_ws_key();
  const std::string req = handshake_request("/ws/trickle-hs", key);
  for (char b : req) ASSERT_TRUE(c.send_raw(std::string_view(&b, 1)));
  HttpHead h = c.read_head(5s);
  ASSERT_EQ(h.status, 101) << h.status_line;
  EXPECT_EQ(h.header("Sec-WebSocket-Accept"), expected_accept(key));
  ASSERT_TRUE(c.send_text("after trickle"));
  expect_text(c, "after trickle");
}

TEST_F(MessagingTest, FramesPipelinedWithTheHandshakeAreProcessed) {
  RawClient c(port());
  const std::string key = make_ws_key();
  FrameSpec s;
  s.opcode = kText;
  s.payload = "pipelined";
  FrameSpec ping;
  ping.opcode = kPing;
  ping.payload = "pp";
  // Request, a text frame and a ping in one write, before the 101 was seen.
  ASSERT_TRUE(
      c.send_raw(handshake_request("/ws/pipelined", key) + encode_frame(s) + encode_frame(ping)));
  HttpHead h = c.read_head(5s);
  ASSERT_EQ(h.status, 101) << h.status_line;
  std::vector<Frame> frames;
  for (int i = 0; i < 2; ++i) {
    Frame f;
    ASSERT_EQ(c.read_frame(f, 5s), ReadResult::Frame) << "got " << i << " of 2 frames";
    frames.push_back(f);
  }
  // The pong may overtake the relayed text (it does not go through the broker).
  int text = frames[0].opcode == kText ? 0 : 1;
  EXPECT_EQ(frames[text].opcode, kText) << frames[text].describe();
  EXPECT_EQ(frames[text].payload, "pipelined");
  EXPECT_EQ(frames[1 - text].opcode, kPong) << frames[1 - text].describe();
  EXPECT_EQ(frames[1 - text].payload, "pp");
}

class CloseHandshake : public MessagingTest, public ::testing::WithParamInterface<int> {};

TEST_P(CloseHandshake, ValidCodeIsEchoed) {
  const uint16_t code = static_cast<uint16_t>(GetParam());
  RawClient c(port());
  ASSERT_TRUE(c.upgrade("/ws/closer"));
  FrameSpec close;
  close.opcode = kClose;
  close.payload = close_payload(code, "bye");
  ASSERT_TRUE(c.send_frame(close));
  auto f = c.read_until_close(5s);
  ASSERT_TRUE(f.has_value()) << "no close frame in answer";
  EXPECT_TRUE(f->fin);
  EXPECT_FALSE(f->masked);
  EXPECT_EQ(f->close_code(), code) << f->describe();
  EXPECT_TRUE(c.wait_closed(5s)) << "server did not close the TCP connection";
}

INSTANTIATE_TEST_SUITE_P(Codes, CloseHandshake, ::testing::Values(1000, 3000, 4999));

// Control frames may come between fragments; a close there ends the connection normally.
TEST_F(MessagingTest, CloseInsideFragmentedMessageIsEchoed) {
  RawClient c(port());
  ASSERT_TRUE(c.upgrade("/ws/close-mid"));
  FrameSpec first;
  first.opcode = kText;
  first.fin = false;
  first.payload = "partial";
  FrameSpec close;
  close.opcode = kClose;
  close.payload = close_payload(1000);
  ASSERT_TRUE(c.send_raw(encode_frame(first) + encode_frame(close)));
  std::vector<Frame> before;
  auto f = c.read_until_close(5s, &before);
  ASSERT_TRUE(f.has_value()) << "no close frame in answer";
  EXPECT_EQ(f->close_code(), 1000) << f->describe();
  for (const Frame& b : before) ADD_FAILURE() << "unexpected frame before close: " << b.describe();
  EXPECT_TRUE(c.wait_closed(5s));
}

TEST_F(MessagingTest, CloseWithoutPayloadIsAnswered) {
  RawClient c(port());
  ASSERT_TRUE(c.upgrade("/ws/closer"));
  FrameSpec close;
  close.opcode = kClose;
  ASSERT_TRUE(c.send_frame(close));
  auto f = c.read_until_close(5s);
  ASSERT_TRUE(f.has_value()) << "no close frame in answer";
  // RFC 6455 5.5.1: no status code received -> answer empty or 1000, never an error.
  EXPECT_TRUE(f->payload.empty() || f->close_code() == 1000) << f->describe();
  EXPECT_TRUE(c.wait_closed(5s));
}

TEST_F(MessagingTest, ClosedClientNoLongerReceivesAndOthersContinue) {
  WsClient stays(port(), "leave");
  auto leaves = std::make_unique<WsClient>(port(), "leave");
  leaves->close(1000);
  auto m = leaves->receive(5s);
  ASSERT_TRUE(m && !m->eof);
  EXPECT_EQ(m->opcode(), Poco::Net::WebSocket::FRAME_OP_CLOSE);
  leaves.reset();
  stays.send_text("still here");
  expect_text(stays, "still here");
}

}  // namespace
}  // namespace flowrelay::itest
