// Reply streams through POST /api/publish (docs/PROTOCOL.md, "Reply streams"): open, delta and
// end answered with their offsets and delivered to envelope viewers; a resent seq answered
// 200 duplicate and delivered once; a gap refused 409 with expected_seq; a delta after the end
// refused 409 with ended; batches mixing messages and steps in order; 400 for bad steps; 501
// from a broker without reply streams. Real flowrelayd, broker-local, transport-ws.
#include <gtest/gtest.h>

#include <memory>

#include "reply_daemon.h"

namespace flowrelay::itest {
namespace {

const std::string kKey = "reply-api-key";

class ReplyApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    DaemonOptions o;
    o.api_key = kKey;
    daemon = std::make_unique<Daemon>(o);
  }
  static void TearDownTestSuite() { daemon.reset(); }
  void TearDown() override {
    ASSERT_TRUE(daemon->running()) << "daemon died; stderr:\n" << daemon->stderr_text();
  }
  static HttpResult post(const std::string& body) {
    return http_post(daemon->http_port(), "/api/publish", body, api_headers(kKey));
  }
  static Json post_ok(const std::string& body) {
    const HttpResult r = post(body);
    EXPECT_EQ(r.status, 200) << body << " -> " << r.body;
    return json_of(r.body);
  }
  static std::unique_ptr<Daemon> daemon;
};
std::unique_ptr<Daemon> ReplyApi::daemon;

TEST_F(ReplyApi, OpenDeltasAndEndAreAnsweredWithOffsetsAndReachViewers) {
  EnvelopeClient viewer(daemon->ws_port(), "rapi-1");
  const Json open = post_ok(step_body("rapi-1", "r1", R"("open":true)"));
  const Json d1 = post_ok(step_body("rapi-1", "r1", delta_step(1, "The ")));
  const Json d2 = post_ok(step_body("rapi-1", "r1", delta_step(2, "answer")));
  const Json end = post_ok(step_body("rapi-1", "r1", R"("end":true)"));
  ASSERT_TRUE(open && d1 && d2 && end);
  EXPECT_EQ(int_of(open, "offset"), 1);
  EXPECT_EQ(int_of(d1, "offset"), 2);
  EXPECT_EQ(int_of(d2, "offset"), 3);
  EXPECT_EQ(int_of(end, "offset"), 4);
  EXPECT_FALSE(str_of(d1, "epoch").empty());
  EXPECT_FALSE(d1->has("duplicate"));

  const Json f_open = next_of(viewer, {"open"});
  ASSERT_TRUE(f_open) << "no open frame";
  EXPECT_EQ(str_of(f_open, "reply"), "r1");
  EXPECT_EQ(int_of(f_open, "offset"), 1);
  const Json f1 = next_of(viewer, {"delta"});
  const Json f2 = next_of(viewer, {"delta"});
  ASSERT_TRUE(f1 && f2) << "no delta frames";
  EXPECT_EQ(int_of(f1, "seq"), 1);
  EXPECT_EQ(str_of(f1, "data"), "The ");
  EXPECT_EQ(int_of(f1, "offset"), 2);
  EXPECT_EQ(str_of(f1, "epoch"), str_of(d1, "epoch"));
  EXPECT_EQ(int_of(f2, "seq"), 2);
  EXPECT_EQ(str_of(f2, "data"), "answer");
  const Json f_end = next_of(viewer, {"end"});
  ASSERT_TRUE(f_end) << "no end frame";
  EXPECT_EQ(str_of(f_end, "reason"), "done");
  EXPECT_EQ(int_of(f_end, "offset"), 4);
  ASSERT_TRUE(f_end->getObject("stats"));
  EXPECT_EQ(int_of(f_end->getObject("stats"), "tokens"), 2);
  EXPECT_EQ(int_of(f_end->getObject("stats"), "bytes"), 10);
}

