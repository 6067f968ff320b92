// Lanes under backpressure (docs/PROTOCOL.md "Lanes and backpressure"): for an envelope client
// that reads slower than the conversation is written, log-lane frames are shed past half of
// max_outbound_bytes, message-lane frames never are (past the whole bound the client is closed
// with 1008 instead). A well-behaved member of the same conversation loses nothing.
#include <gtest/gtest.h>

#include <iostream>
#include <map>
#include <set>

#include "support/envelope_client.h"
#include "support/itest.h"

namespace flowrelay::itest {
namespace {

const std::string kKey = "test-key";
constexpr size_t kMaxOutbound = 262144;
constexpr size_t kBatch = 16;  // messages per API request, alternating log and message lanes

class LaneBackpressure : public ::testing::Test {
 protected:
  void SetUp() override {
    DaemonOptions o;
    o.api_key = kKey;
    o.transport_extra = "    max_outbound_bytes: " + std::to_string(kMaxOutbound) + "\n";
    daemon = std::make_unique<Daemon>(o);
    // The slow client: envelope mode, a small receive window, and no reading until told.
    slow = std::make_unique<RawClient>(daemon->ws_port(), 16384);
    const HttpHead h = slow->handshake(
        "/ws/" + kConv, std::string("Sec-WebSocket-Protocol: ") + kSubprotocol + "\r\n");
    ASSERT_EQ(h.status, 101) << h.status_line;
    ASSERT_EQ(h.header("Sec-WebSocket-Protocol"), std::optional<std::string>(kSubprotocol));
    fast = std::make_unique<EnvelopeClient>(daemon->ws_port(), kConv);
  }

  double shed() const {
    return metric_value(daemon->http_port(), "flowrelay_log_frames_shed_total");
  }

  // Publishes batches of ~1 KiB messages until the daemon reports shed log frames, then
  // `after_shed` more batches. The fast member must get every frame of every batch.
  void publish_past_shedding(size_t after_shed) {
    HttpSession api(daemon->http_port());
    const std::string pad(1000, '.');
    size_t n = 0, batches_after_shed = 0;
    const auto t0 = Clock::now();
    while (batches_after_shed < after_shed) {
      ASSERT_LT(n, 40000u) << "no log frame shed after " << n << " messages of ~1 KiB; "
                           << "flowrelay_log_frames_shed_total = " << shed();
      std::vector<BatchItem> batch;
      for (size_t i = 0; i < kBatch; ++i, ++n) {
        const std::string lane = n % 2 == 0 ? "log" : "message";
        batch.push_back({kConv, std::to_string(n) + ":" + lane + ":" + pad, lane});
      }
      const HttpResult r = api.post("/api/publish", batch_body(batch), api_headers(kKey));
      ASSERT_EQ(r.status, 200) << r.body;
      const auto results = parse_batch_results(r.body);
      ASSERT_TRUE(results && results->size() == batch.size()) << r.body;
      for (size_t i = 0; i < batch.size(); ++i) {
        ASSERT_TRUE((*results)[i].offset) << r.body;
        sent[*(*results)[i].offset] = {batch[i].lane, batch[i].data};
      }
      for (size_t i = 0; i < batch.size(); ++i) {
        auto e = fast->next(5s);
        ASSERT_TRUE(e && e->type == "message")
            << "the fast client missed a frame: " << (e ? e->describe() : "none");
        ASSERT_EQ(e->data, batch[i].data) << e->describe();
      }
      if (batches_after_shed > 0 || shed() > 0) ++batches_after_shed;
    }
    std::cout << "[ MEASURE  ] " << n << " messages published in "
              << std::chrono::duration_cast<Millis>(Clock::now() - t0).count()
              << " ms; log frames shed for the slow client: " << shed() << "\n";
    ASSERT_EQ(sent.rbegin()->first - sent.begin()->first + 1, sent.size())
        << "the API's offsets are not contiguous";
  }

