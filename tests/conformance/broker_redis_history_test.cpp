// broker-redis history against a real Redis (run through with_redis.sh, which starts a private
// redis-server and puts url=unix://<socket> into FLOWRELAY_BROKER_OPTIONS): what the broker
// conformance suite cannot see from one broker instance: the keys in Redis, epochs across a
// FLUSHALL or expiry, several nodes sharing one sequence, external PUBLISH, SCRIPT FLUSH, the
// gap a node's subscriber outage leaves in Pub/Sub, filled from history, resends after a hung
// Redis (SIGSTOP) stored and delivered once, and subscriptions Redis refuses (ACL).
#include <gtest/gtest.h>

#include <hiredis/hiredis.h>
#include <signal.h>
#include <unistd.h>
#include <iostream>

#include <array>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../../plugins/broker-redis/history_scripts.h"  // the append script, run directly
#include "../../plugins/broker-redis/reply_scripts.h"
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
    EXPECT_EQ(publish_messages(vt_, node.broker, ch,
                               {node.host.message(FLOWRELAY_LANE_MESSAGE, data)}, log, kTimeout),
              FLOWRELAY_OK);
    EXPECT_TRUE(log.wait(kTimeout)) << "publish() not completed";
    return log.results()[0];
  }

  void read_history(Node& node, const std::string& ch, uint64_t since, HistoryRead& read) {
    ASSERT_EQ(vt_->history(node.broker, view(ch), since, &HistoryRead::on_done, &read),
              FLOWRELAY_OK);
    ASSERT_TRUE(read.wait(kTimeout)) << "history() not completed";
    ASSERT_EQ(read.status, FLOWRELAY_OK);
  }

  // Publishes `data` in order through `node` and waits until Redis acknowledged all of it.
  void publish_all(Node& node, const std::string& ch, const std::vector<std::string>& data) {
    std::vector<Message> messages;
    for (const auto& d : data) messages.push_back(node.host.message(FLOWRELAY_LANE_MESSAGE, d));
    PublishedLog log(messages.size());
    ASSERT_EQ(publish_messages(vt_, node.broker, ch, messages, log, kTimeout), FLOWRELAY_OK);
    ASSERT_TRUE(log.wait(kTimeout));
    for (const auto& r : log.results()) ASSERT_EQ(r.status, FLOWRELAY_OK);
  }

  // Ids of the connections the brokers named `name` (CLIENT SETNAME), from CLIENT LIST.
  std::set<long long> clients_named(const std::string& name) {
    Reply list = command({"CLIENT", "LIST"});
    std::set<long long> ids;
    if (!list || list->type != REDIS_REPLY_STRING) return ids;
    std::istringstream lines(std::string(list->str, list->len));
    for (std::string line; std::getline(lines, line);)
      if (line.find(" name=" + name + " ") != std::string::npos)
        ids.insert(std::stoll(line.substr(line.find("id=") + 3)));
    return ids;
  }

  // start_node(), and the id of the new node's subscriber connection in `sub_id`.
  Node& start_node_with_subscriber(const std::string& extra, long long& sub_id) {
    const auto before = clients_named("flowrelay-sub");
    Node& node = start_node(extra);
    std::vector<long long> added;
    for (long long id : clients_named("flowrelay-sub"))
      if (!before.count(id)) added.push_back(id);
    EXPECT_EQ(added.size(), 1u) << "the subscriber connection is not named flowrelay-sub";
    sub_id = added.empty() ? -1 : added[0];
    return node;
  }

  // Cuts one connection (only that one: the node's other link stays up).
  void kill_client(long long id) {
    Reply r = command({"CLIENT", "KILL", "ID", std::to_string(id)});
    ASSERT_TRUE(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1) << "CLIENT KILL ID " << id;
  }

  // Calls of `command` Redis served so far (INFO commandstats).
  long long calls_of(const std::string& command_name) {
    Reply info = command({"INFO", "commandstats"});
    const std::string text(info->str, info->len);
    const size_t at = text.find("cmdstat_" + command_name + ":calls=");
    return at == std::string::npos ? 0 : std::stoll(text.substr(text.find('=', at) + 1));
  }

  uint64_t metric(Node& node, const std::string& name) {
    const std::string text = metrics(node);
    const std::string key = name + "{broker=\"redis\"} ";
    const size_t at = text.find(key);
    EXPECT_NE(at, std::string::npos) << name << " missing";
    return at == std::string::npos ? 0 : std::stoull(text.substr(at + key.size()));
  }

  // Waits until `name` of `node` reaches `value`.
  bool wait_metric(Node& node, const std::string& name, uint64_t value) {
    const auto deadline = std::chrono::steady_clock::now() + kTimeout;
    while (metric(node, name) < value) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(10ms);
    }
    return true;
  }

  std::string metrics(Node& node) {
    std::string text;
    vt_->metrics(
        node.broker,
        [](void* ctx, flowrelay_str s) { static_cast<std::string*>(ctx)->append(s.ptr, s.len); },
        &text);
    return text;
  }

  struct Appended {
    long long offset = -1, resent = -1;
    std::string epoch;
  };
  static Appended appended_of(const redisReply* r) {
    Appended a;
    EXPECT_TRUE(r && r->type == REDIS_REPLY_ARRAY && r->elements == 4)
        << (r && r->type == REDIS_REPLY_ERROR ? r->str : "no array");
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 4) {
      a.offset = r->element[0]->integer;
      a.epoch.assign(r->element[1]->str, r->element[1]->len);
      a.resent = r->element[2]->integer;
    }
    return a;
  }
  // The arguments of the append script (history_scripts.h) for a message of `ch` from `node`
  // (session 5) with `seq`, after `how` ("EVAL <script>" or "EVALSHA <sha>").
  static std::vector<std::string> append_args(std::vector<std::string> how, const std::string& ch,
                                              const std::string& node, const std::string& seq,
                                              const std::string& data,
                                              const std::string& maxlen = "2000") {
    for (std::string a :
         {std::string("4"), "flowrelay:history:{" + ch + "}", "flowrelay:seq:{" + ch + "}",
          "flowrelay:replies:{" + ch + "}", "flowrelay:entries:{" + ch + "}", ch, std::string("m"),
          data, maxlen, std::string("60000"), std::string("1099511627776"), node, std::string("5"),
          seq})
      how.push_back(std::move(a));
    return how;
  }
  // Runs the append script directly, as the node `node` would.
  Appended run_append(const std::string& ch, const std::string& node, const std::string& seq,
                      const std::string& data, const std::string& maxlen = "2000") {
    return appended_of(
        command(append_args({"EVAL", redis::append_script()}, ch, node, seq, data, maxlen)).get());
  }
  // Sends every command before reading any reply; the replies in order.
  std::vector<Reply> pipeline(const std::vector<std::vector<std::string>>& commands) {
    for (const auto& args : commands) {
      std::vector<const char*> argv;
      std::vector<size_t> lens;
      for (const auto& a : args) {
        argv.push_back(a.data());
        lens.push_back(a.size());
      }
      EXPECT_EQ(
          redisAppendCommandArgv(redis_, static_cast<int>(argv.size()), argv.data(), lens.data()),
          REDIS_OK);
    }
    std::vector<Reply> replies;
    for (size_t i = 0; i < commands.size(); ++i) {
      void* r = nullptr;
      EXPECT_EQ(redisGetReply(redis_, &r), REDIS_OK);
      replies.emplace_back(static_cast<redisReply*>(r));
    }
    return replies;
  }

  // The redis-server with_redis.sh started (it runs under `timeout`: its own pid is not ours).
  pid_t redis_pid() {
    Reply info = command({"INFO", "server"});
    const std::string text(info->str, info->len);
    const size_t at = text.find("process_id:");
    return at == std::string::npos ? 0 : std::stoi(text.substr(at + 11));
  }

  // Stops Redis (SIGSTOP) while it lives, as a hung Redis: it answers nothing, connections
  // stay open and what is written to them waits in the socket buffers. Continued on any exit.
  class RedisStopped {
   public:
    explicit RedisStopped(pid_t pid) : _pid(pid) { EXPECT_EQ(kill(_pid, SIGSTOP), 0); }
    ~RedisStopped() { kill(_pid, SIGCONT); }
    RedisStopped(const RedisStopped&) = delete;
    RedisStopped& operator=(const RedisStopped&) = delete;

   private:
    pid_t _pid;
  };

  // publish() of `message` with its completion in slot `i` of `log`.
  void publish_into(Node& node, const std::string& ch, const Message& message, PublishedLog& log,
                    size_t i) {
    flowrelay_message m{};
    m.struct_size = sizeof m;
    m.lane = message.lane;
    m.origin = {message.origin.node, message.origin.session, 0};
    m.data = view(message.data);
    ASSERT_EQ(vt_->publish(node.broker, view(ch), &m, &PublishedLog::on_done, log.ctx(i)),
              FLOWRELAY_OK);
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
  // History is trimmed exactly by the entries list (channel_state_lua.h); the stream behind it
  // a whole node (up to 100 entries) at a time. Reads return the newest 5.
  EXPECT_EQ(command({"LLEN", "flowrelay:entries:{" + ch + "}"})->integer, 5);
  const long long kept = command({"XLEN", stream})->integer;
  EXPECT_GE(kept, 5);
  EXPECT_LE(kept, 5 + 100);
  HistoryRead read;
  ASSERT_NO_FATAL_FAILURE(read_history(node, ch, 0, read));
  EXPECT_EQ(offsets_of(read.messages), (std::vector<uint64_t>{6, 7, 8, 9, 10}));
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
  // The last seq appended from each node: what tells a resend (history_scripts.h).
  const std::string node_id = std::to_string(node.host.node_id());
  Reply last_seq = command({"HGET", seq, "n:" + node_id});
  ASSERT_EQ(last_seq->type, REDIS_REPLY_STRING);
  EXPECT_STREQ(last_seq->str, "10");
  Reply last = command({"XREVRANGE", stream, "+", "-", "COUNT", "1"});
  ASSERT_EQ(last->elements, 1u);
  const redisReply* fields = last->element[0]->element[1];
  ASSERT_EQ(fields->elements, 12u);
  std::vector<std::string> got;
  for (size_t i = 0; i < fields->elements; ++i)
    got.emplace_back(fields->element[i]->str, fields->element[i]->len);
  EXPECT_EQ(got, (std::vector<std::string>{"o", "10", "l", "m", "n", node_id, "s", "0", "q", "10",
                                           "d", "d10"}));
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
  // The second publish of this node: origin.seq 2, whatever the epoch.
  EXPECT_EQ(read.messages,
            (std::vector<Message>{
                {FLOWRELAY_LANE_MESSAGE, 1, second.epoch, "after", {node.host.node_id(), 0, 2}}}));
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
            (std::vector<Message>{
                {FLOWRELAY_LANE_MESSAGE, 1, fresh.epoch, "new", {node.host.node_id(), 0, 4}}}));
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
    // Each node numbers its own publishes from 1.
    const Origin origin{(i % 2 ? a : b).host.node_id(), 0, static_cast<uint64_t>((i + 1) / 2)};
    expected.push_back({FLOWRELAY_LANE_MESSAGE, r.offset, epoch,
                        "from " + std::string(i % 2 ? "a" : "b"), origin});
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
                                                         "fr2 x 1 0 0 0 e\nunknown lane"),
                                             std::string("\x1e"
                                                         "fr2 m 1 0 0 0 e no newline"),
                                             std::string("\x1e"
                                                         "fr2 m -1 0 0 0 e\nnegative")};
  for (const auto& p : payloads) ASSERT_EQ(command({"PUBLISH", ch, p})->integer, 1);
  ASSERT_TRUE(node.host.wait_deliveries(ch, payloads.size(), kTimeout));
  std::vector<Message> expected;
  for (const auto& p : payloads) expected.push_back({FLOWRELAY_LANE_MESSAGE, 0, "", p, {}});
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
    sent.push_back(node.host.message(FLOWRELAY_LANE_MESSAGE, "m" + std::to_string(i)));
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

