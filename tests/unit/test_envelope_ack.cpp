// Acks for envelope publishes (docs/PROTOCOL.md): the publish id in client frames, the ack and
// error frames that answer it, the window of ids a connection remembers, and what a Session
// tells its client for each outcome the host reports (driven without a socket).
#include <gtest/gtest.h>

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <string>

#include "ack_window.h"
#include "envelope.h"
#include "session_test_host.h"

namespace flowrelay::ws {
namespace {

using namespace std::string_literals;
using testing::feed;
using testing::take_output;

Poco::JSON::Object::Ptr object_of(const std::string& json) {
  return Poco::JSON::Parser().parse(json).extract<Poco::JSON::Object::Ptr>();
}

// ---------------------------------------------------------------------------- client frame

TEST(PublishId, IsOptionalAndKeptExactly) {
  ClientPublish p;
  std::string error;
  ASSERT_TRUE(parse_client_frame(R"({"type":"publish","data":"x"})", p, error)) << error;
  EXPECT_EQ(p.id, "");
  ASSERT_TRUE(parse_client_frame(R"({"type":"publish","id":"c1","data":"x"})", p, error));
  EXPECT_EQ(p.id, "c1");
  const std::string longest(kMaxPublishIdLength, '~');
  ClientPublish q;
  ASSERT_TRUE(
      parse_client_frame(R"({"type":"publish","id":")" + longest + R"(","data":"x"})", q, error));
  EXPECT_EQ(q.id, longest);
  ClientPublish n;
  ASSERT_TRUE(parse_client_frame(R"({"type":"publish","id":null,"data":"x"})", n, error));
  EXPECT_EQ(n.id, "") << "a null id is no id, as a null lane is the default lane";
  ClientPublish sp;
  ASSERT_TRUE(parse_client_frame(R"({"type":"publish","id":"a b\"c","data":"x"})", sp, error));
  EXPECT_EQ(sp.id, "a b\"c") << "every printable ASCII character is allowed";
}

TEST(PublishId, BadIdsAreRefusedWithAReason) {
  const std::string too_long(kMaxPublishIdLength + 1, 'a');
  for (const std::string& id : {R"("")"s, "\"" + too_long + "\"", "7"s, "true"s, R"(["c1"])"s,
                                R"("caf\u00e9")"s, R"("tab\there")"s, R"("\u007f")"s}) {
    ClientPublish p;
    std::string error;
    EXPECT_FALSE(
        parse_client_frame(R"({"type":"publish","id":)" + id + R"(,"data":"x"})", p, error))
        << id;
    EXPECT_EQ(error, "id must be a string of 1 to 64 printable ASCII characters") << id;
    EXPECT_EQ(p.id, "") << "a refused id is not echoed: " << id;
  }
}

TEST(PublishId, AnErrorInTheRestOfTheFrameKeepsAValidId) {
  ClientPublish p;
  std::string error;
  EXPECT_FALSE(
      parse_client_frame(R"({"type":"publish","id":"c9","lane":"video","data":"x"})", p, error));
  EXPECT_EQ(p.id, "c9");
  ClientPublish q;
  EXPECT_FALSE(parse_client_frame(R"({"type":"publish","id":"c10","data":5})", q, error));
  EXPECT_EQ(q.id, "c10");
}

// ---------------------------------------------------------------------------- server frames

TEST(EnvelopeAck, CarriesIdOffsetAndEpoch) {
  EXPECT_EQ(envelope_ack("c1", 17, "e1", true),
            R"({"type":"ack","id":"c1","offset":17,"epoch":"e1"})");
}

TEST(EnvelopeAck, LeavesOutWhatIsUnknownAndSaysWhenNotRelayed) {
  EXPECT_EQ(envelope_ack("c1", 0, "", true), R"({"type":"ack","id":"c1"})");
  EXPECT_EQ(envelope_ack("c1", 0, "", false), R"({"type":"ack","id":"c1","relayed":false})");
  const auto o = object_of(envelope_ack("q\"\\", 0, "e", true));
  EXPECT_EQ(o->getValue<std::string>("id"), "q\"\\");
  EXPECT_FALSE(o->has("offset"));
  EXPECT_EQ(o->getValue<std::string>("epoch"), "e");
}

TEST(EnvelopeError, CarriesTheIdWhenGiven) {
  EXPECT_EQ(envelope_error(403, "no", "c1"),
            R"({"type":"error","id":"c1","code":403,"reason":"no"})");
  EXPECT_EQ(envelope_error(400, "bad"), R"({"type":"error","code":400,"reason":"bad"})");
}

// ---------------------------------------------------------------------------- the window

TEST(AckWindow, ResendsInFlightAreOwedAndCompletedOnesRemembered) {
  AckWindow w;
  AckWindow::Ack ack;
  EXPECT_FALSE(w.owe_again("a"));
  EXPECT_FALSE(w.remembered("a", ack));
  w.start("a");
  EXPECT_TRUE(w.owe_again("a"));
  EXPECT_TRUE(w.owe_again("a"));
  const AckWindow::Ack done{5, "ep", true};
  EXPECT_EQ(w.finish("a", &done), 3u) << "the first answer and one per resend";
  EXPECT_FALSE(w.owe_again("a")) << "no longer in flight";
  ASSERT_TRUE(w.remembered("a", ack));
  EXPECT_EQ(ack.offset, 5u);
  EXPECT_EQ(ack.epoch, "ep");
  EXPECT_TRUE(ack.relayed);
}

TEST(AckWindow, AFailedIdIsForgottenSoItsResendIsANewAttempt) {
  AckWindow w;
  w.start("a");
  EXPECT_EQ(w.finish("a", nullptr), 1u);
  AckWindow::Ack ack;
  EXPECT_FALSE(w.remembered("a", ack));
  EXPECT_FALSE(w.owe_again("a"));
}

TEST(AckWindow, RemembersTheLast128) {
  AckWindow w;
  for (int i = 0; i < 300; ++i) {
    const std::string id = "id" + std::to_string(i);
    const std::string epoch = "epoch" + std::to_string(i / 50);  // changes now and then
    w.start(id);
    const AckWindow::Ack a{uint64_t(i + 1), epoch, true};
    w.finish(id, &a);
  }
  AckWindow::Ack ack;
  EXPECT_FALSE(w.remembered("id171", ack)) << "older than the window";
  for (int i = 172; i < 300; ++i) {
    ASSERT_TRUE(w.remembered("id" + std::to_string(i), ack)) << i;
    EXPECT_EQ(ack.offset, uint64_t(i + 1));
    EXPECT_EQ(ack.epoch, "epoch" + std::to_string(i / 50));
  }
}

// ---------------------------------------------------------------------------- a Session

class SessionAcks : public ::testing::Test {
 protected:
  testing::SessionEnv env;
  testing::RecordingHost host;
  Session s{host, env.config, 7};

