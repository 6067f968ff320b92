// Router: the broker sees the first subscribe and the last unsubscribe of a channel only, and
// each message is handed once to every transport.
#include <gtest/gtest.h>

#include <thread>

#include "router.h"

using flowrelay::BrokerPort;
using flowrelay::Router;
using flowrelay::TransportPort;

namespace {

struct FakeBroker {
  std::vector<std::string> calls;
  flowrelay_status subscribe_result = FLOWRELAY_OK;
  std::mutex m;

  BrokerPort port() {
    return BrokerPort{
        [this](std::string_view ch) {
          std::lock_guard l(m);
          calls.push_back("sub " + std::string(ch));
          return subscribe_result;
        },
        [this](std::string_view ch) {
          std::lock_guard l(m);
          calls.push_back("unsub " + std::string(ch));
          return FLOWRELAY_OK;
        },
        [this](std::string_view ch, const flowrelay_message& msg, flowrelay_published_fn,
               void*) {
          std::lock_guard l(m);
          calls.push_back("pub " + std::string(ch) + " " + std::string(msg.data.ptr, msg.data.len));
          return FLOWRELAY_OK;
        },
        [this](std::string_view ch, uint64_t since, flowrelay_history_fn, void*) {
          std::lock_guard l(m);
          calls.push_back("history " + std::string(ch) + " " + std::to_string(since));
          return FLOWRELAY_EUNSUPPORTED;
        }};
  }
};

struct FakeTransport {
  std::vector<std::string> events;
  TransportPort port() {
    return TransportPort{
        [this](std::string_view ch, const flowrelay_message& m) {
          events.push_back("deliver " + std::string(ch) + " " + std::string(m.data.ptr, m.data.len) +
                           (m.offset ? " @" + std::to_string(m.offset) : ""));
        },
        [this](std::string_view ch, flowrelay_status s) {
          events.push_back("subscribed " + std::string(ch) + " " + std::to_string(s));
        }};
  }
};

flowrelay_message message(std::string_view data, uint64_t offset = 0) {
  return {sizeof(flowrelay_message), FLOWRELAY_LANE_MESSAGE, offset, {nullptr, 0},
          {data.data(), data.size()}};
}

}  // namespace

TEST(Router, BrokerSeesFirstSubscribeAndLastUnsubscribeOnly) {
  FakeBroker broker;
  Router router(broker.port());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(router.subscribe("chat:1"), FLOWRELAY_OK);
  EXPECT_EQ(router.subscribe("chat:2"), FLOWRELAY_OK);
  EXPECT_EQ(router.channel_count(), 2u);
  EXPECT_EQ(router.session_count(), 4u);
  router.unsubscribe("chat:1");
  router.unsubscribe("chat:1");
  EXPECT_EQ(broker.calls, (std::vector<std::string>{"sub chat:1", "sub chat:2"}));
  router.unsubscribe("chat:1");
  router.unsubscribe("chat:2");
  EXPECT_EQ(broker.calls, (std::vector<std::string>{"sub chat:1", "sub chat:2", "unsub chat:1",
                                                    "unsub chat:2"}));
  EXPECT_EQ(router.channel_count(), 0u);
  router.unsubscribe("chat:1");  // unbalanced: ignored, the broker is not asked again
  EXPECT_EQ(broker.calls.size(), 4u);
}

TEST(Router, ResubscribesAfterTheLastSessionLeft) {
  FakeBroker broker;
  Router router(broker.port());
  router.subscribe("c");
  router.unsubscribe("c");
  router.subscribe("c");
  EXPECT_EQ(broker.calls, (std::vector<std::string>{"sub c", "unsub c", "sub c"}));
}

