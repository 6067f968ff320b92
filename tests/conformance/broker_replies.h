// Reply steps for the broker tests (ABI 2.2 publish_reply): one call and its completion, and
// the fixture of the reply suites. A broker without reply streams (slot missing or NULL, or
// FLOWRELAY_EUNSUPPORTED) has the suites' tests skipped with the reason: the one test that
// asserts exactly that refusal is BrokerReplySupport (conformance_replies_test.cpp).
#pragma once

#include <flowrelay/plugin.h>

#include <condition_variable>
#include <mutex>
#include <ostream>
#include <string>

#include "broker_fixture.h"

namespace flowrelay::test {

// The outcome of one publish_reply(): what it returned, and its completion (flowrelay_reply_
// published) when it returned FLOWRELAY_OK.
struct ReplyResult {
  flowrelay_status returned = -1;
  int calls = 0;  // completions seen (exactly 1 when returned is FLOWRELAY_OK)
  flowrelay_status status = -1;
  bool duplicate = false;
  uint64_t offset = 0;
  std::string epoch;
  uint64_t expected_seq = 0;
  std::string ended;
  bool bad_struct = false;  // a completion without a result or with a short struct_size
};
inline void PrintTo(const ReplyResult& r, std::ostream* out) {
  *out << "{returned " << r.returned << ", calls " << r.calls << ", status " << r.status
       << ", duplicate " << r.duplicate << ", offset " << r.offset << ", epoch '" << r.epoch
       << "', expected_seq " << r.expected_seq << ", ended '" << r.ended << "'}";
}

// A producer's step: kind OPEN, DELTA (seq, data) or END (reason, error).
struct Step {
  flowrelay_kind kind;
  std::string id;
  uint64_t seq = 0;
  std::string data;
  std::string reason;
  std::string error;
};
inline Step open_step(std::string id) {
  return {FLOWRELAY_KIND_OPEN, std::move(id), 0, "", "", ""};
}
inline Step delta_step(std::string id, uint64_t seq, std::string data) {
  return {FLOWRELAY_KIND_DELTA, std::move(id), seq, std::move(data), "", ""};
}
inline Step end_step(std::string id, std::string reason = "done", std::string error = "") {
  return {FLOWRELAY_KIND_END, std::move(id), 0, "", std::move(reason), std::move(error)};
}

inline bool has_publish_reply(const flowrelay_broker_vtable* vt) {
  return FLOWRELAY_HAS_SLOT(vt, flowrelay_broker_vtable, publish_reply) && vt->publish_reply;
}

// publish_reply() of `step` (origin {host's node, session 0, 0}) and, when it returned
// FLOWRELAY_OK, its completion (waited for up to kDeliveryTimeout).
ReplyResult publish_step(const flowrelay_broker_vtable* vt, flowrelay_broker* b,
                         const BrokerTestHost& host, const std::string& ch, const Step& step);

// Why the broker under test has no reply streams ("" if it has them): asked once, of a started
// instance with the configured options.
const std::string& replies_missing();

// The reply suites: every test is skipped, with the reason, for a broker without replies.
class BrokerReplyFixture : public BrokerFixture {
 protected:
  void SetUp() override;
  ReplyResult step(const std::string& ch, const Step& s) {
    return publish_step(vt_, broker_, host_, ch, s);
  }
  // step() that must be accepted and stored (not a duplicate); returns its offset.
  uint64_t stored(const std::string& ch, const Step& s);
  // The deliveries of `ch` that carry reply info.
  std::vector<Message> reply_deliveries(const std::string& ch) const;
  // Starts the broker with `extra` options, skipping the test (with the reason) when the broker
  // does not take them (an option of broker-local and broker-redis, not of the ABI).
  void start_with_option(const std::string& extra);
};

class BrokerReplies : public BrokerReplyFixture {};
// Reply suites that read history: skipped as well for a broker that keeps none.
class BrokerReplyHistory : public BrokerReplyFixture {
 protected:
  void SetUp() override;
};

}  // namespace flowrelay::test
