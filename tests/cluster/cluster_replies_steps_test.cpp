// Reply steps through two replicas (docs/PROTOCOL.md "Producing a reply", "Stop"): the broker
// decides per reply for the whole cluster, so a resent seq is a duplicate and a skipped one a
// 409 whichever replica each step goes through; a viewer's cancel on one replica ends the reply
// on both, the producer's next delta through the other gets 409 and the backend a cancel event.
#include <gtest/gtest.h>

#include <thread>

#include "../integration/backend_proxy_fake.h"
#include "cluster.h"
#include "cluster_fixture.h"
#include "reply_steps.h"
#include "support/envelope_client.h"
#include "support/metrics.h"

namespace flowrelay::ctest {
namespace {

using test::EnvelopeClient;
using test::HttpSession;

const std::string kKey = "cluster-key";

ReplicaOptions with_key(ReplicaOptions o = {}) {
  o.api_key = kKey;
  return o;
}

// The next frame that is not of `skip` type; nullopt on a stall.
std::optional<ReplyFrame> next_not(EnvelopeClient& c, const std::string& skip = "open") {
  for (;;) {
    auto f = next_frame(c, 5s);
    if (!f || f->type != skip) return f;
  }
}

// flowrelay_backend_requests_total{endpoint="cancel",...} summed over its outcomes.
double cancel_requests_counted(uint16_t http_port) {
  const test::HttpResult page = test::http_get(http_port, "/metrics");
  const std::string key = "flowrelay_backend_requests_total{endpoint=\"cancel\"";
  double sum = 0;
  for (size_t at = page.body.find(key); at != std::string::npos; at = page.body.find(key, at + 1)) {
    const size_t value = page.body.find("} ", at);
    if (value != std::string::npos) sum += std::stod(page.body.substr(value + 2));
  }
  return sum;
}

using ClusterReplyStepsTest = ClusterFixture;

// ---------------------------------------------------------------------------------------------
// Deltas alternately through A and B, a resend of each through the other replica, a gap, a
// batch: viewers on both replicas see every seq once, in order, at increasing offsets.

TEST_F(ClusterReplyStepsTest, DuplicateAndGapSeqsAreJudgedOnceForTheClusterThroughTwoReplicas) {
  start_replicas(2, with_key());
  HttpSession api_a(replicas[0]->http_port()), api_b(replicas[1]->http_port());
  HttpSession* api[2] = {&api_a, &api_b};
  const std::string conv = "reply-seqs", reply = "r-dup";
  EnvelopeClient on_a(replicas[0]->ws_port(), conv), on_b(replicas[1]->ws_port(), conv);

  // A new reply must start at seq 1.
  StepAnswer a = post_step(api_a, kKey, delta_body(conv, reply, 2, "x"));
  EXPECT_EQ(a.status, 409) << a.describe();
  EXPECT_EQ(a.expected_seq, std::optional<uint64_t>(1)) << a.describe();
  a = post_step(api_a, kKey, delta_body(conv, reply, 0, "x"));
  EXPECT_EQ(a.status, 400) << "seq 0 is not a positive integer: " << a.describe();

  std::string produced;
  std::vector<uint64_t> offsets;
  for (uint64_t seq = 1; seq <= 6; ++seq) {
    const std::string data = "t" + std::to_string(seq) + " ";
    const StepAnswer first = post_step(*api[seq % 2], kKey, delta_body(conv, reply, seq, data));
    ASSERT_EQ(first.status, 200) << "seq " << seq << ": " << first.describe();
    EXPECT_FALSE(first.duplicate) << first.describe();
    ASSERT_TRUE(first.offset) << first.describe();
    if (!offsets.empty()) {
      EXPECT_GT(*first.offset, offsets.back());
    }
    offsets.push_back(*first.offset);
    produced += data;
    // The same delta resent through the other replica: stored and delivered once.
    const StepAnswer again = post_step(*api[1 - seq % 2], kKey, delta_body(conv, reply, seq, data));
    EXPECT_EQ(again.status, 200) << again.describe();
    EXPECT_TRUE(again.duplicate) << "resent seq " << seq << ": " << again.describe();
    if (again.offset && *again.offset != 0) {
      EXPECT_EQ(again.offset, first.offset) << "a duplicate names the first copy's offset";
    }
  }
  // An older seq resent, and a gap: 409 with the seq the broker expects.
  a = post_step(api_b, kKey, delta_body(conv, reply, 3, "t3 "));
  EXPECT_EQ(a.status, 200) << a.describe();
  EXPECT_TRUE(a.duplicate) << a.describe();
  a = post_step(api_b, kKey, delta_body(conv, reply, 9, "t9 "));
  EXPECT_EQ(a.status, 409) << a.describe();
  EXPECT_EQ(a.expected_seq, std::optional<uint64_t>(7)) << a.describe();
  // A batch through A: seq 6 again (duplicate), 7 and 8.
  const test::HttpResult batch =
      api_a.post("/api/publish",
                 batch_of({delta_body(conv, reply, 6, "t6 "), delta_body(conv, reply, 7, "t7 "),
                           delta_body(conv, reply, 8, "t8 ")}),
                 test::api_headers(kKey));
  ASSERT_EQ(batch.status, 200) << batch.body;
  const auto results = batch_answers(batch.body);
  ASSERT_TRUE(results && results->size() == 3) << batch.body;
  EXPECT_TRUE((*results)[0].duplicate) << batch.body;
  EXPECT_FALSE((*results)[1].duplicate || (*results)[2].duplicate) << batch.body;
  produced += "t7 t8 ";
  const StepAnswer end = post_step(api_b, kKey, end_body(conv, reply));
  ASSERT_EQ(end.status, 200) << end.describe();
  a = post_step(api_a, kKey, end_body(conv, reply));
  EXPECT_EQ(a.status, 200) << "the same end twice: " << a.describe();
  EXPECT_TRUE(a.duplicate) << a.describe();
  a = post_step(api_a, kKey, delta_body(conv, reply, 9, "t9 "));
  EXPECT_EQ(a.status, 409) << "a delta after the end: " << a.describe();
  EXPECT_EQ(a.ended, std::optional<std::string>("done")) << a.describe();

  for (EnvelopeClient* c : {&on_a, &on_b}) {
    SCOPED_TRACE(c == &on_a ? "viewer on A" : "viewer on B");
    ReplyAssembler seen;
    std::vector<ReplyFrame> frames;
    while (!seen.ended(reply)) {
      auto f = next_frame(*c, 5s);
      ASSERT_TRUE(f) << "stalled after " << frames.size() << " frames";
      seen.apply(*f);
      frames.push_back(*f);
    }
    EXPECT_TRUE(seen.problems().empty()) << seen.problems().front();
    ASSERT_EQ(frames.size(), 9u) << "8 deltas and an end, each once";
    for (size_t i = 0; i < 6; ++i) EXPECT_EQ(frames[i].offset, offsets[i]) << frames[i].describe();
    EXPECT_EQ(seen.text(reply), produced);
    EXPECT_EQ(frames.back().offset, end.offset);
    EXPECT_EQ(frames.back().reason, "done");
    ASSERT_TRUE(frames.back().stats) << frames.back().describe();
    EXPECT_EQ(frames.back().stats->tokens, 8);
    EXPECT_FALSE(next_frame(*c, 200ms).has_value()) << "something after the end";
  }
}

// ---------------------------------------------------------------------------------------------
// A viewer on A cancels; viewers on A and B get end cancelled; the producer on B gets 409; the
// backend (publish_url of both replicas) gets one signed cancel event, from A.

TEST_F(ClusterReplyStepsTest, CancelOnOneReplicaEndsTheReplyEverywhereAndTellsProducerAndBackend) {
  itest::FakeBackend backend;
  ReplicaOptions o = with_key();
  o.sections = {itest::backend_section(dir, "  publish_url: " + backend.url("/publish"))};
  start_replicas(2, o);
  Replica& A = *replicas[0];
  Replica& B = *replicas[1];
  const std::string conv = "reply-cancel", reply = "r-stop";
  HttpSession producer(B.http_port());
  EnvelopeClient on_a(A.ws_port(), conv), on_b(B.ws_port(), conv);

  ASSERT_EQ(post_step(producer, kKey, open_body(conv, reply)).status, 200);
  for (uint64_t seq = 1; seq <= 5; ++seq) {
    const StepAnswer d = post_step(producer, kKey, delta_body(conv, reply, seq, "tok "));
    ASSERT_EQ(d.status, 200) << d.describe();
  }
  for (EnvelopeClient* c : {&on_a, &on_b}) {
    for (uint64_t seq = 1; seq <= 5; ++seq) {
      auto f = next_not(*c);
      ASSERT_TRUE(f) << "no delta " << seq;
      ASSERT_EQ(f->type, "delta") << f->describe();
      EXPECT_EQ(f->seq, std::optional<uint64_t>(seq)) << f->describe();
    }
  }

  on_a.send_text(R"({"type":"cancel","reply":"r-stop","id":"c1"})");
  std::optional<ReplyFrame> ack, end_a;
  for (int i = 0; i < 2; ++i) {
    auto f = next_frame(on_a, 5s);
    ASSERT_TRUE(f) << "the cancelling viewer got " << i << " of its ack and end";
    (f->type == "ack" ? ack : end_a) = f;
  }
  ASSERT_TRUE(ack) << "no ack for the cancel";
  EXPECT_EQ(ack->id, std::optional<std::string>("c1")) << ack->describe();
  ASSERT_TRUE(end_a) << "no end on A";
  EXPECT_EQ(end_a->type, "end") << end_a->describe();
  EXPECT_EQ(end_a->reason, "cancelled") << end_a->describe();
  EXPECT_EQ(end_a->offset, ack->offset) << "the ack names the end's offset";
  ASSERT_TRUE(end_a->stats) << end_a->describe();
  EXPECT_EQ(end_a->stats->tokens, 5);
  const auto end_b = next_frame(on_b, 5s);
  ASSERT_TRUE(end_b) << "the viewer on B got no end";
  EXPECT_EQ(end_b->type, "end") << end_b->describe();
  EXPECT_EQ(end_b->reason, "cancelled") << end_b->describe();
  EXPECT_EQ(end_b->offset, end_a->offset);

  // The producer's next delta, through the other replica: 409, ended cancelled.
  const StepAnswer next = post_step(producer, kKey, delta_body(conv, reply, 6, "tok "));
  EXPECT_EQ(next.status, 409) << next.describe();
  EXPECT_EQ(next.ended, std::optional<std::string>("cancelled")) << next.describe();
  const StepAnswer done = post_step(producer, kKey, end_body(conv, reply));
  EXPECT_EQ(done.status, 409) << "end done of a cancelled reply: " << done.describe();
  EXPECT_EQ(done.ended, std::optional<std::string>("cancelled")) << done.describe();

  // The backend: one signed cancel event (only A sealed the reply).
  ASSERT_TRUE(backend.wait_count("/publish", 1, 5s)) << "no cancel event reached the backend";
  std::this_thread::sleep_for(300ms);
  const auto requests = backend.requests("/publish");
  ASSERT_EQ(requests.size(), 1u) << "one cancel, one event; second: " << requests.back().body;
  const itest::BackendRequest& ev = requests[0];
  EXPECT_TRUE(ev.signature_ok) << ev.body;
  ASSERT_TRUE(ev.json) << ev.body;
  EXPECT_EQ(ev.json->optValue<std::string>("type", ""), "cancel") << ev.body;
  EXPECT_EQ(ev.json->optValue<std::string>("conversation", ""), conv) << ev.body;
  EXPECT_EQ(ev.json->optValue<std::string>("reply", ""), reply) << ev.body;
  EXPECT_FALSE(ev.json->optValue<std::string>("client", "").empty()) << ev.body;
  EXPECT_NE(ev.json->optValue<std::string>("remote_addr", "").find("127.0.0.1:"), std::string::npos)
      << ev.body;
  EXPECT_EQ(cancel_requests_counted(A.http_port()), 1.0) << "on A, the replica that sealed it";
  EXPECT_EQ(cancel_requests_counted(B.http_port()), 0.0) << "on B";
  EXPECT_FALSE(next_frame(on_a, 200ms).has_value()) << "a frame after the end on A";
  EXPECT_FALSE(next_frame(on_b, 200ms).has_value()) << "a frame after the end on B";
}

}  // namespace
}  // namespace flowrelay::ctest