// Redis lost the scripts and this node's s1 is refused (NOSCRIPT), but before its s2 runs
// another node loads them again, so s2 is stored first. s1 never ran: its retry must be stored
// and delivered with an offset of its own, not taken for the resend of a stored seq (which
// completed it with offset 0 and dropped it). Redis is stopped while both wait in the socket,
// then gets the other client's SCRIPT LOAD; s2 is longer than one read of Redis (16 KiB), so
// Redis runs s1, then the SCRIPT LOAD, then s2.
TEST_F(BrokerRedisHistory, APublishRefusedWithNoscriptIsStoredThoughALaterOneRanFirst) {
  allow_errors_ = true;  // the reload is reported
  Node& node = start_node();
  const std::string ch = channel("noscript-overtaken");
  ASSERT_NO_FATAL_FAILURE(subscribe(node, ch));
  const pid_t pid = redis_pid();
  ASSERT_GT(pid, 0);
  redisContext* other = redisConnectUnix(redis_socket().c_str());
  ASSERT_TRUE(other && !other->err);
  std::unique_ptr<redisContext, void (*)(redisContext*)> close_other(other, redisFree);
  ASSERT_EQ(command({"SCRIPT", "FLUSH"})->type, REDIS_REPLY_STATUS);
  const std::vector<Message> sent{
      node.host.message(FLOWRELAY_LANE_MESSAGE, "s1"),
      node.host.message(FLOWRELAY_LANE_MESSAGE, std::string(64 * 1024, 'x'))};
  PublishedLog log(sent.size());
  {
    RedisStopped stopped(pid);
    for (size_t i = 0; i < sent.size(); ++i)
      ASSERT_NO_FATAL_FAILURE(publish_into(node, ch, sent[i], log, i));
    std::this_thread::sleep_for(200ms);  // both written to the stopped Redis' socket
    const std::string script = redis::append_script();
    ASSERT_EQ(redisAppendCommand(other, "SCRIPT LOAD %b", script.data(), script.size()), REDIS_OK);
    for (int done = 0; !done;) ASSERT_EQ(redisBufferWrite(other, &done), REDIS_OK);
    std::this_thread::sleep_for(50ms);
  }
  void* loaded = nullptr;
  ASSERT_EQ(redisGetReply(other, &loaded), REDIS_OK);
  Reply loaded_reply(static_cast<redisReply*>(loaded));
  ASSERT_EQ(loaded_reply->type, REDIS_REPLY_STRING);
  ASSERT_TRUE(log.wait(kTimeout));
  // The scenario did what it is about: s1 was refused, s2 ran before s1's retry.
  ASSERT_EQ(metric(node, "flowrelay_redis_script_reloads_total"), 1u) << "s1 was not refused";
  const auto results = log.results();
  ASSERT_EQ(results[1].status, FLOWRELAY_OK);
  ASSERT_EQ(results[1].offset, 1u) << "s2 did not run before s1's retry";

  EXPECT_EQ(results[0].calls, 1);
  EXPECT_EQ(results[0].status, FLOWRELAY_OK);
  EXPECT_EQ(results[0].offset, 2u) << "s1 was not stored";
  EXPECT_EQ(metric(node, "flowrelay_redis_resend_offsets_lost_total"), 0u);
  ASSERT_TRUE(node.host.wait_deliveries(ch, 2, kTimeout)) << "s1 was not delivered";
  std::this_thread::sleep_for(kQuietPeriod);
  const auto delivered = node.host.messages(ch);
  ASSERT_EQ(delivered.size(), 2u);
  EXPECT_EQ(delivered[0].data, sent[1].data);
  EXPECT_EQ(delivered[1].data, "s1");
  EXPECT_EQ(offsets_of(delivered), (std::vector<uint64_t>{1, 2}));
  HistoryRead read;
  ASSERT_NO_FATAL_FAILURE(read_history(node, ch, 0, read));
  ASSERT_EQ(read.messages.size(), 2u);
  EXPECT_EQ(read.messages[1].data, "s1");
}

