// broker-redis histories that lose keys (with_redis.sh's Redis): `maxmemory` with
// `maxmemory-policy volatile-lru` evicting whole keys (every key of ours has a TTL), and each
// key of a channel deleted on its own. A read must answer either the epoch it had with
// everything above `trimmed`, or no / another epoch (its readers are told recovered:false):
// never the old epoch with a silent hole, never a crash or a wrong snapshot.
#include <functional>
#include <iostream>
#include <map>
#include <thread>

#include "broker_redis_reply_fixture.h"

namespace flowrelay::test {
namespace {

using namespace std::chrono_literals;

// What a channel was given: data by offset, in one epoch.
struct Truth {
  std::string epoch;
  std::map<uint64_t, std::string> data;
};

// The answer is the old epoch with everything above `trimmed`, or not the old epoch at all.
// Returns true if it is the old epoch.
bool check_honest(const ReplyHistory& h, const Truth& truth, const std::string& what) {
  EXPECT_EQ(h.status, FLOWRELAY_OK) << what;
  EXPECT_TRUE(h.trimmed_known) << what;
  if (h.epoch != truth.epoch) return false;
  std::map<uint64_t, std::string> got;
  for (const auto& m : h.messages) got[m.offset] = m.data;
  for (const auto& [offset, data] : truth.data) {
    if (offset <= h.trimmed) continue;
    const auto it = got.find(offset);
    if (it == got.end()) {
      ADD_FAILURE() << what << ": offset " << offset << " > trimmed " << h.trimmed
                    << " is missing from epoch " << h.epoch;
      continue;
    }
    EXPECT_EQ(it->second, data) << what << ": offset " << offset;
  }
  return true;
}

class BrokerRedisEviction : public BrokerRedisReplies {
 protected:
  // m1, reply a (ended: "a1a2"), m4 .. reply b open ("b1b2", newest delta last), m9.
  Truth fill(ReplyNode& node, const std::string& ch) {
    Truth t;
    auto put = [&](uint64_t offset, const std::string& data, const std::string& epoch) {
      EXPECT_NE(offset, 0u);
      t.data[offset] = data;
      t.epoch = epoch;
    };
    auto m = publish(node, ch, "m1");
    put(m.offset, "m1", m.epoch);
    delta(node, ch, "a", 1, "a1");
    delta(node, ch, "a", 2, "a2");
    const StepResult a = end(node, ch, "a");
    put(a.offset, "a1a2", a.epoch);
    m = publish(node, ch, "m5");
    put(m.offset, "m5", m.epoch);
    delta(node, ch, "b", 1, "b1");
    const StepResult b = delta(node, ch, "b", 2, "b2");
    put(b.offset, "b1b2", b.epoch);
    m = publish(node, ch, "m8");
    put(m.offset, "m8", m.epoch);
    return t;
  }
};

// One key of a channel deleted by hand (what eviction may do to any of them).
TEST_F(BrokerRedisEviction, AChannelMissingOneKeyIsAnsweredHonestly) {
  ReplyNode& node = start_node();
  for (const std::string which : {"stream", "entries", "seq", "replies", "text"}) {
    const std::string ch = channel("lost-" + which);
    const Truth truth = fill(node, ch);
    ASSERT_EQ(check_honest(history(node, ch, 0), truth, which + " before"), true);
    const std::string key = which == "stream"    ? stream_key(ch)
                            : which == "entries" ? "flowrelay:entries:{" + ch + "}"
                            : which == "seq"     ? seq_key(ch)
                            : which == "replies" ? replies_key(ch)
                                                 : text_key(ch, "b");
    ASSERT_EQ(integer({"DEL", key}), 1) << key;
    const ReplyHistory h = history(node, ch, 0);
    const bool same = check_honest(h, truth, which);
    if (which == "text") {
      // Only reply b lost its text: the rest stands, b counts as trimmed.
      EXPECT_TRUE(same);
      EXPECT_EQ(h.trimmed, 7u);
      EXPECT_EQ(h.messages.size(), 4u) << "m1, a, m5, m8";
      for (const auto& m : h.messages) EXPECT_NE(m.id, "b");
    } else {
      EXPECT_FALSE(same) << which << ": a hole in the old epoch";
      EXPECT_EQ(h.epoch, "") << which;
    }
    // Reply b is unknown now either way: its next delta is refused, a new history starts.
    const StepResult next = delta(node, ch, "b", 3, "b3");
    EXPECT_EQ(next.status, FLOWRELAY_ECONFLICT) << which;
    EXPECT_EQ(next.expected_seq, 1u) << which;
    const auto after = publish(node, ch, "after");
    if (which != "text") {
      EXPECT_NE(after.epoch, truth.epoch) << which;
      EXPECT_EQ(after.offset, 1u) << which;
      // Nothing of the old epoch collides with the new one (a text key whose replies hash
      // went cannot be found: it expires, and a new reply of that id overwrites it).
      EXPECT_EQ(integer({"XLEN", stream_key(ch)}), 1) << which;
      EXPECT_EQ(integer({"EXISTS", replies_key(ch)}), 0) << which;
      if (which != "replies") {
        EXPECT_EQ(integer({"EXISTS", text_key(ch, "b")}), 0) << which;
      }
    }
    ASSERT_EQ(delta(node, ch, "b", 1, "new b").status, FLOWRELAY_OK) << which;
    const ReplyHistory fresh = history(node, ch, after.offset);
    ASSERT_EQ(fresh.messages.size(), 1u) << which;
    EXPECT_EQ(fresh.messages[0].data, "new b") << which << ": an old text came back";
  }
}

// Restores the server's memory settings whatever the test does.
struct MemoryPolicy {
  std::function<void()> restore;
  ~MemoryPolicy() { restore(); }
};

long long info_field(const std::string& info, const std::string& field) {
  const size_t at = info.find(field + ":");
  return at == std::string::npos ? -1 : std::stoll(info.substr(at + field.size() + 1));
}

TEST_F(BrokerRedisEviction, EvictedHistoriesResumeHonestly) {
  allow_errors_ = true;  // Redis may refuse a script while it evicts (OOM): reported
  ReplyNode& node = start_node("history_size=100000;history_max_bytes=1099511627776");
  auto info = [&](const char* section) {
    Reply r = command({"INFO", section});
    return std::string(r->str, r->len);
  };
  const long long used = info_field(info("memory"), "used_memory");
  const long long evicted_before = info_field(info("stats"), "evicted_keys");
  ASSERT_GT(used, 0);
  ASSERT_EQ(command({"CONFIG", "SET", "maxmemory-policy", "volatile-lru"})->type,
            REDIS_REPLY_STATUS);
  ASSERT_EQ(command({"CONFIG", "SET", "maxmemory", std::to_string(used + 3 * 1024 * 1024)})->type,
            REDIS_REPLY_STATUS);
  MemoryPolicy guard{[&] {
    command({"CONFIG", "SET", "maxmemory", "0"});
    command({"CONFIG", "SET", "maxmemory-policy", "noeviction"});
  }};
  // 8 MB into 3: many channels, each with messages, a compacted reply and an open one.
  const std::string big(2000, 'x');
  std::map<std::string, Truth> truth;
  for (int c = 0; c < 200; ++c) {
    const std::string ch = channel("evict-" + std::to_string(c));
    Truth& t = truth[ch];
    for (int i = 0; i < 20; ++i) {
      const auto r = publish(node, ch, big + std::to_string(i));
      if (r.status != FLOWRELAY_OK) continue;
      if (r.epoch != t.epoch) t = Truth{r.epoch, {}};  // a new history began (its seq went)
      t.data[r.offset] = big + std::to_string(i);
    }
    const StepResult d = delta(node, ch, "r", 1, big);
    if (d.status == FLOWRELAY_OK && d.epoch == t.epoch) t.data[d.offset] = big;
  }
  const long long evicted = info_field(info("stats"), "evicted_keys") - evicted_before;
  std::cout << "[ MEASURE  ] " << evicted << " keys evicted\n";
  ASSERT_GT(evicted, 0) << "nothing was evicted: the test proves nothing";
  int same = 0, other = 0;
  for (const auto& [ch, t] : truth) {
    const ReplyHistory h = history(node, ch, 0);
    if (check_honest(h, t, ch))
      ++same;
    else
      ++other;
    // The open reply, when still there, is whole.
    for (const auto& m : h.messages) {
      if (m.kind == FLOWRELAY_KIND_SNAPSHOT) {
        EXPECT_EQ(m.data, big) << ch;
      }
    }
  }
  std::cout << "[ MEASURE  ] " << same << " channels kept their epoch, " << other
            << " lost it (recovered:false)\n";
  EXPECT_GT(other, 0) << "evictions hit no history";
}

}  // namespace
}  // namespace flowrelay::test