  void open(bool envelope = true) {
    s.start();
    feed(s, testing::upgrade_request("/ws/42", envelope ? testing::kEnvelopeOffer : ""));
    ASSERT_EQ(take_output(s, true).status(), 101);
  }
  void send(const std::string& text) { feed(s, testing::client_frame(Opcode::Text, text)); }
  std::vector<std::string> texts() {
    std::vector<std::string> out;
    for (const auto& f : take_output(s).frames)
      out.push_back(f.opcode == uint8_t(Opcode::Text)
                        ? f.payload
                        : "close " + std::to_string(f.close_code()) + " " + f.payload.substr(2));
    return out;
  }
  static PublishOutcome ok(std::string id, uint64_t offset, std::string epoch = "E") {
    PublishOutcome o;
    o.id = std::move(id);
    o.ok = true;
    o.offset = offset;
    o.epoch = std::move(epoch);
    return o;
  }
  static PublishOutcome refused(std::string id, uint32_t code, std::string reason) {
    PublishOutcome o;
    o.id = std::move(id);
    o.code = code;
    o.reason = std::move(reason);
    return o;
  }
};

TEST_F(SessionAcks, AckAfterTheOutcomeAndResendsAnsweredWithoutPublishing) {
  open();
  send(R"({"type":"publish","id":"c1","data":"hi"})");
  ASSERT_EQ(host.published.size(), 1u);
  EXPECT_EQ(host.published[0].id, "c1");
  EXPECT_TRUE(texts().empty()) << "no ack before the outcome";
  send(R"({"type":"publish","id":"c1","data":"hi"})");  // resent while in flight
  EXPECT_EQ(host.published.size(), 1u);
  s.published(ok("c1", 9));
  const std::string ack = R"({"type":"ack","id":"c1","offset":9,"epoch":"E"})";
  EXPECT_EQ(texts(), (std::vector<std::string>{ack, ack}));
  send(R"({"type":"publish","id":"c1","data":"hi"})");  // resent after the ack
  EXPECT_EQ(host.published.size(), 1u);
  EXPECT_EQ(texts(), std::vector<std::string>{ack});
  EXPECT_EQ(env.stats.acks_sent.get(), 3u);
  EXPECT_EQ(env.stats.publish_resends.get(), 2u);
}

TEST_F(SessionAcks, PrivateAcceptIsAckedRelayedFalseAndSilentWithoutId) {
  open();
  send(R"({"type":"publish","id":"p","data":"x"})");
  send(R"({"type":"publish","data":"y"})");
  PublishOutcome o = ok("p", 0, "");
  o.relayed = false;
  s.published(o);
  o.id = "";
  s.published(o);
  EXPECT_EQ(texts(), std::vector<std::string>{R"({"type":"ack","id":"p","relayed":false})"});
}

TEST_F(SessionAcks, RefusalsWithAnIdAreErrorFramesAndTheIdMayBeRetried) {
  open();
  send(R"({"type":"publish","id":"a","data":"x"})");
  send(R"({"type":"publish","id":"b","data":"x"})");
  s.published(refused("a", 403, "not in this room"));
  s.published(refused("b", 503, "backend down"));
  EXPECT_EQ(texts(), (std::vector<std::string>{
                         R"({"type":"error","id":"a","code":403,"reason":"not in this room"})",
                         R"({"type":"error","id":"b","code":503,"reason":"backend down"})"}));
  send(R"({"type":"publish","id":"b","data":"x"})");
  EXPECT_EQ(host.published.size(), 3u) << "a refused id is published again when resent";
  EXPECT_EQ(env.stats.refused_4xx.get(), 1u);
  EXPECT_EQ(env.stats.refused_503.get(), 1u);
}

TEST_F(SessionAcks, WithoutAnIdA4xxIsAnErrorFrameAndA503AClose) {
  open();
  send(R"({"type":"publish","data":"x"})");
  s.published(refused("", 413, "too long"));
  EXPECT_EQ(texts(),
            std::vector<std::string>{R"({"type":"error","code":413,"reason":"too long"})"});
  s.published(refused("", 503, "backend down"));
  EXPECT_EQ(texts(), std::vector<std::string>{"close 1013 backend down"});
}

TEST_F(SessionAcks, SynchronousRefusalWithAnIdIsAnErrorFrame) {
  open();
  host.publish_status = FLOWRELAY_EAGAIN;
  send(R"({"type":"publish","id":"z","data":"x"})");
  EXPECT_EQ(texts(), std::vector<std::string>{
                         R"({"type":"error","id":"z","code":503,"reason":"broker unavailable, )"
                         R"(message not published"})"});
  host.publish_status = FLOWRELAY_OK;
  send(R"({"type":"publish","id":"z","data":"x"})");
  EXPECT_EQ(host.published.size(), 2u) << "not in flight after a refusal: tried again";
}

TEST_F(SessionAcks, BadFrameWithAValidIdNamesIt) {
  open();
  send(R"({"type":"publish","id":"c3","lane":"video","data":"x"})");
  EXPECT_EQ(texts(), std::vector<std::string>{
                         R"x({"type":"error","id":"c3","code":400,"reason":"unknown lane )x"
                         R"x((message or log)"})x"});
  EXPECT_TRUE(host.published.empty());
}

