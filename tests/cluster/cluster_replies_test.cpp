// Reply streams across replicas (docs/PROTOCOL.md "Reply streams", "History: compaction and
// resume"): a viewer whose replica is SIGKILLed mid-reply resumes through nginx with one snapshot
// and the live deltas after it, nothing lost or doubled; a resume whose `since` points into a
// reply that ended meanwhile gets the compacted reply once, never half of it twice.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

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

// The i-th delta's text: tokens of different lengths, so a shifted or doubled one shows.
std::string token(size_t i) { return (i % 3 ? "w" : "word-") + std::to_string(i) + " "; }

class ClusterRepliesTest : public ClusterFixture {
 protected:
  void start_replicas(size_t n, ReplicaOptions options = {}) {
    options.api_key = kKey;
    ClusterFixture::start_replicas(n, options);
  }
  // nginx in front of the two replicas (the template names three upstreams: B twice).
  void start_nginx_on_two() {
    nginx = std::make_unique<Nginx>(
        dir, std::array<std::string, 3>{replicas[0]->ws_address(), replicas[1]->ws_address(),
                                        replicas[1]->ws_address()});
  }
  // The replica serving the only WebSocket connection open (flowrelay_connections).
  std::optional<size_t> serving_replica() {
    std::optional<size_t> viewed;
    const bool one = test::wait_for(
        [&] {
          viewed.reset();
          int open = 0;
          for (size_t i = 0; i < replicas.size(); ++i) {
            if (test::metric_value(replicas[i]->http_port(), "flowrelay_connections") == 1) {
              viewed = i;
              ++open;
            }
          }
          return open == 1;
        },
        5s);
    return one ? viewed : std::nullopt;
  }
};

// Reads frames until `done(frame)` (the frame is kept); false on a stall of 5 s.
bool read_until(EnvelopeClient& c, std::vector<ReplyFrame>& out,
                const std::function<bool(const ReplyFrame&)>& done) {
  for (;;) {
    auto f = next_frame(c, 5s);
    if (!f) return false;
    out.push_back(*f);
    if (done(out.back())) return true;
  }
}

// ---------------------------------------------------------------------------------------------
// A producer streams 400 deltas through replica B's API; the viewer, on A through nginx, is cut
// off by A's SIGKILL after 100 deltas and resumes through nginx (now B) with since/epoch.

