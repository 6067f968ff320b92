// transport-ws as the daemon loads it, with a fake host (ws_transport_fixture.h), for reply
// streams: what envelope and raw clients receive of each step, an envelope producer's steps
// reaching the host's publish_reply with the client info, and the relay latency histogram.
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include "ws_transport_fixture.h"

namespace ws_transport_test {
namespace {

Poco::JSON::Object::Ptr object_of(const std::string& json) {
  return Poco::JSON::Parser().parse(json).extract<Poco::JSON::Object::Ptr>();
}

class WsTransportReply : public WsTransport {
 protected:
  void deliver_step(flowrelay_kind kind, uint64_t seq, std::string_view data, uint64_t offset,
                    std::string_view reason = {}) {
    const flowrelay_reply r{sizeof r, kind, {"r1", 2}, seq, {reason.data(), reason.size()},
                            {},       3,    9,         5};
    flowrelay_message m = flowrelay::sdk::make_message(FLOWRELAY_LANE_MESSAGE, data);
    m.offset = offset;
    m.epoch = {"E", 1};
    m.reply = &r;
    host.vt->deliver(host.self, {"chat:1", 6}, &m);
  }
};

TEST_F(WsTransportReply, EnvelopeClientsGetEveryStepRawClientsOnlyTheDeltasText) {
  start(true);
  const std::string offer(kEnvelopeOffer);
  Client env(port, "/ws/1", offer), raw(port, "/ws/1");
  ASSERT_TRUE(env.upgraded() && raw.upgraded());
  deliver_step(FLOWRELAY_KIND_OPEN, 0, {}, 1);
  deliver_step(FLOWRELAY_KIND_DELTA, 1, "Hel", 2);
  deliver_step(FLOWRELAY_KIND_DELTA, 2, "lo", 3);
  deliver_step(FLOWRELAY_KIND_STALLED, 0, {}, 0);
  deliver_step(FLOWRELAY_KIND_END, 2, {}, 4, "done");
  EXPECT_EQ(text_of(env.next()), R"({"type":"open","reply":"r1","offset":1,"epoch":"E"})");
  EXPECT_EQ(text_of(env.next()),
            R"({"type":"delta","reply":"r1","seq":1,"offset":2,"epoch":"E","data":"Hel"})");
  EXPECT_EQ(text_of(env.next()),
            R"({"type":"delta","reply":"r1","seq":2,"offset":3,"epoch":"E","data":"lo"})");
  EXPECT_EQ(text_of(env.next()), R"({"type":"stalled","reply":"r1"})");
  EXPECT_EQ(text_of(env.next()),
            R"({"type":"end","reply":"r1","offset":4,"epoch":"E","reason":"done",)"
            R"("stats":{"tokens":2,"ttft_ms":3,"duration_ms":9,"bytes":5}})");
  EXPECT_EQ(text_of(raw.next()), "Hel");
  EXPECT_EQ(text_of(raw.next()), "lo");
  EXPECT_EQ(text_of(raw.next(300)), "<nothing>") << "raw clients get no open, stalled or end";
}

TEST_F(WsTransportReply, AProducersStepsReachTheHostAndComeBackAnswered) {
  start(false);
  const std::string offer(kEnvelopeOffer);
  Client producer(port, "/ws/1", offer), viewer(port, "/ws/1", offer);
  ASSERT_TRUE(producer.upgraded() && viewer.upgraded());
  ASSERT_TRUE(producer.send_text(R"({"type":"delta","reply":"r1","seq":1,"data":"a","id":"c1"})"));
  const auto ack = object_of(text_of(producer.next()));
  EXPECT_EQ(ack->getValue<std::string>("type"), "ack");
  EXPECT_EQ(ack->getValue<std::string>("id"), "c1");
  EXPECT_FALSE(ack->has("duplicate"));
  const auto seen = object_of(text_of(viewer.next()));
  EXPECT_EQ(seen->getValue<std::string>("type"), "delta");
  EXPECT_EQ(seen->getValue<uint64_t>("offset"), ack->getValue<uint64_t>("offset"));

  ASSERT_TRUE(producer.send_text(R"({"type":"delta","reply":"r1","seq":1,"data":"a","id":"c2"})"));
  EXPECT_TRUE(object_of(text_of(producer.next()))->getValue<bool>("duplicate"));
  ASSERT_TRUE(producer.send_text(R"({"type":"delta","reply":"r1","seq":3,"data":"c","id":"c3"})"));
  const auto gap = object_of(text_of(producer.next()));
  EXPECT_EQ(gap->getValue<int>("code"), 409);
  EXPECT_EQ(gap->getValue<uint64_t>("expected_seq"), 2u);
  ASSERT_TRUE(producer.send_text(R"({"type":"cancel","reply":"r1","id":"c4"})"));
  EXPECT_EQ(object_of(text_of(producer.next()))->getValue<std::string>("type"), "ack");
  const auto end = object_of(text_of(viewer.next()));
  EXPECT_EQ(end->getValue<std::string>("type"), "end");
  EXPECT_EQ(end->getValue<std::string>("reason"), "cancelled");
  ASSERT_TRUE(producer.send_text(R"({"type":"delta","reply":"r1","seq":2,"data":"b"})"));
  const auto after = object_of(text_of(producer.next()));
  EXPECT_EQ(after->getValue<int>("code"), 409);
  EXPECT_EQ(after->getValue<std::string>("ended"), "cancelled");
  EXPECT_EQ(text_of(producer.next(300)), "<nothing>") << "echo off: no step of its own";
  std::lock_guard lock(host.mutex);
  ASSERT_EQ(host.publishers.size(), 5u) << "every step carries the client info";
  EXPECT_EQ(host.publishers.back().conversation, "1");
  EXPECT_EQ(host.publishers.back().transport, "ws");
}

TEST_F(WsTransportReply, RelayLatencyIsSampledOncePerMessagePerLoop) {
  start(true);
  const std::string offer(kEnvelopeOffer);
  Client a(port, "/ws/1", offer), b(port, "/ws/1", offer), c(port, "/ws/1");
  ASSERT_TRUE(a.upgraded() && b.upgraded() && c.upgraded());
  for (uint64_t seq = 1; seq <= 3; ++seq) deliver_step(FLOWRELAY_KIND_DELTA, seq, "x", seq);
  for (Client* cl : {&a, &b, &c})
    for (int i = 0; i < 3; ++i) ASSERT_NE(text_of(cl->next()), "<nothing>");
  const std::string m = metrics();
  const auto at = m.find("flowrelay_relay_latency_seconds_count ");
  ASSERT_NE(at, std::string::npos) << m;
  const uint64_t count = std::stoull(m.substr(at + 38));
  // Two I/O threads, each sampling each of the 3 messages at most once (only when one of its
  // sessions got it), whatever the number of clients: 3 to 6, never 9.
  EXPECT_GE(count, 3u);
  EXPECT_LE(count, 6u);
  EXPECT_NE(m.find("flowrelay_deltas_merged_total 0"), std::string::npos);
}

}  // namespace
}  // namespace ws_transport_test
