// broker-redis history against a real Redis (run through with_redis.sh, which starts a private
// redis-server and puts url=unix://<socket> into FLOWRELAY_BROKER_OPTIONS): what the broker
// conformance suite cannot see from one broker instance: the keys in Redis, epochs across a
// FLUSHALL or expiry, several nodes sharing one sequence, external PUBLISH, SCRIPT FLUSH.
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "broker_test_host.h"
#include "plugin_loader.h"

namespace flowrelay::test {
namespace {

using namespace std::chrono_literals;

constexpr auto kTimeout = 10s;
constexpr auto kQuietPeriod = 100ms;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// The socket with_redis.sh started, from "url=unix://<path>[;...]".
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

// One broker instance with its own host: a node of the cluster.
struct Node {
  BrokerTestHost host;
  flowrelay_broker* broker = nullptr;
};

class BrokerRedisHistory : public ::testing::Test {
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
    ASSERT_NE(vt_, nullptr);
    const std::string socket = redis_socket();
    ASSERT_FALSE(socket.empty()) << "run through with_redis.sh (no url=unix://... option)";
    redis_ = redisConnectUnix(socket.c_str());
    ASSERT_TRUE(redis_ && !redis_->err) << "cannot connect to " << socket;
    std::random_device rd;
    prefix_ =
        "redis-history." + std::to_string(getpid()) + "." + std::to_string(rd() % 100000) + ".";
  }