TEST_F(ClusterRepliesTest, ReplicaKilledMidReplyViewerResumesWithOneSnapshotThenLiveDeltas) {
  constexpr size_t kDeltas = 400, kKillAfter = 100, kPauseAt = 300;
  start_replicas(2);
  start_nginx_on_two();
  const std::string conv = "reply-kill", reply = "r1";

  auto viewer = std::make_unique<EnvelopeClient>(nginx->port(), conv);
  const auto viewed = serving_replica();
  ASSERT_TRUE(viewed) << "cannot tell which replica serves the viewer";
  Replica& victim = *replicas[*viewed];
  Replica& producer_replica = *replicas[1 - *viewed];

  std::string produced;
  for (size_t i = 1; i <= kDeltas; ++i) produced += token(i);
  std::mutex mu;
  std::vector<std::string> problems;
  std::atomic<size_t> published{0};
  std::atomic<bool> go_on{false}, stop{false};
  std::optional<StepAnswer> end_answer;
  std::thread producer([&] {
    HttpSession api(producer_replica.http_port());
    auto fail = [&](const std::string& what, const StepAnswer& a) {
      std::lock_guard<std::mutex> lock(mu);
      problems.push_back(what + ": " + a.describe());
    };
    if (auto a = post_step(api, kKey, open_body(conv, reply)); a.status != 200) fail("open", a);
    for (size_t i = 1; i <= kDeltas && !stop; ++i) {
      if (i == kPauseAt + 1) test::wait_for([&] { return go_on.load() || stop.load(); }, 10s);
      const StepAnswer a = post_step(api, kKey, delta_body(conv, reply, i, token(i)));
      if (a.status != 200 || a.duplicate) return fail("delta " + std::to_string(i), a);
      published = i;
      std::this_thread::sleep_for(2ms);
    }
    const StepAnswer a = post_step(api, kKey, end_body(conv, reply));
    std::lock_guard<std::mutex> lock(mu);
    end_answer = a;
  });
  struct Joiner {
    std::atomic<bool>& stop;
    std::thread& t;
    ~Joiner() {
      stop = true;
      if (t.joinable()) t.join();
    }
  } joiner{stop, producer};

  // First connection: an open, then deltas 1.. until the kill.
  ReplyAssembler first;
  std::vector<ReplyFrame> before;
  ASSERT_TRUE(read_until(*viewer, before,
                         [&](const ReplyFrame& f) {
                           first.apply(f);
                           return f.type == "delta" && f.seq >= kKillAfter;
                         }))
      << "the viewer stalled after " << before.size() << " frames";
  victim.kill();
  while (auto f = next_frame(*viewer, 5s)) {
    before.push_back(*f);
    first.apply(*f);
  }
  ASSERT_TRUE(viewer->closed()) << "the viewer's connection outlived its replica";
  viewer.reset();
  EXPECT_EQ(before.front().type, "open") << before.front().describe();
  EXPECT_TRUE(first.problems().empty()) << first.problems().front();
  const uint64_t seen = first.last_seq(reply);
  ASSERT_GE(seen, kKillAfter);
  ASSERT_EQ(first.text(reply), produced.substr(0, first.text(reply).size()));
  const std::optional<uint64_t> since = before.back().offset;
  const std::optional<std::string> epoch = before.back().epoch;
  ASSERT_TRUE(since && epoch) << before.back().describe();
  // The stream goes on meanwhile: the resume has a real gap to fill.
  ASSERT_TRUE(test::wait_for([&] { return published >= seen + 50; }, 10s))
      << "the producer stopped at " << published << ": " << (problems.empty() ? "" : problems[0]);

  std::unique_ptr<EnvelopeClient> again;
  ASSERT_TRUE(test::wait_for(
      [&] {
        try {
          again = std::make_unique<EnvelopeClient>(nginx->port(),
                                                   test::resume_path(conv, *since, epoch));
          return true;
        } catch (const std::exception&) {
          return false;
        }
      },
      5s, 50ms))
      << "could not reconnect through nginx";
  std::vector<ReplyFrame> after;
  ASSERT_TRUE(read_until(*again, after, [](const ReplyFrame& f) { return f.type == "resumed"; }))
      << "no resumed frame after " << after.size() << " frames";
  go_on = true;  // the producer finishes the reply while this client is live
  ASSERT_TRUE(read_until(*again, after, [](const ReplyFrame& f) { return f.type == "end"; }))
      << "no end after " << after.size() << " frames on the second connection";
  producer.join();
  ASSERT_TRUE(problems.empty()) << problems.front();
  ASSERT_TRUE(end_answer) << "the producer did not end the reply";
  EXPECT_EQ(end_answer->status, 200) << end_answer->describe();

  // The history part: exactly one snapshot (the text from seq 1 up to n), then resumed.
  ASSERT_EQ(after.size() >= 2 ? after[1].type : "", "resumed")
      << "expected [snapshot, resumed, ...], got " << after[0].describe();
  const ReplyFrame& snap = after[0];
  ASSERT_EQ(snap.type, "snapshot") << snap.describe();
  EXPECT_EQ(snap.reply, reply);
  ASSERT_TRUE(snap.seq && snap.data) << snap.describe();
  EXPECT_GT(*snap.seq, seen) << "the snapshot holds nothing the viewer missed";
  EXPECT_LE(*snap.seq, kPauseAt) << snap.describe();
  EXPECT_EQ(*snap.data, produced.substr(0, snap.data->size())) << "the snapshot is not a prefix";
  EXPECT_EQ(snap.epoch, epoch);
  EXPECT_EQ(after[1].recovered, std::optional<bool>(true)) << after[1].describe();
  EXPECT_EQ(after[1].offset, snap.offset) << "resumed names the newest offset sent";

  ReplyAssembler second;
  for (const ReplyFrame& f : after) second.apply(f);
  EXPECT_TRUE(second.problems().empty()) << second.problems().front();
  EXPECT_EQ(second.text(reply), produced) << "the assembled reply differs from the produced one";
  EXPECT_EQ(second.last_seq(reply), kDeltas);
  uint64_t last_offset = *snap.offset;
  for (size_t i = 2; i < after.size(); ++i) {
    EXPECT_TRUE(after[i].type == "delta" || after[i].type == "end") << after[i].describe();
    ASSERT_TRUE(after[i].offset) << after[i].describe();
    EXPECT_GT(*after[i].offset, last_offset) << after[i].describe();
    last_offset = *after[i].offset;
  }
  const ReplyFrame& end = after.back();
  EXPECT_EQ(end.reason, "done") << end.describe();
  ASSERT_TRUE(end.stats) << "end without stats: " << end.describe();
  EXPECT_EQ(end.stats->tokens, static_cast<int64_t>(kDeltas)) << end.describe();
  EXPECT_EQ(end.stats->bytes, static_cast<int64_t>(produced.size())) << end.describe();
  EXPECT_TRUE(end.stats->ttft_ms && *end.stats->ttft_ms >= 0) << end.describe();
  EXPECT_GE(end.stats->duration_ms, 400 * 2) << "400 deltas 2 ms apart: " << end.describe();
  EXPECT_EQ(end.offset, end_answer->offset) << end.describe();

  // A late joiner (since=0) through nginx: the compacted reply, the whole text in one frame.
  EnvelopeClient late(nginx->port(), test::resume_path(conv, 0, std::nullopt));
  std::vector<ReplyFrame> late_frames;
  ASSERT_TRUE(
      read_until(late, late_frames, [](const ReplyFrame& f) { return f.type == "resumed"; }));
  ASSERT_EQ(late_frames.size(), 2u)
      << "expected [reply, resumed], got " << late_frames[0].describe() << " ... ("
      << late_frames.size() << " frames)";
  const ReplyFrame& whole = late_frames[0];
  EXPECT_EQ(whole.type, "reply") << whole.describe();
  EXPECT_EQ(whole.data, std::optional<std::string>(produced)) << whole.describe();
  EXPECT_EQ(whole.seq, std::optional<uint64_t>(kDeltas)) << whole.describe();
  EXPECT_EQ(whole.offset, end.offset) << "the reply entry sits at the end's offset";
  EXPECT_EQ(whole.reason, "done");
  ASSERT_TRUE(whole.stats) << whole.describe();
  EXPECT_EQ(whole.stats->tokens, end.stats->tokens);
  EXPECT_EQ(late_frames[1].recovered, std::optional<bool>(true)) << late_frames[1].describe();
  std::cout << "[ MEASURE  ] viewer killed after seq " << seen << "; snapshot seq " << *snap.seq
            << " (" << snap.data->size() << " bytes), then " << after.size() - 3
            << " live deltas\n";
}