// The read goes out on the same connection, after this node's earlier publishes.
TEST_F(BrokerRedisHistory, HistoryIsAnsweredAfterThisNodesEarlierPublishes) {
  Node& node = start_node();
  const std::string ch = channel("ordered");
  std::vector<Message> sent;
  for (int i = 1; i <= 50; ++i)
    sent.push_back(node.host.message(FLOWRELAY_LANE_LOG, "x" + std::to_string(i)));
  PublishedLog log(sent.size());
  ASSERT_EQ(publish_messages(vt_, node.broker, ch, sent, log, kTimeout), FLOWRELAY_OK);
  HistoryRead read;  // not waiting for the publishes' completions first
  ASSERT_NO_FATAL_FAILURE(read_history(node, ch, 0, read));
  EXPECT_EQ(read.top, 50u);
  ASSERT_EQ(read.messages.size(), 50u);
  EXPECT_EQ(read.messages.back().data, "x50");
  EXPECT_EQ(read.messages.back().lane, static_cast<flowrelay_lane>(FLOWRELAY_LANE_LOG));
  // Counted just after the completion ran: wait for it.
  EXPECT_TRUE(wait_metric(node, "flowrelay_broker_history_reads_total", 1));
  EXPECT_EQ(metric(node, "flowrelay_broker_history_reads_total"), 1u);
}

// The publisher connection killed under a burst: requests Redis did not answer are resent
// (at least once), so every completion reports OK with the offset that holds its message.
TEST_F(BrokerRedisHistory, AKilledConnectionLosesNoPublishAndNoRead) {
  Node& node = start_node();
  const std::string ch = channel("killed");
  std::vector<Message> sent;
  for (int i = 0; i < 1000; ++i)  // history_size (2000) keeps them all even if each is resent
    sent.push_back(node.host.message(FLOWRELAY_LANE_MESSAGE, "k" + std::to_string(i)));
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
                             {node.host.message(FLOWRELAY_LANE_MESSAGE, "a"),
                              node.host.message(FLOWRELAY_LANE_LOG, "b"),
                              node.host.message(FLOWRELAY_LANE_MESSAGE, "c")},
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

// ------------------------------------------------------------------------------------------
// The gap a subscriber outage leaves: Pub/Sub keeps nothing for a node whose subscriber link is
// down, and its sessions stay connected (they never resume). The node fills it from history.

std::vector<std::string> numbered(const std::string& prefix, int first, int last) {
  std::vector<std::string> out;
  for (int i = first; i <= last; ++i) out.push_back(prefix + std::to_string(i));
  return out;
}

// Exactly `data`, in order, with offsets from `first` on, in `epoch`.
void expect_sequence(const std::vector<Message>& got, const std::vector<std::string>& data,
                     uint64_t first, const std::string& epoch) {
  ASSERT_EQ(got.size(), data.size()) << "lost or duplicated messages";
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].offset, first + i) << "at " << i;
    ASSERT_EQ(got[i].data, data[i]) << "at " << i;
    ASSERT_EQ(got[i].epoch, epoch) << "at " << i;
  }
}

