// The daemon's side of reply streams: the reply watch (stalled once per stall, sealed with
// producer_lost after the timeout, forgotten with its channel), the router's fan-out to a
// transport built before ABI 2.2 (deltas as plain messages, nothing else of a reply), and the
// transport host's checks of a reply step. Real timers, short ones.
#include <gtest/gtest.h>
#include <flowrelay/plugin.hpp>

#include <Poco/Logger.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "http_api.h"
#include "plugin_host.h"
#include "replies/reply_rules.h"
#include "replies/reply_watch.h"
#include "router.h"

namespace flowrelay {
namespace {

using namespace std::chrono_literals;
using sdk::view;
constexpr uint64_t kNode = 0x77;

// A reply step as a broker delivers it.
struct Step {
  flowrelay_reply reply{};
  flowrelay_message message{};
  std::string id;
  Step(flowrelay_kind kind, std::string reply_id, uint64_t seq = 0, uint64_t node = kNode,
       std::string_view reason = {})
      : id(std::move(reply_id)) {
    reply.struct_size = sizeof reply;
    reply.kind = kind;
    reply.id = sdk::str(id);
    reply.seq = seq;
    reply.reason = sdk::str(reason);
    reply.ttft_ms = kind == FLOWRELAY_KIND_END ? 40 : -1;
    reply.bytes = 7;
    message = sdk::make_message(FLOWRELAY_LANE_MESSAGE, kind == FLOWRELAY_KIND_DELTA ? "tok" : "");
    message.origin.node = node;
    message.reply = &reply;
  }
};

// A watch whose deliveries and seals are recorded; seals are answered with `seal_status`.
struct Watched {
  std::mutex mutex;
  std::vector<std::string> stalled;  // "<channel> <reply> <seq>"
  std::vector<std::string> sealed;   // "<channel> <reply> <reason>"
  std::atomic<flowrelay_status> seal_status{FLOWRELAY_OK};
  std::atomic<int> refuse_seals{0};  // this many seals are refused (EUNAVAIL) at the call
  ReplyWatch watch{kNode,
                   [this](std::string_view ch, const flowrelay_message& m) {
                     std::lock_guard l(mutex);
                     EXPECT_EQ(m.reply->kind, FLOWRELAY_KIND_STALLED);
                     EXPECT_EQ(m.offset, 0u);
                     stalled.push_back(std::string(ch) + " " + std::string(view(m.reply->id)) +
                                       " " + std::to_string(m.reply->seq));
                   },
                   [this](std::string_view ch, const flowrelay_message& m,
                          flowrelay_reply_published_fn done, void* ctx) {
                     if (refuse_seals > 0) {
                       --refuse_seals;
                       return FLOWRELAY_EUNAVAIL;
                     }
                     {
                       std::lock_guard l(mutex);
                       sealed.push_back(std::string(ch) + " " + std::string(view(m.reply->id)) +
                                        " " + std::string(view(m.reply->reason)));
                     }
                     flowrelay_reply_published out{};
                     out.struct_size = sizeof out;
                     out.status = seal_status;
                     done(ctx, &out);
                     return FLOWRELAY_OK;
                   }};
  size_t stalls() {
    std::lock_guard l(mutex);
    return stalled.size();
  }
  size_t seals() {
    std::lock_guard l(mutex);
    return sealed.size();
  }
};

bool eventually(const std::function<bool()>& ok, std::chrono::milliseconds limit = 2s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (ok()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return ok();
}

TEST(ReplyWatch, StallsOnceThenSealsWithProducerLost) {
  Watched w;
  w.watch.set_timers(150, 1000);
  w.watch.watch_channel("chat:1");
  Step d(FLOWRELAY_KIND_DELTA, "r1", 3);
  w.watch.observe("chat:1", d.message, d.reply);
  EXPECT_EQ(w.watch.open(), 1u);
  ASSERT_TRUE(eventually([&] { return w.stalls() == 1; }));
  EXPECT_EQ(w.stalled[0], "chat:1 r1 3");
  EXPECT_EQ(w.seals(), 0u) << "sealed before reply_timeout_ms";
  ASSERT_TRUE(eventually([&] { return w.seals() == 1; }));
  EXPECT_EQ(w.sealed[0], "chat:1 r1 producer_lost");
  EXPECT_EQ(w.stalls(), 1u) << "a stall is announced once";
  EXPECT_TRUE(eventually([&] { return w.watch.open() == 0; }));
  std::this_thread::sleep_for(1200ms);
  EXPECT_EQ(w.seals(), 1u) << "sealed twice";
}

TEST(ReplyWatch, ADeltaAfterAStallResumesAndCanStallAgain) {
  Watched w;
  w.watch.set_timers(300, 2000);
  w.watch.watch_channel("c");
  Step d1(FLOWRELAY_KIND_DELTA, "r", 1);
  w.watch.observe("c", d1.message, d1.reply);
  ASSERT_TRUE(eventually([&] { return w.stalls() == 1; }));
  Step d2(FLOWRELAY_KIND_DELTA, "r", 2);
  w.watch.observe("c", d2.message, d2.reply);
  ASSERT_TRUE(eventually([&] { return w.stalls() == 2; }));
  EXPECT_EQ(w.stalled[1], "c r 2");
  // Deltas that keep coming never stall it.
  for (int i = 3; i < 20; ++i) {
    Step d(FLOWRELAY_KIND_DELTA, "r", i);
    w.watch.observe("c", d.message, d.reply);
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(w.stalls(), 2u);
  Step end(FLOWRELAY_KIND_END, "r", 19, kNode, "done");
  w.watch.observe("c", end.message, end.reply);
  EXPECT_EQ(w.watch.open(), 0u);
  std::this_thread::sleep_for(700ms);
  EXPECT_EQ(w.stalls(), 2u) << "stalled after its end";
  EXPECT_EQ(w.seals(), 0u) << "sealed after its end";
}

TEST(ReplyWatch, WatchesOnlyChannelsWithSessionsAndForgetsThem) {
  Watched w;
  w.watch.set_timers(50, 150);
  Step d(FLOWRELAY_KIND_OPEN, "r");
  w.watch.observe("nobody", d.message, d.reply);
  EXPECT_EQ(w.watch.open(), 0u);
  w.watch.watch_channel("c");
  w.watch.observe("c", d.message, d.reply);
  EXPECT_EQ(w.watch.open(), 1u);
  w.watch.forget_channel("c");
  EXPECT_EQ(w.watch.open(), 0u);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(w.stalls() + w.seals(), 0u) << "a forgotten channel's reply was acted on";
}

TEST(ReplyWatch, ZeroDisablesAndAReloadAppliesToWatchedReplies) {
  Watched w;
  w.watch.set_timers(0, 0);
  w.watch.watch_channel("c");
  Step d(FLOWRELAY_KIND_DELTA, "r", 1);
  w.watch.observe("c", d.message, d.reply);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(w.stalls() + w.seals(), 0u);
  w.watch.set_timers(0, 100);  // SIGHUP: the reply already watched is timed out now
  ASSERT_TRUE(eventually([&] { return w.seals() == 1; }));
  EXPECT_EQ(w.stalls(), 0u);
}

TEST(ReplyWatch, ASealTheBrokerCouldNotTakeIsTriedAgainAndAConflictEndsTheWatch) {
  Watched w;
  w.refuse_seals = 1;
  w.seal_status = FLOWRELAY_ECONFLICT;  // another node's END won
  w.watch.set_timers(0, 100);
  w.watch.watch_channel("c");
  Step d(FLOWRELAY_KIND_DELTA, "r", 1);
  w.watch.observe("c", d.message, d.reply);
  ASSERT_TRUE(eventually([&] { return w.seals() == 1; }));
  EXPECT_EQ(w.refuse_seals, 0);
  EXPECT_TRUE(eventually([&] { return w.watch.open() == 0; }));
}

TEST(ReplyWatch, MetricsCountThisNodesRepliesOnly) {
  Watched w;
  w.watch.set_timers(0, 0);
  w.watch.watch_channel("c");
  for (int i = 1; i <= 3; ++i) {
    Step d(FLOWRELAY_KIND_DELTA, "r", i);
    w.watch.observe("c", d.message, d.reply);
    Step other(FLOWRELAY_KIND_DELTA, "x", i, kNode + 1);
    w.watch.observe("c", other.message, other.reply);
  }
  Step end(FLOWRELAY_KIND_END, "r", 3, kNode, "done");
  w.watch.observe("c", end.message, end.reply);
  Step other_end(FLOWRELAY_KIND_END, "x", 3, kNode + 1, "done");
  w.watch.observe("c", other_end.message, other_end.reply);
  sdk::PrometheusText out;
  w.watch.metrics(out);
  const std::string& t = out.text();
  EXPECT_NE(t.find("flowrelay_reply_inter_token_seconds_count 2\n"), std::string::npos) << t;
  EXPECT_NE(t.find("flowrelay_reply_ttft_seconds_count 1\n"), std::string::npos) << t;
  EXPECT_NE(t.find("flowrelay_reply_ttft_seconds_bucket{le=\"0.05\"} 1\n"), std::string::npos);
  EXPECT_NE(t.find("flowrelay_reply_deltas_sum 3\n"), std::string::npos) << t;
  EXPECT_NE(t.find("flowrelay_replies_total{reason=\"done\"} 1\n"), std::string::npos) << t;
  EXPECT_NE(t.find("flowrelay_replies_open 0\n"), std::string::npos) << t;
}

TEST(ReplyRules, ChecksIdsKindsSeqsAndReasons) {
  EXPECT_TRUE(valid_reply_id("r17"));
  EXPECT_TRUE(valid_reply_id(std::string(64, '~')));
  EXPECT_FALSE(valid_reply_id(""));
  EXPECT_FALSE(valid_reply_id(std::string(65, 'a')));
  EXPECT_FALSE(valid_reply_id("a b"));
  EXPECT_FALSE(valid_reply_id("caf\xc3\xa9"));
  Step delta(FLOWRELAY_KIND_DELTA, "r", 0);
  EXPECT_NE(reply_step_problem(delta.reply, false), "");
  delta.reply.seq = 1;
  EXPECT_EQ(reply_step_problem(delta.reply, false), "");
  Step cancel(FLOWRELAY_KIND_END, "r", 0, kNode, "cancelled");
  EXPECT_EQ(reply_step_problem(cancel.reply, true), "");
  EXPECT_NE(reply_step_problem(cancel.reply, false), "") << "only a client cancels";
  Step lost(FLOWRELAY_KIND_END, "r", 0, kNode, "producer_lost");
  EXPECT_NE(reply_step_problem(lost.reply, true), "") << "producer_lost is the daemon's";
  Step snapshot(FLOWRELAY_KIND_SNAPSHOT, "r", 1);
  EXPECT_NE(reply_step_problem(snapshot.reply, true), "");
}

// ---------------------------------------------------------------------------------------------
// The router's fan-out: a transport built for 2.1 gets deltas as plain messages only.

struct ReplyBroker : sdk::Broker {
  static inline ReplyBroker* last = nullptr;
  ReplyBroker(sdk::BrokerHost h, const flowrelay_option*, size_t) : host(h) { last = this; }
  flowrelay_status publish(std::string_view, const flowrelay_message&, flowrelay_published_fn,
                           void*) override {
    return FLOWRELAY_OK;
  }
  flowrelay_status subscribe(std::string_view) override { return FLOWRELAY_OK; }
  void unsubscribe(std::string_view) override {}
  flowrelay_status publish_reply(std::string_view ch, const flowrelay_message& m,
                                 flowrelay_reply_published_fn done, void* ctx) override {
    ++steps;
    flowrelay_message delivered = m;
    delivered.offset = ++offset;
    host.deliver(ch, delivered);
    flowrelay_reply_published out{};
    out.struct_size = sizeof out;
    out.offset = offset;
    if (done) done(ctx, &out);
    return FLOWRELAY_OK;
  }
  sdk::BrokerHost host;
  uint64_t offset = 0;
  int steps = 0;
};

struct Recorder : sdk::Transport {
  static inline Recorder* last = nullptr;
  Recorder(sdk::TransportHost h, const flowrelay_option*, size_t) : host(h) { last = this; }
  void stop(uint32_t) override {}
  void deliver(std::string_view, const flowrelay_message& m) override {
    const flowrelay_reply* r = sdk::reply_of(m);
    got.push_back(std::to_string(r ? r->kind : 0) + ":" + std::string(view(m.data)));
  }
  void subscribed(std::string_view, flowrelay_status) override {}
  sdk::TransportHost host;
  std::vector<std::string> got;
};

TEST(RouterReplies, ATransportBeforeAbi22GetsDeltasAsPlainMessagesOnly) {
  ServiceState state;
  Node node(kNode, "/tmp", "chat:", true, state);
  auto host = [&] { return flowrelay_host{&node, &Poco::Logger::get("test")}; };
  BrokerInstance broker(sdk::broker_vtable<ReplyBroker>(), "b", {}, node.broker_api(), host());
  Router router(kNode, broker);
  node.router = &router;
  TransportInstance current(sdk::transport_vtable<Recorder>(), "t22", {}, node.transport_api(),
                            host());
  Recorder& now = *Recorder::last;
  TransportInstance old(sdk::transport_vtable<Recorder>(), "t21", {}, node.transport_api(), host(),
                        1);
  Recorder& before = *Recorder::last;
  router.add_transport(current);
  router.add_transport(old);
  ASSERT_EQ(now.host.subscribe("chat:1"), FLOWRELAY_OK);
  for (flowrelay_kind k : {FLOWRELAY_KIND_OPEN, FLOWRELAY_KIND_DELTA, FLOWRELAY_KIND_END}) {
    Step s(k, "r", k == FLOWRELAY_KIND_DELTA ? 1 : 0, kNode, k == FLOWRELAY_KIND_END ? "done" : "");
    EXPECT_EQ(now.host.publish_reply("chat:1", s.message, nullptr, nullptr, nullptr), FLOWRELAY_OK);
  }
  const flowrelay_message plain = sdk::make_message(FLOWRELAY_LANE_MESSAGE, "hi");
  router.deliver("chat:1", plain);
  EXPECT_EQ(now.got, (std::vector<std::string>{"1:", "2:tok", "3:", "0:hi"}));
  EXPECT_EQ(before.got, (std::vector<std::string>{"0:tok", "0:hi"}));
  // The host refuses what no broker should see.
  Step bad(FLOWRELAY_KIND_DELTA, "has space", 1);
  EXPECT_EQ(now.host.publish_reply("chat:1", bad.message, nullptr, nullptr, nullptr),
            FLOWRELAY_EINVAL);
  Step lost(FLOWRELAY_KIND_END, "r2", 0, kNode, "producer_lost");
  EXPECT_EQ(now.host.publish_reply("chat:1", lost.message, nullptr, nullptr, nullptr),
            FLOWRELAY_EINVAL);
  EXPECT_EQ(ReplyBroker::last->steps, 3);
  router.stop_reply_watch();
}

}  // namespace
}  // namespace flowrelay
