// Reply streams in the socket-free Session of transport-ws: a producer's steps and their
// answers, merging queued deltas of a session that falls behind, and a resume's reply entries.
#include <gtest/gtest.h>

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include "delta_merge.h"
#include "envelope.h"
#include "session_test_host.h"

using namespace flowrelay::ws;
using namespace flowrelay::ws::testing;

namespace {

Poco::JSON::Object::Ptr object_of(const std::string& json) {
  return Poco::JSON::Parser().parse(json).extract<Poco::JSON::Object::Ptr>();
}

flowrelay_reply delta_step(std::string_view id, uint64_t seq) {
  return {sizeof(flowrelay_reply),
          FLOWRELAY_KIND_DELTA,
          {id.data(), id.size()},
          seq,
          {},
          {},
          -1,
          -1,
          0};
}

class SessionReply : public ::testing::Test {
 protected:
  SessionEnv env;
  RecordingHost host;
  std::unique_ptr<Session> s;

  void SetUp() override { s = std::make_unique<Session>(host, env.config, 7); }
  void open(std::string_view target = "/ws/42", std::string_view offer = kEnvelopeOffer) {
    feed(*s, upgrade_request(target, offer));
    ASSERT_EQ(s->state(), Session::State::Open);
    take_output(*s, true);
  }
  void send(const std::string& text) { feed(*s, client_frame(Opcode::Text, text)); }
  std::vector<std::string> texts() {
    std::vector<std::string> out;
    for (const auto& f : take_output(*s).frames) out.push_back(f.payload);
    return out;
  }
  static SharedFrame* delta(std::string_view id, uint64_t seq, uint64_t offset,
                            std::string_view data) {
    return delta_frame("chat:42", delta_step(id, seq), offset, "E", data);
  }
  static SharedFrame* live(std::string_view text, flowrelay_lane lane = FLOWRELAY_LANE_MESSAGE) {
    SharedFrame* f = ws_frame("chat:42", Opcode::Text, text);
    f->set_position(lane, 0);
    return f;
  }
  // The queue holds more than half of its bound: merging is on.
  void back_up(size_t max = 4096) {
    env.limits.max_outbound_bytes = max;
    ASSERT_TRUE(s->deliver(live(std::string(max / 2 + 10, 'm'))));
  }
};

// ---------------------------------------------------------------------------- producer

TEST_F(SessionReply, StepsGoToTheHostWithTheirIds) {
  open();
  send(R"({"type":"open","reply":"r1","id":"c1"})");
  send(R"({"type":"delta","reply":"r1","seq":1,"data":"Hi","id":"c2"})");
  send(R"({"type":"end","reply":"r1","error":"boom"})");
  send(R"({"type":"cancel","reply":"r2"})");
  ASSERT_EQ(host.reply_steps.size(), 4u);
  EXPECT_EQ(host.reply_steps[0].step.kind, FLOWRELAY_KIND_OPEN);
  EXPECT_EQ(host.reply_steps[0].id, "c1");
  EXPECT_EQ(host.reply_steps[1].step.seq, 1u);
  EXPECT_EQ(host.reply_steps[1].data, "Hi");
  EXPECT_TRUE(host.reply_steps[2].step.has_error);
  EXPECT_TRUE(host.reply_steps[3].step.cancel);
  EXPECT_TRUE(host.published.empty()) << "reply steps are not plain publishes";
  EXPECT_TRUE(texts().empty()) << "answers come with published()";
  EXPECT_EQ(env.stats.messages_in.get(), 4u);
}

TEST_F(SessionReply, AcksSayDuplicateAndResendsAreAnsweredAgain) {
  open();
  send(R"({"type":"delta","reply":"r1","seq":1,"data":"Hi","id":"c2"})");
  PublishOutcome o;
  o.id = "c2";
  o.ok = true;
  o.offset = 0;
  o.duplicate = true;
  s->published(o);
  EXPECT_EQ(texts(), std::vector<std::string>{R"({"type":"ack","id":"c2","duplicate":true})"});
  send(R"({"type":"delta","reply":"r1","seq":1,"data":"Hi","id":"c2"})");
  EXPECT_EQ(host.reply_steps.size(), 1u) << "a remembered id is not sent again";
  EXPECT_EQ(texts(), std::vector<std::string>{R"({"type":"ack","id":"c2","duplicate":true})"});
}

TEST_F(SessionReply, ConflictsTellTheExpectedSeqOrHowTheReplyEnded) {
  open();
  send(R"({"type":"delta","reply":"r1","seq":5,"data":"x","id":"c5"})");
  PublishOutcome gap;
  gap.id = "c5";
  gap.code = 409;
  gap.expected_seq = 4;
  s->published(gap);
  const auto a = object_of(texts().at(0));
  EXPECT_EQ(a->getValue<std::string>("id"), "c5");
  EXPECT_EQ(a->getValue<int>("code"), 409);
  EXPECT_EQ(a->getValue<uint64_t>("expected_seq"), 4u);

  send(R"({"type":"delta","reply":"r1","seq":6,"data":"x"})");
  PublishOutcome ended;
  ended.code = 409;
  ended.ended = "cancelled";
  s->published(ended);
  const auto b = object_of(texts().at(0));
  EXPECT_FALSE(b->has("id"));
  EXPECT_EQ(b->getValue<std::string>("ended"), "cancelled");
  EXPECT_EQ(s->state(), Session::State::Open) << "a 409 without id leaves the connection open";

  for (uint32_t code : {413u, 501u, 400u}) {
    PublishOutcome o;
    o.code = code;
    s->published(o);
    const auto e = object_of(texts().at(0));
    EXPECT_EQ(e->getValue<uint32_t>("code"), code);
    EXPECT_EQ(s->state(), Session::State::Open);
  }
}

TEST_F(SessionReply, UnavailableWithoutIdCloses1013AndInternal1011) {
  open();
  PublishOutcome o;
  o.code = 503;
  s->published(o);
  EXPECT_EQ(take_output(*s).frames.at(0).close_code(), close_code::TryAgainLater);

  SetUp();
  open();
  host.reply_status = FLOWRELAY_EINTERNAL;
  send(R"({"type":"end","reply":"r1"})");
  EXPECT_EQ(take_output(*s).frames.at(0).close_code(), close_code::InternalError);
}

TEST_F(SessionReply, BrokerWithoutRepliesIs501AndBadStepIs400) {
  open();
  host.reply_status = FLOWRELAY_EUNSUPPORTED;
  send(R"({"type":"delta","reply":"r1","seq":1,"data":"x"})");
  EXPECT_EQ(object_of(texts().at(0))->getValue<int>("code"), 501);
  send(R"({"type":"delta","reply":"r1","seq":0,"data":"x","id":"c1"})");
  const auto e = object_of(texts().at(0));
  EXPECT_EQ(e->getValue<int>("code"), 400);
  EXPECT_EQ(e->getValue<std::string>("id"), "c1");
  EXPECT_EQ(s->state(), Session::State::Open);
}

TEST_F(SessionReply, NeedsThePublishRightAndCountsAgainstTheRate) {
  env.limits.publish_rate = 1;
  env.limits.publish_burst = 2;
  open();
  send(R"({"type":"delta","reply":"r1","seq":1,"data":"a"})");
  send(R"({"type":"delta","reply":"r1","seq":2,"data":"b"})");
  send(R"({"type":"delta","reply":"r1","seq":3,"data":"c"})");
  EXPECT_EQ(host.reply_steps.size(), 2u);
  EXPECT_EQ(take_output(*s).frames.at(0).close_code(), close_code::PolicyViolation);
  EXPECT_EQ(env.stats.rate_limited.get(), 1u);
}

// ---------------------------------------------------------------------------- merging

TEST_F(SessionReply, NoMergingWhileTheClientKeepsUp) {
  open();
  s->deliver(delta("r1", 1, 1, "a"));
  s->deliver(delta("r1", 2, 2, "b"));
  EXPECT_EQ(s->out().count(), 2u);
  EXPECT_EQ(env.stats.deltas_merged.get(), 0u);
}

TEST_F(SessionReply, BackedUpConsecutiveDeltasBecomeOneFrame) {
  open();
  back_up();
  for (uint64_t seq = 1; seq <= 5; ++seq)
    s->deliver(delta("r1", seq, 10 + seq, std::string(1, char('a' + seq - 1))));
  EXPECT_EQ(s->out().count(), 2u) << "the backlog and one merged delta";
  EXPECT_EQ(env.stats.deltas_merged.get(), 4u);
  const auto frames = texts();
  ASSERT_EQ(frames.size(), 2u);
  const auto o = object_of(frames[1]);
  EXPECT_EQ(o->getValue<std::string>("data"), "abcde");
  EXPECT_EQ(o->getValue<uint64_t>("from"), 1u);
  EXPECT_EQ(o->getValue<uint64_t>("seq"), 5u);
  EXPECT_EQ(o->getValue<uint64_t>("offset"), 15u);
  EXPECT_EQ(s->state(), Session::State::Open);
}

TEST_F(SessionReply, APartlyWrittenTailIsNotMerged) {
  env.limits.max_outbound_bytes = 200;
  open();
  s->deliver(delta("r1", 1, 1, std::string(60, 'a')));  // past half the bound: backed up
  s->out().consume(10, [](const SharedFrame*) {});      // the loop started writing it
  s->deliver(delta("r1", 2, 2, "b"));
  EXPECT_EQ(env.stats.deltas_merged.get(), 0u);
  EXPECT_EQ(s->out().count(), 2u);
  EXPECT_EQ(s->state(), Session::State::Open);
  s->deliver(delta("r1", 3, 3, "c"));  // the new tail is whole: merged
  EXPECT_EQ(env.stats.deltas_merged.get(), 1u);
  EXPECT_EQ(s->out().count(), 2u);
}

TEST_F(SessionReply, GapsAndOtherRepliesAreNotMerged) {
  open();
  back_up();
  s->deliver(delta("r1", 1, 1, "a"));
  s->deliver(delta("r1", 3, 2, "c"));  // seq 2 missing (e.g. the resume seam)
  s->deliver(delta("r2", 4, 3, "x"));  // another reply
  s->deliver(delta("r1", 4, 4, "d"));  // r1's tail is not the queue's tail
  EXPECT_EQ(env.stats.deltas_merged.get(), 0u);
  EXPECT_EQ(s->out().count(), 5u);
}

TEST_F(SessionReply, LogLaneIsShedFirstAndMergingAvoidsTheDisconnect) {
  open();
  back_up(4096);
  const uint64_t before = s->out().bytes();
  for (uint64_t seq = 1; seq <= 100; ++seq) {
    s->deliver(live(std::string(40, 'l'), FLOWRELAY_LANE_LOG));
    s->deliver(delta("r1", seq, seq, "0123456789"));
  }
  EXPECT_EQ(env.stats.log_frames_shed.get(), 100u);
  EXPECT_EQ(env.stats.deltas_merged.get(), 99u);
  // 100 deltas as frames of their own would be ~7 KiB, past the bound: merged, ~1 KiB.
  EXPECT_LT(s->out().bytes() - before, 1200u);
  EXPECT_EQ(s->state(), Session::State::Open);
  EXPECT_TRUE(host.slow.empty());
  const auto frames = texts();
  ASSERT_EQ(frames.size(), 2u);
  std::string all;
  for (int i = 0; i < 100; ++i) all += "0123456789";
  EXPECT_EQ(object_of(frames[1])->getValue<std::string>("data"), all);
}

TEST_F(SessionReply, DisconnectedWhenMergingCannotKeepItUnderTheBound) {
  open();
  back_up(4096);
  for (uint64_t seq = 1; seq <= 40 && s->state() == Session::State::Open; ++seq)
    s->deliver(delta("r1", seq, seq, std::string(100, 'x')));
  EXPECT_EQ(s->state(), Session::State::Closing);
  EXPECT_EQ(host.slow.size(), 1u);
  EXPECT_GT(env.stats.deltas_merged.get(), 0u);
}

// ---------------------------------------------------------------------------- resume

HistoryResult::Entry reply_entry(uint64_t offset, flowrelay_kind kind, uint64_t seq,
                                 std::string data) {
  HistoryResult::Entry e{offset, FLOWRELAY_LANE_MESSAGE, std::move(data)};
  e.reply.kind = kind;
  e.reply.id = "r1";
  e.reply.seq = seq;
  if (kind == FLOWRELAY_KIND_REPLY) {
    e.reply.reason = "done";
    e.reply.ttft_ms = 4;
    e.reply.duration_ms = 20;
    e.reply.bytes = e.data.size();
  }
  return e;
}

TEST_F(SessionReply, ResumeMidReplyGetsTheSnapshotThenOnlyNewerDeltas) {
  open("/ws/42?since=3&epoch=E");
  EXPECT_FALSE(s->deliver(delta("r1", 3, 6, "c")));  // held during the read
  EXPECT_FALSE(s->deliver(delta("r1", 4, 7, "d")));
  HistoryResult h;
  h.epoch = "E";
  h.top = 6;
  h.trimmed_known = true;
  h.trimmed = 2;  // deltas 4..6 have no entries of their own: the snapshot covers them
  h.entries = {reply_entry(6, FLOWRELAY_KIND_SNAPSHOT, 3, "abc")};
  s->replay(h);
  const auto frames = texts();
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0],
            R"({"type":"snapshot","reply":"r1","seq":3,"offset":6,"epoch":"E","data":"abc"})");
  EXPECT_EQ(frames[1], envelope_resumed(true, 6, "E"));
  EXPECT_EQ(object_of(frames[2])->getValue<uint64_t>("seq"), 4u) << "seq 3 was in the snapshot";
}