// B's subscriber link is cut while A publishes a burst, then a steady stream across B's
// reconnect, its history read and the live messages held meanwhile: B's host gets every offset
// exactly once, in order. B's own publishes of the outage wait for its resubscribe and go out
// just before its history read: Redis runs them after B's SUBSCRIBE and before the read, so
// they reach B twice (live and from history), deterministically: the seam's duplicates.
TEST_F(BrokerRedisHistory, ASubscriberOutageIsFilledFromHistoryWithNothingLostOrDuplicated) {
  Node& a = start_node();
  long long b_sub = 0;
  // B reconnects 300 ms after the cut: the burst lands entirely in the outage.
  Node& b = start_node_with_subscriber("reconnect_min_ms=300;reconnect_max_ms=300", b_sub);
  const std::string ch = channel("outage");
  ASSERT_NO_FATAL_FAILURE(subscribe(a, ch));
  ASSERT_NO_FATAL_FAILURE(subscribe(b, ch));
  const auto before = numbered("before", 1, 20), burst = numbered("burst", 1, 100),
             own = numbered("own", 1, 10), stream = numbered("stream", 1, 100),
             after = numbered("after", 1, 20);
  ASSERT_NO_FATAL_FAILURE(publish_all(a, ch, before));
  ASSERT_TRUE(b.host.wait_deliveries(ch, before.size(), kTimeout));

  ASSERT_NO_FATAL_FAILURE(kill_client(b_sub));
  ASSERT_TRUE(b.host.wait_ready(0, kTimeout)) << "B did not notice the cut";
  ASSERT_NO_FATAL_FAILURE(publish_all(a, ch, burst));
  std::vector<Message> own_messages;
  for (const auto& d : own) own_messages.push_back(b.host.message(FLOWRELAY_LANE_MESSAGE, d));
  PublishedLog own_log(own.size());
  ASSERT_EQ(publish_messages(vt_, b.broker, ch, own_messages, own_log, kTimeout), FLOWRELAY_OK);
  PublishedLog streamed(stream.size());
  std::thread publisher([&] {
    for (size_t i = 0; i < stream.size(); ++i) {
      flowrelay_message m{};
      m.struct_size = sizeof m;
      m.origin.node = a.host.node_id();
      m.data = view(stream[i]);
      EXPECT_EQ(vt_->publish(a.broker, view(ch), &m, &PublishedLog::on_done, streamed.ctx(i)),
                FLOWRELAY_OK);
      std::this_thread::sleep_for(5ms);  // ~0.5 s: spans B's resubscribe and fill
    }
  });
  const bool back = b.host.wait_ready(1, kTimeout);
  publisher.join();
  ASSERT_TRUE(back) << "B did not resubscribe";
  ASSERT_TRUE(streamed.wait(kTimeout));
  ASSERT_TRUE(own_log.wait(kTimeout));
  ASSERT_NO_FATAL_FAILURE(publish_all(a, ch, after));

  const size_t total = before.size() + burst.size() + own.size() + stream.size() + after.size();
  for (Node* node : {&a, &b}) {
    SCOPED_TRACE(node == &a ? "node A" : "node B");
    EXPECT_TRUE(node->host.wait_deliveries(ch, total, kTimeout));
    std::this_thread::sleep_for(kQuietPeriod);
    const auto got = node->host.messages(ch);
    ASSERT_EQ(got.size(), total) << "lost or duplicated messages";
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i].offset, i + 1) << "at " << i;
      ASSERT_EQ(got[i].epoch, got[0].epoch) << "at " << i;
    }
  }
  EXPECT_EQ(b.host.messages(ch), a.host.messages(ch)) << "A, never away, is the reference";
  std::multiset<std::string> sent, got;
  for (const auto* part : {&before, &burst, &own, &stream, &after})
    sent.insert(part->begin(), part->end());
  for (const auto& m : b.host.messages(ch)) got.insert(m.data);
  EXPECT_EQ(got, sent);
  EXPECT_GE(metric(b, "flowrelay_redis_gap_filled_total"), burst.size());
  EXPECT_GE(metric(b, "flowrelay_redis_duplicates_skipped_total"), own.size())
      << "B's own outage publishes came back live and from history";
  EXPECT_EQ(metric(b, "flowrelay_redis_gap_unrecovered_total"), 0u);
  EXPECT_EQ(metric(a, "flowrelay_redis_gap_filled_total"), 0u);
}

// A channel with no history yet and nothing delivered: the place read when it was subscribed
// (no epoch) lets B fill the whole new epoch.
TEST_F(BrokerRedisHistory, AQuietChannelIsFilledFromWhereItStoodWhenSubscribed) {
  Node& a = start_node();
  long long b_sub = 0;
  Node& b = start_node_with_subscriber("reconnect_min_ms=300;reconnect_max_ms=300", b_sub);
  const std::string ch = channel("quiet");
  const long long evalsha = calls_of("evalsha");
  ASSERT_NO_FATAL_FAILURE(subscribe(b, ch));
  const auto deadline = std::chrono::steady_clock::now() + kTimeout;
  while (calls_of("evalsha") == evalsha && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);  // B reads where history stands
  ASSERT_GT(calls_of("evalsha"), evalsha);

  ASSERT_NO_FATAL_FAILURE(kill_client(b_sub));
  ASSERT_TRUE(b.host.wait_ready(0, kTimeout));
  const auto all = numbered("q", 1, 12);
  ASSERT_NO_FATAL_FAILURE(publish_all(a, ch, {all.begin(), all.begin() + 10}));
  ASSERT_TRUE(b.host.wait_ready(1, kTimeout));
  ASSERT_NO_FATAL_FAILURE(publish_all(a, ch, {all.begin() + 10, all.end()}));
  EXPECT_TRUE(b.host.wait_deliveries(ch, all.size(), kTimeout));
  std::this_thread::sleep_for(kQuietPeriod);
  const auto got = b.host.messages(ch);
  ASSERT_FALSE(got.empty());
  ASSERT_NO_FATAL_FAILURE(expect_sequence(got, all, 1, got[0].epoch));
  // The 10, and the last 2 as well when B's read ran after them (B is ready before it is sent).
  EXPECT_GE(metric(b, "flowrelay_redis_gap_filled_total"), 10u);
}