TEST_F(ReplyApi, AResentSeqIsADuplicateDeliveredOnce) {
  EnvelopeClient viewer(daemon->ws_port(), "rapi-dup");
  const Json first = post_ok(step_body("rapi-dup", "r", delta_step(1, "a")));
  const Json again = post_ok(step_body("rapi-dup", "r", delta_step(1, "a")));
  ASSERT_TRUE(first && again);
  EXPECT_FALSE(first->has("duplicate"));
  ASSERT_TRUE(again->has("duplicate")) << "a resent seq was not told duplicate";
  EXPECT_TRUE(again->getValue<bool>("duplicate"));
  EXPECT_TRUE(int_of(again, "offset") == int_of(first, "offset") || int_of(again, "offset") == 0)
      << "a duplicate's offset is the first copy's (or 0)";
  post_ok(step_body("rapi-dup", "r", delta_step(2, "b")));
  post_ok(step_body("rapi-dup", "r", R"("end":true)"));
  std::vector<int64_t> seqs;
  for (;;) {
    const Json f = next_of(viewer, {"delta", "end"});
    ASSERT_TRUE(f) << "the reply did not end for the viewer";
    if (str_of(f, "type") == "end") break;
    seqs.push_back(int_of(f, "seq"));
  }
  EXPECT_EQ(seqs, (std::vector<int64_t>{1, 2})) << "a resent delta was delivered twice";
}

TEST_F(ReplyApi, AGapIsRefusedWithTheExpectedSeq) {
  post_ok(step_body("rapi-gap", "r", delta_step(1, "a")));
  const HttpResult r = post(step_body("rapi-gap", "r", delta_step(3, "c")));
  EXPECT_EQ(r.status, 409) << r.body;
  const Json o = json_of(r.body);
  EXPECT_EQ(int_of(o, "expected_seq"), 2) << r.body;
  EXPECT_FALSE(str_of(o, "error").empty());
  const HttpResult fresh = post(step_body("rapi-gap", "new", delta_step(2, "x")));
  EXPECT_EQ(fresh.status, 409) << "a new reply must start at seq 1: " << fresh.body;
  EXPECT_EQ(int_of(json_of(fresh.body), "expected_seq"), 1) << fresh.body;
  post_ok(step_body("rapi-gap", "r", delta_step(2, "b")));  // the gap filled: accepted
}

TEST_F(ReplyApi, ADeltaAfterTheEndIsRefusedWithHowItEnded) {
  post_ok(step_body("rapi-end", "r", delta_step(1, "a")));
  post_ok(step_body("rapi-end", "r", R"("end":true)"));
  const HttpResult late = post(step_body("rapi-end", "r", delta_step(2, "b")));
  EXPECT_EQ(late.status, 409) << late.body;
  EXPECT_EQ(str_of(json_of(late.body), "ended"), "done") << late.body;
  const Json again = post_ok(step_body("rapi-end", "r", R"("end":true)"));
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->has("duplicate")) << "the same end twice is a duplicate";
  const HttpResult other = post(step_body("rapi-end", "r", R"("end":true,"error":"boom")"));
  EXPECT_EQ(other.status, 409) << other.body;
  EXPECT_EQ(str_of(json_of(other.body), "ended"), "done") << other.body;
}

TEST_F(ReplyApi, BatchesMixMessagesAndStepsInOrder) {
  EnvelopeClient viewer(daemon->ws_port(), "rapi-batch");
  const std::string body = R"({"messages":[{"conversation":"rapi-batch","data":"before"},)" +
                           step_body("rapi-batch", "r", delta_step(1, "x")) + "," +
                           step_body("rapi-batch", "r", delta_step(2, "y")) + "," +
                           step_body("rapi-batch", "r", delta_step(3, "z")) + "," +
                           step_body("rapi-batch", "r", R"("end":true)") +
                           R"(,{"conversation":"rapi-batch","data":"after"}]})";
  const HttpResult r = post(body);
  ASSERT_EQ(r.status, 200) << r.body;
  const Json o = json_of(r.body);
  ASSERT_TRUE(o && o->getArray("results"));
  const auto results = o->getArray("results");
  ASSERT_EQ(results->size(), 6u) << r.body;
  for (unsigned i = 0; i < results->size(); ++i)
    EXPECT_EQ(int_of(results->getObject(i), "offset"), int64_t{i} + 1) << r.body;
  std::vector<std::string> seen;
  for (int i = 0; i < 6; ++i) {
    const Json f = next_of(viewer, {"message", "delta", "end"});
    ASSERT_TRUE(f) << "missing frame " << i;
    seen.push_back(str_of(f, "type") + ":" + str_of(f, "data"));
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"message:before", "delta:x", "delta:y", "delta:z",
                                            "end:", "message:after"}));
  // A refused step stops the batch's answer there: its status, the results before it.
  const HttpResult gap =
      post(R"({"messages":[)" + step_body("rapi-batch", "g", delta_step(1, "a")) + "," +
           step_body("rapi-batch", "g", delta_step(3, "c")) + "]}");
  EXPECT_EQ(gap.status, 409) << gap.body;
  const Json g = json_of(gap.body);
  EXPECT_EQ(int_of(g, "expected_seq"), 2) << gap.body;
  ASSERT_TRUE(g && g->getArray("results")) << gap.body;
  EXPECT_EQ(g->getArray("results")->size(), 1u) << gap.body;
}