TEST_F(SessionAcks, RawClientsAreClosed1008With4xxReasonsAnd1013With503) {
  open(false);
  send("hello");
  ASSERT_EQ(host.published.size(), 1u);
  PublishOutcome priv = ok("", 0, "");
  priv.relayed = false;
  s.published(priv);
  EXPECT_TRUE(texts().empty()) << "a private accept is silent";
  // The reason is the backend's, cut to fit a close frame on a character boundary.
  std::string reason(120, 'r');
  reason += "\xc3\xa9\xc3\xa9";  // bytes 121..124: the second é does not fit in 123
  s.published(refused("", 403, reason));
  const auto out = take_output(s).frames;
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].close_code(), 1008);
  EXPECT_EQ(out[0].payload.substr(2), std::string(120, 'r') + "\xc3\xa9");
}

TEST_F(SessionAcks, Raw503Closes1013) {
  open(false);
  send("hello");
  s.published(refused("", 503, "backend down"));
  EXPECT_EQ(texts(), std::vector<std::string>{"close 1013 backend down"});
}

TEST_F(SessionAcks, OutcomeAfterTheCloseIsDropped) {
  open();
  send(R"({"type":"publish","id":"c1","data":"x"})");
  feed(s, testing::client_frame(Opcode::Close, testing::close_payload(1000)));
  take_output(s);
  s.published(ok("c1", 1));
  EXPECT_TRUE(take_output(s).frames.empty());
}

