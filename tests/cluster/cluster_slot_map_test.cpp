// broker-redis' Redis Cluster routing (plugins/broker-redis/slot_map.h, issue #13) against a real
// cluster (RedisClusterSet: 3 masters + 3 replicas): key_slot agrees with CLUSTER KEYSLOT, a
// SlotMap built from a live CLUSTER SLOTS names the owners CLUSTER NODES names, and after a slot
// move the old owner's MOVED (and the ASK on the way) parse to the new owner.
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <iostream>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "redis_cluster_set.h"
#include "slot_map.h"
#include "support/ports.h"

namespace flowrelay::ctest {
namespace {

using redis::key_slot;
using redis::parse_redirect;
using redis::Redirect;
using redis::RedisEndpoint;
using redis::SlotMap;

struct ContextDeleter {
  void operator()(redisContext* c) const { redisFree(c); }
};
struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Context = std::unique_ptr<redisContext, ContextDeleter>;
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

RedisEndpoint endpoint(uint16_t port) {
  RedisEndpoint e;
  e.host = "127.0.0.1";
  e.port = port;
  return e;
}

Context connect(uint16_t port) {
  const timeval tv{2, 0};
  Context c(redisConnectWithTimeout("127.0.0.1", port, tv));
  if (c && !c->err) redisSetTimeout(c.get(), tv);
  return c;
}

// One command (binary-safe arguments) on a synchronous connection; nullptr on I/O failure.
Reply command(redisContext* c, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  return Reply(static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(args.size()), argv.data(), lens.data())));
}

// A SlotMap from the CLUSTER SLOTS of the node on `port`; fails the test when there is none.
std::optional<SlotMap> fresh_map(uint16_t port) {
  Context c = connect(port);
  EXPECT_TRUE(c && !c->err) << "connect to " << port << ": " << (c ? c->errstr : "no memory");
  if (!c || c->err) return std::nullopt;
  const Reply r = command(c.get(), {"CLUSTER", "SLOTS"});
  std::string error;
  auto map = SlotMap::from_cluster_slots(r.get(), RedisEndpoint{}, endpoint(port), error);
  EXPECT_TRUE(map.has_value()) << error;
  return map;
}

class ClusterSlotMap : public ::testing::Test {
 protected:
  void SetUp() override {
    set = std::make_unique<RedisClusterSet>(dir);
    ASSERT_TRUE(set->wait_settled(20s)) << set->logs();
  }
  TempDir dir{"redis-slot-map"};
  std::unique_ptr<RedisClusterSet> set;
};

TEST_F(ClusterSlotMap, KeySlotAgreesWithClusterKeyslot) {
  std::vector<std::string> keys;
  for (int n = 0; n < 500; ++n) {
    keys.push_back("chat:" + std::to_string(n));
    keys.push_back("flowrelay:history:{chat:" + std::to_string(n) + "}");
  }
  for (const char* k : {"", "{", "}", "{}", "{}{x}", "foo{}{bar}", "foo{{bar}}zap", "foo{bar}{zap}",
                        "{user1000}.following", "a{b", "a}b{c}", "\xc3\xa9t\xc3\xa9:{caf\xc3\xa9}"})
    keys.push_back(k);
  // The rest pseudo-random (fixed seed): any byte, braces often, lengths 0 to 64.
  std::mt19937 rng(13);
  const std::string alphabet = "{}{}:ab-_09";
  while (keys.size() < 2000) {
    std::string k(rng() % 65, '\0');
    for (char& ch : k)
      ch = rng() % 2 ? alphabet[rng() % alphabet.size()] : static_cast<char>(rng() % 256);
    keys.push_back(k);
  }
  // CLUSTER KEYSLOT, a connection per key; the first 10 mismatches are told.
  const auto started = Clock::now();
  size_t mismatches = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    const int redis = set->slot_of(keys[i]);
    if (redis != key_slot(keys[i]) && ++mismatches <= 10)
      ADD_FAILURE() << "key #" << i << " (" << keys[i].size() << " bytes): Redis says " << redis
                    << ", key_slot " << key_slot(keys[i]);
  }
  EXPECT_EQ(mismatches, 0u);
  std::cout << keys.size() << " keys, " << mismatches << " mismatches, "
            << std::chrono::duration_cast<Millis>(Clock::now() - started).count() << " ms\n";
}