TEST_F(ReplyApi, BadStepsAre400AndPublishNothing) {
  const std::string c = "rapi-bad";
  const std::vector<std::string> bad = {
      step_body(c, "r", R"("seq":1)"),                           // no step
      step_body(c, "r", R"("open":true,"end":true)"),            // two steps
      step_body(c, "r", R"("delta":"a")"),                       // seq missing
      step_body(c, "r", R"("seq":0,"delta":"a")"),               // seq not positive
      step_body(c, "r", R"("seq":-1,"delta":"a")"),              //
      step_body(c, "r", R"("seq":1.5,"delta":"a")"),             // not an integer
      step_body(c, "r", R"("seq":"1","delta":"a")"),             // a string
      step_body(c, "r", R"("seq":true,"delta":"a")"),            // a boolean
      step_body(c, "r", R"("seq":1,"delta":5)"),                 // delta not a string
      step_body(c, "r", R"("seq":1,"delta":"a","lane":"log")"),  // lane with a reply
      step_body(c, "r", R"("open":false)"),                      //
      step_body(c, "r", R"("seq":1,"delta":"a","error":"x")"),   // error without end
      step_body(c, "has space", R"("open":true)"),               // bad reply ids
      step_body(c, "", R"("open":true)"),
      step_body(c, std::string(65, 'r'), R"("open":true)"),
      R"({"conversation":"rapi-bad","reply":7,"open":true})",
      R"({"messages":[{"conversation":"rapi-bad","data":"ok"},)" +
          step_body(c, "r", R"("seq":0,"delta":"a")") + "]}",  // one bad item: none published
  };
  for (const auto& body : bad) {
    const HttpResult r = post(body);
    EXPECT_EQ(r.status, 400) << body << " -> " << r.body;
    EXPECT_FALSE(error_of(r.body).empty()) << body << " -> " << r.body;
  }
  const Json probe = post_ok(publish_body(c, "probe"));
  EXPECT_EQ(int_of(probe, "offset"), 1) << "a refused step published something";
}

TEST(ReplyApiWithoutReplies, ABrokerWithoutReplyStreamsAnswers501) {
  DaemonOptions o;
  o.api_key = kKey;
  EditedDaemon daemon(o, "channels: { prefix: \"chat:\", echo: true }", FLOWRELAY_MINIMAL_BROKER);
  auto post = [&](const std::string& body) {
    return http_post(daemon.http_port(), "/api/publish", body, api_headers(kKey));
  };
  for (const std::string step : {R"("open":true)", R"("seq":1,"delta":"a")", R"("end":true)"}) {
    const HttpResult r = post(step_body("nr", "r", step));
    EXPECT_EQ(r.status, 501) << r.body;
    EXPECT_EQ(error_of(r.body), "the broker keeps no reply streams") << r.body;
  }
  EXPECT_EQ(post(publish_body("nr", "plain")).status, 200) << "plain messages still go";
  EXPECT_TRUE(daemon.running()) << daemon.stderr_text();
}

}  // namespace
}  // namespace flowrelay::itest