// FLUSHALL while B is away: the new epoch does not continue B's offsets, so there is nothing to
// fill from. B resumes live delivery (no duplicates, no stall) and counts the unrecovered gap.
TEST_F(BrokerRedisHistory, AHistoryResetDuringTheOutageResumesLiveAndIsCounted) {
  Node& a = start_node();
  long long b_sub = 0;
  Node& b = start_node_with_subscriber("reconnect_min_ms=300;reconnect_max_ms=300", b_sub);
  const std::string ch = channel("reset");
  ASSERT_NO_FATAL_FAILURE(subscribe(a, ch));
  ASSERT_NO_FATAL_FAILURE(subscribe(b, ch));
  const auto old_data = numbered("old", 1, 10);
  ASSERT_NO_FATAL_FAILURE(publish_all(a, ch, old_data));
  ASSERT_TRUE(b.host.wait_deliveries(ch, old_data.size(), kTimeout));
  const std::string old_epoch = b.host.messages(ch)[0].epoch;

  ASSERT_NO_FATAL_FAILURE(kill_client(b_sub));
  ASSERT_TRUE(b.host.wait_ready(0, kTimeout));
  ASSERT_EQ(command({"FLUSHALL"})->type, REDIS_REPLY_STATUS);
  const auto new_data = numbered("new", 1, 10);
  ASSERT_NO_FATAL_FAILURE(publish_all(a, ch, {new_data.begin(), new_data.begin() + 5}));
  ASSERT_TRUE(b.host.wait_ready(1, kTimeout));
  ASSERT_TRUE(wait_metric(b, "flowrelay_redis_gap_unrecovered_total", 1));
  ASSERT_NO_FATAL_FAILURE(publish_all(a, ch, {new_data.begin() + 5, new_data.end()}));

  ASSERT_TRUE(b.host.wait_deliveries(ch, old_data.size() + 5, kTimeout));
  std::this_thread::sleep_for(kQuietPeriod);
  const auto got = b.host.messages(ch);
  ASSERT_EQ(got.size(), old_data.size() + 5);
  ASSERT_NO_FATAL_FAILURE(expect_sequence({got.begin(), got.begin() + 10}, old_data, 1, old_epoch));
  const std::string new_epoch = got[10].epoch;
  EXPECT_NE(new_epoch, old_epoch);
  ASSERT_NO_FATAL_FAILURE(expect_sequence({got.begin() + 10, got.end()},
                                          {new_data.begin() + 5, new_data.end()}, 6, new_epoch));
  EXPECT_EQ(metric(b, "flowrelay_redis_gap_unrecovered_total"), 1u);
  EXPECT_EQ(metric(b, "flowrelay_redis_gap_filled_total"), 0u);
  // A (never away) saw both epochs whole.
  EXPECT_TRUE(a.host.wait_deliveries(ch, 20, kTimeout));
}

// An offset delivered already arrives again (here forged; in real life a resend across the
// resubscribe seam): skipped, counted.
TEST_F(BrokerRedisHistory, ALiveDuplicateOfADeliveredOffsetIsSkipped) {
  Node& node = start_node();
  const std::string ch = channel("duplicate");
  ASSERT_NO_FATAL_FAILURE(subscribe(node, ch));
  ASSERT_NO_FATAL_FAILURE(publish_all(node, ch, {"d1", "d2", "d3"}));
  ASSERT_TRUE(node.host.wait_deliveries(ch, 3, kTimeout));
  const std::string epoch = node.host.messages(ch)[0].epoch;
  ASSERT_EQ(command({"PUBLISH", ch,
                     "\x1e"
                     "fr2 m 2 0 0 0 " +
                         epoch + "\nagain"})
                ->integer,
            1);
  ASSERT_EQ(command({"PUBLISH", ch,
                     "\x1e"
                     "fr2 m 2 0 0 0 otherepoch\nother epoch"})
                ->integer,
            1);
  ASSERT_NO_FATAL_FAILURE(publish_all(node, ch, {"d4"}));
  ASSERT_TRUE(node.host.wait_deliveries(ch, 5, kTimeout));
  std::this_thread::sleep_for(kQuietPeriod);
  std::vector<std::string> data;
  for (const auto& m : node.host.messages(ch)) data.push_back(m.data);
  EXPECT_EQ(data, (std::vector<std::string>{"d1", "d2", "d3", "other epoch", "d4"}));
  EXPECT_EQ(metric(node, "flowrelay_redis_duplicates_skipped_total"), 1u);
}

// ------------------------------------------------------------------------------------------
// Resends. A publish whose reply was lost (the link dropped, Redis hung) is resent, and Redis may
// have run the first copy as well: stored and delivered once, completed with its first offset.

// The append script itself: a (node, seq) it appended before is not appended or published again
// and answers the first offset, found behind other nodes' entries; trimmed away, offset 0.
TEST_F(BrokerRedisHistory, TheAppendScriptStoresAResendOnceWithItsFirstOffset) {
  Node& node = start_node();
  const std::string ch = channel("script");
  ASSERT_NO_FATAL_FAILURE(subscribe(node, ch));
  const std::string stream = "flowrelay:history:{" + ch + "}";
  auto append = [&](const std::string& origin_node, const std::string& origin_seq,
                    const std::string& data) {
    return run_append(ch, origin_node, origin_seq, data);
  };
  const Appended first = append("7", "1", "a");
  EXPECT_EQ(first.offset, 1);
  EXPECT_EQ(first.resent, 0);
  const Appended again = append("7", "1", "a, resent");
  EXPECT_EQ(again.offset, 1) << "a resend answers the first offset";
  EXPECT_EQ(again.resent, 1);
  EXPECT_EQ(again.epoch, first.epoch);
  EXPECT_EQ(append("7", "2", "b").offset, 2);
  EXPECT_EQ(append("8", "1", "c").offset, 3) << "another node's seq 1 is not a resend";
  EXPECT_EQ(append("7", "1", "a").offset, 1) << "found behind the later entries";
  EXPECT_EQ(append("7", "2", "b").offset, 2);
  EXPECT_EQ(append("0", "0", "raw").offset, 4) << "no origin: never taken for a resend";
  EXPECT_EQ(append("0", "0", "raw").offset, 5);
  EXPECT_EQ(command({"XLEN", stream})->integer, 5);
  ASSERT_EQ(command({"XTRIM", stream, "MAXLEN", "0"})->type, REDIS_REPLY_INTEGER);
  const Appended trimmed = append("7", "2", "b");
  EXPECT_EQ(trimmed.offset, 0) << "the first entry is gone: no offset to answer";
  EXPECT_EQ(trimmed.resent, 2);
  EXPECT_EQ(trimmed.epoch, first.epoch);
  EXPECT_EQ(command({"XLEN", stream})->integer, 0) << "a trimmed resend is not stored again";
  EXPECT_EQ(append("7", "3", "d").offset, 6);

  // Published once each: the resends were not.
  ASSERT_TRUE(node.host.wait_deliveries(ch, 6, kTimeout));
  std::this_thread::sleep_for(kQuietPeriod);
  std::vector<std::string> data;
  for (const auto& m : node.host.messages(ch)) data.push_back(m.data);
  EXPECT_EQ(data, (std::vector<std::string>{"a", "b", "c", "raw", "raw", "d"}));
  EXPECT_EQ(node.host.messages(ch)[0].origin, (Origin{7, 5, 1}));
}

