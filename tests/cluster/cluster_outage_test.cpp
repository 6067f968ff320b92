// Redis outages must not duplicate anything (issue 11's two delivery bugs):
//  1. a publish resent after a lost reply (Redis hung past command_timeout_ms) is stored once,
//     keeps its first offset, and reaches every member once;
//  2. with channels.echo false the sender never gets its own message back, however long the
//     outage (echo suppression compares the message's origin, not a payload hash with a TTL).
// Both failed on the build before ABI 2 (FLOWRELAY_TEST_DAEMON / FLOWRELAY_TEST_PLUGIN_DIR run
// them against another build).
#include <gtest/gtest.h>

#include <iostream>
#include <map>
#include <thread>

#include "cluster.h"
#include "cluster_fixture.h"
#include "support/envelope_client.h"

namespace flowrelay::ctest {
namespace {

using test::Envelope;
using test::EnvelopeClient;

class ClusterOutageTest : public ClusterFixture {};

// Reads message frames from `c` until it has `n`, then `linger` more for late extras.
std::vector<Envelope> read_messages(EnvelopeClient& c, size_t n, Millis timeout, Millis linger) {
  std::vector<Envelope> got;
  const auto deadline = Clock::now() + timeout;
  while (got.size() < n && Clock::now() < deadline) {
    auto e = c.next(std::chrono::duration_cast<Millis>(deadline - Clock::now()));
    if (!e) break;
    if (e->is_message()) got.push_back(*e);
  }
  for (;;) {
    auto e = c.next(linger);
    if (!e) break;
    if (e->is_message()) got.push_back(*e);
  }
  return got;
}

// Every text of `expected` exactly once, in order, with offsets first, first + 1, ... of one
// epoch. Returns "" or the first problem.
std::string check_exactly_once(const std::vector<Envelope>& got,
                               const std::vector<std::string>& expected, uint64_t first) {
  std::map<std::string, int> seen;
  for (const auto& e : got) ++seen[e.data.value_or("<no data>")];
  for (const auto& [text, n] : seen)
    if (n != 1) return "\"" + text + "\" arrived " + std::to_string(n) + " times";
  if (got.size() != expected.size())
    return std::to_string(got.size()) + " messages, expected " + std::to_string(expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i].data != expected[i]) return "message " + std::to_string(i) + " is " + got[i].raw;
    if (got[i].offset != first + i)
      return "message " + std::to_string(i) + " has offset " +
             std::to_string(got[i].offset.value_or(0)) + ", expected " +
             std::to_string(first + i);
    if (got[i].epoch != got[0].epoch) return "epoch changed at " + got[i].raw;
  }
  return "";
}

std::vector<std::string> texts(const std::string& prefix, size_t from, size_t to) {
  std::vector<std::string> out;
  for (size_t i = from; i < to; ++i) out.push_back(prefix + std::to_string(i));
  return out;
}

// Bug 1: 20 messages, the last 10 published while Redis is SIGSTOPped for ~2x the command
// timeout: the broker gives up on the unanswered commands, reconnects after SIGCONT and sends
// them again, while Redis still executes the copies it had read before it stopped.
TEST_F(ClusterOutageTest, PublishesResentAfterAHungRedisAreStoredAndDeliveredOnce) {
  constexpr uint32_t kCommandTimeoutMs = 1000;
  start_replicas(1, ReplicaOptions{{"command_timeout_ms: " + std::to_string(kCommandTimeoutMs)}});
  const uint16_t port = replicas[0]->ws_port();
  EnvelopeClient sender(port, "hung"), viewer(port, "hung");

  for (size_t i = 0; i < 10; ++i) sender.publish("m" + std::to_string(i));
  const auto before = read_messages(viewer, 10, 5s, 0ms);
  ASSERT_EQ(check_exactly_once(before, texts("m", 0, 10), 1), "");

  redis->pause();
  const auto paused_at = Clock::now();
  for (size_t i = 10; i < 20; ++i) {
    sender.publish("m" + std::to_string(i));
    std::this_thread::sleep_for(100ms);
  }
  std::this_thread::sleep_until(paused_at + std::chrono::milliseconds(2 * kCommandTimeoutMs + 500));
  redis->resume();

  const auto after = read_messages(viewer, 10, 15s, 2s);
  EXPECT_EQ(check_exactly_once(after, texts("m", 10, 20), 11), "") << "viewer";
  const auto own = read_messages(sender, 20, 5s, 0ms);  // echo is on: the sender gets all 20
  EXPECT_EQ(check_exactly_once(own, texts("m", 0, 20), 1), "") << "sender";

  // Stored once: a client replaying the whole history gets the 20, then resumed.
  EnvelopeClient replay(port, test::resume_path("hung", 0, std::nullopt));
  const auto history = read_messages(replay, 20, 5s, 500ms);
  EXPECT_EQ(check_exactly_once(history, texts("m", 0, 20), 1), "") << "history";
}

// Bug 2: channels.echo false and a 12 s hang (longer than any TTL a payload-hash scheme could
// use): after SIGCONT the viewer gets each message once and the sender none of its own.
TEST_F(ClusterOutageTest, EchoOffSenderNeverReceivesItsOwnMessagesAfterALongHang) {
  ReplicaOptions options;
  options.echo = false;
  start_replicas(1, options);
  const uint16_t port = replicas[0]->ws_port();
  EnvelopeClient sender(port, "quiet"), viewer(port, "quiet");

  sender.publish("before");
  ASSERT_EQ(check_exactly_once(read_messages(viewer, 1, 5s, 0ms), {"before"}, 1), "");

  redis->pause();
  const auto paused_at = Clock::now();
  for (size_t i = 0; i < 5; ++i) {
    sender.publish("e" + std::to_string(i));
    std::this_thread::sleep_for(500ms);
  }
  std::this_thread::sleep_until(paused_at + 12s);
  redis->resume();

  const auto after = read_messages(viewer, 5, 15s, 2s);
  EXPECT_EQ(check_exactly_once(after, texts("e", 0, 5), 2), "") << "viewer";
  // The viewer's marker must be the first and only thing the sender receives.
  viewer.publish("marker");
  const auto own = read_messages(sender, 1, 5s, 1s);
  ASSERT_FALSE(own.empty()) << "the sender did not get the viewer's marker";
  EXPECT_EQ(own.front().data, "marker") << "the sender got its own message back: "
                                        << own.front().raw;
  EXPECT_EQ(own.size(), 1u) << "the sender got more than the marker, e.g. " << own.back().raw;
}

}  // namespace
}  // namespace flowrelay::ctest
