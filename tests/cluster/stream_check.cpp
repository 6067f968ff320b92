#include "stream_check.h"

#include <gtest/gtest.h>

#include <iostream>
#include <set>

#include "support/metrics.h"

namespace flowrelay::ctest {

size_t expect_acked_once_in_order(test::EnvelopeClient& viewer, Replica& replica,
                                  const std::vector<Acked>& acked,
                                  const std::vector<std::string>& published) {
  SCOPED_TRACE("viewer on " + replica.name());
  std::vector<std::string> got;
  std::set<std::string> want;
  for (const auto& a : acked) want.insert(a.data);
  size_t seen = 0;
  while (seen < want.size()) {
    auto e = viewer.next(5s);
    if (!e) break;
    if (!e->is_message() || !e->data) continue;
    got.push_back(*e->data);
    if (want.count(*e->data)) ++seen;
  }
  // Once each, in publish order, nothing that was not published.
  size_t j = 0;
  for (const auto& m : got) {
    while (j < published.size() && published[j] != m) ++j;
    EXPECT_LT(j, published.size()) << m << ": not published, out of order, or twice";
    if (j >= published.size()) break;
    ++j;
  }
  const size_t missing = want.size() - seen;
  if (missing > 0) {
    const double unrecovered =
        test::metric_value(replica.http_port(), "flowrelay_redis_gap_unrecovered_total");
    EXPECT_GT(unrecovered, 0) << missing
                              << " acknowledged message(s) missing, and the replica did not say";
    std::cout << "[ FAILOVER ] " << replica.name() << ": " << missing
              << " acknowledged message(s) lost by Redis, counted as unrecovered\n";
  }
  return missing;
}

Resumed read_resume(test::EnvelopeClient& client) {
  Resumed r;
  while (auto e = client.next(5s)) {
    if (e->type == "resumed") {
      r.frame = e;
      break;
    }
    if (e->is_message() && e->data) r.replayed.push_back(*e->data);
  }
  return r;
}

}  // namespace flowrelay::ctest