TEST_F(SessionReply, ResumeAcrossTheCompactionSeamGetsTheReplyEntry) {
  open("/ws/42?since=5&epoch=E");
  HistoryResult h;
  h.epoch = "E";
  h.top = 9;
  h.trimmed_known = true;
  h.trimmed = 0;
  h.entries = {reply_entry(9, FLOWRELAY_KIND_REPLY, 4, "abcd")};
  s->replay(h);
  const auto frames = texts();
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0], R"({"type":"reply","reply":"r1","seq":4,"offset":9,"epoch":"E",)"
                       R"("data":"abcd","reason":"done","stats":{"tokens":4,"ttft_ms":4,)"
                       R"("duration_ms":20,"bytes":4}})");
  EXPECT_EQ(frames[1], envelope_resumed(true, 9, "E"))
      << "recovered, though offsets 6..8 have no entries";
}

TEST_F(SessionReply, ResumeBehindWhatWasTrimmedIsNotRecovered) {
  open("/ws/42?since=2&epoch=E");
  HistoryResult h;
  h.epoch = "E";
  h.top = 9;
  h.trimmed_known = true;
  h.trimmed = 4;
  h.entries = {reply_entry(9, FLOWRELAY_KIND_REPLY, 4, "abcd")};
  s->replay(h);
  EXPECT_EQ(texts(), std::vector<std::string>{envelope_resumed(false, 9, "E")});
}

}  // namespace
