// History and resume in cluster mode (docs/PROTOCOL.md "Resume", "History"): offsets live in
// Redis, so a viewer whose replica is SIGKILLed mid-stream resumes on another one with nothing
// lost or repeated; a Redis restart without persistence starts a new epoch; history_size bounds
// what can be recovered; a raw PUBLISH into Redis reaches clients without an offset.
#include <gtest/gtest.h>

#include <atomic>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include "cluster.h"
#include "cluster_fixture.h"
#include "support/envelope_client.h"
#include "support/envelope_expect.h"
#include "support/metrics.h"
#include "support/poco_ws_client.h"

namespace flowrelay::ctest {
namespace {

using test::Envelope;
using test::EnvelopeClient;
using test::expect_message;
using test::expect_nothing_more;
using test::expect_resumed;
using test::HttpSession;
using test::Published;

const std::string kKey = "cluster-key";

class ClusterHistoryTest : public ClusterFixture {
 protected:
  // Every replica here serves the publish API with kKey.
  void start_replicas(size_t n, ReplicaOptions options = {}) {
    options.api_key = kKey;
    ClusterFixture::start_replicas(n, options);
  }
};

// Publishes `n` messages "<prefix><i>" through replica `r`'s API; all must be answered 200.
std::vector<Published> publish_n(Replica& r, const std::string& conv, const std::string& prefix,
                                 size_t n) {
  HttpSession api(r.http_port());
  std::vector<Published> out;
  for (size_t i = 0; i < n; ++i) {
    Published p = test::publish_via_api(api, kKey, conv, prefix + std::to_string(i));
    EXPECT_EQ(p.status, 200) << "publish " << i << " via " << r.name() << ": " << p.body;
    EXPECT_TRUE(p.offset.has_value()) << p.body;
    out.push_back(std::move(p));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// 7. A backend streams 1,000 messages; the viewer's replica is SIGKILLed after ~300; the viewer
// resumes through nginx on another replica and ends with all 1,000 exactly once, in order.

TEST_F(ClusterHistoryTest, ReplicaKilledMidStreamViewerResumesThroughNginxWithNothingLost) {
  constexpr size_t kMessages = 1000, kKillAfter = 300;
  start_replicas(3);
  start_nginx();
  const std::string conv = "stream";

  auto viewer = std::make_unique<EnvelopeClient>(nginx->port(), conv);
  ASSERT_EQ(viewer->subprotocol(), test::kSubprotocol) << "nginx must pass the subprotocol";
  // Which replica nginx chose: the one with a WebSocket connection open.
  std::optional<size_t> viewed;
  ASSERT_TRUE(test::wait_for(
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
      5s))
      << "cannot tell which replica serves the viewer (flowrelay_connections)";
  // nginx does not proxy /api/: the backend publishes to a replica that is not killed.
  Replica& victim = *replicas[*viewed];
  Replica& backend = *replicas[(*viewed + 1) % replicas.size()];

  std::mutex mu;
  std::map<uint64_t, std::string> sent;
  std::vector<std::string> problems;
  std::optional<std::string> epoch;
  std::atomic<bool> stop{false};
  std::thread publisher([&] {
    HttpSession api(backend.http_port());
    for (size_t i = 0; i < kMessages && !stop; ++i) {
      const std::string data = "tok-" + std::to_string(i);
      const Published p = test::publish_via_api(api, kKey, conv, data);
      std::lock_guard<std::mutex> lock(mu);
      if (p.status != 200 || !p.offset) {
        problems.push_back(data + ": " + std::to_string(p.status) + " " + p.body);
        return;
      }
      if (!epoch) epoch = p.epoch;
      sent[*p.offset] = data;
      std::this_thread::sleep_for(1ms);
    }
  });
  struct Joiner {
    std::atomic<bool>& stop;
    std::thread& t;
    ~Joiner() {
      stop = true;
      if (t.joinable()) t.join();
    }
  } joiner{stop, publisher};

  std::vector<Envelope> before;  // first connection
  while (before.size() < kKillAfter) {
    auto e = viewer->next(5s);
    ASSERT_TRUE(e.has_value()) << "the viewer stalled after " << before.size() << " messages";
    before.push_back(*e);
  }
  const auto t_kill = Clock::now();
  victim.kill();
  // Whatever was already on its way still counts; then the connection ends.
  while (auto e = viewer->next(5s)) before.push_back(*e);
  ASSERT_TRUE(viewer->closed()) << "the viewer's connection outlived its replica";
  viewer.reset();
  // A client's reconnect backoff: the stream goes on meanwhile, so the resume has a real gap.
  std::this_thread::sleep_for(200ms);

  uint64_t last = 0;
  for (size_t i = 0; i < before.size(); ++i) {
    const Envelope& e = before[i];
    ASSERT_EQ(e.type, "message") << e.describe();
    ASSERT_EQ(e.offset, std::optional<uint64_t>(last + 1))
        << "first connection, frame " << i << ": " << e.describe();
    last = *e.offset;
  }
  const std::optional<std::string> seen_epoch = before.back().epoch;

  // Reconnect through nginx (it skips the dead replica) with since/epoch.
  std::unique_ptr<EnvelopeClient> again;
  ASSERT_TRUE(test::wait_for(
      [&] {
        try {
          again = std::make_unique<EnvelopeClient>(nginx->port(),
                                                   test::resume_path(conv, last, seen_epoch));
          return true;
        } catch (const std::exception&) {  // Poco::Exception too
          return false;
        }
      },
      5s, 50ms))
      << "could not reconnect through nginx";
  const auto t_back = Clock::now();

  std::vector<Envelope> after;
  std::optional<size_t> resumed_at;
  while (after.empty() || !after.back().offset || *after.back().offset < kMessages || !resumed_at) {
    auto e = again->next(5s);
    ASSERT_TRUE(e.has_value()) << "stalled after " << after.size()
                               << " frames on the second connection (resumed frame seen: "
                               << resumed_at.has_value() << ")";
    if (e->type == "resumed") {
      ASSERT_FALSE(resumed_at) << "a second resumed frame: " << e->describe();
      resumed_at = after.size();
    }
    after.push_back(*e);
  }
  publisher.join();
  {
    std::lock_guard<std::mutex> lock(mu);
    ASSERT_TRUE(problems.empty()) << "the backend's publish failed: " << problems.front();
  }
  ASSERT_EQ(sent.size(), kMessages);
  ASSERT_EQ(sent.begin()->first, 1u);
  ASSERT_EQ(sent.rbegin()->first, kMessages) << "the API's offsets are not 1..1000";
  ASSERT_EQ(seen_epoch, epoch);
  expect_nothing_more(*again);

  for (size_t i = 0; i < before.size(); ++i) {
    EXPECT_EQ(before[i].data, std::optional<std::string>(sent[i + 1])) << before[i].describe();
  }
  uint64_t expected = last + 1;
  for (size_t i = 0; i < after.size(); ++i) {
    const Envelope& e = after[i];
    if (i == *resumed_at) {
      EXPECT_EQ(e.recovered, std::optional<bool>(true)) << e.describe();
      EXPECT_EQ(e.offset, std::optional<uint64_t>(expected - 1)) << e.describe();
      EXPECT_EQ(e.epoch, epoch) << e.describe();
      continue;
    }
    ASSERT_EQ(e.type, "message") << e.describe();
    ASSERT_EQ(e.offset, std::optional<uint64_t>(expected))
        << "second connection, frame " << i << (i > *resumed_at ? " (live)" : " (history)") << ": "
        << (e.offset && *e.offset < expected ? "duplicate" : "gap") << ": " << e.describe();
    EXPECT_EQ(e.data, std::optional<std::string>(sent[expected])) << e.describe();
    EXPECT_EQ(e.epoch, epoch) << e.describe();
    ++expected;
  }
  EXPECT_EQ(expected, kMessages + 1);
  std::cout << "[ MEASURE  ] viewer on " << victim.name() << " killed after " << before.size()
            << " messages; back through nginx in "
            << std::chrono::duration_cast<Millis>(t_back - t_kill).count() << " ms; " << *resumed_at
            << " from history, " << after.size() - *resumed_at - 1 << " live\n";
}

// ---------------------------------------------------------------------------------------------
// 8. Redis restarted without persistence lost the history: the old epoch is not recovered, and
// new messages carry a new epoch starting at offset 1.

TEST_F(ClusterHistoryTest, RedisRestartWithoutPersistenceStartsANewEpochAtOffsetOne) {
  start_replicas(1);
  Replica& r = *replicas[0];
  const std::string conv = "epoch";
  EnvelopeClient live(r.ws_port(), conv);
  std::optional<std::string> old_epoch;
  {
    EnvelopeClient away(r.ws_port(), conv);
    const auto p = publish_n(r, conv, "old-", 3);
    ASSERT_FALSE(HasFailure());
    old_epoch = p[0].epoch;
    ASSERT_TRUE(old_epoch && !old_epoch->empty()) << p[0].body;
    for (size_t i = 0; i < 3; ++i) {
      expect_message(away, i + 1, "old-" + std::to_string(i), old_epoch);
      expect_message(live, i + 1, "old-" + std::to_string(i), old_epoch);
    }
    away.close();
  }

  redis->kill();
  ASSERT_TRUE(r.wait_ready_status(503, 5s)) << "still ready without Redis";
  redis->start();
  ASSERT_TRUE(r.wait_ready_status(200, 10s)) << "not ready after the Redis restart";

  EnvelopeClient back(r.ws_port(), test::resume_path(conv, 3, old_epoch));
  const Envelope resumed = expect_resumed(back);
  EXPECT_EQ(resumed.recovered, std::optional<bool>(false)) << resumed.describe();
  if (resumed.epoch && !resumed.epoch->empty()) {
    EXPECT_NE(resumed.epoch, old_epoch)
        << "the history was lost, yet the epoch is the same: " << resumed.describe();
  }

  const auto p = publish_n(r, conv, "new-", 2);
  ASSERT_FALSE(HasFailure());
  const std::optional<std::string> new_epoch = p[0].epoch;
  EXPECT_TRUE(new_epoch && !new_epoch->empty()) << p[0].body;
  EXPECT_NE(new_epoch, old_epoch) << "same epoch after Redis lost the history: " << p[0].body;
  EXPECT_EQ(p[0].offset, std::optional<uint64_t>(1)) << p[0].body;
  EXPECT_EQ(p[1].offset, std::optional<uint64_t>(2)) << p[1].body;
  for (EnvelopeClient* c : {&back, &live}) {
    SCOPED_TRACE(c == &back ? "resumed client" : "client connected through the restart");
    expect_message(*c, 1, "new-0", new_epoch);
    expect_message(*c, 2, "new-1", new_epoch);
  }
}

// ---------------------------------------------------------------------------------------------
// 9. history_size on Redis: a gap within the bound is recovered exactly (on another replica
// than the one the client left), a larger one is not.

TEST_F(ClusterHistoryTest, HistorySizeBoundsWhatCanBeRecoveredAcrossReplicas) {
  start_replicas(2, ReplicaOptions{{"history_size: 20"}});
  Replica& A = *replicas[0];
  Replica& B = *replicas[1];
  const std::string conv = "bound";
  std::optional<std::string> epoch;
  {
    EnvelopeClient first(A.ws_port(), conv);
    const auto p = publish_n(B, conv, "a-", 5);
    ASSERT_FALSE(HasFailure());
    epoch = p[0].epoch;
    for (size_t i = 0; i < 5; ++i) expect_message(first, i + 1, "a-" + std::to_string(i), epoch);
    first.close();
  }
  publish_n(A, conv, "b-", 10);  // offsets 6..15: within the bound
  ASSERT_FALSE(HasFailure());
  {
    SCOPED_TRACE("10 missed, history_size 20");
    EnvelopeClient c(B.ws_port(), test::resume_path(conv, 5, epoch));
    for (size_t i = 0; i < 10; ++i) expect_message(c, 6 + i, "b-" + std::to_string(i), epoch);
    const Envelope resumed = expect_resumed(c);
    EXPECT_EQ(resumed.recovered, std::optional<bool>(true)) << resumed.describe();
    EXPECT_EQ(resumed.offset, std::optional<uint64_t>(15)) << resumed.describe();
    expect_nothing_more(c);
    c.close();
  }
  publish_n(B, conv, "c-", 50);  // offsets 16..65: 16..45 are trimmed
  ASSERT_FALSE(HasFailure());
  {
    SCOPED_TRACE("50 missed, history_size 20");
    EnvelopeClient c(A.ws_port(), test::resume_path(conv, 15, epoch));
    const Envelope resumed = expect_resumed(c);
    EXPECT_EQ(resumed.recovered, std::optional<bool>(false)) << resumed.describe();
    EXPECT_EQ(resumed.offset, std::optional<uint64_t>(65)) << resumed.describe();
    EXPECT_EQ(resumed.epoch, epoch) << resumed.describe();
    publish_n(B, conv, "live-", 1);
    expect_message(c, 66, "live-0", epoch);
  }
}

// ---------------------------------------------------------------------------------------------
// 10. A backend's raw PUBLISH straight into Redis: a message frame without offset/epoch for an
// envelope client, plain text for a raw client, and nothing in history.

TEST_F(ClusterHistoryTest, RawRedisPublishReachesEnvelopeClientsWithoutOffsetAndRawClientsAsText) {
  start_replicas(1);
  Replica& r = *replicas[0];
  EnvelopeClient env(r.ws_port(), "ext");
  test::WsClient raw(r.ws_port(), "ext");
  const auto reply = redis_command(redis->port(), {"PUBLISH", "chat:ext", "hello from redis"});
  ASSERT_TRUE(reply) << "no answer from redis";
  EXPECT_EQ(*reply, ":1");

  auto e = env.next(5s);
  ASSERT_TRUE(e.has_value()) << "the envelope client got nothing";
  EXPECT_EQ(e->type, "message") << e->describe();
  EXPECT_EQ(e->lane, "message") << e->describe();
  EXPECT_EQ(e->data, std::optional<std::string>("hello from redis")) << e->describe();
  EXPECT_FALSE(e->offset.has_value()) << "not in history, so no offset: " << e->describe();
  EXPECT_FALSE(e->epoch.has_value()) << "not in history, so no epoch: " << e->describe();

  auto m = raw.receive(5s);
  ASSERT_TRUE(m && !m->eof) << "the raw client got nothing";
  EXPECT_EQ(m->opcode(), Poco::Net::WebSocket::FRAME_OP_TEXT);
  EXPECT_EQ(m->payload, "hello from redis");

  // It took no place in history: the first message published through flowrelay is offset 1.
  const auto p = publish_n(r, "ext", "api-", 1);
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(p[0].offset, std::optional<uint64_t>(1)) << p[0].body;
  expect_message(env, 1, "api-0", p[0].epoch);
}

TEST_F(ClusterHistoryTest, InvalidUtf8PublishedIntoRedisIsRepairedNotSentAsBrokenText) {
  start_replicas(1);
  Replica& r = *replicas[0];
  EnvelopeClient env(r.ws_port(), "bad-utf8");
  test::WsClient raw(r.ws_port(), "bad-utf8");
  // A lone 0xFF and a truncated 3-byte sequence: not text. RFC 6455 forbids sending them in a
  // text frame (a conforming client would fail the connection with 1007).
  const std::string published = std::string("a\xFF") + "b\xE6\x97";
  ASSERT_TRUE(redis_command(redis->port(), {"PUBLISH", "chat:bad-utf8", published}));
  const std::string repaired =
      "a\xEF\xBF\xBD"
      "b\xEF\xBF\xBD";

  auto m = raw.receive(5s);
  ASSERT_TRUE(m && !m->eof) << "the raw client got nothing (or was dropped)";
  EXPECT_EQ(m->payload, repaired);
  auto e = env.next(5s);
  ASSERT_TRUE(e.has_value()) << "the envelope client got nothing";
  EXPECT_EQ(e->data, std::optional<std::string>(repaired)) << e->describe();
  // Both connections still work.
  const auto p = publish_n(r, "bad-utf8", "after-", 1);
  ASSERT_FALSE(HasFailure());
  expect_message(env, 1, "after-0", p[0].epoch);
  auto after = raw.receive(5s);
  ASSERT_TRUE(after && !after->eof);
  EXPECT_EQ(after->payload, "after-0");
}

}  // namespace
}  // namespace flowrelay::ctest
