// broker-redis presence against a real Redis (run through with_redis.sh, which starts a private
// redis-server and puts url=unix://<socket> into FLOWRELAY_BROKER_OPTIONS): what one broker
// instance cannot show: several nodes on one Redis summed up, the keys and their hash tag, a
// node that stops refreshing expiring after presence_ttl_ms, refreshes keeping a live node in,
// a clean destroy() withdrawing its counts, and Redis losing the keys or the scripts.
#include <gtest/gtest.h>

#include <hiredis/hiredis.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../../plugins/broker-redis/presence_scripts.h"  // key names, the set script run directly
#include "broker_presence.h"
#include "broker_test_host.h"
#include "plugin_loader.h"

namespace flowrelay::test {
namespace {

using namespace std::chrono_literals;

constexpr auto kTimeout = 10s;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string redis_socket() {
  const std::string options = env("FLOWRELAY_BROKER_OPTIONS");
  const std::string key = "url=unix://";
  const size_t at = options.find(key);
  if (at == std::string::npos) return "";
  const size_t end = options.find(';', at);
  return options.substr(at + key.size(), end == std::string::npos ? end : end - at - key.size());
}

struct ReplyFree {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyFree>;

struct Node {
  BrokerTestHost host;
  flowrelay_broker* broker = nullptr;
};

class BrokerRedisPresence : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    try {
      plugin_ = LoadedPlugin::load(env("FLOWRELAY_BROKER_PLUGIN"));
    } catch (const PluginError& e) {
      load_error_ = e.what();
    }
  }
  static void TearDownTestSuite() { plugin_.reset(); }

  void SetUp() override {
    ASSERT_TRUE(load_error_.empty()) << load_error_;
    vt_ = plugin_->broker();
    ASSERT_TRUE(vt_ && has_presence(vt_)) << "broker-redis has no presence slots";
    const std::string socket = redis_socket();
    ASSERT_FALSE(socket.empty()) << "run through with_redis.sh (no url=unix://... option)";
    redis_ = redisConnectUnix(socket.c_str());
    ASSERT_TRUE(redis_ && !redis_->err) << "cannot connect to " << socket;
    std::random_device rd;
    prefix_ =
        "redis-presence." + std::to_string(getpid()) + "." + std::to_string(rd() % 100000) + ".";
  }

  void TearDown() override {
    for (auto& node : nodes_) destroy(*node);
    for (auto& node : nodes_) {
      EXPECT_EQ(node->host.callbacks_after_destroy(), 0) << "host callbacks after destroy()";
      for (const auto& [code, detail] : node->host.errors())
        ADD_FAILURE() << "unexpected report_error(" << code << ", \"" << detail << "\")";
    }
    if (redis_) redisFree(redis_);
  }

  std::string channel(const std::string& name) const { return prefix_ + name; }

  Reply command(const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    return Reply(static_cast<redisReply*>(
        redisCommandArgv(redis_, static_cast<int>(argv.size()), argv.data(), lens.data())));
  }

  Node& start_node(const std::string& extra = "") {
    auto node = std::make_unique<Node>();
    OptionList options = OptionList::parse(env("FLOWRELAY_BROKER_OPTIONS") + ";" + extra);
    char err[512] = "";
    EXPECT_EQ(vt_->create(node->host.api(), node->host.handle(), options.data(), options.size(),
                          &node->broker, err, sizeof err),
              FLOWRELAY_OK)
        << err;
    if (node->broker) {
      EXPECT_EQ(vt_->start(node->broker, err, sizeof err), FLOWRELAY_OK) << err;
      EXPECT_TRUE(node->host.wait_ready(1, kTimeout)) << "not ready";
    }
    nodes_.push_back(std::move(node));
    return *nodes_.back();
  }

  void destroy(Node& node) {
    if (!node.broker) return;
    vt_->destroy(node.broker);
    node.broker = nullptr;
    node.host.mark_destroyed();
  }

  void set(Node& node, const std::string& ch, uint64_t clients) {
    vt_->presence_set(node.broker, view(ch), clients);
  }
  PresenceCount await(Node& node, const std::string& ch, uint64_t clients, uint32_t nodes,
                      std::chrono::steady_clock::duration timeout = kTimeout) {
    return await_presence(vt_, node.broker, ch, clients, nodes, timeout);
  }

