// broker-redis following Redis Sentinel, against real processes: a master, one replica
// (--replicaof) and one redis-sentinel, all on free loopback ports in a temp dir. The broker is
// given only redis+sentinel://127.0.0.1:<sentinel port>/<name>.
#include <gtest/gtest.h>

#include <hiredis/hiredis.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "broker_test_host.h"
#include "plugin_loader.h"
#include "support/ports.h"
#include "support/process.h"
#include "support/temp_dir.h"
#include "support/wait.h"

namespace flowrelay::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
constexpr auto kTimeout = 10s;
constexpr const char* kName = "fr-master";

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// A reply of `port` to `args`, as a string ("" on no answer).
std::string ask(int port, const std::vector<std::string>& args) {
  redisContext* c = redisConnect("127.0.0.1", port);
  if (!c || c->err) {
    if (c) redisFree(c);
    return "";
  }
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* r = static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
  std::string out;
  if (r) {
    if (r->type == REDIS_REPLY_ARRAY) {
      for (size_t i = 0; i < r->elements; ++i)
        out += std::string(r->element[i]->str ? r->element[i]->str : "") + " ";
    } else if (r->str) {
      out = r->str;
    } else if (r->type == REDIS_REPLY_INTEGER) {
      out = std::to_string(r->integer);
    }
    freeReplyObject(r);
  }
  redisFree(c);
  return out;
}

class BrokerRedisSentinel : public ::testing::Test {
 protected:
  void SetUp() override {
    try {
      plugin_ = LoadedPlugin::load(env("FLOWRELAY_BROKER_PLUGIN"));
    } catch (const PluginError& e) {
      GTEST_FAIL() << e.what();
    }
    vt_ = plugin_->broker();
    master_port_ = free_port();
    replica_port_ = free_port();
    sentinel_port_ = free_port();
    const std::string server = env("REDIS_SERVER").empty() ? "redis-server" : env("REDIS_SERVER");
    const auto common = [&](int port) {
      return std::vector<std::string>{server,   "--port",       std::to_string(port),
                                      "--bind", "127.0.0.1",    "--save",
                                      "",       "--appendonly", "no",
                                      "--dir",  dir_.path()};
    };
    master_.start(common(master_port_), {dir_.file("master.log"), {}});
    auto replica_args = common(replica_port_);
    replica_args.insert(replica_args.end(),
                        {"--replicaof", "127.0.0.1", std::to_string(master_port_)});
    replica_.start(replica_args, {dir_.file("replica.log"), {}});
    ASSERT_TRUE(wait_for([&] { return ask(master_port_, {"PING"}) == "PONG"; }, kTimeout));
    ASSERT_TRUE(wait_for(
        [&] {
          return ask(replica_port_, {"INFO", "replication"}).find("master_link_status:up") !=
                 std::string::npos;
        },
        kTimeout));
  }

  void start_sentinel() {
    std::ostringstream text;
    text << "port " << sentinel_port_ << "\nbind 127.0.0.1\ndir " << dir_.path()
         << "\nsentinel monitor " << kName << " 127.0.0.1 " << master_port_
         << " 1\nsentinel down-after-milliseconds " << kName << " 1000\nsentinel failover-timeout "
         << kName << " 5000\n";
    const std::string bin =
        env("REDIS_SENTINEL").empty() ? "redis-sentinel" : env("REDIS_SENTINEL");
    // A sentinel rewrites its config file: its own in the temp dir.
    const std::string conf = dir_.write("sentinel.conf", text.str());
    sentinel_.start({bin, conf}, {dir_.file("sentinel.log"), {}});
    ASSERT_TRUE(wait_for([&] { return ask(sentinel_port_, {"PING"}) == "PONG"; }, kTimeout));
  }

  void TearDown() override {
    if (broker_) vt_->destroy(broker_);
    sentinel_.kill_group();
    replica_.kill_group();
    master_.kill_group();
  }

  void create(const std::string& name) {
    OptionList options =
        OptionList::parse("url=redis+sentinel://127.0.0.1:" + std::to_string(sentinel_port_) + "/" +
                          name + ";sentinel_check_ms=300;reconnect_max_ms=200;history_size=1000");
    char err[512] = "";
    ASSERT_EQ(vt_->create(host_.api(), host_.handle(), options.data(), options.size(), &broker_,
                          err, sizeof err),
              FLOWRELAY_OK)
        << err;
    ASSERT_EQ(vt_->start(broker_, err, sizeof err), FLOWRELAY_OK) << err;
  }

  std::string metrics() {
    std::string text;
    vt_->metrics(
        broker_,
        [](void* ctx, flowrelay_str s) { static_cast<std::string*>(ctx)->append(s.ptr, s.len); },
        &text);
    return text;
  }