TEST_F(ClusterSlotMap, MapFromClusterSlotsMatchesTheOwners) {
  const auto masters = set->masters();
  ASSERT_EQ(masters.size(), 3u);
  // The raw shape, for the record (Redis 7: [start, end, [ip, port, id, {metadata}], ...]).
  {
    Context c = connect(masters[0]);
    ASSERT_TRUE(c && !c->err);
    const Reply r = command(c.get(), {"CLUSTER", "SLOTS"});
    ASSERT_TRUE(r && r->type == REDIS_REPLY_ARRAY && r->elements > 0);
    const redisReply* first = r->element[0];
    std::cout << "CLUSTER SLOTS: " << r->elements << " ranges; the first has " << first->elements
              << " elements, its master " << first->element[2]->elements << " (types";
    for (size_t i = 0; i < first->element[2]->elements; ++i)
      std::cout << ' ' << first->element[2]->element[i]->type;
    std::cout << ")\n";
  }
  for (uint16_t asked : masters) {
    const auto map = fresh_map(asked);
    ASSERT_TRUE(map.has_value());
    EXPECT_TRUE(map->covers_all());
    std::vector<uint16_t> ports;
    for (const auto& m : map->masters()) {
      EXPECT_EQ(m.host, "127.0.0.1");
      ports.push_back(static_cast<uint16_t>(m.port));
    }
    EXPECT_EQ(ports, masters);  // both in the order of their lowest slot
    std::vector<int> sample{0, 1, 5460, 5461, 10922, 10923, 16382, 16383};
    for (int s = 0; s < RedisClusterSet::kSlots; s += 331) sample.push_back(s);
    for (int s : sample) {
      const RedisEndpoint* owner = map->owner(static_cast<uint16_t>(s));
      ASSERT_NE(owner, nullptr) << "slot " << s;
      EXPECT_EQ(std::optional<uint16_t>(owner->port), set->owner_of_slot(s)) << "slot " << s;
    }
  }
}

TEST_F(ClusterSlotMap, AMovedSlotRedirectsToItsNewOwner) {
  const std::string key = "flowrelay:history:{chat:42}", absent = "flowrelay:seq:{chat:42}";
  const int slot = key_slot(key);
  ASSERT_EQ(set->slot_of(key), slot);
  const auto from = set->owner_of_slot(slot);
  ASSERT_TRUE(from.has_value());
  uint16_t to = 0;
  for (uint16_t m : set->masters())
    if (m != *from) to = m;
  auto before = fresh_map(*from);
  ASSERT_TRUE(before.has_value());
  ASSERT_EQ(before->owner(static_cast<uint16_t>(slot))->port, *from);

  Context old_owner = connect(*from);
  ASSERT_TRUE(old_owner && !old_owner->err);
  Reply r = command(old_owner.get(), {"SET", key, "v1"});
  ASSERT_TRUE(r && r->type == REDIS_REPLY_STATUS);

  // Mid-migration the old owner answers ASK for a key it does not hold.
  ASSERT_NO_THROW(set->begin_slot_move(slot, to)) << set->logs();
  r = command(old_owner.get(), {"GET", absent});
  ASSERT_TRUE(r && r->type == REDIS_REPLY_ERROR);
  std::cout << "mid-migration: \"" << r->str << "\"\n";
  auto redirect = parse_redirect(std::string_view(r->str, r->len));
  ASSERT_TRUE(redirect.has_value()) << r->str;
  EXPECT_EQ(redirect->kind, Redirect::Ask);
  EXPECT_EQ(redirect->slot, slot);
  EXPECT_EQ(redirect->port, to);
  ASSERT_NO_THROW(set->migrate_slot_keys(slot, *from, to)) << set->logs();
  ASSERT_NO_THROW(set->finish_slot_move(slot, *from, to)) << set->logs();

  // A fresh map (asked of any master) names `to`; the old owner answers MOVED there.
  for (uint16_t asked : set->masters()) {
    const auto after = fresh_map(asked);
    ASSERT_TRUE(after.has_value());
    ASSERT_NE(after->owner(static_cast<uint16_t>(slot)), nullptr);
    EXPECT_EQ(after->owner(static_cast<uint16_t>(slot))->port, to) << "asked " << asked;
    EXPECT_TRUE(after->covers_all());
  }
  r = command(old_owner.get(), {"GET", key});
  ASSERT_TRUE(r && r->type == REDIS_REPLY_ERROR);
  std::cout << "after the move: \"" << r->str << "\"\n";
  redirect = parse_redirect(std::string_view(r->str, r->len));
  ASSERT_TRUE(redirect.has_value()) << r->str;
  EXPECT_EQ(redirect->kind, Redirect::Moved);
  EXPECT_EQ(redirect->slot, slot);
  EXPECT_EQ(redirect->host, "127.0.0.1");
  EXPECT_EQ(redirect->port, to);

  // The old map patched by the MOVED agrees with a fresh one, and the key is there.
  before->assign(redirect->slot, endpoint(static_cast<uint16_t>(redirect->port)));
  EXPECT_EQ(before->owner(static_cast<uint16_t>(slot))->port, to);
  Context new_owner = connect(to);
  ASSERT_TRUE(new_owner && !new_owner->err);
  r = command(new_owner.get(), {"GET", key});
  ASSERT_TRUE(r && r->type == REDIS_REPLY_STRING);
  EXPECT_EQ(std::string(r->str, r->len), "v1");
}