  // The slow client reads everything it gets, until the last message-lane offset, the end of
  // the connection, or 2 s of silence. Checks order and content of every frame.
  void read_slow_client() {
    uint64_t last_message_lane = 0;
    for (const auto& [off, v] : sent)
      if (v.first == "message") last_message_lane = off;
    const auto deadline = Clock::now() + 20s;
    uint64_t prev = 0;
    while (Clock::now() < deadline && prev < last_message_lane) {
      Frame f;
      const ReadResult rr = slow->read_frame(f, 2s);
      if (rr != ReadResult::Frame) {
        ended = rr != ReadResult::Timeout;
        break;
      }
      if (f.opcode == kClose) {
        close = f;
        ended = true;
        break;
      }
      if (f.opcode == kPing) {
        FrameSpec pong;
        pong.opcode = kPong;
        pong.payload = f.payload;
        slow->send_frame(pong);
        continue;
      }
      ASSERT_EQ(f.opcode, kText) << f.describe();
      const Envelope e = parse_envelope(f.payload);
      ASSERT_EQ(e.type, "message") << e.describe();
      ASSERT_TRUE(e.offset) << e.describe();
      ASSERT_GT(*e.offset, prev) << "out of order or duplicated: " << e.describe();
      prev = *e.offset;
      ASSERT_TRUE(sent.count(*e.offset)) << "never published: " << e.describe();
      EXPECT_EQ(e.lane, sent[*e.offset].first) << e.describe();
      EXPECT_EQ(e.data, sent[*e.offset].second) << e.describe();
      received.insert(*e.offset);
    }
    ASSERT_FALSE(received.empty()) << "the slow client got nothing";
    // Up to where the client got (all of it, or up to the close), what is missing must be log.
    const uint64_t upto = ended ? *received.rbegin() : sent.rbegin()->first;
    for (uint64_t off = sent.begin()->first; off <= upto; ++off) {
      if (received.count(off)) continue;
      (sent[off].first == "log" ? log_missing : message_missing).push_back(off);
    }
    std::cout << "[ MEASURE  ] slow client: " << received.size() << " of " << sent.size()
              << " frames, " << log_missing.size() << " log-lane frames missing, "
              << (close   ? "closed with " + std::to_string(close->close_code())
                  : ended ? std::string("connection ended without a close frame")
                          : std::string("not closed"))
              << "\n";
    EXPECT_TRUE(message_missing.empty()) << message_missing.size() << " message-lane frames missing"
                                         << (ended ? " before the close" : "")
                                         << ", the first at offset " << message_missing.front();
    if (!ended) {
      EXPECT_EQ(*received.rbegin(), last_message_lane)
          << "not closed, but the last message-lane frame did not arrive";
    }
  }

  const std::string kConv = "backpressure";
  std::unique_ptr<Daemon> daemon;
  std::unique_ptr<RawClient> slow;
  std::unique_ptr<EnvelopeClient> fast;
  std::map<uint64_t, std::pair<std::string, std::string>> sent;  // offset -> (lane, data)
  std::set<uint64_t> received;
  std::vector<uint64_t> log_missing, message_missing;
  std::optional<Frame> close;
  bool ended = false;  // the slow client's connection ended (close frame, or EOF/RST)
};

// Past half of max_outbound_bytes but (message frames only adding ~9 KiB per batch) under it:
// the slow client ends up with every message-lane frame and without some log-lane ones.
TEST_F(LaneBackpressure, SlowClientLosesOnlyLogLaneFramesNeverMessageLaneOnes) {
  publish_past_shedding(5);
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_GT(shed(), 0);
  read_slow_client();
  if (close) {
    EXPECT_EQ(close->close_code(), 1008) << close->describe();
  } else if (!ended) {
    EXPECT_FALSE(log_missing.empty()) << "log frames were counted as shed but all arrived";
  }
}

// Far past max_outbound_bytes with message-lane frames: the client is closed with 1008 (and
// counted) rather than losing a message-lane frame; before the close only log frames are missing.
TEST_F(LaneBackpressure, SlowClientPastTheBoundIsClosedWith1008NotSilentlyDroppedMessages) {
  publish_past_shedding(60);  // ~60 * 8 KiB of message frames after shedding began
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_GT(shed(), 0);
  EXPECT_TRUE(wait_for(
      [&] {
        return metric_value(daemon->http_port(), "flowrelay_slow_consumer_closes_total") >= 1;
      },
      5s))
      << "a client past max_outbound_bytes was neither closed nor counted";
  read_slow_client();
  EXPECT_TRUE(ended) << "the slow client was not disconnected";
  if (close) {
    EXPECT_EQ(close->close_code(), 1008) << close->describe();
  }
}

}  // namespace
}  // namespace flowrelay::itest
