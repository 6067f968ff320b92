// The socket-free WebSocket Session of transport-ws: bytes in, actions and frames out.
#include <gtest/gtest.h>

#include "envelope.h"
#include "session_test_host.h"

using namespace flowrelay::ws;
using namespace flowrelay::ws::testing;

namespace {

class SessionTest : public ::testing::Test {
 protected:
  SessionEnv env;
  RecordingHost host;
  std::unique_ptr<Session> s;

  void SetUp() override { s = std::make_unique<Session>(host, env.config, 7); }

  // Handshake done and the 101 read off: the session is Open.
  void open(std::string_view extra_headers = {}, std::string_view target = "/ws/42") {
    s->start();
    ASSERT_EQ(host.timer, SessionTimer::Handshake);
    feed(*s, upgrade_request(target, extra_headers));
    ASSERT_EQ(s->state(), Session::State::Open);
    const Output o = take_output(*s, true);
    ASSERT_EQ(o.status(), 101) << o.http;
    ASSERT_TRUE(o.frames.empty());
  }
  // The one frame queued now.
  ServerFrame only_frame() {
    const Output o = take_output(*s);
    EXPECT_FALSE(o.malformed);
    EXPECT_EQ(o.frames.size(), 1u);
    return o.frames.empty() ? ServerFrame{} : o.frames[0];
  }
  void expect_closed_with(uint16_t code) {
    const ServerFrame f = only_frame();
    EXPECT_EQ(f.opcode, uint8_t(Opcode::Close));
    EXPECT_EQ(f.close_code(), code) << "reason: " << f.payload.substr(2);
    EXPECT_EQ(s->state(), Session::State::Closing);
    EXPECT_EQ(host.leaves, 1) << "a closing session leaves its channel";
    EXPECT_EQ(host.timer, SessionTimer::Closing);
  }
  // A frame the channel delivers, at `offset` of its history.
  static SharedFrame* live(std::string_view text, uint64_t offset = 0,
                           flowrelay_lane lane = FLOWRELAY_LANE_MESSAGE) {
    SharedFrame* f = ws_frame("chat:42", Opcode::Text, text);
    f->set_position(lane, offset);
    return f;
  }
};

TEST_F(SessionTest, UpgradeJoinsTheConversationAndOpensWith101) {
  open();
  EXPECT_EQ(host.joined, std::vector<std::string>{"42"});
  EXPECT_EQ(host.timer, SessionTimer::Idle);
  EXPECT_FALSE(s->envelope());
}

TEST_F(SessionTest, RequestSplitIntoSingleBytesIsTheSame) {
  s->start();
  for (char c : upgrade_request()) feed(*s, std::string(1, c));
  EXPECT_EQ(s->state(), Session::State::Open);
  EXPECT_EQ(take_output(*s, true).status(), 101);
}

TEST_F(SessionTest, BadRequestIsAnsweredWithItsHttpErrorAndNoJoin) {
  s->start();
  feed(*s, upgrade_request("/elsewhere/42"));
  EXPECT_EQ(take_output(*s, true).status(), 404);
  EXPECT_EQ(s->state(), Session::State::Closing);
  EXPECT_TRUE(host.joined.empty());
  EXPECT_EQ(host.leaves, 0) << "never joined, nothing to leave";
  EXPECT_EQ(env.stats.handshakes_rejected.get(), 1u);
}

TEST_F(SessionTest, OversizedHeadersGet431) {
  env.limits.max_header_size = 256;
  s->start();
  feed(*s, "GET /ws/42 HTTP/1.1\r\nX: " + std::string(300, 'a'));
  EXPECT_EQ(take_output(*s, true).status(), 431);
}

TEST_F(SessionTest, BrokerRefusalAtJoinIs503) {
  host.join_status = FLOWRELAY_EUNAVAIL;
  s->start();
  feed(*s, upgrade_request());
  EXPECT_EQ(take_output(*s, true).status(), 503);
}

TEST_F(SessionTest, PendingJoinHoldsThe101AndEarlyFramesUntilAdmitted) {
  host.join_status = FLOWRELAY_PENDING;
  s->start();
  feed(*s, upgrade_request() + client_frame(Opcode::Text, "early"));
  EXPECT_EQ(s->state(), Session::State::Joining);
  EXPECT_TRUE(queued_bytes(*s).empty()) << "no 101 before the broker confirms";
  EXPECT_TRUE(host.published.empty());
  s->admit();
  EXPECT_EQ(take_output(*s, true).status(), 101);
  EXPECT_TRUE(host.published.empty()) << "held frames run in drain_held()";
  s->drain_held();
  ASSERT_EQ(host.published.size(), 1u);
  EXPECT_EQ(host.published[0].data, "early");
}

TEST_F(SessionTest, JoiningTimeoutIs503AndHandshakeTimeoutClosesSilently) {
  host.join_status = FLOWRELAY_PENDING;
  s->start();
  feed(*s, upgrade_request());
  s->on_timer();
  EXPECT_EQ(take_output(*s, true).status(), 503);
  EXPECT_EQ(host.leaves, 1);

  Session slow(host, env.config, 8);
  slow.start();
  feed(slow, "GET /ws/42 HTTP/1.1\r\n");
  slow.on_timer();
  EXPECT_EQ(slow.state(), Session::State::Closed);
  EXPECT_TRUE(queued_bytes(slow).empty());
}

TEST_F(SessionTest, TextMessageIsPublished) {
  open();
  feed(*s, client_frame(Opcode::Text, "hello"));
  ASSERT_EQ(host.published.size(), 1u);
  EXPECT_EQ(host.published[0].data, "hello");
  EXPECT_EQ(host.published[0].lane, FLOWRELAY_LANE_MESSAGE);
  EXPECT_EQ(env.stats.messages_in.get(), 1u);
}

TEST_F(SessionTest, PingIsAnsweredWithPongOfTheSamePayload) {
  open();
  feed(*s, client_frame(Opcode::Ping, "are you there"));
  const ServerFrame f = only_frame();
  EXPECT_EQ(f.opcode, uint8_t(Opcode::Pong));
  EXPECT_EQ(f.payload, "are you there");
  EXPECT_EQ(s->state(), Session::State::Open);
}

TEST_F(SessionTest, FragmentedTextWithInterleavedPingIsOneMessage) {
  open();
  // "héllo" split inside the two-byte é, a ping between the fragments, each read separate.
  feed(*s, client_frame(Opcode::Text, "h\xC3", false));
  feed(*s, client_frame(Opcode::Ping, "p"));
  feed(*s, client_frame(Opcode::Continuation, "\xA9l", false));
  EXPECT_TRUE(host.published.empty());
  feed(*s, client_frame(Opcode::Continuation, "lo", true));
  ASSERT_EQ(host.published.size(), 1u);
  EXPECT_EQ(host.published[0].data, "h\xC3\xA9llo");
  EXPECT_EQ(only_frame().opcode, uint8_t(Opcode::Pong));
}

TEST_F(SessionTest, FrameSplitAcrossReadsIsReassembled) {
  open();
  const std::string frame = client_frame(Opcode::Text, std::string(300, 'x'));
  for (size_t i = 0; i < frame.size(); i += 7) feed(*s, frame.substr(i, 7));
  ASSERT_EQ(host.published.size(), 1u);
  EXPECT_EQ(host.published[0].data, std::string(300, 'x'));
}

TEST_F(SessionTest, InvalidUtf8Is1007) {
  open();
  feed(*s, client_frame(Opcode::Text, "bad \xC0\xAF"));
  expect_closed_with(close_code::InvalidPayload);
  EXPECT_TRUE(host.published.empty());
  EXPECT_EQ(env.stats.protocol_closes.get(), 1u);
}

TEST_F(SessionTest, InvalidUtf8InAFragmentIs1007BeforeTheMessageEnds) {
  open();
  feed(*s, client_frame(Opcode::Text, "ok", false));
  feed(*s, client_frame(Opcode::Continuation, "\xFF", false));
  expect_closed_with(close_code::InvalidPayload);
}

TEST_F(SessionTest, MessageTruncatedInsideACodePointIs1007) {
  open();
  feed(*s, client_frame(Opcode::Text, "h\xC3", false));
  feed(*s, client_frame(Opcode::Continuation, "", true));
  expect_closed_with(close_code::InvalidPayload);
}

TEST_F(SessionTest, OversizedMessageIs1009) {
  env.limits.max_message_size = 16;
  open();
  feed(*s, client_frame(Opcode::Text, std::string(17, 'a')));
  expect_closed_with(close_code::TooBig);
}

TEST_F(SessionTest, OversizedFragmentedMessageIs1009) {
  env.limits.max_message_size = 16;
  open();
  feed(*s, client_frame(Opcode::Text, std::string(10, 'a'), false));
  feed(*s, client_frame(Opcode::Continuation, std::string(7, 'a'), true));
  expect_closed_with(close_code::TooBig);
  EXPECT_TRUE(host.published.empty());
}

TEST_F(SessionTest, BinaryIs1003) {
  open();
  feed(*s, client_frame(Opcode::Binary, "\x01\x02"));
  expect_closed_with(close_code::UnsupportedData);
}

TEST_F(SessionTest, UnmaskedFrameIs1002) {
  open();
  feed(*s, client_frame(Opcode::Text, "hi", true, false));
  expect_closed_with(close_code::ProtocolError);
}

TEST_F(SessionTest, CloseIsEchoedWithThePeersCode) {
  open();
  feed(*s, client_frame(Opcode::Close, close_payload(4001, "bye")));
  expect_closed_with(4001);
  feed(*s, client_frame(Opcode::Text, "after close"));
  EXPECT_TRUE(host.published.empty()) << "nothing is read after our close";
  EXPECT_TRUE(queued_bytes(*s).empty());
}

TEST_F(SessionTest, EmptyCloseIsAnsweredWithAnEmptyClose) {
  open();
  feed(*s, client_frame(Opcode::Close, ""));
  const ServerFrame f = only_frame();
  EXPECT_EQ(f.opcode, uint8_t(Opcode::Close));
  EXPECT_TRUE(f.payload.empty());
  EXPECT_EQ(s->state(), Session::State::Closing);
}

TEST_F(SessionTest, CloseWithAReservedCodeIs1002) {
  open();
  feed(*s, client_frame(Opcode::Close, close_payload(1005)));
  expect_closed_with(close_code::ProtocolError);
}

TEST_F(SessionTest, ClosingTimerClosesTheSocket) {
  open();
  s->close(close_code::GoingAway, "server shutting down");
  expect_closed_with(close_code::GoingAway);
  s->on_timer();
  EXPECT_EQ(s->state(), Session::State::Closed);
}

TEST_F(SessionTest, IdleSessionIsPingedThenClosed1001) {
  open();
  s->on_timer();
  EXPECT_EQ(only_frame().opcode, uint8_t(Opcode::Ping));
  EXPECT_EQ(host.timer, SessionTimer::Idle);
  s->on_timer();
  expect_closed_with(close_code::GoingAway);
  EXPECT_EQ(env.stats.idle_closes.get(), 1u);
}

TEST_F(SessionTest, AnyFrameAfterThePingKeepsTheSessionOpen) {
  open();
  s->on_timer();
  take_output(*s);
  feed(*s, client_frame(Opcode::Pong, ""));
  s->on_timer();
  EXPECT_EQ(only_frame().opcode, uint8_t(Opcode::Ping)) << "pinged again, not closed";
  EXPECT_EQ(s->state(), Session::State::Open);
}

TEST_F(SessionTest, PublishRateIsEnforcedWithItsBurst) {
  env.limits.publish_rate = 1;
  env.limits.publish_burst = 2;
  open();
  feed(*s, client_frame(Opcode::Text, "1") + client_frame(Opcode::Text, "2"));
  EXPECT_EQ(host.published.size(), 2u);
  host.clock_ms += 1000;  // one token back
  feed(*s, client_frame(Opcode::Text, "3"));
  EXPECT_EQ(host.published.size(), 3u);
  feed(*s, client_frame(Opcode::Text, "4"));
  EXPECT_EQ(host.published.size(), 3u);
  expect_closed_with(close_code::PolicyViolation);
  EXPECT_EQ(env.stats.rate_limited.get(), 1u);
}

TEST_F(SessionTest, RefusedPublishTellsTheClient) {
  host.publish_status = FLOWRELAY_EAGAIN;
  open();
  feed(*s, client_frame(Opcode::Text, "x"));
  expect_closed_with(close_code::TryAgainLater);

  RecordingHost other;
  other.publish_status = FLOWRELAY_EINTERNAL;
  Session t(other, env.config, 9);
  feed(t, upgrade_request() + client_frame(Opcode::Text, "x"));
  const Output o = take_output(t, true);
  ASSERT_EQ(o.frames.size(), 1u);
  EXPECT_EQ(o.frames[0].close_code(), close_code::InternalError);
  EXPECT_EQ(env.stats.publish_errors.get(), 2u);
}

TEST_F(SessionTest, EnvelopePublishOnTheLogLane) {
  open(kEnvelopeOffer);
  EXPECT_TRUE(s->envelope());
  feed(*s, client_frame(Opcode::Text, R"({"type":"publish","lane":"log","data":"step 1"})"));
  ASSERT_EQ(host.published.size(), 1u);
  EXPECT_EQ(host.published[0].lane, FLOWRELAY_LANE_LOG);
  EXPECT_EQ(host.published[0].data, "step 1");
  EXPECT_EQ(env.stats.log_messages_in.get(), 1u);
}

TEST_F(SessionTest, BadEnvelopeFrameGetsAnErrorFrameAndStaysOpen) {
  open(kEnvelopeOffer);
  feed(*s, client_frame(Opcode::Text, "not json"));
  const ServerFrame f = only_frame();
  EXPECT_EQ(f.opcode, uint8_t(Opcode::Text));
  EXPECT_NE(f.payload.find(R"("type":"error")"), std::string::npos) << f.payload;
  EXPECT_NE(f.payload.find(R"("code":400)"), std::string::npos) << f.payload;
  EXPECT_EQ(s->state(), Session::State::Open);
  EXPECT_TRUE(host.published.empty());
}

TEST_F(SessionTest, LaneTheBrokerCannotCarryIs501ForEnvelopeClients) {
  host.publish_status = FLOWRELAY_EUNSUPPORTED;
  open(kEnvelopeOffer);
  feed(*s, client_frame(Opcode::Text, R"({"type":"publish","lane":"log","data":"x"})"));
  EXPECT_NE(only_frame().payload.find(R"("code":501)"), std::string::npos);
  EXPECT_EQ(s->state(), Session::State::Open);
}

TEST_F(SessionTest, DeliveriesAreQueuedAndTheHostIsAskedToWriteOncePerBatch) {
  open();
  const int before = host.write_requests;
  EXPECT_TRUE(s->deliver(live("a")));
  EXPECT_TRUE(s->deliver(live("b")));
  EXPECT_EQ(host.write_requests, before + 1) << "one request while the queue is not empty";
  const Output o = take_output(*s);
  ASSERT_EQ(o.frames.size(), 2u);
  EXPECT_EQ(o.frames[0].payload, "a");
  EXPECT_EQ(o.frames[1].payload, "b");
}

TEST_F(SessionTest, SlowConsumerIs1008BehindTheHalfWrittenFrame) {
  env.limits.max_outbound_bytes = 1024;
  open();
  const std::string big(400, 'm');
  ASSERT_TRUE(s->deliver(live(big)));
  // The loop wrote 100 bytes of the first frame; then the client stops reading.
  s->out().consume(100, [](const SharedFrame*) {});
  s->deliver(live(big));
  s->deliver(live(big));  // 1300 bytes queued: past the limit
  EXPECT_EQ(s->state(), Session::State::Closing);
  ASSERT_EQ(host.slow.size(), 1u);
  EXPECT_GT(host.slow[0], 1024u);
  EXPECT_EQ(host.leaves, 1);
  EXPECT_EQ(env.stats.slow_consumer_closes.get(), 1u);
  s->deliver(live("later"));  // nothing more is queued

  // The stream stays whole frames: the rest of the started frame, then the close.
  const std::string bytes = queued_bytes(*s);
  SharedFrame* encoded = ws_frame({}, Opcode::Text, big);
  const std::string first(encoded->data(), encoded->size());
  encoded->unref();
  ASSERT_GT(bytes.size(), first.size() - 100);
  EXPECT_EQ(bytes.substr(0, first.size() - 100), first.substr(100));
  const Output o = parse_output(bytes.substr(first.size() - 100), false);
  ASSERT_EQ(o.frames.size(), 1u);
  EXPECT_EQ(o.frames[0].opcode, uint8_t(Opcode::Close));
  EXPECT_EQ(o.frames[0].close_code(), close_code::PolicyViolation);
  EXPECT_EQ(o.frames[0].payload.substr(2), "slow consumer");
}

TEST_F(SessionTest, LogLaneIsShedPastHalfTheQueueLimit) {
  env.limits.max_outbound_bytes = 1024;
  open(kEnvelopeOffer);
  s->deliver(live(std::string(500, 'm')));
  s->deliver(live(std::string(100, 'l'), 0, FLOWRELAY_LANE_LOG));
  s->deliver(live(std::string(100, 'm')));
  EXPECT_EQ(env.stats.log_frames_shed.get(), 1u);
  EXPECT_EQ(s->state(), Session::State::Open);
  const Output o = take_output(*s);
  ASSERT_EQ(o.frames.size(), 2u);
  EXPECT_EQ(o.frames[1].payload, std::string(100, 'm'));
}

TEST_F(SessionTest, ResumeReplaysHistoryThenHeldFramesWithoutRepeats) {
  open(kEnvelopeOffer, "/ws/42?since=2&epoch=E");
  ASSERT_EQ(host.history_reads, std::vector<uint64_t>{2});
  EXPECT_FALSE(s->deliver(live("live 4", 4))) << "held during the read";
  EXPECT_FALSE(s->deliver(live("live 5", 5)));
  EXPECT_TRUE(queued_bytes(*s).empty());

  HistoryResult h;
  h.session = s->id();
  h.epoch = "E";
  h.top = 4;
  h.entries = {{3, FLOWRELAY_LANE_MESSAGE, "three"}, {4, FLOWRELAY_LANE_MESSAGE, "four"}};
  s->replay(h);
  const Output o = take_output(*s);
  ASSERT_EQ(o.frames.size(), 4u);
  EXPECT_EQ(o.frames[0].payload, envelope_message(FLOWRELAY_LANE_MESSAGE, 3, "E", "three"));
  EXPECT_EQ(o.frames[1].payload, envelope_message(FLOWRELAY_LANE_MESSAGE, 4, "E", "four"));
  EXPECT_EQ(o.frames[2].payload, envelope_resumed(true, 4, "E"));
  EXPECT_EQ(o.frames[3].payload, "live 5") << "live 4 repeated the replay";
  EXPECT_EQ(env.stats.resumes_recovered.get(), 1u);

  EXPECT_TRUE(s->deliver(live("live 6", 6)));
  EXPECT_EQ(only_frame().payload, "live 6");
}

TEST_F(SessionTest, ResumePastTrimmedHistoryIsNotRecoveredAndJumpsToTheTop) {
  open(kEnvelopeOffer, "/ws/42?since=1&epoch=E");
  s->deliver(live("live 9", 9));
  s->deliver(live("live 10", 10));
  HistoryResult h;
  h.epoch = "E";
  h.top = 9;
  h.entries = {{5, FLOWRELAY_LANE_MESSAGE, "five"}};  // 2..4 trimmed
  s->replay(h);
  const Output o = take_output(*s);
  ASSERT_EQ(o.frames.size(), 2u);
  EXPECT_EQ(o.frames[0].payload, envelope_resumed(false, 9, "E"));
  EXPECT_EQ(o.frames[1].payload, "live 10");
  EXPECT_EQ(env.stats.resumes_unrecovered.get(), 1u);
}

TEST_F(SessionTest, ResumeHoldingMoreThanTheQueueLimitIsASlowConsumer) {
  env.limits.max_outbound_bytes = 1024;
  open(kEnvelopeOffer, "/ws/42?since=0");
  for (int i = 1; i <= 5; ++i) s->deliver(live(std::string(300, 'x'), i));
  HistoryResult h;
  s->replay(h);
  expect_closed_with(close_code::PolicyViolation);
}

TEST(EchoSkip, OnlyOwnMessagesWithEchoOff) {
  flowrelay_message m{};
  m.origin = {11, 7, 3};
  EXPECT_EQ(echo_skip(m, 11, false), 7u) << "this node's session 7 published it";
  EXPECT_EQ(echo_skip(m, 11, true), 0u) << "echo on: everyone gets it";
  EXPECT_EQ(echo_skip(m, 12, false), 0u) << "another node's session 7 is someone else";
  m.origin = {0, 0, 0};
  EXPECT_EQ(echo_skip(m, 11, false), 0u) << "a raw backend publish has no sender to skip";
}

}  // namespace
