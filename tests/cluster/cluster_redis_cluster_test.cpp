// flowrelayd replicas on broker-redis `mode: cluster` (issue #13) against a local Redis Cluster
// of 3 masters + 3 replicas: conversations spread over every master reach the viewers on every
// replica with their offsets; a conversation keeps streaming through a reshard of its slot and
// a manual failover with nothing lost or doubled; a master SIGKILLed mid-stream costs no
// acknowledged message silently.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cluster_fixture.h"
#include "redis_cluster_set.h"
#include "stream_check.h"
#include "support/envelope_client.h"
#include "support/http.h"
#include "support/metrics.h"

namespace flowrelay::ctest {
namespace {

const std::string kKey = "cluster-key";

class ClusterRedisClusterTest : public ClusterFixture {
 protected:
  void start_on(const RedisClusterSet& set, size_t n) {
    ReplicaOptions options;
    options.api_key = kKey;
    options.broker_options = {"mode: cluster", "reconnect_max_ms: 200"};
    for (size_t i = 0; i < n; ++i)
      replicas.push_back(
          std::make_unique<Replica>(dir, "replica" + std::to_string(i + 1), set.url(), options));
    for (auto& r : replicas) r->wait_ready(20s);
  }

  // A conversation id whose channel's slot `master` serves, not among `taken`.
  static std::string conversation_on(const RedisClusterSet& set, uint16_t master,
                                     const std::set<std::string>& taken = {}) {
    for (int i = 0;; ++i) {
      const std::string id = "c" + std::to_string(i);
      if (!taken.count(id) && set.owner_of("chat:" + id) == master) return id;
    }
  }

  // The longest wait between two consecutive acknowledgements after `from`: how long
  // publishing stood still (each publish waits for its acknowledgement).
  static Millis longest_pause(const std::vector<Acked>& acked, Clock::time_point from) {
    Millis longest{0};
    for (size_t i = 1; i < acked.size(); ++i)
      if (acked[i].at > from)
        longest =
            std::max(longest, std::chrono::duration_cast<Millis>(acked[i].at - acked[i - 1].at));
    return longest;
  }

