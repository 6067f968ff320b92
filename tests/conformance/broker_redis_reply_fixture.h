// What the broker-redis reply suites share (broker_redis_replies_test.cpp,
// broker_redis_eviction_test.cpp; run through with_redis.sh like broker_redis_history_test):
// nodes (broker instances with their own test host) on the private Redis, a raw connection to
// look at the keys, reply steps with their completions, history reads that keep each entry's
// reply, and a raw subscriber that decodes what the scripts PUBLISH (wire_format.h).
#pragma once

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "broker_test_host.h"
#include "plugin_loader.h"

namespace flowrelay::test {

struct ReplyFree {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyFree>;

// A message with its reply info, copied (from a history read or the raw subscriber).
struct ReplyMessage {
  uint64_t offset = 0;
  std::string epoch, data;
  Origin origin;
  flowrelay_kind kind = FLOWRELAY_KIND_MESSAGE;
  std::string id, reason, error;
  uint64_t seq = 0, bytes = 0;
  int64_t ttft_ms = -1, duration_ms = -1;
};
ReplyMessage copy_message(const flowrelay_message& m);

// The outcome of one publish_reply(), copied.
struct StepResult {
  int calls = 0;
  flowrelay_status status = -1;
  bool duplicate = false;
  uint64_t offset = 0, expected_seq = 0;
  std::string epoch, ended;
};

// Completions of many publish_reply() calls (slot i: call i).
class StepLog {
 public:
  explicit StepLog(size_t n) : _slots(n) {
    for (auto& s : _slots) s.owner = this;
  }
  void* ctx(size_t i) { return &_slots[i]; }
  static void on_done(void* ctx, const flowrelay_reply_published* p) noexcept;
  bool wait(std::chrono::steady_clock::duration timeout);
  std::vector<StepResult> results() const;

 private:
  struct Slot {
    StepLog* owner;
    StepResult result;
  };
  mutable std::mutex _mutex;
  std::condition_variable _changed;
  std::vector<Slot> _slots;
  size_t _called = 0;
};

// One history() answer with replies and `trimmed`.
struct ReplyHistory {
  flowrelay_status status = -1;
  std::string epoch;
  uint64_t top = 0, trimmed = 0;
  bool trimmed_known = false;
  std::vector<ReplyMessage> messages;
};

// A plain hiredis connection SUBSCRIBEd to one channel: what Redis PUBLISHes, decoded.
class RawSubscriber {
 public:
  RawSubscriber(const std::string& socket, const std::string& channel);
  ~RawSubscriber();
  // Everything published until nothing came for `quiet`.
  std::vector<ReplyMessage> collect(std::chrono::milliseconds quiet);

 private:
  redisContext* _c = nullptr;
};

struct ReplyNode {
  BrokerTestHost host;
  flowrelay_broker* broker = nullptr;
};

class BrokerRedisReplies : public ::testing::Test {
 protected:
  static constexpr auto kTimeout = std::chrono::seconds(10);
  static void SetUpTestSuite();
  static void TearDownTestSuite() { plugin_.reset(); }
  void SetUp() override;
  void TearDown() override;

  std::string channel(const std::string& name) const { return prefix_ + name; }
  static std::string stream_key(const std::string& ch) { return "flowrelay:history:{" + ch + "}"; }
  static std::string seq_key(const std::string& ch) { return "flowrelay:seq:{" + ch + "}"; }
  static std::string replies_key(const std::string& ch) { return "flowrelay:replies:{" + ch + "}"; }
  static std::string text_key(const std::string& ch, const std::string& id) {
    return "flowrelay:reply-text:{" + ch + "}:" + id;
  }

  Reply command(const std::vector<std::string>& args);
  long long integer(const std::vector<std::string>& args);
  // create() + start() with the configured options plus `extra` ("k=v;...").
  ReplyNode& start_node(const std::string& extra = "");
  // Queues one step (returns publish_reply's status; the completion goes to log slot i).
  flowrelay_status send_step(ReplyNode& node, const std::string& ch, flowrelay_kind kind,
                             const std::string& id, uint64_t seq, const std::string& data,
                             const std::string& reason, StepLog& log, size_t i);
  // One step, waited for.
  StepResult step(ReplyNode& node, const std::string& ch, flowrelay_kind kind,
                  const std::string& id, uint64_t seq = 0, const std::string& data = "",
                  const std::string& reason = "");
  StepResult open(ReplyNode& n, const std::string& ch, const std::string& id) {
    return step(n, ch, FLOWRELAY_KIND_OPEN, id);
  }
  StepResult delta(ReplyNode& n, const std::string& ch, const std::string& id, uint64_t seq,
                   const std::string& data) {
    return step(n, ch, FLOWRELAY_KIND_DELTA, id, seq, data);
  }
  StepResult end(ReplyNode& n, const std::string& ch, const std::string& id,
                 const std::string& reason = "done", const std::string& error = "") {
    return step(n, ch, FLOWRELAY_KIND_END, id, 0, error, reason);
  }
  PublishedLog::Result publish(ReplyNode& node, const std::string& ch, const std::string& data);
  ReplyHistory history(ReplyNode& node, const std::string& ch, uint64_t since);
  std::string socket() const { return socket_; }

  static std::shared_ptr<LoadedPlugin> plugin_;
  static std::string load_error_;
  const flowrelay_broker_vtable* vt_ = nullptr;
  redisContext* redis_ = nullptr;
  std::string socket_, prefix_;
  std::vector<std::unique_ptr<ReplyNode>> nodes_;
  bool allow_errors_ = false;
};

}  // namespace flowrelay::test