  std::shared_ptr<LoadedPlugin> plugin_;
  const flowrelay_broker_vtable* vt_ = nullptr;
  BrokerTestHost host_;
  flowrelay_broker* broker_ = nullptr;
  TempDir dir_{"fr-sentinel"};
  int master_port_ = 0, replica_port_ = 0, sentinel_port_ = 0;
  Process master_, replica_, sentinel_;
};

TEST_F(BrokerRedisSentinel, PublishesAndHistoryThroughTheSentinelAndFollowAFailover) {
  start_sentinel();
  create(kName);
  ASSERT_TRUE(host_.wait_ready(1, kTimeout));
  const std::string ch = "sentinel.ch";
  struct Acked {
    std::string data, epoch;
    uint64_t offset;
  };
  std::vector<Acked> acked;
  const auto publish_batch = [&](int from, int n) {
    std::vector<Message> batch;
    for (int i = from; i < from + n; ++i)
      batch.push_back(host_.message(FLOWRELAY_LANE_MESSAGE, "m" + std::to_string(i)));
    PublishedLog log(batch.size());
    EXPECT_EQ(publish_messages(vt_, broker_, ch, batch, log, kTimeout), FLOWRELAY_OK);
    EXPECT_TRUE(log.wait(kTimeout));
    const auto results = log.results();
    for (size_t i = 0; i < batch.size(); ++i)
      if (results[i].status == FLOWRELAY_OK)
        acked.push_back({batch[i].data, results[i].epoch, results[i].offset});
  };
  publish_batch(0, 5);
  ASSERT_EQ(acked.size(), 5u);

  // The replica must be known to the sentinel before it can be promoted.
  ASSERT_TRUE(wait_for(
      [&] {
        return ask(sentinel_port_, {"SENTINEL", "FAILOVER", kName}) == "OK";
      },
      kTimeout));
  int next = 5;
  const bool moved = wait_for(
      [&] {
        publish_batch(next, 3);
        next += 3;
        return metrics().find("flowrelay_redis_master_changes_total{broker=\"redis\"} 1") !=
               std::string::npos;
      },
      15s);
  ASSERT_TRUE(moved) << metrics();
  ASSERT_TRUE(host_.wait_ready(1, kTimeout));
  publish_batch(next, 5);
  EXPECT_NE(ask(replica_port_, {"ROLE"}).find("master"), std::string::npos);

  HistoryRead read;
  ASSERT_EQ(vt_->history(broker_, view(ch), 0, HistoryRead::on_done, &read), FLOWRELAY_OK);
  ASSERT_TRUE(read.wait(kTimeout));
  ASSERT_EQ(read.status, FLOWRELAY_OK);
  // Publishes the old master acknowledged after the promotion are lost with its demotion
  // (asynchronous replication). That must never be silent: the history then starts a new epoch
  // (the regression fence), so it holds exactly the acknowledged messages of its epoch, in
  // order, once each, whichever way the failover went.
  std::vector<std::string> got, want;
  for (const auto& m : read.messages) got.push_back(m.data);
  for (const auto& a : acked)
    if (a.epoch == read.epoch) want.push_back(a.data);
  EXPECT_EQ(got, want) << "history epoch " << read.epoch;
  EXPECT_EQ(acked.back().epoch, read.epoch);
  const bool fenced = acked.front().epoch != read.epoch;
  std::cout << "[ FAILOVER ] " << acked.size() << " acknowledged, " << got.size() << " in history; "
            << (fenced ? "lost writes fenced: new epoch" : "same epoch") << "\n";
  // Counted just after the completion it belongs to: waited for (bounded).
  if (fenced)
    EXPECT_TRUE(wait_for(
        [&] {
          return metrics().find("flowrelay_redis_history_regressions_total{broker=\"redis\"} 0") ==
                 std::string::npos;
        },
        kTimeout))
        << "a new epoch, but no regression counted";
  else
    EXPECT_EQ(got.size(), acked.size()) << "acknowledged messages missing in the same epoch";
}

TEST_F(BrokerRedisSentinel, AnUnknownMasterIsReportedNotReady) {
  start_sentinel();
  create("no-such-master");
  ASSERT_TRUE(wait_for([&] { return !host_.errors().empty(); }, kTimeout)) << "no report";
  EXPECT_NE(host_.errors()[0].second.find("does not know master no-such-master"), std::string::npos)
      << host_.errors()[0].second;
  EXPECT_TRUE(host_.ready_history().empty() || host_.ready_history().back() == 0);
}

TEST_F(BrokerRedisSentinel, NotReadyWhileTheOnlySentinelIsDownThenRecovers) {
  create(kName);
  std::this_thread::sleep_for(500ms);  // the broker has to have tried and failed (no event)
  EXPECT_TRUE(host_.ready_history().empty() || host_.ready_history().back() == 0);
  EXPECT_NE(metrics().find("flowrelay_redis_sentinel_connected{broker=\"redis\"} 0"),
            std::string::npos);
  start_sentinel();
  EXPECT_TRUE(host_.wait_ready(1, kTimeout));
}

}  // namespace
}  // namespace flowrelay::test
