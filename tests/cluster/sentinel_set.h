// A Redis Sentinel topology for the cluster tests: 1 master + 2 replicas (redis-server
// --replicaof, no persistence) and 3 redis-sentinel processes monitoring "mymaster" (quorum 2,
// down-after 2 s), all on free loopback ports in the test's TempDir.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cluster.h"

namespace flowrelay::ctest {

class SentinelSet {
 public:
  static constexpr const char* kMasterName = "mymaster";

  // Starts the three redis-servers and the three sentinels; call wait_settled().
  explicit SentinelSet(const TempDir& dir);
  // Until every sentinel knows 2 replicas and 2 other sentinels (bounded); returns whether so.
  bool wait_settled(Millis timeout = 15s) const;
  // redis+sentinel://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3/mymaster
  std::string url() const;
  // The master's port as sentinel `i` reports it (INFO sentinel), nullopt when it cannot tell.
  std::optional<uint16_t> master_port(size_t i = 0) const;
  // SIGKILLs the redis-server the first sentinel names as master; returns its port.
  uint16_t kill_master();
  // Until some sentinel reports a master other than `old_port` (bounded); the new port.
  std::optional<uint16_t> wait_new_master(uint16_t old_port, Millis timeout) const;
  // Tails of every log, for a failing test.
  std::string logs() const;

 private:
  const TempDir& _dir;
  std::vector<std::unique_ptr<RedisServer>> _nodes;  // [0] the first master
  std::vector<uint16_t> _sentinel_ports;
  std::vector<std::unique_ptr<Process>> _sentinels;
};

}  // namespace flowrelay::ctest