  // Publishes data0..data{n-1} on `conv` through replica A's API; `during(i)` runs before the
  // i-th. Returns the acknowledged ones; `published` gets every one tried.
  // With `during` returning false the stream ends there (before n); true: it goes on.
  std::vector<Acked> stream(const std::string& conv, size_t n, std::vector<std::string>& published,
                            const std::function<bool(size_t)>& during = {}) {
    test::HttpSession api(replicas[0]->http_port(), 15s);
    std::vector<Acked> acked;
    for (size_t i = 0; i < n; ++i) {
      if (during && !during(i)) break;
      const std::string data = "m" + std::to_string(i);
      published.push_back(data);
      const test::Published p = test::publish_via_api(api, kKey, conv, data);
      if (p.status == 200 && p.offset && p.epoch)
        acked.push_back({data, *p.epoch, *p.offset, Clock::now()});
    }
    return acked;
  }
};

TEST_F(ClusterRedisClusterTest, ConversationsOnEveryMasterReachViewersOnBothReplicas) {
  RedisClusterSet set(dir);
  ASSERT_TRUE(set.wait_settled(20s)) << set.logs();
  start_on(set, 2);
  // Four conversations per master.
  std::set<std::string> convs;
  std::map<std::string, uint16_t> owner;
  for (uint16_t m : set.masters())
    for (int k = 0; k < 4; ++k) {
      const std::string c = conversation_on(set, m, convs);
      convs.insert(c);
      owner[c] = m;
    }
  std::map<std::string, std::vector<std::unique_ptr<test::EnvelopeClient>>> viewers;
  for (const auto& c : convs)
    for (auto& r : replicas)
      viewers[c].push_back(std::make_unique<test::EnvelopeClient>(r->ws_port(), c));

  test::HttpSession api(replicas[0]->http_port(), 10s);
  std::map<std::string, std::string> epoch;
  for (int k = 1; k <= 5; ++k)
    for (const auto& c : convs) {
      const auto p = test::publish_via_api(api, kKey, c, c + "-" + std::to_string(k));
      ASSERT_EQ(p.status, 200) << p.body;
      EXPECT_EQ(p.offset, uint64_t(k)) << c;
      epoch[c] = p.epoch.value_or("");
    }
  for (const auto& c : convs)
    for (auto& v : viewers[c]) {
      for (int k = 1; k <= 5; ++k) {
        auto e = v->next(5s);
        while (e && !e->is_message()) e = v->next(5s);
        ASSERT_TRUE(e.has_value()) << c << " message " << k;
        EXPECT_EQ(e->data, c + "-" + std::to_string(k));
        EXPECT_EQ(e->offset, uint64_t(k));
        EXPECT_EQ(e->epoch, epoch[c]);
      }
    }
  // Each conversation's history lives on its own master.
  for (const auto& c : convs)
    EXPECT_EQ(redis_command(owner[c], {"XLEN", "flowrelay:history:{chat:" + c + "}"}), ":5") << c;
  // A client resuming on the other replica gets exactly what it missed.
  const std::string c = *convs.begin();
  test::EnvelopeClient back(replicas[1]->ws_port(), test::resume_path(c, 2, epoch[c]));
  const Resumed resumed = read_resume(back);
  ASSERT_TRUE(resumed.frame.has_value());
  EXPECT_EQ(resumed.frame->recovered, std::optional<bool>(true));
  EXPECT_EQ(resumed.replayed, (std::vector<std::string>{c + "-3", c + "-4", c + "-5"}));
  for (auto& r : replicas)
    EXPECT_EQ(test::metric_value(r->http_port(), "flowrelay_broker_publish_errors_total"), 0)
        << r->name();
}

// The conversation's slot moves to another master (IMPORTING/MIGRATING, MIGRATE, SETSLOT: the
// publishes meet ASK and TRYAGAIN on the way, then MOVED), and later its new master hands over
// to its replica (CLUSTER FAILOVER), while 600 messages are published: every one acknowledged,
// every viewer gets each once in order, and the history holds them all.
TEST_F(ClusterRedisClusterTest, AReshardAndAManualFailoverMidStreamLoseAndDoubleNothing) {
  RedisClusterSet set(dir);
  ASSERT_TRUE(set.wait_settled(20s)) << set.logs();
  start_on(set, 2);
  const uint16_t from = set.masters()[0];
  const uint16_t to = set.masters()[1];
  const std::string conv = conversation_on(set, from);
  const int slot = set.slot_of("chat:" + conv);
  test::EnvelopeClient va(replicas[0]->ws_port(), conv), vb(replicas[1]->ws_port(), conv);

  // The reshard and the failover run beside the stream (a publish every 2 ms or so): the
  // stream goes on until both are over, and a while after.
  const auto replica = set.replica_of(to);
  ASSERT_TRUE(replica.has_value());
  std::atomic<bool> done{false};
  size_t after = 0;  // publishes once both were over
  Clock::time_point moving_at{}, moved_at{}, failed_over_at{};
  std::thread mover;
  std::vector<std::string> published;
  const auto acked = stream(conv, 3000, published, [&](size_t i) {
    if (i == 100) {
      mover = std::thread([&] {
        moving_at = Clock::now();
        set.move_slot(slot, to);
        moved_at = Clock::now();
        EXPECT_EQ(redis_command(*replica, {"CLUSTER", "FAILOVER"}).value_or(""), "+OK");
        wait_for([&] { return set.owner_of_slot(slot) == *replica; }, 10s, 20ms);
        failed_over_at = Clock::now();
        done = true;
      });
    }
    std::this_thread::sleep_for(2ms);
    return i < 100 || !done || ++after <= 100;
  });
  if (mover.joinable()) mover.join();
  ASSERT_TRUE(done.load());
  EXPECT_EQ(set.owner_of_slot(slot), *replica) << "the failover did not happen";
  std::cout << "[ RESHARD ] slot " << slot << " moved in "
            << std::chrono::duration_cast<Millis>(moved_at - moving_at).count()
            << " ms, failed over "
            << std::chrono::duration_cast<Millis>(failed_over_at - moved_at).count()
            << " ms later; " << acked.size() << " publishes, the longest pause between two "
            << "acknowledgements " << longest_pause(acked, moving_at).count() << " ms; replica1 "
            << "sent again after MOVED/ASK "
            << test::metric_value(replicas[0]->http_port(),
                                  "flowrelay_redis_cluster_redirects_total")
            << ", TRYAGAIN/CLUSTERDOWN "
            << test::metric_value(replicas[0]->http_port(), "flowrelay_redis_cluster_retries_total")
            << "\n";
  EXPECT_EQ(acked.size(), published.size()) << "publishes refused during the reshard";
  EXPECT_EQ(expect_acked_once_in_order(va, *replicas[0], acked, published), 0u);
  EXPECT_EQ(expect_acked_once_in_order(vb, *replicas[1], acked, published), 0u);
  // One epoch, offsets 1..N without a gap: the move and the failover kept the history.
  for (size_t i = 0; i < acked.size(); ++i) {
    EXPECT_EQ(acked[i].epoch, acked[0].epoch);
    EXPECT_EQ(acked[i].offset, i + 1);
  }
  test::EnvelopeClient all(replicas[1]->ws_port(), test::resume_path(conv, 0, acked[0].epoch));
  const Resumed resumed = read_resume(all);
  EXPECT_TRUE(resumed.frame.has_value());
  EXPECT_EQ(resumed.replayed, published);
}

// A backend streams 1,000 messages while viewers on both replicas watch; the conversation's
// master is SIGKILLed after 300. Its replica takes over (cluster-node-timeout 1000 ms): every
// viewer ends with every acknowledged message exactly once, in order (or the gap is counted as
// unrecovered); the time until publishing resumed is printed.
TEST_F(ClusterRedisClusterTest, AMasterKilledMidStreamLosesNothingAcknowledgedSilently) {
  RedisClusterSet set(dir);
  ASSERT_TRUE(set.wait_settled(20s)) << set.logs();
  start_on(set, 2);
  const auto masters = set.masters();
  const std::string conv = conversation_on(set, masters[2]);
  test::EnvelopeClient va(replicas[0]->ws_port(), conv), vb(replicas[1]->ws_port(), conv);
  Clock::time_point killed_at{};
  std::thread killer;
  std::vector<std::string> published;
  const auto acked = stream(conv, 1000, published, [&](size_t i) {
    if (i != 300) return true;
    EXPECT_TRUE(set.wait_replica_caught_up(masters[2], 5s));
    killed_at = Clock::now();
    killer = std::thread([&set] { set.kill_master(2); });  // waits for the promotion
    return true;
  });
  if (killer.joinable()) killer.join();
  ASSERT_GT(acked.size(), 300u) << "nothing acknowledged after the kill";
  // Publishing resumed with the first acknowledged publish after the kill (each publish waits
  // for its acknowledgement, so the first one after m299 is where the outage ended).
  std::cout << "[ FAILOVER ] publishing stood still " << longest_pause(acked, killed_at).count()
            << " ms after the master's SIGKILL (cluster-node-timeout 1000 ms); " << acked.size()
            << " of 1000 acknowledged\n";
  const size_t missing = expect_acked_once_in_order(va, *replicas[0], acked, published) +
                         expect_acked_once_in_order(vb, *replicas[1], acked, published);
  std::cout << "[ FAILOVER ] acknowledged messages missing at the viewers: " << missing << "\n";
}

}  // namespace
}  // namespace flowrelay::ctest
