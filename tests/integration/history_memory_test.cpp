// broker-local's history memory bounds in the real daemon (docs/PROTOCOL.md, History): a
// node-wide history_memory_limit past which the least recently used conversations' histories
// are dropped whole (a resume of one is told recovered:false, and it starts a new epoch), and
// a per-conversation history_max_bytes that drops the oldest entries first.
#include <gtest/gtest.h>

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "support/envelope_client.h"
#include "support/envelope_expect.h"
#include "support/itest.h"

namespace flowrelay::itest {
namespace {

const std::string kKey = "test-key";
constexpr uint64_t kLimit = 8u << 20;  // 8 MiB
constexpr size_t kConversations = 500;
constexpr size_t kMessages = 20000;
constexpr size_t kMessageBytes = 2048;
constexpr size_t kBatch = 250;

DaemonOptions options(const std::string& broker_extra) {
  DaemonOptions o;
  o.api_key = kKey;
  o.broker_extra = broker_extra;
  return o;
}

struct Last {
  uint64_t offset = 0;
  std::string epoch;
};

// POSTs `items` as one batch; returns the results (all must be 200 with an offset).
std::vector<Published> publish_batch(HttpSession& api, const std::vector<BatchItem>& items) {
  const HttpResult r = api.post("/api/publish", batch_body(items), api_headers(kKey));
  EXPECT_EQ(r.status, 200) << r.body.substr(0, 300);
  auto results = parse_batch_results(r.body);
  EXPECT_TRUE(results.has_value()) << r.body.substr(0, 300);
  if (!results) return {};
  EXPECT_EQ(results->size(), items.size());
  return *results;
}

TEST(HistoryMemoryBound, TheLeastRecentlyUsedConversationsAreDroppedWhole) {
  Daemon daemon(options("  history_memory_limit: " + std::to_string(kLimit) + "\n"));
  HttpSession api(daemon.http_port());
  const Published early = publish_via_api(api, kKey, "early", "the first words");
  ASSERT_EQ(early.status, 200) << early.body;
  ASSERT_TRUE(early.epoch.has_value());
  const long rss_before_kb = daemon.vm_rss_kb();

  // 20,000 messages of 2 KB round-robin into 500 conversations: 40 MB, five times the limit.
  const std::string payload(kMessageBytes, 'x');
  std::vector<Last> last(kConversations);
  for (size_t sent = 0; sent < kMessages; sent += kBatch) {
    std::vector<BatchItem> batch;
    for (size_t i = sent; i < sent + kBatch; ++i)
      batch.push_back({"c" + std::to_string(i % kConversations), payload, ""});
    const auto results = publish_batch(api, batch);
    ASSERT_EQ(results.size(), batch.size());
    for (size_t i = 0; i < results.size(); ++i) {
      ASSERT_TRUE(results[i].offset && results[i].epoch) << results[i].body;
      last[(sent + i) % kConversations] = {*results[i].offset, *results[i].epoch};
    }
  }
  const long rss_after_kb = daemon.vm_rss_kb();

  const double held = metric_value(daemon.http_port(), "flowrelay_history_bytes");
  const double dropped = metric_value(daemon.http_port(), "flowrelay_history_dropped_total");
  EXPECT_GT(held, 0);
  EXPECT_LE(held, static_cast<double>(kLimit)) << "the limit holds";
  EXPECT_GT(dropped, 0) << "some conversations' histories were dropped";
  EXPECT_EQ(metric_value(daemon.http_port(), "flowrelay_history_memory_limit_bytes"),
            static_cast<double>(kLimit));

  // Unbounded, the histories alone would hold every byte published.
  const double unbounded_kb = static_cast<double>(kMessages * kMessageBytes) / 1024;
  const double grown_kb = static_cast<double>(rss_after_kb - rss_before_kb);
  std::printf(
      "history_memory: RSS %ld kB -> %ld kB (grew %.0f kB; unbounded history: %.0f kB; "
      "held %.0f bytes, %.0f conversations dropped)\n",
      rss_before_kb, rss_after_kb, grown_kb, unbounded_kb, held, dropped);
  ASSERT_GT(rss_before_kb, 0);
  EXPECT_LT(grown_kb, 0.5 * unbounded_kb) << "RSS grew as if history were unbounded";

  // The early conversation was dropped: its resume cannot recover, and it restarts its epoch.
  {
    EnvelopeClient c(daemon.ws_port(), resume_path("early", *early.offset, early.epoch));
    const Envelope resumed = expect_resumed(c);
    EXPECT_EQ(resumed.recovered, std::optional<bool>(false)) << resumed.describe();
    EXPECT_NE(resumed.epoch, early.epoch) << resumed.describe();
    const Published again = publish_via_api(api, kKey, "early", "after the drop");
    ASSERT_EQ(again.status, 200);
    EXPECT_NE(again.epoch, early.epoch) << "a dropped history starts a new epoch";
    EXPECT_EQ(again.offset, std::optional<uint64_t>(1));
    expect_message(c, 1, "after the drop", again.epoch);
  }
  // The most recently used conversation still has its history.
  {
    const std::string conv = "c" + std::to_string((kMessages - 1) % kConversations);
    const Last& l = last[(kMessages - 1) % kConversations];
    EnvelopeClient c(daemon.ws_port(), resume_path(conv, l.offset - 3, l.epoch));
    for (uint64_t o = l.offset - 2; o <= l.offset; ++o) expect_message(c, o, payload, l.epoch);
    const Envelope resumed = expect_resumed(c);
    EXPECT_EQ(resumed.recovered, std::optional<bool>(true)) << resumed.describe();
    EXPECT_EQ(resumed.epoch, std::optional<std::string>(l.epoch));
  }
  EXPECT_TRUE(daemon.running()) << daemon.stderr_text();
}

// Message i of 1024 bytes: ten of them fill a 10240-byte bound exactly.
std::string kilobyte(int i) {
  std::string d = std::to_string(i);
  d.resize(1024, '.');
  return d;
}

TEST(HistoryMemoryBound, HistoryMaxBytesDropsTheOldestEntriesFirst) {
  Daemon daemon(options("  history_max_bytes: 10240\n"));
  HttpSession api(daemon.http_port());
  std::vector<Published> sent;
  for (int i = 1; i <= 20; ++i) {
    sent.push_back(publish_via_api(api, kKey, "bytes", kilobyte(i)));
    ASSERT_EQ(sent.back().status, 200) << sent.back().body;
  }
  const std::optional<std::string> epoch = sent[0].epoch;
  {  // 11..20 are kept: a reader at 10 recovers them
    EnvelopeClient c(daemon.ws_port(), resume_path("bytes", 10, epoch));
    for (int i = 11; i <= 20; ++i) expect_message(c, static_cast<uint64_t>(i), kilobyte(i), epoch);
    EXPECT_EQ(expect_resumed(c).recovered, std::optional<bool>(true));
  }
  {  // 10 is gone: a reader at 9 cannot recover
    EnvelopeClient c(daemon.ws_port(), resume_path("bytes", 9, epoch));
    const Envelope resumed = expect_resumed(c);
    EXPECT_EQ(resumed.recovered, std::optional<bool>(false)) << resumed.describe();
    EXPECT_EQ(resumed.epoch, epoch) << "same epoch: trimmed, not reset";
  }
}

}  // namespace
}  // namespace flowrelay::itest
