// Conformance: order per channel, concurrent publishers, subscription churn under load.
#include <algorithm>
#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "broker_fixture.h"

namespace flowrelay::test {
namespace {

TEST_F(BrokerConformance, PreservesPerChannelOrderOf1000Messages) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string a = channel("order.a");
  const std::string b = channel("order.b");
  ASSERT_NO_FATAL_FAILURE(subscribe(a));
  ASSERT_NO_FATAL_FAILURE(subscribe(b));
  std::vector<std::string> expected_a, expected_b;
  for (int i = 0; i < 1000; ++i) {
    expected_a.push_back("a" + std::to_string(i));
    expected_b.push_back("b" + std::to_string(i));
    ASSERT_NO_FATAL_FAILURE(publish(a, expected_a.back()));
    ASSERT_NO_FATAL_FAILURE(publish(b, expected_b.back()));
  }
  ASSERT_TRUE(host_.wait_deliveries(a, 1000, kBulkTimeout));
  ASSERT_TRUE(host_.wait_deliveries(b, 1000, kBulkTimeout));
  std::this_thread::sleep_for(kQuietPeriod);
  EXPECT_EQ(host_.deliveries(a), expected_a);
  EXPECT_EQ(host_.deliveries(b), expected_b);
}

// Publishes `per_thread` messages "<thread>:<n>" from each thread on channels[thread %
// channels.size()], all threads starting together. Returns the number of non-OK publishes.
int publish_concurrently(const flowrelay_broker_vtable* vt, flowrelay_broker* b,
                         const BrokerTestHost& host, const std::vector<std::string>& channels,
                         int threads, int per_thread) {
  std::atomic<int> failures{0};
  std::atomic<int> waiting{threads};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      const std::string& ch = channels[t % channels.size()];
      --waiting;
      while (waiting.load() > 0) std::this_thread::yield();
      for (int n = 0; n < per_thread; ++n)
        if (publish_on(vt, b, host, ch, std::to_string(t) + ":" + std::to_string(n)) !=
            FLOWRELAY_OK)
          ++failures;
    });
  for (auto& th : pool) th.join();
  return failures;
}

// Every message "<thread>:<n>" exactly once, and each thread's messages in its publish order.
void expect_each_once_in_thread_order(const std::vector<std::string>& got,
                                      const std::set<int>& threads, int per_thread) {
  std::map<int, int> next;
  std::set<std::string> seen;
  for (const auto& m : got) {
    EXPECT_TRUE(seen.insert(m).second) << "delivered twice: " << m;
    size_t colon = m.find(':');
    ASSERT_NE(colon, std::string::npos) << "unexpected message " << m;
    int t = std::stoi(m.substr(0, colon));
    int n = std::stoi(m.substr(colon + 1));
    ASSERT_TRUE(threads.count(t)) << "message of another channel: " << m;
    EXPECT_EQ(n, next[t]) << "thread " << t << ": out of order or missing";
    next[t] = n + 1;
  }
  for (int t : threads) EXPECT_EQ(next[t], per_thread) << "thread " << t;
}

TEST_F(BrokerConformance, ConcurrentPublishersOnOneChannelAllDeliveredOnce) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string ch = channel("concurrent");
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  EXPECT_EQ(publish_concurrently(vt_, broker_, host_, {ch}, 4, 2500), 0);
  ASSERT_TRUE(host_.wait_deliveries(ch, 10000, kBulkTimeout))
      << "got " << host_.deliveries(ch).size() << " of 10000";
  ASSERT_NO_FATAL_FAILURE(flush_through(ch));
  auto got = host_.deliveries(ch);
  got.pop_back();  // the marker
  EXPECT_EQ(got.size(), 10000u);
  expect_each_once_in_thread_order(got, {0, 1, 2, 3}, 2500);
  // The seqs of one node's publishes are unique when it sets them.
  std::set<uint64_t> seqs;
  for (const auto& m : host_.messages(ch))
    if (m.origin.seq) {
      EXPECT_TRUE(seqs.insert(m.origin.seq).second) << "seq " << m.origin.seq;
    }
}

TEST_F(BrokerConformance, ConcurrentPublishersOnSeparateChannelsWhileOthersChurn) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  std::vector<std::string> chans;
  for (int t = 0; t < 4; ++t) {
    chans.push_back(channel("separate." + std::to_string(t)));
    ASSERT_NO_FATAL_FAILURE(subscribe(chans.back()));
  }
  // Meanwhile another thread subscribes and unsubscribes unrelated channels, which makes a
  // broker grow and shrink its channel table under the publishers.
  std::atomic<bool> stop{false};
  std::atomic<int> churn_failures{0};
  std::thread churn([&] {
    int i = 0;
    while (!stop) {
      std::vector<std::string> batch;
      for (int k = 0; k < 64; ++k) batch.push_back(channel("churn." + std::to_string(i++)));
      for (const auto& c : batch) {
        flowrelay_status st = call_subscribe(vt_, broker_, view(c));
        if (st != FLOWRELAY_OK && st != FLOWRELAY_PENDING) ++churn_failures;
      }
      for (const auto& c : batch) vt_->unsubscribe(broker_, view(c));
    }
  });
  int failures = publish_concurrently(vt_, broker_, host_, chans, 4, 2500);
  stop = true;
  churn.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(churn_failures, 0);
  for (int t = 0; t < 4; ++t) {
    ASSERT_TRUE(host_.wait_deliveries(chans[t], 2500, kBulkTimeout)) << chans[t];
    ASSERT_NO_FATAL_FAILURE(flush_through(chans[t]));
    auto got = host_.deliveries(chans[t]);
    got.pop_back();
    expect_each_once_in_thread_order(got, {t}, 2500);
  }
  // The churned channels had no publisher; anything delivered on them is a leak.
  for (const auto& [ch, msgs] : host_.all_deliveries())
    EXPECT_TRUE(std::find(chans.begin(), chans.end(), ch) != chans.end()) << "delivery on " << ch;
}

TEST_F(BrokerConformance, SubscribeUnsubscribeChurnOn1000Channels) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string control = channel("control");
  ASSERT_NO_FATAL_FAILURE(subscribe(control));
  std::vector<std::string> chans;
  for (int i = 0; i < 1000; ++i) chans.push_back(channel("churn." + std::to_string(i)));
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    for (const auto& ch : chans) ASSERT_NO_FATAL_FAILURE(subscribe(ch));
    for (const auto& ch : chans)
      ASSERT_NO_FATAL_FAILURE(publish(ch, "in " + std::to_string(round)));
    ASSERT_TRUE(host_.wait_deliveries(chans.back(), round + 1, kBulkTimeout));
    for (const auto& ch : chans)
      ASSERT_TRUE(host_.wait_deliveries(ch, round + 1, kDeliveryTimeout)) << ch;
    for (const auto& ch : chans) unsubscribe(ch);
    std::this_thread::sleep_for(kUnsubscribeGrace);
    for (const auto& ch : chans) ASSERT_NO_FATAL_FAILURE(publish(ch, "out"));
    ASSERT_NO_FATAL_FAILURE(flush_through(control));
    for (const auto& ch : chans) {
      auto got = host_.deliveries(ch);
      ASSERT_EQ(got.size(), static_cast<size_t>(round + 1)) << ch;
      ASSERT_EQ(got.back(), "in " + std::to_string(round)) << ch;
    }
  }
}

}  // namespace
}  // namespace flowrelay::test
