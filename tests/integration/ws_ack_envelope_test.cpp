// Acks for envelope publishes against the real daemon (no backend configured): a publish with
// an id is acked with the offset and epoch its message frame carries, a resend of the id is
// acked again with the same offset and delivered once, and a bad id is an error frame that
// leaves the connection open. docs/PROTOCOL.md.
#include <gtest/gtest.h>

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <memory>

#include "support/envelope_client.h"
#include "support/itest.h"

namespace flowrelay::itest {
namespace {

class WsAckTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { daemon = std::make_unique<Daemon>(); }
  static void TearDownTestSuite() { daemon.reset(); }
  void TearDown() override {
    ASSERT_TRUE(daemon->running()) << "daemon died; stderr:\n" << daemon->stderr_text();
  }
  static uint16_t port() { return daemon->ws_port(); }
  static std::unique_ptr<Daemon> daemon;
};
std::unique_ptr<Daemon> WsAckTest::daemon;

struct Ack {
  std::string id;
  std::optional<uint64_t> offset;
  std::optional<std::string> epoch;
  bool relayed = true;
};

// The frame's "id" and "relayed" (the shared Envelope parser knows neither).
Ack ack_of(const Envelope& e) {
  Ack a;
  a.offset = e.offset;
  a.epoch = e.epoch;
  const auto o = Poco::JSON::Parser().parse(e.raw).extract<Poco::JSON::Object::Ptr>();
  if (o->has("id")) a.id = o->getValue<std::string>("id");
  if (o->has("relayed")) a.relayed = o->getValue<bool>("relayed");
  return a;
}

std::string publish_with_id(const std::string& id, const std::string& data) {
  return R"({"type":"publish","id":")" + id + R"(","data":")" + data + R"("})";
}

// The sender gets its message frame (echo is on) and its ack, in either order.
void expect_message_and_ack(EnvelopeClient& c, const std::string& data, Envelope& message,
                            Ack& ack) {
  bool got_message = false, got_ack = false;
  for (int i = 0; i < 2; ++i) {
    auto e = c.next(5s);
    ASSERT_TRUE(e.has_value()) << "nothing within 5 s; closed: " << c.closed();
    if (e->type == "message") {
      EXPECT_FALSE(got_message) << "the message came twice: " << e->describe();
      EXPECT_EQ(e->data, data);
      message = *e;
      got_message = true;
    } else {
      ASSERT_EQ(e->type, "ack") << e->describe();
      ack = ack_of(*e);
      got_ack = true;
    }
  }
  EXPECT_TRUE(got_message && got_ack);
}

TEST_F(WsAckTest, AckCarriesTheOffsetAndEpochOfTheMessage) {
  EnvelopeClient a(port(), "ack-basic");
  EnvelopeClient b(port(), "ack-basic");
  a.send_text(publish_with_id("c1", "hello"));
  Envelope message;
  Ack ack;
  expect_message_and_ack(a, "hello", message, ack);
  EXPECT_EQ(ack.id, "c1");
  ASSERT_TRUE(message.offset.has_value()) << "the default broker keeps history";
  EXPECT_EQ(ack.offset, message.offset);
  EXPECT_EQ(ack.epoch, message.epoch);
  EXPECT_TRUE(ack.relayed);
  auto other = b.next(5s);
  ASSERT_TRUE(other.has_value());
  EXPECT_EQ(other->data, "hello");
  EXPECT_EQ(other->offset, message.offset);
}

TEST_F(WsAckTest, ResendIsAckedWithTheSameOffsetAndDeliveredOnce) {
  EnvelopeClient a(port(), "ack-resend");
  EnvelopeClient b(port(), "ack-resend");
  a.send_text(publish_with_id("r1", "only once"));
  Envelope message;
  Ack first;
  expect_message_and_ack(a, "only once", message, first);
  a.send_text(publish_with_id("r1", "only once"));
  auto again = a.next(5s);
  ASSERT_TRUE(again.has_value());
  ASSERT_EQ(again->type, "ack") << again->describe();
  const Ack second = ack_of(*again);
  EXPECT_EQ(second.id, "r1");
  EXPECT_EQ(second.offset, first.offset);
  EXPECT_EQ(second.epoch, first.epoch);
  auto delivered = b.next(5s);
  ASSERT_TRUE(delivered.has_value());
  EXPECT_EQ(delivered->data, "only once");
  // A later publish is the next thing b sees: the resend was not delivered in between.
  a.publish("after");
  auto next = b.next(5s);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->data, "after") << "the resend was delivered again: " << next->describe();
  ASSERT_TRUE(next->offset && first.offset);
  EXPECT_EQ(*next->offset, *first.offset + 1) << "the resend took an offset";
}

TEST_F(WsAckTest, BadIdIsAnErrorFrameAndTheConnectionStaysOpen) {
  EnvelopeClient a(port(), "ack-bad");
  a.send_text(R"({"type":"publish","id":"","data":"x"})");
  auto e = a.next(5s);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->type, "error") << e->describe();
  EXPECT_EQ(e->code, 400);
  a.send_text(publish_with_id("ok", "fine"));
  Envelope message;
  Ack ack;
  expect_message_and_ack(a, "fine", message, ack);
  EXPECT_EQ(ack.id, "ok");
}

}  // namespace
}  // namespace flowrelay::itest
