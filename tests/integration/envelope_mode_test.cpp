// Envelope mode (subprotocol flowrelay.v1, docs/PROTOCOL.md): the 101 names the subprotocol,
// publishes come back as message frames with lane, offset and epoch, raw clients of the same
// conversation see only message-lane data, bad envelopes are answered with an error frame, and
// `since` is refused at the handshake where it cannot work.
#include <gtest/gtest.h>

#include <memory>

#include "support/envelope_client.h"
#include "support/itest.h"

namespace flowrelay::itest {
namespace {

class EnvelopeModeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { daemon = std::make_unique<Daemon>(); }
  static void TearDownTestSuite() { daemon.reset(); }
  void TearDown() override {
    ASSERT_TRUE(daemon->running()) << "daemon died; stderr:\n" << daemon->stderr_text();
  }
  static uint16_t port() { return daemon->ws_port(); }
  static std::unique_ptr<Daemon> daemon;
};
std::unique_ptr<Daemon> EnvelopeModeTest::daemon;

// The next frame must be a message frame of `lane` with `data`; returns it.
Envelope expect_message(EnvelopeClient& c, const std::string& lane, const std::string& data) {
  auto e = c.next(5s);
  if (!e) {
    ADD_FAILURE() << "no frame within 5 s (closed: " << c.closed() << "); expected " << lane
                  << " message \"" << data << "\"";
    return {};
  }
  EXPECT_TRUE(e->json_object) << "not a JSON object: " << e->describe();
  EXPECT_EQ(e->type, "message") << e->describe();
  EXPECT_EQ(e->lane, lane) << e->describe();
  EXPECT_EQ(e->data, data) << e->describe();
  return *e;
}

void expect_raw_text(WsClient& c, const std::string& payload) {
  auto m = c.receive(5s);
  ASSERT_TRUE(m.has_value()) << "raw client: nothing within 5 s; expected \"" << payload << "\"";
  ASSERT_FALSE(m->eof) << "raw client: connection closed; expected \"" << payload << "\"";
  EXPECT_EQ(m->opcode(), Poco::Net::WebSocket::FRAME_OP_TEXT);
  EXPECT_EQ(m->payload, payload) << "a raw client gets the message's data only, as plain text";
}

TEST_F(EnvelopeModeTest, SubprotocolIsEchoedInThe101AndAbsentForRawClients) {
  EnvelopeClient poco(port(), "proto");
  EXPECT_EQ(poco.subprotocol(), kSubprotocol);

  RawClient offered(port());
  const std::string key = make_ws_key();
  const HttpHead h = offered.request(handshake_request(
      "/ws/proto", key, std::string("Sec-WebSocket-Protocol: ") + kSubprotocol + "\r\n"));
  ASSERT_EQ(h.status, 101) << h.status_line;
  EXPECT_EQ(h.header("Sec-WebSocket-Accept"), expected_accept(key));
  EXPECT_EQ(h.header("Sec-WebSocket-Protocol"), std::optional<std::string>(kSubprotocol));

  RawClient plain(port());
  const HttpHead p = plain.handshake("/ws/proto");
  ASSERT_EQ(p.status, 101) << p.status_line;
  EXPECT_FALSE(p.header("Sec-WebSocket-Protocol").has_value())
      << "a client that offered no subprotocol must not be answered one";
}

TEST_F(EnvelopeModeTest, PublishComesBackToEveryEnvelopeClientWithConsecutiveOffsets) {
  EnvelopeClient a(port(), "env-basic");
  EnvelopeClient b(port(), "env-basic");
  a.publish("one");  // lane omitted: message
  a.publish("two", "message");
  a.publish("three");
  std::optional<std::string> epoch;
  for (EnvelopeClient* c : {&a, &b}) {
    SCOPED_TRACE(c == &a ? "sender" : "other client");
    const std::vector<std::string> data{"one", "two", "three"};
    for (size_t i = 0; i < data.size(); ++i) {
      const Envelope e = expect_message(*c, "message", data[i]);
      EXPECT_EQ(e.offset, std::optional<uint64_t>(i + 1))
          << "offsets of a new conversation are 1, 2, 3: " << e.describe();
      ASSERT_TRUE(e.epoch && !e.epoch->empty()) << "no epoch: " << e.describe();
      if (!epoch) epoch = e.epoch;
      EXPECT_EQ(e.epoch, epoch) << "one epoch for the conversation: " << e.describe();
    }
  }
}

TEST_F(EnvelopeModeTest, RawClientGetsOnlyMessageLaneDataAndNothingOfTheLogLane) {
  EnvelopeClient a(port(), "env-lanes");
  WsClient raw(port(), "env-lanes");
  EXPECT_EQ(raw.subprotocol(), "");
  a.publish("m1");
  a.publish("thinking...", "log");
  a.publish("still thinking", "log");
  a.publish("m2", "message");

  // The envelope client sees both lanes, one offset sequence.
  const std::vector<std::pair<std::string, std::string>> expected{
      {"message", "m1"}, {"log", "thinking..."}, {"log", "still thinking"}, {"message", "m2"}};
  for (size_t i = 0; i < expected.size(); ++i) {
    const Envelope e = expect_message(a, expected[i].first, expected[i].second);
    EXPECT_EQ(e.offset, std::optional<uint64_t>(i + 1)) << e.describe();
  }
  // The raw client: "m1", "m2" as text, and the next thing it gets is the next message.
  expect_raw_text(raw, "m1");
  expect_raw_text(raw, "m2");
  a.publish("m3");
  expect_raw_text(raw, "m3");
}

TEST_F(EnvelopeModeTest, RawClientPublishReachesEnvelopeClientsAsMessageWithAnOffset) {
  EnvelopeClient a(port(), "env-from-raw");
  WsClient raw(port(), "env-from-raw");
  a.publish("first");
  expect_message(a, "message", "first");
  expect_raw_text(raw, "first");
  // Plain text from a raw client is a message-lane message with the next offset: it is
  // published through flowrelay, so it is in history like any other.
  raw.send_text("from raw");
  const Envelope e = expect_message(a, "message", "from raw");
  EXPECT_EQ(e.offset, std::optional<uint64_t>(2)) << e.describe();
  expect_raw_text(raw, "from raw");
}

TEST_F(EnvelopeModeTest, BadEnvelopesGetError400AndTheConnectionStaysUsable) {
  EnvelopeClient a(port(), "env-bad");
  EnvelopeClient observer(port(), "env-bad");
  const std::vector<std::pair<std::string, std::string>> bad{
      {"not JSON", "hello there"},
      {"JSON but not an object", "[1,2]"},
      {"unknown type", R"({"type":"subscribe","data":"x"})"},
      {"no type", R"({"data":"x"})"},
      {"data a number", R"({"type":"publish","data":5})"},
      {"data an object", R"({"type":"publish","data":{"text":"x"}})"},
      {"unknown lane", R"({"type":"publish","lane":"video","data":"x"})"},
  };
  uint64_t expected_offset = 1;
  for (const auto& [name, text] : bad) {
    SCOPED_TRACE(name + ": " + text);
    a.send_text(text);
    auto err = a.next(5s);
    ASSERT_TRUE(err.has_value()) << "no answer (closed: " << a.closed()
                                 << ", code: " << a.close_code().value_or(0) << ")";
    EXPECT_EQ(err->type, "error") << err->describe();
    EXPECT_EQ(err->code, std::optional<int>(400)) << err->describe();
    EXPECT_FALSE(err->reason.empty()) << err->describe();
    // Still usable, and the bad frame published nothing (no offset was taken).
    const std::string ok = "ok after " + name;
    a.publish(ok);
    for (EnvelopeClient* c : {&a, &observer}) {
      const Envelope e = expect_message(*c, "message", ok);
      EXPECT_EQ(e.offset, std::optional<uint64_t>(expected_offset)) << e.describe();
    }
    ++expected_offset;
  }
}

// ---------------------------------------------------------------------------------------------
// `since` at the handshake

TEST_F(EnvelopeModeTest, SinceWithoutTheSubprotocolIsRefusedWith400) {
  RawClient c(port());
  const HttpHead h = c.handshake("/ws/env-since?since=0");
  EXPECT_EQ(h.status, 400) << h.status_line << ": raw clients have no offsets to resume from";
}

TEST_F(EnvelopeModeTest, SinceThatIsNotADecimalIntegerIsRefusedWith400) {
  const std::string proto = std::string("Sec-WebSocket-Protocol: ") + kSubprotocol + "\r\n";
  for (const std::string since : {"abc", "-1", "1.5", "0x10", "12abc"}) {
    SCOPED_TRACE("since=" + since);
    RawClient c(port());
    const HttpHead h = c.handshake("/ws/env-since?since=" + since, proto);
    EXPECT_EQ(h.status, 400) << h.status_line;
  }
  // The same handshake with a valid since is accepted.
  RawClient ok(port());
  const HttpHead h = ok.handshake("/ws/env-since?since=0", proto);
  EXPECT_EQ(h.status, 101) << h.status_line;
}

}  // namespace
}  // namespace flowrelay::itest