TEST(Router, PendingSubscriptionIsSharedUntilConfirmed) {
  FakeBroker broker;
  broker.subscribe_result = FLOWRELAY_PENDING;
  FakeTransport t1, t2;
  Router router(broker.port());
  router.add_transport(t1.port());
  router.add_transport(t2.port());
  EXPECT_EQ(router.subscribe("c"), FLOWRELAY_PENDING);
  EXPECT_EQ(router.subscribe("c"), FLOWRELAY_PENDING);  // second session waits too
  EXPECT_EQ(broker.calls.size(), 1u);
  router.subscribed("c", FLOWRELAY_OK);
  EXPECT_EQ(t1.events, (std::vector<std::string>{"subscribed c 0"}));
  EXPECT_EQ(t2.events, (std::vector<std::string>{"subscribed c 0"}));
  EXPECT_EQ(router.subscribe("c"), FLOWRELAY_OK);  // live now
  router.subscribed("c", FLOWRELAY_OK);             // a duplicate confirmation is ignored
  EXPECT_EQ(t1.events.size(), 1u);
}

TEST(Router, RefusedSubscriptionIsRetriedByTheNextSession) {
  FakeBroker broker;
  broker.subscribe_result = FLOWRELAY_PENDING;
  FakeTransport t;
  Router router(broker.port());
  router.add_transport(t.port());
  router.subscribe("c");
  router.subscribed("c", FLOWRELAY_EUNAVAIL);
  EXPECT_EQ(t.events, (std::vector<std::string>{"subscribed c 4"}));
  EXPECT_EQ(router.subscribe("c"), FLOWRELAY_PENDING);
  EXPECT_EQ(broker.calls, (std::vector<std::string>{"sub c", "sub c"}));
}

TEST(Router, BrokerErrorIsReturnedAndNotCounted) {
  FakeBroker broker;
  broker.subscribe_result = FLOWRELAY_EUNAVAIL;
  Router router(broker.port());
  EXPECT_EQ(router.subscribe("c"), FLOWRELAY_EUNAVAIL);
  EXPECT_EQ(router.channel_count(), 0u);
  router.unsubscribe("c");
  EXPECT_EQ(broker.calls, (std::vector<std::string>{"sub c"}));
}

TEST(Router, DeliversOnceToEveryTransportAndPublishesThroughTheBroker) {
  FakeBroker broker;
  FakeTransport t1, t2;
  Router router(broker.port());
  router.add_transport(t1.port());
  router.add_transport(t2.port());
  router.deliver("chat:1", message("hi", 7));
  EXPECT_EQ(t1.events, (std::vector<std::string>{"deliver chat:1 hi @7"}));
  EXPECT_EQ(t2.events, (std::vector<std::string>{"deliver chat:1 hi @7"}));
  EXPECT_EQ(router.publish("chat:1", message("yo")), FLOWRELAY_OK);
  EXPECT_EQ(router.history("chat:1", 3, nullptr, nullptr), FLOWRELAY_EUNSUPPORTED);
  EXPECT_EQ(broker.calls, (std::vector<std::string>{"pub chat:1 yo", "history chat:1 3"}));
}

TEST(Router, ConcurrentJoinsAndLeavesBalance) {
  FakeBroker broker;
  Router router(broker.port());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&router, t] {
      for (int i = 0; i < 2000; ++i) {
        const std::string ch = "c" + std::to_string((i + t) % 7);
        router.subscribe(ch);
        router.unsubscribe(ch);
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(router.channel_count(), 0u);
  EXPECT_EQ(router.session_count(), 0u);
  // Every broker subscribe was balanced by an unsubscribe, in order per channel.
  std::map<std::string, int> depth;
  for (const auto& call : broker.calls) {
    const auto space = call.find(' ');
    const std::string op = call.substr(0, space), ch = call.substr(space + 1);
    depth[ch] += op == "sub" ? 1 : -1;
    ASSERT_GE(depth[ch], 0) << "unsubscribe before subscribe on " << ch;
    ASSERT_LE(depth[ch], 1) << "double subscribe on " << ch;
  }
  for (const auto& [ch, d] : depth) EXPECT_EQ(d, 0) << ch;
}
