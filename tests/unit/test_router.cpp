// Router and the host API: the broker sees the first subscribe and the last unsubscribe of a
// channel only, each message is handed once to every transport, and the re-subscribe contract
// of plugin.h holds. Driven through the real C tables: fake plugins built with plugin.hpp,
// wrapped in BrokerInstance / TransportInstance, calling the daemon through Node's host API.
#include <gtest/gtest.h>
#include <flowrelay/plugin.hpp>

#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "http_api.h"
#include "plugin_host.h"
#include "router.h"

namespace flowrelay {
namespace {

using sdk::view;

std::string text(const flowrelay_message& m) {
  return std::string(view(m.data)) + (m.offset ? " @" + std::to_string(m.offset) : "") + " from " +
         std::to_string(m.origin.node) + "/" + std::to_string(m.origin.session) + "/" +
         std::to_string(m.origin.seq);
}

// Records every call; answers subscribe with `subscribe_result`; a publish comes back as a
// delivery from inside publish() (as broker-local does), with offset 1, 2, ...
struct FakeBroker : sdk::Broker {
  static inline FakeBroker* last = nullptr;
  FakeBroker(sdk::BrokerHost h, const flowrelay_option*, size_t) : host(h) { last = this; }

  flowrelay_status publish(std::string_view ch, const flowrelay_message& m, flowrelay_published_fn,
                           void*) override {
    record("pub " + std::string(ch) + " " + text(m));
    flowrelay_message delivered = m;
    delivered.offset = ++offset;
    host.deliver(ch, delivered);
    return FLOWRELAY_OK;
  }
  flowrelay_status subscribe(std::string_view ch) override {
    record("sub " + std::string(ch));
    return subscribe_result;
  }
  void unsubscribe(std::string_view ch) override { record("unsub " + std::string(ch)); }
  void record(std::string call) {
    std::lock_guard l(mutex);
    calls.push_back(std::move(call));
  }

  sdk::BrokerHost host;
  flowrelay_status subscribe_result = FLOWRELAY_OK;
  uint64_t offset = 0;
  std::mutex mutex;
  std::vector<std::string> calls;
};

// Joins sessions through the host; on a subscription error closes the channel's sessions (each
// unsubscribing from inside subscribed(), as plugin.h allows) unless `keep_on_error`.
struct FakeTransport : sdk::Transport {
  static inline FakeTransport* last = nullptr;
  FakeTransport(sdk::TransportHost h, const flowrelay_option*, size_t) : host(h) { last = this; }

  void stop(uint32_t) override {}
  void deliver(std::string_view ch, const flowrelay_message& m) override {
    events.push_back("deliver " + std::string(ch) + " " + text(m));
  }
  void subscribed(std::string_view ch, flowrelay_status s) override {
    events.push_back("subscribed " + std::string(ch) + " " + std::to_string(s));
    if (s == FLOWRELAY_OK || keep_on_error) return;
    for (int n = sessions[std::string(ch)]; n > 0; --n) host.unsubscribe(ch);
    sessions.erase(std::string(ch));
  }
  flowrelay_status join(std::string_view ch) {
    const flowrelay_status s = host.subscribe(ch);
    if (s == FLOWRELAY_OK || s == FLOWRELAY_PENDING) ++sessions[std::string(ch)];
    return s;
  }
  void leave(std::string_view ch) {
    --sessions[std::string(ch)];
    host.unsubscribe(ch);
  }

  sdk::TransportHost host;
  bool keep_on_error = false;
  std::map<std::string, int> sessions;
  std::vector<std::string> events;
};

const flowrelay_broker_vtable* broker_table() { return sdk::broker_vtable<FakeBroker>(); }
const flowrelay_transport_vtable* transport_table() {
  return sdk::transport_vtable<FakeTransport>();
}

// A daemon's message path in miniature: Node, broker, Router, `n` transports.
struct Path {
  explicit Path(int transports, const flowrelay_broker_vtable* broker_vt = broker_table())
      : node(0x1234abcd, "/etc/flowrelay", "chat:", false, state),
        broker_instance(broker_vt, "fake-broker", {}, node.broker_api(), host()),
        broker(*FakeBroker::last),
        router(node.id(), broker_instance) {
    node.router = &router;
    for (int i = 0; i < transports; ++i) {
      instances.push_back(std::make_unique<TransportInstance>(
          transport_table(), "fake-transport", PluginOptions{}, node.transport_api(), host()));
      this->transports.push_back(FakeTransport::last);
      router.add_transport(*instances.back());
    }
  }
  flowrelay_host host() { return {&node, &Poco::Logger::get("test")}; }
  FakeTransport& t(size_t i = 0) { return *transports.at(i); }

