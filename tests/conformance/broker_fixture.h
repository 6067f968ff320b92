// The broker fixture shared by the conformance suites: ONE broker plugin under test,
//   FLOWRELAY_BROKER_PLUGIN=/path/flowrelay-broker-x.so FLOWRELAY_BROKER_OPTIONS="k=v;k2=v2"
// loaded through the daemon's LoadedPlugin, one BrokerTestHost per test, and helpers that wait
// (with a timeout) for what an asynchronous broker reports later, so a broker that answers
// subscribe() with FLOWRELAY_PENDING and delivers from its own thread passes as well as a
// synchronous one. Suites that need more than the ABI's required slots are registered only for
// brokers that have it (conformance_main.cpp), never skipped and counted as passed.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "broker_test_host.h"
#include "plugin_loader.h"

namespace flowrelay::test {

using namespace std::chrono_literals;

constexpr auto kReadyTimeout = 5s;
constexpr auto kDeliveryTimeout = 10s;
constexpr auto kBulkTimeout = 60s;
// How long a test waits for something that must NOT happen, after a marker went through.
constexpr auto kQuietPeriod = 100ms;
// "Deliveries of a channel may still arrive briefly after its unsubscribe()."
constexpr auto kUnsubscribeGrace = 200ms;

std::string env(const char* name);

// vt->subscribe(), noting on this thread that a subscribe() call is in progress: subscribed()
// must come from another thread or after returning (BrokerTestHost counts violations).
flowrelay_status call_subscribe(const flowrelay_broker_vtable* vt, flowrelay_broker* b,
                                flowrelay_str ch);

// publish() of `data` with origin {host.node_id(), session, 0}, retrying while a bounded buffer
// is full (FLOWRELAY_EAGAIN, up to kDeliveryTimeout).
flowrelay_status publish_on(const flowrelay_broker_vtable* vt, flowrelay_broker* b,
                            const BrokerTestHost& host, const std::string& ch,
                            const std::string& data, uint64_t session = 0);

// Messages stem1..stemN on the message lane, from `host` (session 0).
std::vector<Message> message_lane(const BrokerTestHost& host, const std::string& stem, int n);

// Expects the origin.seq of one node's deliveries, in publish order, to follow the ABI: 0 on
// every one (a broker that never resends), or each set and increasing.
void expect_seq_numbering(const std::vector<Message>& got);

class BrokerFixture : public ::testing::Test {
 public:
  // Loads FLOWRELAY_BROKER_PLUGIN once; "" or why it could not.
  static const std::string& load_plugin();
  static std::shared_ptr<LoadedPlugin> plugin() { return plugin_; }
  static OptionList configured_options(const std::string& extra = "");

 protected:
  static void SetUpTestSuite() { load_plugin(); }
  void SetUp() override;
  void TearDown() override;

  // A channel name no other test (or concurrent run on a shared backend) uses.
  std::string channel(const std::string& name) const { return prefix_ + name; }

  // `extra` ("k=v;...") is added to the configured options.
  void create_broker(const std::string& extra = "");
  void start_broker(const std::string& extra = "");
  void destroy_broker();

  // subscribe(), waiting for subscribed() when the broker answers FLOWRELAY_PENDING.
  void subscribe(const std::string& ch);
  void unsubscribe(const std::string& ch) { vt_->unsubscribe(broker_, view(ch)); }
  void publish(const std::string& ch, const std::string& data) {
    ASSERT_EQ(publish_on(vt_, broker_, host_, ch, data), FLOWRELAY_OK) << "publish(" << ch << ")";
  }
  // Publishes each message in order and waits for every completion (slot i: message i).
  void publish_messages(const std::string& ch, const std::vector<Message>& messages,
                        PublishedLog& log);

  // Publishes a marker on the subscribed channel `ch` and waits for it, then a quiet period:
  // whatever was published before it and was going to be delivered has been by then.
  void flush_through(const std::string& ch);

  // history(); waits for the completion when it returns FLOWRELAY_OK.
  flowrelay_status read_history(const std::string& ch, uint64_t since, HistoryRead& read);
  // The broker keeps history with the options it was started with.
  bool keeps_history();

  static std::shared_ptr<LoadedPlugin> plugin_;
  static std::string load_error_;
  const flowrelay_broker_vtable* vt_ = nullptr;
  BrokerTestHost host_;
  flowrelay_broker* broker_ = nullptr;
  std::string prefix_;
  int markers_ = 0;
};

// Every broker.
class BrokerConformance : public BrokerFixture {};
// Brokers that keep history with the configured options.
class BrokerHistory : public BrokerFixture {};
// Brokers with history that take the option history_size (broker-local's and broker-redis'
// name, not the ABI's).
class BrokerHistorySize : public BrokerFixture {};
// Brokers with history that measure its ages with the host's now_ms() (and take
// history_max_age_ms): the test moves the clock instead of sleeping.
class BrokerHostClock : public BrokerFixture {};
// Brokers with a reconfigure() slot.
class BrokerReconfigure : public BrokerFixture {};
// Brokers with a metrics() slot.
class BrokerMetrics : public BrokerFixture {};

}  // namespace flowrelay::test