// Every key a script touches in the channel's slot comes in KEYS (Redis Cluster routes and
// checks them; channel_state_lua.h): a call without the entries list, or with one of another
// channel, is refused before anything is written.
TEST_F(BrokerRedisHistory, TheScriptsRefuseKeysThatAreNotTheChannelsOwnBeforeWriting) {
  const std::string ch = channel("keys"), other = channel("keys-other");
  const std::string stream = "flowrelay:history:{" + ch + "}";
  const std::vector<std::vector<std::string>> wrong{
      // The three keys of before the entries list was declared.
      {"EVAL", redis::append_script(), "3", stream, "flowrelay:seq:{" + ch + "}",
       "flowrelay:replies:{" + ch + "}", ch, "m", "x", "2000", "60000", "1099511627776", "7", "5",
       "1", "", "0"},
      {"EVAL", redis::append_script(), "4", stream, "flowrelay:seq:{" + ch + "}",
       "flowrelay:replies:{" + ch + "}", "flowrelay:entries:{" + other + "}", ch, "m", "x", "2000",
       "60000", "1099511627776", "7", "5", "1", "", "0"},
      {"EVAL", redis::history_script(), "4", stream, "flowrelay:seq:{" + other + "}",
       "flowrelay:replies:{" + ch + "}", "flowrelay:entries:{" + ch + "}", "0", "2000", "60000",
       "1099511627776"},
      {"EVAL",
       redis::reply_script(),
       "4",
       stream,
       "flowrelay:seq:{" + ch + "}",
       "flowrelay:replies:{" + ch + "}",
       "flowrelay:reply-text:{" + ch + "}:r1",
       ch,
       "o",
       "r1",
       "0",
       "",
       "",
       "2000",
       "60000",
       "1099511627776",
       "7",
       "5",
       "",
       "0"}};
  for (const auto& args : wrong) {
    Reply r = command(args);
    ASSERT_EQ(r->type, REDIS_REPLY_ERROR) << args[2] << " keys, " << args[3 + 3];
    EXPECT_NE(std::string(r->str, r->len).find("KEYS must start with"), std::string::npos)
        << r->str;
  }
  for (const char* prefix : {"history", "seq", "replies", "entries"})
    EXPECT_EQ(command({"EXISTS", std::string("flowrelay:") + prefix + ":{" + ch + "}"})->integer, 0)
        << prefix;
  EXPECT_EQ(run_append(ch, "7", "1", "a").offset, 1) << "the right keys are taken";
}

// The resend walk of the append script against a model of the stream: several nodes appending
// with gaps in their seqs (a node's seqs are spread over its channels), entries without origin,
// trimming, and resends in bursts (ascending, as a node resends), descending and at random,
// across the trimmed edge too: each answers its first offset while its entry is kept, else 0 (a
// seq never appended included), and none is appended again.
TEST_F(BrokerRedisHistory, AResendIsFoundWhereverItsEntryIsKept) {
  const std::string ch = channel("walk");
  const std::string stream = "flowrelay:history:{" + ch + "}";
  std::mt19937 rng(11);
  struct Entry {
    long long offset;
    int node;
    uint64_t seq;
  };
  std::deque<Entry> kept;
  std::map<int, uint64_t> last;  // per node: the last seq appended
  long long top = 0;
  size_t resends = 0, found = 0;
  auto append_new = [&](int node) {
    const uint64_t seq = node ? (last[node] += 1 + rng() % 3) : 0;
    const Appended a = run_append(ch, std::to_string(node), std::to_string(seq), "d", "1000000000");
    ASSERT_EQ(a.resent, 0);
    ASSERT_EQ(a.offset, ++top);
    kept.push_back({top, node, seq});
  };
  auto resend = [&](int node, uint64_t seq) {
    long long expected = 0;
    for (const auto& e : kept)
      if (e.node == node && e.seq == seq) expected = e.offset;
    const Appended a = run_append(ch, std::to_string(node), std::to_string(seq), "d");
    ++resends;
    found += expected > 0;
    ASSERT_EQ(a.offset, expected) << "node " << node << ", seq " << seq;
    ASSERT_EQ(a.resent, expected ? 1 : 2) << "node " << node << ", seq " << seq;
  };
  for (int round = 0; round < 60; ++round) {
    for (int i = 1 + rng() % 150; i > 0; --i)
      ASSERT_NO_FATAL_FAILURE(append_new(std::array{0, 7, 8, 9}[rng() % 4]));
    if (rng() % 3 == 0) {
      const size_t keep = rng() % (kept.size() + 1);
      ASSERT_EQ(command({"XTRIM", stream, "MAXLEN", std::to_string(keep)})->type,
                REDIS_REPLY_INTEGER);
      while (kept.size() > keep) kept.pop_front();
    }
    const int node = 7 + rng() % 3;
    if (!last[node]) continue;
    const uint64_t from = 1 + rng() % last[node], to = from + rng() % (last[node] - from + 1);
    switch (rng() % 3) {
      case 0:
        for (uint64_t q = from; q <= to; ++q) ASSERT_NO_FATAL_FAILURE(resend(node, q));
        break;
      case 1:
        for (uint64_t q = to; q >= from; --q) ASSERT_NO_FATAL_FAILURE(resend(node, q));
        break;
      default:
        for (int i = 0; i < 30; ++i) ASSERT_NO_FATAL_FAILURE(resend(node, 1 + rng() % last[node]));
    }
  }
  EXPECT_EQ(command({"XLEN", stream})->integer, static_cast<long long>(kept.size()))
      << "a resend was appended";
  // The walk met every case (the seed decides; these hold for it).
  EXPECT_GT(found, 500u);
  EXPECT_GT(resends - found, 500u);
}

