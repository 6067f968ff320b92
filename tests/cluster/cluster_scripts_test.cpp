// broker-redis' Lua scripts on a Redis Cluster (issue #13), run directly on the nodes: every key
// a script touches in the channel's slot comes in KEYS (channel_state_lua.h), so while the slot
// migrates Redis refuses the call whole (-TRYAGAIN: some of its keys have moved) instead of
// failing it half-way at the first key that moved, after its first writes.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "../../plugins/broker-redis/history_scripts.h"
#include "../../plugins/broker-redis/reply_scripts.h"
#include "redis_cluster_set.h"

namespace flowrelay::ctest {
namespace {

class ClusterRedisClusterScripts : public ::testing::Test {
 protected:
  TempDir dir{"redis-cluster-scripts"};
};

std::string cmd(uint16_t port, const std::vector<std::string>& args) {
  return redis_command(port, args, 2s).value_or("(no answer)");
}

TEST_F(ClusterRedisClusterScripts, AnAppendIsRefusedWholeWhileItsChannelsKeysAreSplitByAMove) {
  RedisClusterSet set(dir);
  ASSERT_TRUE(set.wait_settled(20s)) << set.logs();
  const std::string ch = "chat:moving";
  const std::string stream = redis::history_stream_key(ch), seq = redis::history_seq_key(ch),
                    replies = redis::replies_key(ch), entries = redis::history_entries_key(ch);
  const int slot = set.slot_of(ch);
  for (const std::string& key : {stream, seq, replies, entries, redis::reply_text_key(ch, "r1")})
    ASSERT_EQ(set.slot_of(key), slot) << key << ": not in the channel's slot";
  const auto from = set.owner_of_slot(slot);
  ASSERT_TRUE(from.has_value());
  uint16_t to = 0;
  for (uint16_t m : set.masters())
    if (m != *from) to = m;

  const std::vector<std::string> keys{stream, seq, replies, entries};
  auto append = [&](uint16_t port, const std::string& data) {
    std::vector<std::string> args{"EVAL", redis::append_script(), "4"};
    args.insert(args.end(), keys.begin(), keys.end());
    for (const std::string& a :
         {ch, std::string("m"), data, std::string("2000"), std::string("60000"),
          std::string("1099511627776"), std::string("0"), std::string("0"), std::string("0"),
          std::string(""), std::string("0")})
      args.push_back(a);
    return cmd(port, args);
  };
  // An open reply (its state in the replies hash), then a message: all four keys exist.
  std::vector<std::string> open{"EVAL", redis::reply_script(), "5"};
  open.insert(open.end(), keys.begin(), keys.end());
  for (const std::string& a :
       {redis::reply_text_key(ch, "r1"), ch, std::string("o"), std::string("r1"), std::string("0"),
        std::string(""), std::string(""), std::string("2000"), std::string("60000"),
        std::string("1099511627776"), std::string("0"), std::string("0"), std::string(""),
        std::string("0")})
    open.push_back(a);
  ASSERT_EQ(cmd(*from, open), "*6");
  ASSERT_EQ(append(*from, "a"), "*4");
  ASSERT_EQ(cmd(*from, {"HGET", seq, "top"}), "$1 2");

  // Migrating, nothing moved yet: the owner still runs it.
  ASSERT_NO_THROW(set.begin_slot_move(slot, to)) << set.logs();
  ASSERT_EQ(append(*from, "b"), "*4");
  // The entries list moves alone (as a MIGRATE batch boundary may leave it): refused before it
  // runs, on the old owner (it has some keys) and on the new one (ASKING or not).
  ASSERT_EQ(cmd(*from, {"MIGRATE", "127.0.0.1", std::to_string(to), entries, "0", "5000"}), "+OK");
  EXPECT_EQ(append(*from, "c").rfind("-TRYAGAIN", 0), 0u) << append(*from, "c");
  EXPECT_EQ(cmd(*from, {"XLEN", stream}), ":2") << "nothing was written";
  EXPECT_EQ(cmd(*from, {"HGET", seq, "top"}), "$1 3");
  EXPECT_EQ(append(to, "c"),
            "-MOVED " + std::to_string(slot) + " 127.0.0.1:" + std::to_string(*from));

  // The rest moves, the slot is the new owner's: the append runs there, after "b".
  size_t moved = 0;
  ASSERT_NO_THROW(moved = set.migrate_slot_keys(slot, *from, to)) << set.logs();
  EXPECT_EQ(moved, 3u);  // stream, sequence, replies
  ASSERT_NO_THROW(set.finish_slot_move(slot, *from, to)) << set.logs();
  EXPECT_EQ(append(to, "c"), "*4");
  EXPECT_EQ(cmd(to, {"HGET", seq, "top"}), "$1 4");
  EXPECT_EQ(cmd(to, {"XLEN", stream}), ":3");
  EXPECT_EQ(cmd(to, {"LLEN", entries}), ":3") << "every entry accounted for";
}

}  // namespace
}  // namespace flowrelay::ctest