// The other shapes of a master's host, from real nodes rather than hand-made replies: a node
// that has never met another does not know its own address (CLUSTER SLOTS says ""), and with
// cluster-preferred-endpoint-type unknown-endpoint every host is nil (and MOVED says ":port").
TEST(ClusterSlotMapHosts, EmptyAndNilHostsAreTheAskedNode) {
  TempDir dir{"redis-slot-map-hosts"};
  std::unique_ptr<RedisServer> lone;
  for (int attempt = 1; !lone; ++attempt) {
    const uint16_t port = free_port_pair(10000);  // the cluster bus is port + 10000
    try {
      lone = std::make_unique<RedisServer>(
          dir, port,
          std::vector<std::string>{"--cluster-enabled", "yes", "--cluster-config-file",
                                   dir.file("nodes-" + std::to_string(port) + ".conf")},
          "redis-lone");
    } catch (const std::exception&) {
      if (attempt == 3) throw;
    }
  }
  const uint16_t port = lone->port();
  ASSERT_EQ(redis_command(port, {"CLUSTER", "ADDSLOTSRANGE", "0", "16383"}), "+OK");
  Context c = connect(port);
  ASSERT_TRUE(c && !c->err);
  RedisEndpoint asked = endpoint(port);
  asked.host = "localhost";  // what the caller connected to, told apart from 127.0.0.1
  for (const char* type : {"ip", "unknown-endpoint"}) {
    ASSERT_EQ(redis_command(port, {"CONFIG", "SET", "cluster-preferred-endpoint-type", type}),
              "+OK");
    const Reply r = command(c.get(), {"CLUSTER", "SLOTS"});
    ASSERT_TRUE(r && r->type == REDIS_REPLY_ARRAY && r->elements == 1) << type;
    const redisReply* host = r->element[0]->element[2]->element[0];
    EXPECT_EQ(host->type, std::string(type) == "ip" ? REDIS_REPLY_STRING : REDIS_REPLY_NIL);
    std::string error;
    const auto map = SlotMap::from_cluster_slots(r.get(), RedisEndpoint{}, asked, error);
    ASSERT_TRUE(map.has_value()) << error;
    EXPECT_TRUE(map->covers_all());
    ASSERT_EQ(map->masters().size(), 1u);
    EXPECT_EQ(map->masters()[0].host, "localhost") << type;
    EXPECT_EQ(map->masters()[0].port, port) << type;
  }
}

}  // namespace
}  // namespace flowrelay::ctest
