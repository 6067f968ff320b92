// Resume on broker-local (docs/PROTOCOL.md "Resume", "History"): a client that reconnects with
// ?since=<last offset>&epoch=<epoch> gets exactly what it missed, a resumed frame, then live
// messages with no gap and no duplicate at the seam; where history no longer covers the gap
// (count bound, age bound, other epoch, since beyond the newest offset) it gets no history and
// recovered:false.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "support/envelope_client.h"
#include "support/envelope_expect.h"
#include "support/itest.h"

namespace flowrelay::itest {
namespace {

const std::string kKey = "test-key";

DaemonOptions api_options(const std::string& broker_extra = "") {
  DaemonOptions o;
  o.api_key = kKey;
  o.broker_extra = broker_extra;
  return o;
}

// Publishes `n` messages "<prefix><i>" through the API; returns their answers (all must be 200).
std::vector<Published> publish_n(HttpSession& api, const std::string& conversation,
                                 const std::string& prefix, size_t n) {
  std::vector<Published> out;
  for (size_t i = 0; i < n; ++i) {
    Published p = publish_via_api(api, kKey, conversation, prefix + std::to_string(i));
    EXPECT_EQ(p.status, 200) << "publish " << i << ": " << p.body;
    EXPECT_TRUE(p.offset.has_value()) << "publish " << i << ": " << p.body;
    out.push_back(std::move(p));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

class ResumeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { daemon = std::make_unique<Daemon>(api_options()); }
  static void TearDownTestSuite() { daemon.reset(); }
  void TearDown() override {
    ASSERT_TRUE(daemon->running()) << "daemon died; stderr:\n" << daemon->stderr_text();
  }
  static std::unique_ptr<Daemon> daemon;
};
std::unique_ptr<Daemon> ResumeTest::daemon;

TEST_F(ResumeTest, ReconnectWithSinceGetsExactlyTheMissedHundredThenResumedThenLive) {
  const std::string conv = "resume-100";
  HttpSession api(daemon->http_port());
  std::optional<std::string> epoch;
  uint64_t last = 0;
  {
    EnvelopeClient first(daemon->ws_port(), conv);
    const auto before = publish_n(api, conv, "before-", 5);
    ASSERT_FALSE(HasFailure());
    epoch = before.front().epoch;
    ASSERT_TRUE(epoch && !epoch->empty()) << before.front().body;
    for (size_t i = 0; i < before.size(); ++i) {
      ASSERT_EQ(before[i].offset, std::optional<uint64_t>(i + 1)) << before[i].body;
      expect_message(first, i + 1, "before-" + std::to_string(i), epoch);
    }
    ASSERT_FALSE(HasFailure());
    last = 5;
    first.close();
  }

  const auto missed = publish_n(api, conv, "missed-", 100);
  ASSERT_FALSE(HasFailure());
  for (size_t i = 0; i < missed.size(); ++i) {
    ASSERT_EQ(missed[i].offset, std::optional<uint64_t>(last + 1 + i)) << missed[i].body;
    ASSERT_EQ(missed[i].epoch, epoch) << missed[i].body;
  }

  EnvelopeClient again(daemon->ws_port(), resume_path(conv, last, epoch));
  EXPECT_EQ(again.subprotocol(), kSubprotocol);
  for (size_t i = 0; i < missed.size(); ++i) {
    expect_message(again, last + 1 + i, "missed-" + std::to_string(i), epoch);
    ASSERT_FALSE(HasFailure()) << "history message " << i << " of 100";
  }
  const Envelope resumed = expect_resumed(again);
  EXPECT_EQ(resumed.recovered, std::optional<bool>(true)) << resumed.describe();
  EXPECT_EQ(resumed.offset, std::optional<uint64_t>(last + 100)) << resumed.describe();
  EXPECT_EQ(resumed.epoch, epoch) << resumed.describe();

  const auto live = publish_n(api, conv, "live-", 5);
  for (size_t i = 0; i < live.size(); ++i) {
    expect_message(again, last + 101 + i, "live-" + std::to_string(i), epoch);
  }
  expect_nothing_more(again);
}

// A publisher keeps streaming (~1 ms apart) while the client is away and while it resumes: the
// seam between history and live messages must have no gap and no duplicate.
TEST_F(ResumeTest, ResumeWhilePublishingContinuesHasNoGapAndNoDuplicateAtTheSeam) {
  const std::string conv = "resume-seam";
  std::mutex mu;
  std::map<uint64_t, std::string> sent;  // offset -> data, from the API's answers
  std::vector<std::string> problems;
  std::optional<std::string> epoch;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> newest{0};

  auto first = std::make_unique<EnvelopeClient>(daemon->ws_port(), conv);
  std::thread publisher([&] {
    HttpSession api(daemon->http_port());
    for (size_t i = 0; !stop && i < 20000; ++i) {
      const std::string data = "p-" + std::to_string(i);
      const Published p = publish_via_api(api, kKey, conv, data);
      std::lock_guard<std::mutex> lock(mu);
      if (p.status != 200 || !p.offset) {
        problems.push_back("publish " + data + ": " + std::to_string(p.status) + " " + p.body);
        return;
      }
      if (!epoch) epoch = p.epoch;
      sent[*p.offset] = data;
      newest = *p.offset;
      std::this_thread::sleep_for(1ms);
    }
  });
  auto finish = [&] {
    stop = true;
    if (publisher.joinable()) publisher.join();
  };
  struct Joiner {
    std::function<void()> f;
    ~Joiner() { f(); }
  } joiner{finish};

  // The first connection reads 50 messages, then leaves.
  uint64_t last = 0;
  std::optional<std::string> seen_epoch;
  for (size_t i = 0; i < 50; ++i) {
    auto e = first->next(5s);
    ASSERT_TRUE(e && e->type == "message")
        << "message " << i << ": " << (e ? e->describe() : "none");
    ASSERT_EQ(e->offset, std::optional<uint64_t>(last + 1)) << e->describe();
    last = *e->offset;
    seen_epoch = e->epoch;
  }
  first->close();
  first.reset();
  std::this_thread::sleep_for(100ms);  // ~100 more are published while it is away

  EnvelopeClient again(daemon->ws_port(), resume_path(conv, last, seen_epoch));
  std::vector<Envelope> got;
  std::optional<size_t> resumed_at;  // index in `got`
  // Until the resumed frame and then 300 live messages.
  while (!resumed_at || got.size() < *resumed_at + 300) {
    auto e = again.next(5s);
    ASSERT_TRUE(e.has_value()) << "stalled after " << got.size() << " frames";
    if (e->type == "resumed") {
      ASSERT_FALSE(resumed_at) << "a second resumed frame: " << e->describe();
      resumed_at = got.size();
    }
    got.push_back(*e);
  }
  finish();
  {
    std::lock_guard<std::mutex> lock(mu);
    ASSERT_TRUE(problems.empty()) << problems.front();
  }
  const uint64_t end = newest;
  while (got.empty() || !got.back().offset || *got.back().offset < end) {
    auto e = again.next(5s);
    ASSERT_TRUE(e.has_value()) << "the last published offset " << end << " never arrived";
    got.push_back(*e);
  }
  expect_nothing_more(again);

  ASSERT_EQ(seen_epoch, epoch);
  uint64_t expected = last + 1;
  for (size_t i = 0; i < got.size(); ++i) {
    const Envelope& e = got[i];
    if (resumed_at && i == *resumed_at) {
      EXPECT_EQ(e.recovered, std::optional<bool>(true)) << e.describe();
      EXPECT_EQ(e.offset, std::optional<uint64_t>(expected - 1))
          << "the resumed frame's offset is the newest one sent before it: " << e.describe();
      continue;
    }
    ASSERT_EQ(e.type, "message") << "frame " << i << ": " << e.describe();
    ASSERT_EQ(e.offset, std::optional<uint64_t>(expected))
        << "frame " << i << (resumed_at && i > *resumed_at ? " (live)" : " (history)") << ": "
        << (e.offset && *e.offset < expected ? "duplicate" : "gap") << ": " << e.describe();
    EXPECT_EQ(e.data, std::optional<std::string>(sent[expected])) << e.describe();
    EXPECT_EQ(e.epoch, epoch) << e.describe();
    ++expected;
  }
  EXPECT_EQ(expected, end + 1);
  RecordProperty("history_messages", static_cast<int>(*resumed_at));
}

// ---------------------------------------------------------------------------------------------
// History bounds

TEST(HistoryBound, ResumePastHistorySizeSendsNoHistoryAndIsNotRecovered) {
  Daemon daemon(api_options("  history_size: 50\n"));
  const std::string conv = "bound";
  HttpSession api(daemon.http_port());
  std::optional<std::string> epoch;
  {
    EnvelopeClient first(daemon.ws_port(), conv);
    const auto p = publish_n(api, conv, "first-", 1);
    ASSERT_FALSE(HasFailure());
    epoch = p[0].epoch;
    expect_message(first, 1, "first-0", epoch);
    first.close();
  }
  publish_n(api, conv, "gone-", 100);  // offsets 2..101; only the newest 50 are kept
  ASSERT_FALSE(HasFailure());

  EnvelopeClient again(daemon.ws_port(), resume_path(conv, 1, epoch));
  const Envelope resumed = expect_resumed(again);
  EXPECT_EQ(resumed.recovered, std::optional<bool>(false)) << resumed.describe();
  EXPECT_EQ(resumed.offset, std::optional<uint64_t>(101)) << "the current offset";
  EXPECT_EQ(resumed.epoch, epoch) << "the current epoch";
  publish_n(api, conv, "live-", 1);
  expect_message(again, 102, "live-0", epoch);
  expect_nothing_more(again);
}

TEST(HistoryBound, WrongEpochIsNotRecovered) {
  Daemon daemon(api_options("  history_size: 50\n"));
  const std::string conv = "epoch";
  HttpSession api(daemon.http_port());
  const auto p = publish_n(api, conv, "m-", 3);
  ASSERT_FALSE(HasFailure());
  EnvelopeClient c(daemon.ws_port(), resume_path(conv, 1, std::string("not-the-epoch")));
  const Envelope resumed = expect_resumed(c);
  EXPECT_EQ(resumed.recovered, std::optional<bool>(false)) << resumed.describe();
  EXPECT_EQ(resumed.offset, std::optional<uint64_t>(3)) << resumed.describe();
  EXPECT_EQ(resumed.epoch, p[0].epoch) << resumed.describe();
  expect_nothing_more(c);
}

TEST(HistoryBound, SinceBeyondTheNewestOffsetIsNotRecovered) {
  Daemon daemon(api_options("  history_size: 50\n"));
  const std::string conv = "beyond";
  HttpSession api(daemon.http_port());
  const auto p = publish_n(api, conv, "m-", 3);
  ASSERT_FALSE(HasFailure());
  EnvelopeClient c(daemon.ws_port(), resume_path(conv, 10, p[0].epoch));
  const Envelope resumed = expect_resumed(c);
  EXPECT_EQ(resumed.recovered, std::optional<bool>(false)) << resumed.describe();
  EXPECT_EQ(resumed.offset, std::optional<uint64_t>(3)) << resumed.describe();
  expect_nothing_more(c);
}

TEST(HistoryBound, SinceZeroWithoutEpochGetsTheWholeHistoryWhileItStartsAtOne) {
  Daemon daemon(api_options("  history_size: 50\n"));
  HttpSession api(daemon.http_port());
  {
    SCOPED_TRACE("10 messages, all kept");
    const auto p = publish_n(api, "whole", "m-", 10);
    ASSERT_FALSE(HasFailure());
    EnvelopeClient c(daemon.ws_port(), resume_path("whole", 0, std::nullopt));
    for (size_t i = 0; i < 10; ++i) expect_message(c, i + 1, "m-" + std::to_string(i), p[0].epoch);
    const Envelope resumed = expect_resumed(c);
    EXPECT_EQ(resumed.recovered, std::optional<bool>(true)) << resumed.describe();
    EXPECT_EQ(resumed.offset, std::optional<uint64_t>(10)) << resumed.describe();
    EXPECT_EQ(resumed.epoch, p[0].epoch) << resumed.describe();
  }
  {
    SCOPED_TRACE("60 messages, offset 1 trimmed");
    publish_n(api, "trimmed", "m-", 60);
    ASSERT_FALSE(HasFailure());
    EnvelopeClient c(daemon.ws_port(), resume_path("trimmed", 0, std::nullopt));
    const Envelope resumed = expect_resumed(c);
    EXPECT_EQ(resumed.recovered, std::optional<bool>(false)) << resumed.describe();
    EXPECT_EQ(resumed.offset, std::optional<uint64_t>(60)) << resumed.describe();
    expect_nothing_more(c);
  }
}

TEST(HistoryOff, HistorySizeZeroMeansNoOffsetsAndResumeIsNeverRecovered) {
  Daemon daemon(api_options("  history_size: 0\n"));
  const std::string conv = "nohistory";
  HttpSession api(daemon.http_port());
  EnvelopeClient live(daemon.ws_port(), conv);
  const auto p = publish_n(api, conv, "m-", 2);
  ASSERT_FALSE(HasFailure());
  for (const auto& r : p) {
    EXPECT_EQ(r.offset, std::optional<uint64_t>(0)) << "offset 0 without history: " << r.body;
  }
  for (size_t i = 0; i < 2; ++i) {
    auto e = live.next(5s);
    ASSERT_TRUE(e.has_value()) << "message " << i << " missing";
    EXPECT_EQ(e->type, "message") << e->describe();
    EXPECT_EQ(e->data, "m-" + std::to_string(i)) << e->describe();
    EXPECT_FALSE(e->offset.has_value()) << "not kept, so no offset: " << e->describe();
    EXPECT_FALSE(e->epoch.has_value()) << "not kept, so no epoch: " << e->describe();
  }
  EnvelopeClient again(daemon.ws_port(), resume_path(conv, 0, std::nullopt));
  const Envelope resumed = expect_resumed(again);
  EXPECT_EQ(resumed.recovered, std::optional<bool>(false)) << resumed.describe();
  EXPECT_FALSE(resumed.offset.has_value()) << resumed.describe();
  EXPECT_FALSE(resumed.epoch.has_value()) << resumed.describe();
  expect_nothing_more(again);
}

TEST(HistoryAge, MessagesOlderThanMaxAgeAreNotRecoveredAndAnIdleConversationGetsANewEpoch) {
  Daemon daemon(api_options("  history_max_age_ms: 300\n"));
  const std::string conv = "aged";
  HttpSession api(daemon.http_port());
  std::optional<std::string> epoch;
  {
    EnvelopeClient first(daemon.ws_port(), conv);
    const auto p = publish_n(api, conv, "a-", 2);
    ASSERT_FALSE(HasFailure());
    epoch = p[0].epoch;
    expect_message(first, 1, "a-0", epoch);
    expect_message(first, 2, "a-1", epoch);
    first.close();
  }
  publish_n(api, conv, "b-", 3);  // offsets 3..5
  ASSERT_FALSE(HasFailure());
  {
    SCOPED_TRACE("within the age bound");
    EnvelopeClient c(daemon.ws_port(), resume_path(conv, 2, epoch));
    for (size_t i = 0; i < 3; ++i) expect_message(c, 3 + i, "b-" + std::to_string(i), epoch);
    const Envelope resumed = expect_resumed(c);
    EXPECT_EQ(resumed.recovered, std::optional<bool>(true)) << resumed.describe();
    EXPECT_EQ(resumed.offset, std::optional<uint64_t>(5)) << resumed.describe();
    c.close();
  }
  std::this_thread::sleep_for(800ms);
  {
    SCOPED_TRACE("past the age bound");
    EnvelopeClient c(daemon.ws_port(), resume_path(conv, 2, epoch));
    const Envelope resumed = expect_resumed(c);
    EXPECT_EQ(resumed.recovered, std::optional<bool>(false)) << resumed.describe();
    // Idle longer than the age bound: the next message starts a new epoch at offset 1.
    const auto p = publish_n(api, conv, "c-", 1);
    ASSERT_FALSE(HasFailure());
    EXPECT_NE(p[0].epoch, epoch) << "idle past history_max_age_ms must start a new epoch: "
                                 << p[0].body;
    EXPECT_EQ(p[0].offset, std::optional<uint64_t>(1)) << p[0].body;
    expect_message(c, 1, "c-0", p[0].epoch);
  }
}

}  // namespace
}  // namespace flowrelay::itest