  // The node field -> clients of the channel's presence hash, as Redis holds it.
  std::map<std::string, std::string> hash_of(const std::string& ch) {
    std::map<std::string, std::string> out;
    Reply r = command({"HGETALL", redis::presence_hash_key(ch)});
    if (!r || r->type != REDIS_REPLY_ARRAY) return out;
    for (size_t i = 0; i + 1 < r->elements; i += 2)
      out[std::string(r->element[i]->str, r->element[i]->len)] =
          std::string(r->element[i + 1]->str, r->element[i + 1]->len);
    return out;
  }
  long long integer(const std::vector<std::string>& args) {
    Reply r = command(args);
    return r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
  }

  static inline std::shared_ptr<LoadedPlugin> plugin_;
  static inline std::string load_error_;
  const flowrelay_broker_vtable* vt_ = nullptr;
  redisContext* redis_ = nullptr;
  std::string prefix_;
  std::vector<std::unique_ptr<Node>> nodes_;
};

TEST_F(BrokerRedisPresence, TwoNodesOnOneRedisSumUp) {
  Node& a = start_node();
  Node& b = start_node();
  const std::string ch = channel("room");
  set(a, ch, 2);
  set(b, ch, 3);
  EXPECT_EQ(await(a, ch, 5, 2), (PresenceCount{FLOWRELAY_OK, 5, 2}));
  EXPECT_EQ(await(b, ch, 5, 2), (PresenceCount{FLOWRELAY_OK, 5, 2}));
  // One field per node, named by its node id, next to an expiry for each in the sorted set.
  const auto hash = hash_of(ch);
  EXPECT_EQ(hash.size(), 2u);
  EXPECT_EQ(hash.at(std::to_string(a.host.node_id())), "2");
  EXPECT_EQ(hash.at(std::to_string(b.host.node_id())), "3");
  EXPECT_EQ(integer({"ZCARD", redis::presence_expiry_key(ch)}), 2);
  // Both keys carry the channel's hash tag, as the history keys do (one Cluster slot), and
  // expire on their own.
  EXPECT_NE(redis::presence_hash_key(ch).find("{" + ch + "}"), std::string::npos);
  EXPECT_NE(redis::presence_expiry_key(ch).find("{" + ch + "}"), std::string::npos);
  const long long pttl = integer({"PTTL", redis::presence_hash_key(ch)});
  EXPECT_GT(pttl, 0);
  EXPECT_LE(pttl, 10000);  // presence_ttl_ms' default

  set(b, ch, 0);
  EXPECT_EQ(await(a, ch, 2, 1), (PresenceCount{FLOWRELAY_OK, 2, 1}));
  EXPECT_EQ(hash_of(ch).count(std::to_string(b.host.node_id())), 0u);
  set(a, ch, 0);
  EXPECT_EQ(await(b, ch, 0, 0), (PresenceCount{FLOWRELAY_OK, 0, 0}));
  EXPECT_EQ(integer({"EXISTS", redis::presence_hash_key(ch), redis::presence_expiry_key(ch)}), 0)
      << "nothing left behind once every node's count is 0";
}

TEST_F(BrokerRedisPresence, ACleanDestroyWithdrawsTheNodesCounts) {
  Node& a = start_node();
  Node& b = start_node();
  const std::string ch = channel("bye");
  set(a, ch, 1);
  set(b, ch, 4);
  ASSERT_EQ(await(a, ch, 5, 2), (PresenceCount{FLOWRELAY_OK, 5, 2}));
  destroy(b);
  // At once, not after the ttl (10 s by default).
  EXPECT_EQ(read_presence(vt_, a.broker, ch, kTimeout), (PresenceCount{FLOWRELAY_OK, 1, 1}));
}

// A node that stops refreshing (crashed: here a fake node's entry written by the set script
// itself, as a node would) no longer counts once its ttl passed; a live node with the same ttl
// keeps counting because it refreshes.
TEST_F(BrokerRedisPresence, ANodeThatStopsRefreshingExpires) {
  Node& a = start_node("presence_ttl_ms=1000");
  const std::string ch = channel("crash");
  set(a, ch, 2);
  ASSERT_EQ(await(a, ch, 2, 1), (PresenceCount{FLOWRELAY_OK, 2, 1}));
  Reply r = command({"EVAL", redis::presence_set_script(), "2", redis::presence_hash_key(ch),
                     redis::presence_expiry_key(ch), "424242", "7", "1000"});
  ASSERT_TRUE(r && r->type == REDIS_REPLY_INTEGER) << (r ? r->str : "no reply");
  EXPECT_EQ(read_presence(vt_, a.broker, ch, kTimeout), (PresenceCount{FLOWRELAY_OK, 9, 2}));
  const auto written = std::chrono::steady_clock::now();
  EXPECT_EQ(await(a, ch, 2, 1, 3s), (PresenceCount{FLOWRELAY_OK, 2, 1}));
  const auto gone_after = std::chrono::steady_clock::now() - written;
  EXPECT_GE(gone_after, 900ms) << "expired before its ttl";
  EXPECT_LT(gone_after, 1500ms);
  EXPECT_EQ(hash_of(ch).count("424242"), 0u) << "the read drops expired nodes' fields";
  // Three ttls later the live node still counts: it refreshed every ttl / 3.
  std::this_thread::sleep_for(3s);
  EXPECT_EQ(read_presence(vt_, a.broker, ch, kTimeout), (PresenceCount{FLOWRELAY_OK, 2, 1}));
}

// Redis lost the keys (FLUSHALL, a restart without persistence): the next refresh puts them
// back; lost scripts (SCRIPT FLUSH) are sent again by EVAL.
TEST_F(BrokerRedisPresence, RewritesWhatRedisLost) {
  Node& a = start_node("presence_ttl_ms=1500");
  const std::string ch = channel("lost");
  set(a, ch, 3);
  ASSERT_EQ(await(a, ch, 3, 1), (PresenceCount{FLOWRELAY_OK, 3, 1}));
  ASSERT_EQ(integer({"DEL", redis::presence_hash_key(ch), redis::presence_expiry_key(ch)}), 2);
  EXPECT_EQ(await(a, ch, 3, 1, 2s), (PresenceCount{FLOWRELAY_OK, 3, 1}));
  Reply flushed = command({"SCRIPT", "FLUSH"});
  ASSERT_TRUE(flushed && flushed->type == REDIS_REPLY_STATUS);
  EXPECT_EQ(read_presence(vt_, a.broker, ch, kTimeout), (PresenceCount{FLOWRELAY_OK, 3, 1}));
  command({"SCRIPT", "FLUSH"});
  set(a, ch, 6);
  EXPECT_EQ(await(a, ch, 6, 1), (PresenceCount{FLOWRELAY_OK, 6, 1}));
  EXPECT_TRUE(a.host.errors().empty());
}

// A node that lost its link (its publisher connection killed) writes its counts again once
// it is back.
TEST_F(BrokerRedisPresence, ReconnectRewritesTheCounts) {
  Node& a = start_node();
  const std::string ch = channel("reconnect");
  set(a, ch, 2);
  ASSERT_EQ(await(a, ch, 2, 1), (PresenceCount{FLOWRELAY_OK, 2, 1}));
  ASSERT_EQ(integer({"DEL", redis::presence_hash_key(ch), redis::presence_expiry_key(ch)}), 2);
  ASSERT_GE(integer({"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"}), 1);
  EXPECT_EQ(await(a, ch, 2, 1, 5s), (PresenceCount{FLOWRELAY_OK, 2, 1}))
      << "not rewritten after the reconnect (the refresh is 3.3 s away)";
}

TEST_F(BrokerRedisPresence, RefusesAShortTtl) {
  BrokerTestHost host;
  OptionList options = OptionList::parse(env("FLOWRELAY_BROKER_OPTIONS") + ";presence_ttl_ms=999");
  char err[512] = "";
  flowrelay_broker* b = nullptr;
  EXPECT_EQ(
      vt_->create(host.api(), host.handle(), options.data(), options.size(), &b, err, sizeof err),
      FLOWRELAY_EINVAL);
  EXPECT_NE(std::string(err).find("presence_ttl_ms"), std::string::npos) << err;
}

}  // namespace
}  // namespace flowrelay::test