  void TearDown() override {
    for (auto& node : nodes_) {
      if (node->broker) vt_->destroy(node->broker);
      node->host.mark_destroyed();
    }
    std::this_thread::sleep_for(kQuietPeriod);
    for (auto& node : nodes_) {
      EXPECT_EQ(node->host.callbacks_after_destroy(), 0) << "host callbacks after destroy()";
      EXPECT_EQ(node->host.concurrent_deliveries(), 0);
      EXPECT_EQ(node->host.bad_messages(), 0);
      if (!allow_errors_)
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

  // create() with the configured options plus `extra` ("k=v;..."); start() unless told not to.
  Node& start_node(const std::string& extra = "", bool start = true) {
    auto node = std::make_unique<Node>();
    OptionList options = OptionList::parse(env("FLOWRELAY_BROKER_OPTIONS") + ";" + extra);
    char err[512] = "";
    EXPECT_EQ(vt_->create(node->host.api(), node->host.handle(), options.data(), options.size(),
                          &node->broker, err, sizeof err),
              FLOWRELAY_OK)
        << err;
    if (start && node->broker) {
      EXPECT_EQ(vt_->start(node->broker, err, sizeof err), FLOWRELAY_OK) << err;
      EXPECT_TRUE(node->host.wait_ready(1, kTimeout)) << "not ready";
    }
    nodes_.push_back(std::move(node));
    return *nodes_.back();
  }

  void subscribe(Node& node, const std::string& ch) {
    flowrelay_status st = vt_->subscribe(node.broker, view(ch));
    if (st == FLOWRELAY_PENDING) st = node.host.take_subscribed(ch, kTimeout).value_or(-1);
    ASSERT_EQ(st, FLOWRELAY_OK) << "subscribe(" << ch << ")";
  }

  // Publishes `data` (message lane) and returns its completion.
  PublishedLog::Result publish(Node& node, const std::string& ch, const std::string& data) {
    PublishedLog log(1);
    EXPECT_EQ(publish_messages(vt_, node.broker, ch, {{FLOWRELAY_LANE_MESSAGE, 0, "", data}}, log,
                               kTimeout),
              FLOWRELAY_OK);
    EXPECT_TRUE(log.wait(kTimeout)) << "publish_message() not completed";
    return log.results()[0];
  }

  void read_history(Node& node, const std::string& ch, uint64_t since, HistoryRead& read) {
    ASSERT_EQ(vt_->history(node.broker, view(ch), since, &HistoryRead::on_done, &read),
              FLOWRELAY_OK);
    ASSERT_TRUE(read.wait(kTimeout)) << "history() not completed";
    ASSERT_EQ(read.status, FLOWRELAY_OK);
  }

  std::string metrics(Node& node) {
    std::string text;
    vt_->metrics(
        node.broker,
        [](void* ctx, flowrelay_str s) { static_cast<std::string*>(ctx)->append(s.ptr, s.len); },
        &text);
    return text;
  }

  static std::shared_ptr<LoadedPlugin> plugin_;
  static std::string load_error_;
  const flowrelay_broker_vtable* vt_ = nullptr;
  redisContext* redis_ = nullptr;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::string prefix_;
  bool allow_errors_ = false;  // the test checks report_error() itself
};

std::shared_ptr<LoadedPlugin> BrokerRedisHistory::plugin_;
std::string BrokerRedisHistory::load_error_;

std::vector<uint64_t> offsets_of(const std::vector<Message>& messages) {
  std::vector<uint64_t> out;
  for (const auto& m : messages) out.push_back(m.offset);
  return out;
}

TEST_F(BrokerRedisHistory, KeepsAStreamAndASequencePerChannel) {
  Node& node = start_node("history_size=5;history_max_age_ms=60000");
  const std::string ch = channel("layout");
  std::string epoch;
  for (int i = 1; i <= 10; ++i) epoch = publish(node, ch, "d" + std::to_string(i)).epoch;
  const std::string stream = "flowrelay:history:{" + ch + "}";
  const std::string seq = "flowrelay:seq:{" + ch + "}";
  EXPECT_EQ(command({"XLEN", stream})->integer, 5) << "MAXLEN is not exact";
  Reply top = command({"HGET", seq, "top"});
  ASSERT_EQ(top->type, REDIS_REPLY_STRING);
  EXPECT_STREQ(top->str, "10");
  Reply stored_epoch = command({"HGET", seq, "epoch"});
  ASSERT_EQ(stored_epoch->type, REDIS_REPLY_STRING);
  EXPECT_EQ(std::string(stored_epoch->str), epoch);
  EXPECT_EQ(epoch.find_first_not_of("0123456789abcdefghijklmnopqrstuvwxyz-"), std::string::npos)
      << epoch;
  for (const auto& key : {stream, seq}) {
    const long long ttl = command({"PTTL", key})->integer;
    EXPECT_GT(ttl, 0) << key << " does not expire";
    EXPECT_LE(ttl, 60000) << key;
  }
  Reply last = command({"XREVRANGE", stream, "+", "-", "COUNT", "1"});
  ASSERT_EQ(last->elements, 1u);
  const redisReply* fields = last->element[0]->element[1];
  ASSERT_EQ(fields->elements, 6u);
  std::vector<std::string> got;
  for (size_t i = 0; i < 6; ++i) got.emplace_back(fields->element[i]->str, fields->element[i]->len);
  EXPECT_EQ(got, (std::vector<std::string>{"o", "10", "l", "m", "d", "d10"}));
}

TEST_F(BrokerRedisHistory, EpochChangesWhenRedisLosesTheHistory) {
  Node& node = start_node();
  const std::string ch = channel("flushall");
  const auto first = publish(node, ch, "before");
  EXPECT_EQ(first.offset, 1u);
  ASSERT_EQ(command({"FLUSHALL"})->type, REDIS_REPLY_STATUS);
  const auto second = publish(node, ch, "after");
  EXPECT_EQ(second.offset, 1u) << "offsets restart with the new epoch";
  EXPECT_FALSE(second.epoch.empty());
  EXPECT_NE(second.epoch, first.epoch);
  HistoryRead read;
  ASSERT_NO_FATAL_FAILURE(read_history(node, ch, 0, read));
  EXPECT_EQ(read.epoch, second.epoch);
  EXPECT_EQ(read.messages,
            (std::vector<Message>{{FLOWRELAY_LANE_MESSAGE, 1, second.epoch, "after", true}}));
}

// A stale stream whose sequence hash vanished must not mix old entries into the new epoch.
TEST_F(BrokerRedisHistory, ANewEpochDropsEntriesOfTheOldOne) {
  Node& node = start_node();
  const std::string ch = channel("stale");
  for (int i = 0; i < 3; ++i) publish(node, ch, "old");
  command({"DEL", "flowrelay:seq:{" + ch + "}"});
  const auto fresh = publish(node, ch, "new");
  EXPECT_EQ(fresh.offset, 1u);
  HistoryRead read;
  ASSERT_NO_FATAL_FAILURE(read_history(node, ch, 0, read));
  EXPECT_EQ(read.messages,
            (std::vector<Message>{{FLOWRELAY_LANE_MESSAGE, 1, fresh.epoch, "new", true}}));
}

TEST_F(BrokerRedisHistory, AnIdleChannelStartsANewEpoch) {
  Node& node = start_node("history_max_age_ms=300");
  const std::string ch = channel("idle");
  const auto first = publish(node, ch, "one");
  publish(node, ch, "two");
  std::this_thread::sleep_for(700ms);
  HistoryRead idle;
  ASSERT_NO_FATAL_FAILURE(read_history(node, ch, 0, idle));
  EXPECT_EQ(idle.epoch, "");
  EXPECT_EQ(idle.top, 0u);
  EXPECT_TRUE(idle.messages.empty());
  const auto again = publish(node, ch, "three");
  EXPECT_EQ(again.offset, 1u);
  EXPECT_NE(again.epoch, first.epoch);
}

TEST_F(BrokerRedisHistory, EntriesOlderThanTheAgeBoundAreTrimmed) {
  Node& node = start_node("history_max_age_ms=2000");
  const std::string ch = channel("aged");
  const auto first = publish(node, ch, "old");
  std::this_thread::sleep_for(1500ms);
  publish(node, ch, "recent");  // keeps the keys alive another 2 s
  std::this_thread::sleep_for(1000ms);
  HistoryRead read;
  ASSERT_NO_FATAL_FAILURE(read_history(node, ch, 0, read));
  EXPECT_EQ(read.epoch, first.epoch);
  EXPECT_EQ(read.top, 2u);
  EXPECT_EQ(offsets_of(read.messages), std::vector<uint64_t>{2}) << "the 2.5 s old entry stayed";
}

TEST_F(BrokerRedisHistory, TwoNodesShareOneOffsetSequence) {
  Node& a = start_node();
  Node& b = start_node();
  const std::string ch = channel("shared");
  ASSERT_NO_FATAL_FAILURE(subscribe(a, ch));
  ASSERT_NO_FATAL_FAILURE(subscribe(b, ch));
  std::vector<Message> expected;
  std::string epoch;
  for (int i = 1; i <= 6; ++i) {
    const auto r = publish(i % 2 ? a : b, ch, "from " + std::string(i % 2 ? "a" : "b"));
    EXPECT_EQ(r.offset, static_cast<uint64_t>(i));
    if (i == 1) epoch = r.epoch;
    EXPECT_EQ(r.epoch, epoch);
    expected.push_back(
        {FLOWRELAY_LANE_MESSAGE, r.offset, epoch, "from " + std::string(i % 2 ? "a" : "b"), true});
  }
  for (Node* node : {&a, &b}) {
    ASSERT_TRUE(node->host.wait_deliveries(ch, expected.size(), kTimeout));
    EXPECT_EQ(node->host.messages(ch), expected);
  }
}

// A backend's plain PUBLISH, and anything that only looks like the wire form, arrives as is.
TEST_F(BrokerRedisHistory, ExternalPublishArrivesAsTheMessageLaneWithOffsetZero) {
  Node& node = start_node();
  const std::string ch = channel("external");
  ASSERT_NO_FATAL_FAILURE(subscribe(node, ch));
  const std::vector<std::string> payloads = {"hello",
                                             std::string("\x1e"
                                                         "fr1 x 1 e\nunknown lane"),
                                             std::string("\x1e"
                                                         "fr1 m 1 e no newline"),
                                             std::string("\x1e"
                                                         "fr1 m -1 e\nnegative")};
  for (const auto& p : payloads) ASSERT_EQ(command({"PUBLISH", ch, p})->integer, 1);
  ASSERT_TRUE(node.host.wait_deliveries(ch, payloads.size(), kTimeout));
  std::vector<Message> expected;
  for (const auto& p : payloads) expected.push_back({FLOWRELAY_LANE_MESSAGE, 0, "", p, true});
  EXPECT_EQ(node.host.messages(ch), expected);
  HistoryRead read;
  ASSERT_NO_FATAL_FAILURE(read_history(node, ch, 0, read));
  EXPECT_EQ(read.top, 0u) << "an external PUBLISH went into history";
}

// SCRIPT FLUSH under a burst of publishes: every message is appended once, in order, with
// gap-free offsets; the reload is reported once.
TEST_F(BrokerRedisHistory, ScriptFlushIsRecoveredWithNothingLostOrDuplicated) {
  allow_errors_ = true;
  Node& node = start_node();
  const std::string ch = channel("noscript");
  ASSERT_NO_FATAL_FAILURE(subscribe(node, ch));
  const auto first = publish(node, ch, "m0");
  ASSERT_EQ(command({"SCRIPT", "FLUSH"})->type, REDIS_REPLY_STATUS);
  std::vector<Message> sent;
  for (int i = 1; i <= 200; ++i)
    sent.push_back({FLOWRELAY_LANE_MESSAGE, 0, "", "m" + std::to_string(i)});
  PublishedLog log(sent.size());
  ASSERT_EQ(publish_messages(vt_, node.broker, ch, sent, log, kTimeout), FLOWRELAY_OK);
  HistoryRead read;  // queued behind the burst: also refused, then resent
  ASSERT_EQ(vt_->history(node.broker, view(ch), 0, &HistoryRead::on_done, &read), FLOWRELAY_OK);
  ASSERT_TRUE(log.wait(kTimeout));
  ASSERT_TRUE(read.wait(kTimeout));
  const auto results = log.results();
  for (size_t i = 0; i < results.size(); ++i) {
    ASSERT_EQ(results[i].calls, 1) << i;
    ASSERT_EQ(results[i].status, FLOWRELAY_OK) << i;
    ASSERT_EQ(results[i].offset, i + 2) << "message " << i + 1;
    ASSERT_EQ(results[i].epoch, first.epoch);
  }
  ASSERT_TRUE(node.host.wait_deliveries(ch, 201, kTimeout));
  std::this_thread::sleep_for(kQuietPeriod);
  const auto delivered = node.host.messages(ch);
  ASSERT_EQ(delivered.size(), 201u) << "duplicates delivered";
  for (size_t i = 0; i < delivered.size(); ++i) {
    EXPECT_EQ(delivered[i].offset, i + 1);
    EXPECT_EQ(delivered[i].data, "m" + std::to_string(i));
  }
  EXPECT_EQ(read.status, FLOWRELAY_OK);
  EXPECT_EQ(read.top, 201u);
  EXPECT_EQ(read.messages.size(), 201u);
  const auto errors = node.host.errors();
  ASSERT_EQ(errors.size(), 1u) << "the reload is reported once";
  EXPECT_NE(errors[0].second.find("NOSCRIPT"), std::string::npos) << errors[0].second;
  EXPECT_NE(metrics(node).find("flowrelay_redis_script_reloads_total{broker=\"redis\"} 1\n"),
            std::string::npos);
}

// The read goes out on the same connection, after this node's earlier publishes.
TEST_F(BrokerRedisHistory, HistoryIsAnsweredAfterThisNodesEarlierPublishes) {
  Node& node = start_node();
  const std::string ch = channel("ordered");
  std::vector<Message> sent;
  for (int i = 1; i <= 50; ++i)
    sent.push_back({FLOWRELAY_LANE_LOG, 0, "", "x" + std::to_string(i)});
  PublishedLog log(sent.size());
  ASSERT_EQ(publish_messages(vt_, node.broker, ch, sent, log, kTimeout), FLOWRELAY_OK);
  HistoryRead read;  // not waiting for the publishes' completions first
  ASSERT_NO_FATAL_FAILURE(read_history(node, ch, 0, read));
  EXPECT_EQ(read.top, 50u);
  ASSERT_EQ(read.messages.size(), 50u);
  EXPECT_EQ(read.messages.back().data, "x50");
  EXPECT_EQ(read.messages.back().lane, static_cast<flowrelay_lane>(FLOWRELAY_LANE_LOG));
  EXPECT_NE(metrics(node).find("flowrelay_broker_history_reads_total{broker=\"redis\"} 1\n"),
            std::string::npos);
}

// The publisher connection killed under a burst: requests Redis did not answer are resent
// (at least once), so every completion reports OK with the offset that holds its message.
TEST_F(BrokerRedisHistory, AKilledConnectionLosesNoPublishAndNoRead) {
  Node& node = start_node();
  const std::string ch = channel("killed");
  std::vector<Message> sent;
  for (int i = 0; i < 1000; ++i)  // history_size (2000) keeps them all even if each is resent
    sent.push_back({FLOWRELAY_LANE_MESSAGE, 0, "", "k" + std::to_string(i)});
  PublishedLog log(sent.size());
  std::thread killer([&] {
    while (!log.wait(0s, 200)) std::this_thread::yield();
    redisContext* c = redisConnectUnix(redis_socket().c_str());
    freeReplyObject(redisCommand(c, "CLIENT KILL TYPE normal"));
    redisFree(c);
  });
  ASSERT_EQ(publish_messages(vt_, node.broker, ch, sent, log, kTimeout), FLOWRELAY_OK);
  HistoryRead read;
  ASSERT_EQ(vt_->history(node.broker, view(ch), 0, &HistoryRead::on_done, &read), FLOWRELAY_OK);
  killer.join();
  ASSERT_TRUE(log.wait(kTimeout));
  ASSERT_TRUE(read.wait(kTimeout));
  ASSERT_EQ(read.status, FLOWRELAY_OK);
  std::map<uint64_t, std::string> stored;
  for (const auto& m : read.messages) stored[m.offset] = m.data;
  uint64_t previous = 0;
  const auto results = log.results();
  for (size_t i = 0; i < results.size(); ++i) {
    ASSERT_EQ(results[i].calls, 1) << i;
    ASSERT_EQ(results[i].status, FLOWRELAY_OK) << i;
    ASSERT_GT(results[i].offset, previous) << "offsets out of publish order at " << i;
    previous = results[i].offset;
    ASSERT_EQ(stored[results[i].offset], sent[i].data) << "offset of message " << i;
  }
}

// Queued while Redis is unreachable, failed with FLOWRELAY_EUNAVAIL by destroy().
TEST_F(BrokerRedisHistory, QueuedRequestsFailWhenDestroyedWhileRedisIsUnreachable) {
  Node& node = start_node("url=unix:///nonexistent/flowrelay-test.sock", false);
  char err[512] = "";
  ASSERT_EQ(vt_->start(node.broker, err, sizeof err), FLOWRELAY_OK) << err;
  const std::string ch = channel("unreachable");
  PublishedLog log(3);
  ASSERT_EQ(publish_messages(vt_, node.broker, ch,
                             {{FLOWRELAY_LANE_MESSAGE, 0, "", "a"},
                              {FLOWRELAY_LANE_LOG, 0, "", "b"},
                              {FLOWRELAY_LANE_MESSAGE, 0, "", "c"}},
                             log, kTimeout),
            FLOWRELAY_OK);
  HistoryRead read;
  ASSERT_EQ(vt_->history(node.broker, view(ch), 0, &HistoryRead::on_done, &read), FLOWRELAY_OK);
  std::this_thread::sleep_for(kQuietPeriod);
  EXPECT_EQ(read.calls(), 0) << "answered although Redis is unreachable";
  vt_->destroy(node.broker);
  node.broker = nullptr;
  for (const auto& r : log.results()) {
    EXPECT_EQ(r.calls, 1);
    EXPECT_EQ(r.status, FLOWRELAY_EUNAVAIL);
  }
  EXPECT_EQ(read.calls(), 1);
  EXPECT_EQ(read.status, FLOWRELAY_EUNAVAIL);
  EXPECT_FALSE(read.bad_struct);
}

TEST_F(BrokerRedisHistory, ReconfigureSwitchesHistoryLive) {
  Node& node = start_node("history_size=5");
  const std::string ch = channel("reconfigure");
  auto reconfigure = [&](const std::string& extra) {
    OptionList options = OptionList::parse(env("FLOWRELAY_BROKER_OPTIONS") + ";" + extra);
    char err[512] = "";
    EXPECT_EQ(vt_->reconfigure(node.broker, options.data(), options.size(), err, sizeof err),
              FLOWRELAY_OK)
        << err;
  };
  EXPECT_EQ(publish(node, ch, "kept").offset, 1u);
  reconfigure("history_size=0");
  HistoryRead refused;
  EXPECT_EQ(vt_->history(node.broker, view(ch), 0, &HistoryRead::on_done, &refused),
            FLOWRELAY_EUNSUPPORTED);
  EXPECT_EQ(publish(node, ch, "not kept").offset, 0u);
  reconfigure("history_size=1");
  EXPECT_EQ(publish(node, ch, "kept again").offset, 2u);
  HistoryRead read;
  ASSERT_NO_FATAL_FAILURE(read_history(node, ch, 0, read));
  EXPECT_EQ(offsets_of(read.messages), std::vector<uint64_t>{2}) << "history_size=1 not applied";
}

TEST_F(BrokerRedisHistory, RejectsInvalidHistoryOptionsNamingThem) {
  for (const std::string option : {"history_size=-1", "history_size=x", "history_size=10000001",
                                   "history_max_age_ms=0", "history_max_age_ms=1.5"}) {
    OptionList options = OptionList::parse(env("FLOWRELAY_BROKER_OPTIONS") + ";" + option);
    BrokerTestHost host;
    char err[512] = "";
    flowrelay_broker* b = nullptr;
    EXPECT_EQ(
        vt_->create(host.api(), host.handle(), options.data(), options.size(), &b, err, sizeof err),
        FLOWRELAY_EINVAL)
        << option;
    EXPECT_EQ(b, nullptr);
    EXPECT_NE(std::string(err).find(option.substr(0, option.find('='))), std::string::npos) << err;
  }
}

}  // namespace
}  // namespace flowrelay::test