// ---------------------------------------------------------------------------- connect proxy

TEST_F(SessionAcks, ParkedHandshakeWaitsForTheVerdict) {
  host.authorize_status = FLOWRELAY_OK;
  s.start();
  feed(s, testing::upgrade_request("/ws/42", "Cookie: sid=1\r\nAuthorization: Basic eA==\r\n"));
  ASSERT_EQ(host.authorizations, std::vector<std::string>{"42|sid=1|Basic eA=="});
  EXPECT_EQ(s.state(), Session::State::Authorizing);
  EXPECT_TRUE(host.joined.empty()) << "joins only once admitted";
  feed(s, testing::client_frame(Opcode::Text, "early"));  // waits while parked
  ConnectAnswer a;
  a.session = 7;
  a.conversation = "42";
  a.code = 200;
  a.can_publish = true;
  a.user = R"({"id":"u1"})";
  s.authorized(a);
  EXPECT_EQ(take_output(s, true).status(), 101);
  EXPECT_EQ(host.joined, std::vector<std::string>{"42"});
  EXPECT_EQ(host.opens, 1);
  EXPECT_EQ(s.user(), R"({"id":"u1"})");
  ASSERT_EQ(host.published.size(), 1u) << "the frame sent while parked runs once admitted";
  EXPECT_EQ(host.published[0].data, "early");
}

TEST_F(SessionAcks, ParkedHandshakeRefusedOrTimedOut) {
  host.authorize_status = FLOWRELAY_OK;
  for (uint32_t code : {401u, 403u, 500u}) {
    Session t{host, env.config, 8};
    t.start();
    feed(t, testing::upgrade_request());
    ConnectAnswer a;
    a.code = code;
    a.reason = "who are you";
    t.authorized(a);
    const auto out = take_output(t, true);
    EXPECT_EQ(out.status(), code == 500 ? 503 : int(code));
    if (code != 500) {
      EXPECT_NE(out.http.find("who are you"), std::string::npos) << out.http;
    }
  }
  s.start();
  feed(s, testing::upgrade_request());
  s.on_timer();
  EXPECT_EQ(take_output(s, true).status(), 503);
  EXPECT_TRUE(host.joined.empty());
}

}  // namespace
}  // namespace flowrelay::ws
