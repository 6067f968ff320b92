// Conformance: presence (ABI 2.1 presence_set / presence). Registered only for brokers whose
// presence() answers (conformance_main.cpp): one that leaves it to the daemon (NULL or
// FLOWRELAY_EUNSUPPORTED) has nothing here to test. A broker alone on its backend counts
// exactly what this node told it.
#include "broker_fixture.h"
#include "broker_presence.h"

namespace flowrelay::test {
namespace {

class BrokerPresence : public BrokerFixture {
 protected:
  void set(const std::string& ch, uint64_t clients) {
    vt_->presence_set(broker_, view(ch), clients);
  }
  PresenceCount await(const std::string& ch, uint64_t clients, uint32_t nodes) {
    return await_presence(vt_, broker_, ch, clients, nodes, kDeliveryTimeout);
  }
};

TEST_F(BrokerPresence, AnUnknownChannelHasNobody) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  EXPECT_EQ(read_presence(vt_, broker_, channel("nobody"), kDeliveryTimeout),
            (PresenceCount{FLOWRELAY_OK, 0, 0}));
}

TEST_F(BrokerPresence, CountsFollowPresenceSet) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string ch = channel("room");
  set(ch, 3);
  EXPECT_EQ(await(ch, 3, 1), (PresenceCount{FLOWRELAY_OK, 3, 1}));
  set(ch, 4);
  set(ch, 1);  // the latest count wins, however the broker batches
  EXPECT_EQ(await(ch, 1, 1), (PresenceCount{FLOWRELAY_OK, 1, 1}));
  set(ch, 0);
  EXPECT_EQ(await(ch, 0, 0), (PresenceCount{FLOWRELAY_OK, 0, 0}));
}

TEST_F(BrokerPresence, ChannelsAreCountedApart) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string a = channel("a"), b = channel("b");
  set(a, 2);
  set(b, 5);
  EXPECT_EQ(await(a, 2, 1), (PresenceCount{FLOWRELAY_OK, 2, 1}));
  EXPECT_EQ(await(b, 5, 1), (PresenceCount{FLOWRELAY_OK, 5, 1}));
  set(a, 0);
  EXPECT_EQ(await(a, 0, 0), (PresenceCount{FLOWRELAY_OK, 0, 0}));
  EXPECT_EQ(read_presence(vt_, broker_, b, kDeliveryTimeout), (PresenceCount{FLOWRELAY_OK, 5, 1}));
}

// presence_set() runs under the daemon's channel lock on any thread: many at once, and reads
// beside them, each read completed exactly once.
TEST_F(BrokerPresence, ConcurrentSetsAndReads) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  constexpr int kThreads = 4, kChannels = 20;
  std::vector<std::thread> threads;
  std::atomic<int> unanswered{0};
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kChannels; ++i) {
        const std::string ch = channel("c" + std::to_string(t) + "." + std::to_string(i));
        for (uint64_t n = 1; n <= 5; ++n) set(ch, n);
        if (read_presence(vt_, broker_, ch, kDeliveryTimeout).status != FLOWRELAY_OK) ++unanswered;
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(unanswered.load(), 0);
  for (int t = 0; t < kThreads; ++t)
    for (int i = 0; i < kChannels; i += 7) {
      const std::string ch = channel("c" + std::to_string(t) + "." + std::to_string(i));
      EXPECT_EQ(await(ch, 5, 1), (PresenceCount{FLOWRELAY_OK, 5, 1})) << ch;
    }
}

// A read still waiting when destroy() is called is completed before destroy() returns.
TEST_F(BrokerPresence, DestroyCompletesEveryRead) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  constexpr int kReads = 50;
  std::vector<PresenceRead> reads(kReads);
  const std::string ch = channel("bye");
  set(ch, 1);
  int accepted = 0;
  for (auto& r : reads)
    accepted += vt_->presence(broker_, view(ch), &PresenceRead::on_done, &r) == FLOWRELAY_OK;
  destroy_broker();
  int completed = 0;
  for (auto& r : reads) {
    EXPECT_LE(r.calls(), 1);
    completed += r.calls();
  }
  EXPECT_EQ(completed, accepted);
  EXPECT_GT(accepted, 0);
}

}  // namespace
}  // namespace flowrelay::test