// A burst of resends (a node resending all it had unanswered after a hung Redis) reads about
// one entry each: 3000 cost Redis ~10 s when each walked back from the newest entry, blocking
// every other client meanwhile. Those trimmed away answer 0 as fast.
TEST_F(BrokerRedisHistory, ABurstOfResendsIsAnsweredWithEveryFirstOffset) {
  const std::string ch = channel("burst");
  constexpr int kBurst = 3000;
  Reply loaded = command({"SCRIPT", "LOAD", redis::append_script()});
  ASSERT_EQ(loaded->type, REDIS_REPLY_STRING);
  const std::vector<std::string> evalsha{"EVALSHA", std::string(loaded->str, loaded->len)};
  std::vector<std::vector<std::string>> appends;
  for (int i = 1; i <= kBurst; ++i) {
    appends.push_back(append_args(evalsha, ch, "7", std::to_string(i), "d", "1000000"));
    if (i % 3 == 0)
      appends.push_back(append_args(evalsha, ch, "8", std::to_string(i), "d", "1000000"));
  }
  const auto stored = pipeline(appends);
  for (const auto& r : stored) ASSERT_EQ(appended_of(r.get()).resent, 0);
  std::vector<std::vector<std::string>> burst;
  for (int i = 1; i <= kBurst; ++i)
    burst.push_back(append_args(evalsha, ch, "7", std::to_string(i), "d", "1000000"));
  auto resend_burst = [&](long long kept_from) {
    const auto start = std::chrono::steady_clock::now();
    const auto replies = pipeline(burst);
    const auto took = std::chrono::steady_clock::now() - start;
    // Reported, not asserted (speed belongs to benchmarks): ~0.12 s here for 3,000 resends,
    // where the scan of every resend from the stream's end took 13.7 s.
    std::cout << "[ MEASURE  ] " << kBurst << " resends answered by Redis in "
              << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms\n";
    for (int i = 1; i <= kBurst; ++i) {
      const Appended a = appended_of(replies[i - 1].get());
      // Node 7's seq i is the (i + (i - 1) / 3)th entry (node 8 appends after every third).
      const long long offset = i + (i - 1) / 3;
      ASSERT_EQ(a.offset, offset >= kept_from ? offset : 0) << "seq " << i;
      ASSERT_EQ(a.resent, offset >= kept_from ? 1 : 2) << "seq " << i;
    }
  };
  ASSERT_NO_FATAL_FAILURE(resend_burst(1));
  const long long total = kBurst + kBurst / 3;
  ASSERT_EQ(command({"XTRIM", "flowrelay:history:{" + ch + "}", "MAXLEN", "500"})->integer,
            total - 500);
  ASSERT_NO_FATAL_FAILURE(resend_burst(total - 499));
}

// Issue 11, bug 1: Redis hung (SIGSTOP) for 2x command_timeout_ms while node A publishes. A drops
// the link, reconnects after SIGCONT and resends what was not answered, while Redis also runs
// the copies still waiting in the old connection. B gets every message once, history holds
// each once with consecutive offsets, and each completion has its message's first offset.
TEST_F(BrokerRedisHistory, AResendAfterAHungRedisIsStoredAndDeliveredOnce) {
  constexpr int kTimeoutMs = 300;
  Node& a = start_node("command_timeout_ms=" + std::to_string(kTimeoutMs));
  Node& b = start_node();
  const std::string ch = channel("hung");
  ASSERT_NO_FATAL_FAILURE(subscribe(b, ch));
  const pid_t pid = redis_pid();
  ASSERT_GT(pid, 0);
  std::vector<Message> sent;
  for (int i = 1; i <= 20; ++i)
    sent.push_back(a.host.message(FLOWRELAY_LANE_MESSAGE, "h" + std::to_string(i)));
  PublishedLog log(sent.size());
  for (size_t i = 0; i < 10; ++i) ASSERT_NO_FATAL_FAILURE(publish_into(a, ch, sent[i], log, i));
  ASSERT_TRUE(log.wait(kTimeout, 10));
  {
    RedisStopped stopped(pid);
    for (size_t i = 10; i < 20; ++i) ASSERT_NO_FATAL_FAILURE(publish_into(a, ch, sent[i], log, i));
    std::this_thread::sleep_for(std::chrono::milliseconds(2 * kTimeoutMs));
  }
  ASSERT_TRUE(log.wait(kTimeout)) << "not every publish completed after SIGCONT";
  // Redis ran every copy before answering the last completion: a marker published now reaches
  // B after any duplicate would have.
  publish(a, ch, "marker");
  ASSERT_TRUE(b.host.wait_deliveries(ch, sent.size() + 1, kTimeout));
  std::this_thread::sleep_for(kQuietPeriod);

  const auto got = b.host.messages(ch);
  ASSERT_EQ(got.size(), sent.size() + 1) << "duplicates delivered";
  const auto results = log.results();
  for (size_t i = 0; i < sent.size(); ++i) {
    EXPECT_EQ(got[i].data, sent[i].data) << i;
    EXPECT_EQ(got[i].offset, i + 1) << i;
    EXPECT_EQ(got[i].origin, (Origin{a.host.node_id(), 0, i + 1})) << i;
    EXPECT_EQ(results[i].calls, 1) << i;
    EXPECT_EQ(results[i].status, FLOWRELAY_OK) << i;
    EXPECT_EQ(results[i].offset, i + 1) << "completion of message " << i;
  }
  HistoryRead read;
  ASSERT_NO_FATAL_FAILURE(read_history(b, ch, 0, read));
  ASSERT_EQ(read.messages.size(), sent.size() + 1) << "stored twice";
  for (size_t i = 0; i < read.messages.size(); ++i) {
    EXPECT_EQ(read.messages[i].offset, i + 1);
    EXPECT_EQ(read.messages[i].data, i < sent.size() ? sent[i].data : "marker");
  }
  // The scenario did what it is about: A lost its link and resent what Redis had run already.
  EXPECT_GE(metric(a, "flowrelay_redis_reconnects_total"), 1u);
  EXPECT_GE(metric(a, "flowrelay_redis_resends_stored_once_total"), 1u);
}