// ---------------------------------------------------------------------------------------------
// The viewer leaves mid-reply (on A); the reply ends (compacted) and a message follows; the
// viewer resumes on B with its last offset: the reply entry (whole text, once), then the message.

TEST_F(ClusterRepliesTest, ResumeIntoAReplyThatEndedMeanwhileGetsTheCompactedReplyOnce) {
  constexpr size_t kDeltas = 60, kLeaveAfter = 20;
  start_replicas(2);
  Replica& A = *replicas[0];
  Replica& B = *replicas[1];
  const std::string conv = "reply-seam", reply = "r-seam";
  HttpSession api(B.http_port());
  std::string produced;
  for (size_t i = 1; i <= kDeltas; ++i) produced += token(i);

  EnvelopeClient viewer(A.ws_port(), conv);
  ReplyAssembler first;
  std::optional<uint64_t> since;
  std::optional<std::string> epoch;
  for (size_t i = 1; i <= kLeaveAfter; ++i) {
    const StepAnswer a = post_step(api, kKey, delta_body(conv, reply, i, token(i)));
    ASSERT_EQ(a.status, 200) << a.describe();
    auto f = next_frame(viewer);
    ASSERT_TRUE(f) << "the viewer got nothing for delta " << i;
    ASSERT_EQ(f->type, "delta") << f->describe();
    first.apply(*f);
    since = f->offset;
    epoch = f->epoch;
  }
  viewer.close();
  ASSERT_EQ(first.text(reply), produced.substr(0, first.text(reply).size()));
  for (size_t i = kLeaveAfter + 1; i <= kDeltas; ++i) {
    const StepAnswer a = post_step(api, kKey, delta_body(conv, reply, i, token(i)));
    ASSERT_EQ(a.status, 200) << a.describe();
  }
  const StepAnswer end = post_step(api, kKey, end_body(conv, reply));
  ASSERT_EQ(end.status, 200) << end.describe();
  const test::Published after_reply = test::publish_via_api(api, kKey, conv, "after the reply");
  ASSERT_EQ(after_reply.status, 200) << after_reply.body;

  EnvelopeClient back(B.ws_port(), test::resume_path(conv, *since, epoch));
  std::vector<ReplyFrame> frames;
  ASSERT_TRUE(read_until(back, frames, [](const ReplyFrame& f) { return f.type == "resumed"; }));
  ASSERT_EQ(frames.size(), 3u) << "expected [reply, message, resumed]; first: "
                               << frames[0].describe();
  const ReplyFrame& whole = frames[0];
  EXPECT_EQ(whole.type, "reply") << "half a reply again? " << whole.describe();
  EXPECT_EQ(whole.reply, reply);
  EXPECT_EQ(whole.data, std::optional<std::string>(produced)) << whole.describe();
  EXPECT_EQ(whole.seq, std::optional<uint64_t>(kDeltas));
  EXPECT_EQ(whole.offset, end.offset) << whole.describe();
  EXPECT_GT(whole.offset.value_or(0), *since);
  EXPECT_EQ(whole.reason, "done");
  ASSERT_TRUE(whole.stats) << whole.describe();
  EXPECT_EQ(whole.stats->tokens, static_cast<int64_t>(kDeltas));
  EXPECT_EQ(whole.stats->bytes, static_cast<int64_t>(produced.size()));
  EXPECT_EQ(frames[1].type, "message") << frames[1].describe();
  EXPECT_EQ(frames[1].data, std::optional<std::string>("after the reply"));
  EXPECT_EQ(frames[1].offset, after_reply.offset);
  EXPECT_EQ(frames[2].recovered, std::optional<bool>(true)) << frames[2].describe();
  EXPECT_EQ(frames[2].offset, after_reply.offset) << frames[2].describe();
  // The client's view: the reply's text exactly once.
  first.apply(whole);
  EXPECT_TRUE(first.problems().empty()) << first.problems().front();
  EXPECT_EQ(first.text(reply), produced);
  // Nothing else is on its way (no late delta of the ended reply).
  EXPECT_FALSE(next_frame(back, 300ms).has_value());
}

}  // namespace
}  // namespace flowrelay::ctest
