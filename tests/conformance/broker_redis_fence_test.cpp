// broker-redis across a failover that lost acknowledged writes (docs/PROTOCOL.md "Failover and
// lost writes"): a channel's keys rolled back to an earlier state (DUMP/RESTORE, as a replica
// that lagged would hold them) must never reuse the lost offsets in the same epoch, whether the
// next write is a publish, a reply step or only the gap fill's read; and wait_replicas against
// a real replica (redis-server --replicaof on loopback) and without one.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <flowrelay/plugin.hpp>

#include "broker_redis_reply_fixture.h"
#include "seam_replay.h"

namespace flowrelay::test {
namespace {

using namespace std::chrono_literals;

class BrokerRedisFence : public BrokerRedisReplies {
 protected:
  static constexpr const char* kHistory = "history_size=100;history_max_age_ms=60000";

  std::vector<std::string> keys_of(const std::string& ch) const {
    return {stream_key(ch), seq_key(ch), replies_key(ch), "flowrelay:entries:{" + ch + "}"};
  }
  // DUMP of each of the channel's keys ("" for a key that does not exist).
  std::map<std::string, std::string> dump(const std::string& ch) {
    std::map<std::string, std::string> out;
    for (const auto& key : keys_of(ch)) {
      Reply r = command({"DUMP", key});
      out[key] = r && r->type == REDIS_REPLY_STRING ? std::string(r->str, r->len) : "";
    }
    return out;
  }
  // Puts the keys back as dumped: what a promoted replica that lagged holds.
  void restore(const std::map<std::string, std::string>& dumped) {
    for (const auto& [key, value] : dumped) {
      command({"DEL", key});
      if (value.empty()) continue;
      Reply r = command({"RESTORE", key, "0", value, "REPLACE"});
      ASSERT_TRUE(r && r->type == REDIS_REPLY_STATUS) << "RESTORE " << key;
    }
  }
  std::string stored_epoch(const std::string& ch) {
    Reply r = command({"HGET", seq_key(ch), "epoch"});
    return r && r->type == REDIS_REPLY_STRING ? std::string(r->str, r->len) : "";
  }
  uint64_t metric(ReplyNode& node, const std::string& name) {
    std::string text;
    vt_->metrics(
        node.broker,
        [](void* ctx, flowrelay_str s) { static_cast<std::string*>(ctx)->append(s.ptr, s.len); },
        &text);
    const std::string key = name + "{broker=\"redis\"} ";
    const size_t at = text.find(key);
    EXPECT_NE(at, std::string::npos) << name << " missing";
    return at == std::string::npos ? 0 : std::stoull(text.substr(at + key.size()));
  }
  // A node on the loopback Redis at `port` (start_node() takes with_redis.sh's socket).
  ReplyNode& start_tcp_node(int port, const std::string& extra) {
    auto node = std::make_unique<ReplyNode>();
    OptionList options = OptionList::parse("url=redis://127.0.0.1:" + std::to_string(port) + ";" +
                                           kHistory + ";wait_timeout_ms=5000;" + extra);
    char err[512] = "";
    EXPECT_EQ(vt_->create(node->host.api(), node->host.handle(), options.data(), options.size(),
                          &node->broker, err, sizeof err),
              FLOWRELAY_OK)
        << err;
    if (node->broker) {
      EXPECT_EQ(vt_->start(node->broker, err, sizeof err), FLOWRELAY_OK) << err;
      EXPECT_TRUE(node->host.wait_ready(1, kTimeout));
    }
    nodes_.push_back(std::move(node));
    return *nodes_.back();
  }
  // start_node(), and in `id` the new node's connection named `link` (CLIENT SETNAME).
  ReplyNode& start_node_with_link(const std::string& extra, const std::string& link,
                                  long long& id) {
    auto named = [&] {
      std::set<long long> ids;
      Reply list = command({"CLIENT", "LIST"});
      std::istringstream lines(std::string(list->str, list->len));
      for (std::string line; std::getline(lines, line);)
        if (line.find(" name=" + link + " ") != std::string::npos)
          ids.insert(std::stoll(line.substr(line.find("id=") + 3)));
      return ids;
    };
    const auto before = named();
    ReplyNode& node = start_node(extra);
    for (long long i : named())
      if (!before.count(i)) id = i;
    return node;
  }
  void kill_client(long long id) {
    Reply r = command({"CLIENT", "KILL", "ID", std::to_string(id)});
    ASSERT_TRUE(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1) << "CLIENT KILL " << id;
  }
  // Publishes d1..dn; the epoch of the last.
  std::string publish_n(ReplyNode& node, const std::string& ch, int from, int to) {
    std::string epoch;
    for (int i = from; i <= to; ++i) {
      const auto r = publish(node, ch, "d" + std::to_string(i));
      EXPECT_EQ(r.status, FLOWRELAY_OK);
      EXPECT_EQ(r.offset, static_cast<uint64_t>(i));
      epoch = r.epoch;
    }
    return epoch;
  }
};

// Polls `done` every 10 ms for at most `timeout`. Counters are awaited this way: the broker
// counts an outcome just after calling its completion.
template <class F>
bool wait_for(F done, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

TEST_F(BrokerRedisFence, AnAppendAfterARegressionStartsANewEpoch) {
  ReplyNode& node = start_node(kHistory);
  const std::string ch = channel("append");
  const std::string old_epoch = publish_n(node, ch, 1, 3);
  const auto after3 = dump(ch);
  publish_n(node, ch, 4, 5);
  ASSERT_NO_FATAL_FAILURE(restore(after3));

  const auto r = publish(node, ch, "after the failover");
  EXPECT_EQ(r.status, FLOWRELAY_OK);
  EXPECT_NE(r.epoch, old_epoch);
  EXPECT_EQ(r.offset, 1u);  // not 4: offsets 4 and 5 of the old epoch name lost messages
  EXPECT_TRUE(wait_for([&] {
    return metric(node, "flowrelay_redis_history_regressions_total") == 1;
  })) << metric(node, "flowrelay_redis_history_regressions_total");
  // Further publishes carry the new epoch's floor: no second fence.
  EXPECT_EQ(publish(node, ch, "next").offset, 2u);
  EXPECT_EQ(metric(node, "flowrelay_redis_history_regressions_total"), 1u);

  // A client resuming with the old epoch at 5 is told recovered:false.
  const ReplyHistory h = history(node, ch, 5);
  ASSERT_EQ(h.status, FLOWRELAY_OK);
  struct NoPosition {
    SeamPosition operator()(int) const { return {}; }
  };
  SeamReplay<int, NoPosition> seam;
  seam.begin(5, old_epoch);
  SeamAnswer answer{true, h.epoch, h.top};
  answer.trimmed_known = h.trimmed_known;
  answer.trimmed = h.trimmed;
  EXPECT_EQ(seam.settle(answer).result, SeamResult::Reset);
}

TEST_F(BrokerRedisFence, AReplyStepAfterARegressionStartsANewEpoch) {
  ReplyNode& node = start_node(kHistory);
  const std::string ch = channel("reply");
  const std::string old_epoch = publish_n(node, ch, 1, 3);
  const auto after3 = dump(ch);
  publish_n(node, ch, 4, 5);
  ASSERT_NO_FATAL_FAILURE(restore(after3));

  const StepResult opened = open(node, ch, "r1");
  EXPECT_EQ(opened.status, FLOWRELAY_OK);
  EXPECT_NE(opened.epoch, old_epoch);
  EXPECT_EQ(opened.offset, 1u);
  const StepResult delta1 = delta(node, ch, "r1", 1, "hello");
  EXPECT_EQ(delta1.status, FLOWRELAY_OK);
  EXPECT_EQ(delta1.epoch, opened.epoch);
  EXPECT_EQ(delta1.offset, 2u);
  EXPECT_TRUE(wait_for([&] {
    return metric(node, "flowrelay_redis_history_regressions_total") == 1;
  })) << metric(node, "flowrelay_redis_history_regressions_total");
}

TEST_F(BrokerRedisFence, TheGapFillFencesARegressionNobodyPublishesInto) {
  long long sub_id = -1;
  ReplyNode& node = start_node_with_link(kHistory, "flowrelay-sub", sub_id);
  ASSERT_NE(sub_id, -1) << "no subscriber connection named flowrelay-sub";

  const std::string ch = channel("gap");
  flowrelay_status subscribed = vt_->subscribe(node.broker, sdk::str(ch));
  if (subscribed == FLOWRELAY_PENDING)
    subscribed = node.host.take_subscribed(ch, kTimeout).value_or(-1);
  ASSERT_EQ(subscribed, FLOWRELAY_OK);
  const std::string old_epoch = publish_n(node, ch, 1, 3);
  const auto after3 = dump(ch);
  publish_n(node, ch, 4, 5);
  ASSERT_TRUE(node.host.wait_deliveries(ch, 5, kTimeout));
  ASSERT_NO_FATAL_FAILURE(restore(after3));
  const uint64_t unrecovered = metric(node, "flowrelay_redis_gap_unrecovered_total");

  ASSERT_NO_FATAL_FAILURE(kill_client(sub_id));
  EXPECT_TRUE(wait_for([&] {
    return metric(node, "flowrelay_redis_gap_unrecovered_total") > unrecovered;
  })) << "the gap fill after the resubscribe did not report the regression";
  const std::string epoch = stored_epoch(ch);
  EXPECT_FALSE(epoch.empty());
  EXPECT_NE(epoch, old_epoch);  // fenced by the read itself: nobody published
  EXPECT_TRUE(wait_for([&] {
    return metric(node, "flowrelay_redis_history_regressions_total") == 1;
  })) << metric(node, "flowrelay_redis_history_regressions_total");
  const auto r = publish(node, ch, "after");
  EXPECT_EQ(r.epoch, epoch);
  EXPECT_EQ(r.offset, 1u);
}

// A redis-server on a loopback port (a replica of `master_port` if not 0), stopped on exit.
class TcpRedis {
 public:
  explicit TcpRedis(int master_port = 0) {
    port_ = free_port();
    const char* server = std::getenv("REDIS_SERVER");
    std::vector<std::string> args = {
        "timeout", "60", server ? server : "redis-server", "--port", std::to_string(port_),
        "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--logfile", "/dev/null",
        // No 5 s wait before a replica's first sync, no RDB file.
        "--repl-diskless-sync-delay", "0", "--repl-diskless-load", "swapdb"};
    if (master_port)
      args.insert(args.end(), {"--replicaof", "127.0.0.1", std::to_string(master_port)});
    pid_ = fork();
    if (pid_ == 0) {
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execvp(argv[0], argv.data());
      _exit(127);
    }
    wait_for([&] {
      redisContext* c = redisConnect("127.0.0.1", port_);
      const bool up = c && !c->err;
      if (c) redisFree(c);
      return up;
    });
  }
  ~TcpRedis() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
  }
  TcpRedis(const TcpRedis&) = delete;
  TcpRedis& operator=(const TcpRedis&) = delete;
  int port() const { return port_; }
  // What follows `prefix` in INFO `section` up to the next ',' or line end ("" if absent).
  std::string info(const std::string& section, const std::string& prefix) const {
    redisContext* c = redisConnect("127.0.0.1", port_);
    std::string value;
    if (c && !c->err) {
      auto* r = static_cast<redisReply*>(redisCommand(c, "INFO %s", section.c_str()));
      if (r && r->type == REDIS_REPLY_STRING) {
        const std::string text(r->str, r->len);
        const size_t at = text.find(prefix);
        if (at != std::string::npos) {
          const size_t from = at + prefix.size();
          value = text.substr(from, text.find_first_of(",\r\n", from) - from);
        }
      }
      if (r) freeReplyObject(r);
    }
    if (c) redisFree(c);
    return value;
  }

 private:
  static int free_port() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    close(fd);
    return ntohs(a.sin_port);
  }
  int port_ = 0;
  pid_t pid_ = -1;
};

TEST_F(BrokerRedisFence, WaitReplicasWaitsOncePerBatch) {
  TcpRedis master;
  TcpRedis replica(master.port());
  ASSERT_TRUE(wait_for([&] { return master.info("replication", ",state=") == "online"; }))
      << "the replica did not come online";
  ReplyNode* started = nullptr;
  ASSERT_NO_FATAL_FAILURE(started = &start_tcp_node(master.port(), "wait_replicas=1"));
  ReplyNode& n = *started;

  const auto waits = [&] {
    const std::string calls = master.info("commandstats", "cmdstat_wait:calls=");
    return calls.empty() ? 0LL : std::stoll(calls);
  };
  const long long before = waits();
  constexpr size_t kPublishes = 200;
  std::vector<Message> messages;
  for (size_t i = 0; i < kPublishes; ++i)
    messages.push_back(n.host.message(FLOWRELAY_LANE_MESSAGE, "m" + std::to_string(i)));
  PublishedLog log(kPublishes);
  ASSERT_EQ(publish_messages(vt_, n.broker, channel("wait"), messages, log, kTimeout),
            FLOWRELAY_OK);
  ASSERT_TRUE(log.wait(kTimeout));
  for (const auto& r : log.results()) EXPECT_EQ(r.status, FLOWRELAY_OK);
  const long long sent = waits() - before;
  std::printf("[ MEASURE  ] %lld WAITs for %zu publishes\n", sent, kPublishes);
  EXPECT_GE(sent, 1);
  EXPECT_LT(sent, static_cast<long long>(kPublishes) / 2) << "a WAIT per publish, not per batch";
  EXPECT_EQ(metric(n, "flowrelay_redis_wait_short_total"), 0u);
  // What was acknowledged is on the replica.
  EXPECT_TRUE(wait_for([&] { return !replica.info("keyspace", "db0:keys=").empty(); }));
}

// A link lost while the WAIT blocks: the batch was answered by the script but not completed; it
// is resent on the next link (stored once: the append script knows the resend) and completes
// only after that link's WAIT.
TEST_F(BrokerRedisFence, ALinkLostBeforeTheWaitAnsweredResendsTheBatch) {
  long long pub_id = -1;
  ReplyNode& node = start_node_with_link(
      std::string(kHistory) + ";wait_replicas=1;wait_timeout_ms=1500", "flowrelay-pub", pub_id);
  ASSERT_NE(pub_id, -1) << "no publisher connection named flowrelay-pub";
  const std::string ch = channel("lost-wait");
  PublishedLog log(1);
  ASSERT_EQ(publish_messages(vt_, node.broker, ch, {node.host.message(FLOWRELAY_LANE_MESSAGE, "w")},
                             log, kTimeout),
            FLOWRELAY_OK);
  ASSERT_TRUE(wait_for([&] {
    return command({"HGET", seq_key(ch), "top"})->type == REDIS_REPLY_STRING;
  })) << "the append never ran";
  EXPECT_FALSE(log.wait(0s)) << "completed before its WAIT answered";
  ASSERT_NO_FATAL_FAILURE(kill_client(pub_id));
  ASSERT_TRUE(log.wait(kTimeout));
  const auto r = log.results()[0];
  EXPECT_EQ(r.status, FLOWRELAY_OK);
  EXPECT_EQ(r.offset, 1u);
  EXPECT_TRUE(wait_for([&] {
    return metric(node, "flowrelay_redis_resends_stored_once_total") == 1;
  })) << metric(node, "flowrelay_redis_resends_stored_once_total");
  EXPECT_EQ(integer({"XLEN", stream_key(ch)}), 1);
}

// Not a test: what wait_replicas costs (docs/PROTOCOL.md "Failover and lost writes"). Run with
// --gtest_also_run_disabled_tests --gtest_filter='*MeasureWaitReplicas*'.
TEST_F(BrokerRedisFence, DISABLED_MeasureWaitReplicas) {
  TcpRedis master;
  TcpRedis replica(master.port());
  ASSERT_TRUE(wait_for([&] { return master.info("replication", ",state=") == "online"; }));
  for (const char* wait : {"wait_replicas=0", "wait_replicas=1"}) {
    ReplyNode& n = start_tcp_node(master.port(), wait);
    const std::string ch = channel(std::string("measure-") + wait);
    // Pipelined: windows of 100 publishes in flight.
    constexpr size_t kWindow = 100, kWindows = 50;
    auto started = std::chrono::steady_clock::now();
    for (size_t w = 0; w < kWindows; ++w) {
      std::vector<Message> messages;
      for (size_t i = 0; i < kWindow; ++i)
        messages.push_back(n.host.message(FLOWRELAY_LANE_MESSAGE, std::string(100, 'x')));
      PublishedLog log(kWindow);
      ASSERT_EQ(publish_messages(vt_, n.broker, ch, messages, log, kTimeout), FLOWRELAY_OK);
      ASSERT_TRUE(log.wait(kTimeout));
    }
    const double pipelined =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    // One at a time: each publish waits for the previous one's completion.
    constexpr int kSequential = 500;
    started = std::chrono::steady_clock::now();
    for (int i = 0; i < kSequential; ++i) publish(n, ch, std::string(100, 'y'));
    const double sequential =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::printf(
        "[ MEASURE  ] %s: %.0f publishes/s pipelined (windows of %zu), %.0f/s one at a "
        "time (%.1f us each)\n",
        wait, kWindow * kWindows / pipelined, kWindow, kSequential / sequential,
        sequential / kSequential * 1e6);
  }
}

TEST_F(BrokerRedisFence, WaitReplicasWithoutAReplicaCompletesAfterTheTimeout) {
  ReplyNode& node = start_node(std::string(kHistory) + ";wait_replicas=1;wait_timeout_ms=300");
  const auto started = std::chrono::steady_clock::now();
  const auto r = publish(node, channel("short"), "alone");
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(r.status, FLOWRELAY_OK);
  EXPECT_EQ(r.offset, 1u);
  EXPECT_GE(took, 250ms);
  EXPECT_EQ(metric(node, "flowrelay_redis_wait_short_total"), 1u);
  EXPECT_EQ(publish(node, channel("short"), "again").offset, 2u);
  EXPECT_EQ(metric(node, "flowrelay_redis_wait_short_total"), 2u);
}

}  // namespace
}  // namespace flowrelay::test