// The same without history (plain PUBLISH, offset 0): B drops the second copy of a (node, seq).
TEST_F(BrokerRedisHistory, WithoutHistoryAResendAfterAHungRedisIsDeliveredOnce) {
  constexpr int kTimeoutMs = 300;
  Node& a = start_node("history_size=0;command_timeout_ms=" + std::to_string(kTimeoutMs));
  Node& b = start_node("history_size=0");
  const std::string ch = channel("hung-plain");
  ASSERT_NO_FATAL_FAILURE(subscribe(b, ch));
  const pid_t pid = redis_pid();
  ASSERT_GT(pid, 0);
  std::vector<Message> sent;
  for (int i = 1; i <= 20; ++i)
    sent.push_back(a.host.message(FLOWRELAY_LANE_MESSAGE, "p" + std::to_string(i)));
  PublishedLog log(sent.size());
  for (size_t i = 0; i < 10; ++i) ASSERT_NO_FATAL_FAILURE(publish_into(a, ch, sent[i], log, i));
  ASSERT_TRUE(log.wait(kTimeout, 10));
  {
    RedisStopped stopped(pid);
    for (size_t i = 10; i < 20; ++i) ASSERT_NO_FATAL_FAILURE(publish_into(a, ch, sent[i], log, i));
    std::this_thread::sleep_for(std::chrono::milliseconds(2 * kTimeoutMs));
  }
  ASSERT_TRUE(log.wait(kTimeout));
  publish(a, ch, "marker");
  ASSERT_TRUE(b.host.wait_deliveries(ch, sent.size() + 1, kTimeout));
  std::this_thread::sleep_for(kQuietPeriod);

  const auto got = b.host.messages(ch);
  ASSERT_EQ(got.size(), sent.size() + 1) << "duplicates delivered";
  for (size_t i = 0; i < sent.size(); ++i) {
    EXPECT_EQ(got[i].data, sent[i].data) << i;
    EXPECT_EQ(got[i].offset, 0u) << i;
    EXPECT_EQ(got[i].origin, (Origin{a.host.node_id(), 0, i + 1})) << i;
    EXPECT_EQ(log.results()[i].status, FLOWRELAY_OK) << i;
  }
  EXPECT_GE(metric(a, "flowrelay_redis_reconnects_total"), 1u);
  EXPECT_GE(metric(b, "flowrelay_redis_duplicates_skipped_total"), 1u)
      << "Redis ran the old copies and the resends: B saw both";
}

// ------------------------------------------------------------------------------------------
// Subscriptions Redis refuses (here: ACL channel permissions of the default user, which the
// brokers connect as). plugin.h: a PENDING subscribe() is answered exactly once; a re-subscribe
// after a reconnect that fails is reported once with subscribed(channel, error); the others
// carry on.

class AclChannels {
 public:
  // Only channels matching `pattern` (and the brokers' heartbeats) for the default user.
  AclChannels(redisContext* redis, const std::string& pattern) : _redis(redis) {
    set({"ACL", "SETUSER", "default", "resetchannels", "&" + pattern, "&flowrelay:heartbeat:*"});
  }
  ~AclChannels() { set({"ACL", "SETUSER", "default", "allchannels"}); }
  AclChannels(const AclChannels&) = delete;
  AclChannels& operator=(const AclChannels&) = delete;

 private:
  void set(const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    Reply r(static_cast<redisReply*>(
        redisCommandArgv(_redis, static_cast<int>(argv.size()), argv.data(), lens.data())));
    EXPECT_TRUE(r && r->type == REDIS_REPLY_STATUS) << args[4];
  }
  redisContext* _redis;
};

TEST_F(BrokerRedisHistory, ARefusedSubscribeIsAnsweredOnceWithAnError) {
  allow_errors_ = true;
  Node& node = start_node();
  const std::string ok = channel("ok-first"), refused = channel("no-first");
  AclChannels acl(redis_, channel("ok-*"));
  ASSERT_NO_FATAL_FAILURE(subscribe(node, ok));
  ASSERT_EQ(vt_->subscribe(node.broker, view(refused)), FLOWRELAY_PENDING);
  const auto answer = node.host.take_subscribed(refused, kTimeout);
  ASSERT_TRUE(answer.has_value()) << "a PENDING subscribe was never answered";
  EXPECT_NE(*answer, FLOWRELAY_OK);
  EXPECT_TRUE(node.host.wait_ready(1, kTimeout));
  publish(node, ok, "still here");
  ASSERT_TRUE(node.host.wait_deliveries(ok, 1, kTimeout)) << "the other channel stopped";
  std::this_thread::sleep_for(kQuietPeriod);
  EXPECT_FALSE(node.host.take_subscribed(refused, 0s)) << "answered twice";
  EXPECT_FALSE(node.host.take_subscribed(ok, 0s)) << "its re-subscribe was reported";
  vt_->unsubscribe(node.broker, view(refused));  // as the daemon does once its sessions left
  EXPECT_EQ(metric(node, "flowrelay_redis_subscribe_refused_total"), 1u);
  bool reported = false;
  for (const auto& [code, detail] : node.host.errors())
    reported |= detail.find("refused to subscribe " + refused) != std::string::npos &&
                detail.find("NOPERM") != std::string::npos;
  EXPECT_TRUE(reported) << "not reported in Redis' words";
}

TEST_F(BrokerRedisHistory, ARefusedResubscribeIsReportedOnceAndTheOthersCarryOn) {
  allow_errors_ = true;
  long long sub_id = 0;
  Node& node = start_node_with_subscriber("reconnect_min_ms=50;reconnect_max_ms=100", sub_id);
  const std::string ok = channel("ok-again"), victim = channel("no-longer");
  ASSERT_NO_FATAL_FAILURE(subscribe(node, ok));
  ASSERT_NO_FATAL_FAILURE(subscribe(node, victim));
  AclChannels acl(redis_, channel("ok-*"));
  // Redis 7 disconnects a client subscribed to a channel it may no longer access; cut it in
  // case this one does not.
  command({"CLIENT", "KILL", "ID", std::to_string(sub_id)});
  const auto answer = node.host.take_subscribed(victim, kTimeout);
  ASSERT_TRUE(answer.has_value()) << "the failed re-subscribe was not reported";
  EXPECT_NE(*answer, FLOWRELAY_OK);
  ASSERT_TRUE(node.host.wait_ready(1, kTimeout));
  publish(node, ok, "after");
  ASSERT_TRUE(node.host.wait_deliveries(ok, 1, kTimeout)) << "the other channel stopped";
  std::this_thread::sleep_for(kQuietPeriod);
  EXPECT_FALSE(node.host.take_subscribed(victim, 0s)) << "reported twice";
  EXPECT_FALSE(node.host.take_subscribed(ok, 0s)) << "a re-subscribe that worked was reported";
  EXPECT_EQ(metric(node, "flowrelay_redis_subscribe_refused_total"), 1u);
}

}  // namespace
}  // namespace flowrelay::test