  ServiceState state;
  Node node;
  BrokerInstance broker_instance;
  FakeBroker& broker;
  Router router;
  std::vector<std::unique_ptr<TransportInstance>> instances;
  std::vector<FakeTransport*> transports;
};

using Calls = std::vector<std::string>;

TEST(Router, BrokerSeesFirstSubscribeAndLastUnsubscribeOnly) {
  Path p(1);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(p.t().join("chat:1"), FLOWRELAY_OK);
  EXPECT_EQ(p.t().join("chat:2"), FLOWRELAY_OK);
  EXPECT_EQ(p.router.channel_count(), 2u);
  EXPECT_EQ(p.router.session_count(), 4u);
  p.t().leave("chat:1");
  p.t().leave("chat:1");
  EXPECT_EQ(p.broker.calls, (Calls{"sub chat:1", "sub chat:2"}));
  p.t().leave("chat:1");
  p.t().leave("chat:2");
  EXPECT_EQ(p.broker.calls, (Calls{"sub chat:1", "sub chat:2", "unsub chat:1", "unsub chat:2"}));
  EXPECT_EQ(p.router.channel_count(), 0u);
  p.router.unsubscribe("chat:1");  // unbalanced: ignored, the broker is not told again
  EXPECT_EQ(p.broker.calls.size(), 4u);
}

TEST(Router, ResubscribesAfterTheLastSessionLeft) {
  Path p(1);
  p.t().join("c");
  p.t().leave("c");
  p.t().join("c");
  EXPECT_EQ(p.broker.calls, (Calls{"sub c", "unsub c", "sub c"}));
}

TEST(Router, PendingSubscriptionIsSharedUntilTheBrokerConfirms) {
  Path p(2);
  p.broker.subscribe_result = FLOWRELAY_PENDING;
  EXPECT_EQ(p.t(0).join("c"), FLOWRELAY_PENDING);
  EXPECT_EQ(p.t(1).join("c"), FLOWRELAY_PENDING);  // the second session waits too
  EXPECT_EQ(p.broker.calls.size(), 1u);
  p.broker.host.subscribed("c", FLOWRELAY_OK);
  EXPECT_EQ(p.t(0).events, (Calls{"subscribed c 0"}));
  EXPECT_EQ(p.t(1).events, (Calls{"subscribed c 0"}));
  EXPECT_EQ(p.t(0).join("c"), FLOWRELAY_OK);    // live now
  p.broker.host.subscribed("c", FLOWRELAY_OK);  // a duplicate confirmation is not forwarded
  EXPECT_EQ(p.t(0).events.size(), 1u);
}

TEST(Router, RefusedSubscriptionIsRetriedByTheNextSession) {
  Path p(1);
  p.broker.subscribe_result = FLOWRELAY_PENDING;
  p.t().keep_on_error = true;
  p.t().join("c");
  p.broker.host.subscribed("c", FLOWRELAY_EUNAVAIL);
  EXPECT_EQ(p.t().events, (Calls{"subscribed c 4"}));
  EXPECT_EQ(p.t().join("c"), FLOWRELAY_PENDING);
  EXPECT_EQ(p.broker.calls, (Calls{"sub c", "sub c"}));
}

TEST(Router, BrokerErrorIsReturnedAndNotCounted) {
  Path p(1);
  p.broker.subscribe_result = FLOWRELAY_EUNAVAIL;
  EXPECT_EQ(p.t().join("c"), FLOWRELAY_EUNAVAIL);
  EXPECT_EQ(p.router.channel_count(), 0u);
  p.router.unsubscribe("c");
  EXPECT_EQ(p.broker.calls, (Calls{"sub c"}));
}

// plugin.h: a live channel the broker could not re-subscribe after a reconnect. Every
// transport hears of it, closes that channel's sessions, and the last one leaving makes the
// broker unsubscribe once; other channels are untouched.
TEST(Router, FailedResubscribeOfALiveChannelClosesItsSessionsThenUnsubscribes) {
  Path p(2);
  p.t(0).join("c");
  p.t(0).join("c");
  p.t(1).join("c");
  p.t(1).join("other");
  p.broker.host.subscribed("c", FLOWRELAY_EUNAVAIL);
  EXPECT_EQ(p.t(0).events, (Calls{"subscribed c 4"}));
  EXPECT_EQ(p.t(1).events, (Calls{"subscribed c 4"}));
  EXPECT_EQ(p.broker.calls, (Calls{"sub c", "sub other", "unsub c"}));
  EXPECT_EQ(p.router.channel_count(), 1u);
  EXPECT_EQ(p.router.session_count(), 1u);
}

// While a failed channel's sessions are still leaving, a session joining makes the broker
// subscribe again; the channel is live for it, and still unsubscribed once at the end.
TEST(Router, SessionJoiningAFailedChannelSubscribesAgain) {
  Path p(1);
  p.t().keep_on_error = true;  // its old session has not left yet
  p.t().join("c");
  p.broker.host.subscribed("c", FLOWRELAY_EUNAVAIL);
  EXPECT_EQ(p.t().join("c"), FLOWRELAY_OK);
  EXPECT_EQ(p.t().join("c"), FLOWRELAY_OK);  // live again: no third broker subscribe
  EXPECT_EQ(p.broker.calls, (Calls{"sub c", "sub c"}));
  EXPECT_EQ(p.router.session_count(), 3u);
  for (int i = 0; i < 3; ++i) p.t().leave("c");
  EXPECT_EQ(p.broker.calls, (Calls{"sub c", "sub c", "unsub c"}));
}

TEST(Router, FailureOfAChannelNobodyJoinedIsIgnored) {
  Path p(1);
  p.broker.host.subscribed("nobody", FLOWRELAY_EUNAVAIL);
  EXPECT_TRUE(p.t().events.empty());
  EXPECT_EQ(p.router.channel_count(), 0u);
}

// A session's publish: this node's id goes in, the session stays, seq is left to the broker;
// the broker's delivery (from inside publish) reaches every transport once.
TEST(Router, PublishCarriesThisNodeAndTheSessionAndComesBackToEveryTransport) {
  Path p(2);
  flowrelay_message m = sdk::make_message(FLOWRELAY_LANE_MESSAGE, "hi", 7);
  m.origin.node = 99;  // not the transport's to say
  m.origin.seq = 5;
  EXPECT_EQ(p.t(0).host.publish("chat:1", m), FLOWRELAY_OK);
  const std::string node = std::to_string(0x1234abcd);
  EXPECT_EQ(p.broker.calls, (Calls{"pub chat:1 hi from " + node + "/7/0"}));
  EXPECT_EQ(p.t(0).events, (Calls{"deliver chat:1 hi @1 from " + node + "/7/0"}));
  EXPECT_EQ(p.t(1).events, p.t(0).events);
}

TEST(Router, PublishApiPathHasSessionZero) {
  Path p(1);
  EXPECT_EQ(p.router.publish("chat:1", sdk::make_message(FLOWRELAY_LANE_LOG, "x")), FLOWRELAY_OK);
  EXPECT_EQ(p.broker.calls, (Calls{"pub chat:1 x from " + std::to_string(0x1234abcd) + "/0/0"}));
}

TEST(Router, HistoryWithoutTheSlotIsUnsupported) {
  flowrelay_broker_vtable no_history = *broker_table();
  no_history.history = nullptr;
  Path p(1, &no_history);
  auto done = [](void*, flowrelay_status, const flowrelay_history*) {};
  EXPECT_EQ(p.t().host.history("c", 0, done, nullptr), FLOWRELAY_EUNSUPPORTED);
  EXPECT_EQ(p.t().host.history("c", 0, nullptr, nullptr), FLOWRELAY_EINVAL);
}

TEST(Router, ConcurrentJoinsAndLeavesBalance) {
  Path p(1);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&p, t] {
      for (int i = 0; i < 2000; ++i) {
        const std::string ch = "c" + std::to_string((i + t) % 7);
        p.router.subscribe(ch);
        p.router.unsubscribe(ch);
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(p.router.channel_count(), 0u);
  EXPECT_EQ(p.router.session_count(), 0u);
  // Every broker subscribe was balanced by an unsubscribe, in order per channel.
  std::map<std::string, int> depth;
  for (const auto& call : p.broker.calls) {
    const auto space = call.find(' ');
    const std::string op = call.substr(0, space), ch = call.substr(space + 1);
    depth[ch] += op == "sub" ? 1 : -1;
    ASSERT_GE(depth[ch], 0) << "unsubscribe before subscribe on " << ch;
    ASSERT_LE(depth[ch], 1) << "double subscribe on " << ch;
  }
  for (const auto& [ch, d] : depth) EXPECT_EQ(d, 0) << ch;
}

// ------------------------------------------------------------------ host API fields and slots

TEST(HostApi, PluginsSeeTheNodeAndTheHostDecidedSettings) {
  Path p(1);
  EXPECT_EQ(p.broker.host.node_id(), 0x1234abcdu);
  EXPECT_EQ(p.broker.host.config_dir(), "/etc/flowrelay");
  EXPECT_EQ(p.t().host.node_id(), 0x1234abcdu);
  EXPECT_EQ(p.t().host.config_dir(), "/etc/flowrelay");
  EXPECT_EQ(p.t().host.channel_prefix(), "chat:");
  EXPECT_FALSE(p.t().host.echo());
  // now_ms is the steady clock in milliseconds.
  using namespace std::chrono;
  const int64_t steady_ms =
      duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
  EXPECT_NEAR(static_cast<double>(p.broker.host.now_ms()), static_cast<double>(steady_ms), 100.0);
}

TEST(HostApi, SessionIdsAreUniqueAcrossTransportsAndNeverZero) {
  Path p(2);
  std::vector<uint64_t> ids[2];
  std::thread a([&] {
    for (int i = 0; i < 5000; ++i) ids[0].push_back(p.t(0).host.new_session_id());
  });
  for (int i = 0; i < 5000; ++i) ids[1].push_back(p.t(1).host.new_session_id());
  a.join();
  std::set<uint64_t> all(ids[0].begin(), ids[0].end());
  all.insert(ids[1].begin(), ids[1].end());
  EXPECT_EQ(all.size(), 10000u);
  EXPECT_EQ(all.count(0), 0u);
}

TEST(HostApi, ReadinessAndErrorsReachTheServiceState) {
  Path p(1);
  p.broker.host.set_ready(true);
  p.broker.host.set_ready(false);
  p.broker.host.set_ready(true);
  p.broker.host.report_error(FLOWRELAY_EUNAVAIL, "link lost");
  EXPECT_TRUE(p.state.broker_ready.load());
  EXPECT_EQ(p.state.broker_reconnects.load(), 1u);
  EXPECT_EQ(p.state.broker_errors.load(), 1u);
}

TEST(NodeId, RandomAndNeverZero) {
  std::set<uint64_t> ids;
  for (int i = 0; i < 100; ++i) ids.insert(random_node_id());
  EXPECT_EQ(ids.size(), 100u);
  EXPECT_EQ(ids.count(0), 0u);
  EXPECT_EQ(node_id_hex(0x5f0c9e2a71d3b846), "5f0c9e2a71d3b846");
  EXPECT_EQ(node_id_hex(1), "0000000000000001");
}

TEST(PluginInstance, OptionalSlotsMayBeNull) {
  flowrelay_broker_vtable bare = *broker_table();
  bare.metrics = nullptr;
  bare.reconfigure = nullptr;
  Path p(1, &bare);
  std::string metrics = "before\n";
  p.broker_instance.metrics(metrics);
  EXPECT_EQ(metrics, "before\n");
  EXPECT_EQ(p.broker_instance.reconfigure({}),
            "fake-broker cannot reload its options: changes take effect after a restart");
  // The default Broker::reconfigure of plugin.hpp says every option needs a restart.
  EXPECT_NE(p.instances[0]->reconfigure({}).find("takes effect after a restart"),
            std::string::npos);
}

}  // namespace
}  // namespace flowrelay
