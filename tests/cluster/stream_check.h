// What the failover tests (Sentinel, Redis Cluster) check of a viewer that watched a stream of
// publishes through a failure: every message whose publish was acknowledged arrives exactly
// once, in publish order, and nothing else arrives; an acknowledged message may be missing only
// where its replica counted the gap as unrecovered (said, not silent).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cluster.h"
#include "support/envelope_client.h"

namespace flowrelay::ctest {

struct Acked {
  std::string data, epoch;
  uint64_t offset = 0;
  Clock::time_point at{};  // when the acknowledgement came
};

// Reads `viewer` until every acknowledged message arrived (or 5 s of silence), then checks the
// above with GoogleTest assertions; returns how many acknowledged messages were missing.
size_t expect_acked_once_in_order(test::EnvelopeClient& viewer, Replica& replica,
                                  const std::vector<Acked>& acked,
                                  const std::vector<std::string>& published);

// A resuming client read up to its `resumed` frame: the messages replayed before it, and the
// frame (nullopt if none came within 5 s of silence).
struct Resumed {
  std::vector<std::string> replayed;
  std::optional<test::Envelope> frame;
};
Resumed read_resume(test::EnvelopeClient& client);

}  // namespace flowrelay::ctest
