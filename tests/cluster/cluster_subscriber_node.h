// The parts of broker-redis' mode: cluster (issue #13) as RedisBroker will assemble them: the
// slot map upkeep (cluster_map.h) and the subscriber following it (cluster_subscriber.h) on the
// broker-like loop in the test's thread (broker_loop.h), the conformance test host as the
// daemon, against a local Redis Cluster (redis_cluster_set.h); helpers for the
// cluster_subscriber tests. history_size=0: there is no Publisher in these tests (no gap
// reads); messages are SPUBLISHed from outside.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "broker_loop.h"
#include "cluster_map.h"
#include "cluster_subscriber.h"
#include "redis_cluster_set.h"
#include "slot_map.h"

namespace flowrelay::ctest {

using redis::ClusterMap;
using redis::ClusterSubscriber;

inline std::vector<redis::RedisEndpoint> seeds_of(const std::vector<uint16_t>& ports) {
  std::vector<redis::RedisEndpoint> seeds;
  for (uint16_t p : ports) {
    redis::RedisEndpoint ep;
    ep.host = "127.0.0.1";
    ep.port = p;
    seeds.push_back(ep);
  }
  return seeds;
}

// What RedisBroker will assemble in mode: cluster: the map, the subscriber following it, both
// checked every turn.
class Node {
 public:
  explicit Node(const std::vector<uint16_t>& seed_ports,
                ClusterSubscriber::PublisherHooks hooks = {})
      : loop("history_size=0", seeds_of(seed_ports)) {
    map = std::make_unique<ClusterMap>(loop.ctx(), loop.ctx().options.cluster_seeds, [this] {
      ++map_changes;
      if (sub) sub->map_changed();
    });
    sub = std::make_unique<ClusterSubscriber>(loop.ctx(), *map, std::move(hooks), &Node::wake, this,
                                              [this] { ++state_changes; });
    loop.on_turn([this](int64_t now) {
      sub->take_ops();
      sub->check(now);
      map->check(now);
      map->free_dead_adapters();
    });
  }
  ~Node() {
    loop.ctx().closing = true;
    sub.reset();
    map->close();
    map->free_dead_adapters();
  }

  // Runs until every channel of `channels` has its subscribed() answer.
  bool answered(const std::vector<std::string>& channels, Millis timeout = 10s) {
    return loop.run_until(
        [&] {
          take_answers();
          for (const auto& ch : channels)
            if (answers[ch].empty()) return false;
          return true;
        },
        timeout);
  }
  void take_answers() {
    for (auto& [ch, list] : answers)
      while (auto st = loop.host.take_subscribed(ch, 0ms)) list.push_back(*st);
  }
  void subscribe(const std::string& ch) {
    answers[ch];  // watched from now on
    sub->subscribe(ch);
  }
  bool steady(Millis timeout = 10s) {
    return loop.run_until([&] { return sub->links_up() && sub->resubscribed(); }, timeout);
  }

  BrokerLoop loop;
  std::unique_ptr<ClusterMap> map;
  std::unique_ptr<ClusterSubscriber> sub;
  std::map<std::string, std::vector<flowrelay_status>> answers;
  int wakes = 0, map_changes = 0, state_changes = 0;

 private:
  static void wake(void* self) { ++static_cast<Node*>(self)->wakes; }
};

inline std::string spublish(uint16_t port, const std::string& ch, const std::string& data) {
  return redis_command(port, {"SPUBLISH", ch, data}).value_or("(no answer)");
}

// `n` channels named prefix + i whose slot `port` owns (other slots than `not_slot`).
inline std::vector<std::string> channels_on(const RedisClusterSet& set, uint16_t port,
                                            const std::string& prefix, size_t n,
                                            int not_slot = -1) {
  std::vector<std::string> out;
  for (int i = 0; out.size() < n; ++i) {
    const std::string ch = prefix + std::to_string(i);
    const int slot = redis::key_slot(ch);
    if (slot != not_slot && set.owner_of_slot(slot) == port) out.push_back(ch);
  }
  return out;
}

inline std::vector<std::string> numbered(const std::string& prefix, int n) {
  std::vector<std::string> out;
  for (int k = 0; k < n; ++k) out.push_back(prefix + std::to_string(k));
  return out;
}

inline std::vector<std::string> without(std::vector<std::string> v, const std::string& drop) {
  std::erase(v, drop);
  return v;
}

class ClusterSubscriberTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(set.wait_settled(20s)) << set.logs(); }
  TempDir dir{"cluster-subscriber"};
  RedisClusterSet set{dir};
};

}  // namespace flowrelay::ctest
