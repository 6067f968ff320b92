// The fixture of every cluster test: a private redis-server per test, replicas started on it,
// nginx in front when a test asks; logs of each shown when a test fails; all stopped after.
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cluster.h"
#include "support/ports.h"
#include "support/text.h"

namespace flowrelay::ctest {

class ClusterFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { raise_nofile_limit(); }

  void SetUp() override { redis = std::make_unique<RedisServer>(dir); }

  void TearDown() override {
    if (HasFailure()) {
      for (auto& r : replicas) {
        std::cerr << "---- replica " << r->name() << " log (tail) ----\n"
                  << tail_lines(r->log(), 40);
      }
      if (redis) std::cerr << "---- redis log (tail) ----\n" << tail_lines(redis->log(), 15);
      if (nginx)
        std::cerr << "---- nginx error log (tail) ----\n" << tail_lines(nginx->error_log(), 15);
    }
    // Processes go in reverse order of their start; each is SIGKILLed (group) and reaped.
    nginx.reset();
    replicas.clear();
    redis.reset();
  }

  // Starts n replicas (in parallel) on this test's Redis and waits until all are ready.
  void start_replicas(size_t n, const ReplicaOptions& options = {}) {
    const size_t first = replicas.size();
    for (size_t i = 0; i < n; ++i) {
      const std::string name = "replica" + std::to_string(first + i + 1);
      replicas.push_back(std::make_unique<Replica>(dir, name, redis->url(), options));
    }
    for (size_t i = first; i < replicas.size(); ++i) replicas[i]->wait_ready();
  }

  // nginx from deploy/nginx.conf in front of the first three replicas.
  void start_nginx() {
    nginx = std::make_unique<Nginx>(
        dir, std::array<std::string, 3>{replicas[0]->ws_address(), replicas[1]->ws_address(),
                                        replicas[2]->ws_address()});
  }

  // The test's logs and configs; nginx workers run as nobody and must traverse it.
  TempDir dir{"cluster", TempDir::Access::Everyone};
  std::unique_ptr<RedisServer> redis;
  std::vector<std::unique_ptr<Replica>> replicas;
  std::unique_ptr<Nginx> nginx;
};

}  // namespace flowrelay::ctest
