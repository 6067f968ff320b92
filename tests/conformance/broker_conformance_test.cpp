// The broker contract of <flowrelay/plugin.h>, checked against ONE broker plugin:
//   FLOWRELAY_BROKER_PLUGIN=/path/flowrelay-broker-x.so FLOWRELAY_BROKER_OPTIONS="k=v;k2=v2"
// The plugin is loaded through the daemon's LoadedPlugin. Every wait has a timeout, so an
// asynchronous broker (subscribe() -> FLOWRELAY_PENDING, deliveries from its own thread)
// passes as well as a synchronous one. The ABI 1.2 cases (lanes, offsets, history) skip, with
// the reason, on a broker that leaves those slots NULL.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "broker_test_host.h"
#include "plugin_loader.h"

namespace flowrelay::test {
namespace {

using namespace std::chrono_literals;

constexpr auto kReadyTimeout = 5s;
constexpr auto kDeliveryTimeout = 10s;
constexpr auto kBulkTimeout = 60s;
// How long a test waits for something that must NOT happen, after a marker went through.
constexpr auto kQuietPeriod = 100ms;
// "Deliveries of the channel may still arrive briefly after [unsubscribe] returns."
constexpr auto kUnsubscribeGrace = 200ms;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// vt->subscribe(), noting on this thread that a subscribe() call is in progress: subscribed()
// must come from another thread or after returning (BrokerTestHost counts violations).
flowrelay_status call_subscribe(const flowrelay_broker_vtable* vt, flowrelay_broker* b,
                                flowrelay_str ch) {
  BrokerTestHost::InSubscribeCall in_call;
  return vt->subscribe(b, ch);
}

class BrokerConformance : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string path = env("FLOWRELAY_BROKER_PLUGIN");
    if (path.empty()) {
      load_error_ = "FLOWRELAY_BROKER_PLUGIN is not set (path of the broker .so to test)";
      return;
    }
    try {
      plugin_ = LoadedPlugin::load(path);
      if (!plugin_->broker()) load_error_ = path + ": the plugin provides no usable broker table";
    } catch (const PluginError& e) {
      load_error_ = e.what();
    }
  }
  static void TearDownTestSuite() { plugin_.reset(); }

  void SetUp() override {
    ASSERT_TRUE(load_error_.empty()) << load_error_;
    vt_ = plugin_->broker();
    static std::atomic<int> test_number{0};
    std::random_device rd;
    prefix_ = "conformance." + std::to_string(getpid()) + "." + std::to_string(rd() % 100000) +
              "." + std::to_string(++test_number) + ".";
  }

  void TearDown() override {
    destroy_broker();
    EXPECT_EQ(host_.callbacks_after_destroy(), 0) << "host callbacks ran after destroy()";
    EXPECT_EQ(host_.concurrent_deliveries(), 0)
        << "deliver() ran on two threads at once for one channel";
    EXPECT_EQ(host_.subscribed_inside_subscribe(), 0)
        << "subscribed() was called from inside subscribe()";
    EXPECT_EQ(BrokerTestHost::foreign_host_calls(), 0)
        << "a callback passed a host handle that create() was not given";
    EXPECT_EQ(host_.bad_messages(), 0)
        << "deliver_message() got a NULL message or one with a short struct_size";
    for (const auto& [code, detail] : host_.errors())
      ADD_FAILURE() << "unexpected report_error(" << code << ", \"" << detail << "\")";
  }

  // A channel name no other test (or concurrent run on a shared backend) uses.
  std::string channel(const std::string& name) const { return prefix_ + name; }

  static OptionList configured_options() {
    return OptionList::parse(env("FLOWRELAY_BROKER_OPTIONS"));
  }

  // `extra` ("k=v;...") is added to the configured options.
  void create_broker(const std::string& extra = "") {
    OptionList options = OptionList::parse(env("FLOWRELAY_BROKER_OPTIONS") + ";" + extra);
    char err[512] = "";
    flowrelay_broker* b = nullptr;
    flowrelay_status st = vt_->create(host_.api(), host_.handle(), options.data(), options.size(),
                                      &b, err, sizeof err);
    ASSERT_EQ(st, FLOWRELAY_OK) << "create() failed: " << err;
    ASSERT_NE(b, nullptr) << "create() returned FLOWRELAY_OK without an instance";
    broker_ = b;
  }

  void start_broker(const std::string& extra = "") {
    ASSERT_NO_FATAL_FAILURE(create_broker(extra));
    char err[512] = "";
    ASSERT_EQ(vt_->start(broker_, err, sizeof err), FLOWRELAY_OK) << "start() failed: " << err;
    ASSERT_TRUE(host_.wait_ready(1, kReadyTimeout))
        << "the broker did not report set_ready(1) within 5 s";
  }

  void destroy_broker() {
    if (!broker_) return;
    vt_->destroy(broker_);
    broker_ = nullptr;
    host_.mark_destroyed();
  }

  // subscribe(), waiting for subscribed() when the broker answers FLOWRELAY_PENDING.
  void subscribe(const std::string& ch) {
    flowrelay_status st = call_subscribe(vt_, broker_, view(ch));
    if (st == FLOWRELAY_PENDING) {
      auto done = host_.take_subscribed(ch, kDeliveryTimeout);
      ASSERT_TRUE(done.has_value()) << "no subscribed() for PENDING subscribe of " << ch;
      st = *done;
    }
    ASSERT_EQ(st, FLOWRELAY_OK) << "subscribe(" << ch << ")";
  }

  void unsubscribe(const std::string& ch) {
    ASSERT_EQ(vt_->unsubscribe(broker_, view(ch)), FLOWRELAY_OK) << "unsubscribe(" << ch << ")";
  }

  // publish(), retrying while a bounded buffer is full (FLOWRELAY_EAGAIN).
  static flowrelay_status publish_on(const flowrelay_broker_vtable* vt, flowrelay_broker* b,
                                     const std::string& ch, const std::string& payload) {
    auto deadline = std::chrono::steady_clock::now() + kDeliveryTimeout;
    for (;;) {
      flowrelay_status st = vt->publish(b, view(ch), view(payload));
      if (st != FLOWRELAY_EAGAIN || std::chrono::steady_clock::now() > deadline) return st;
      std::this_thread::sleep_for(1ms);
    }
  }
  void publish(const std::string& ch, const std::string& payload) {
    ASSERT_EQ(publish_on(vt_, broker_, ch, payload), FLOWRELAY_OK) << "publish(" << ch << ")";
  }

  // Publishes a marker on the subscribed channel `ch` and waits for it, then a quiet period:
  // whatever was published before it and was going to be delivered has been by then.
  void flush_through(const std::string& ch) {
    size_t before = host_.deliveries(ch).size();
    std::string marker = "marker-" + std::to_string(++markers_);
    ASSERT_NO_FATAL_FAILURE(publish(ch, marker));
    ASSERT_TRUE(host_.wait_deliveries(ch, before + 1, kDeliveryTimeout))
        << "marker on " << ch << " not delivered";
    std::this_thread::sleep_for(kQuietPeriod);
    auto got = host_.deliveries(ch);
    ASSERT_GT(got.size(), before);
    ASSERT_EQ(got.back(), marker);
  }

  // --- ABI 1.2 ---

  bool has_publish_message() const {
    return FLOWRELAY_HAS_SLOT(vt_, flowrelay_broker_vtable, publish_message) &&
           vt_->publish_message;
  }
  bool has_history_slot() const {
    return FLOWRELAY_HAS_SLOT(vt_, flowrelay_broker_vtable, history) && vt_->history;
  }

  // Whether create() takes `option` ("k=v"): history_size is broker-local's and broker-redis'
  // name, not the ABI's, so a third-party broker may not know it.
  bool accepts_option(const std::string& option) {
    BrokerTestHost probe_host;
    OptionList options = OptionList::parse(env("FLOWRELAY_BROKER_OPTIONS") + ";" + option);
    char err[512] = "";
    flowrelay_broker* b = nullptr;
    if (vt_->create(probe_host.api(), probe_host.handle(), options.data(), options.size(), &b, err,
                    sizeof err) != FLOWRELAY_OK)
      return false;
    vt_->destroy(b);
    return true;
  }

  // history(); waits for the completion when it returns FLOWRELAY_OK.
  flowrelay_status read_history(const std::string& ch, uint64_t since, HistoryRead& read) {
    flowrelay_status st = vt_->history(broker_, view(ch), since, &HistoryRead::on_done, &read);
    if (st == FLOWRELAY_OK) {
      EXPECT_TRUE(read.wait(kDeliveryTimeout)) << "history() not completed";
    }
    return st;
  }
  // The broker keeps history with the options it was started with (history_size > 0).
  bool keeps_history() {
    if (!has_history_slot()) return false;
    HistoryRead probe;
    return read_history(channel("probe"), 0, probe) != FLOWRELAY_EUNSUPPORTED;
  }

  // publish_message() of each message in order; waits for every completion (slot i: message i).
  void publish_messages(const std::string& ch, const std::vector<Message>& messages,
                        PublishedLog& log) {
    ASSERT_EQ(test::publish_messages(vt_, broker_, ch, messages, log, kDeliveryTimeout),
              FLOWRELAY_OK);
    ASSERT_TRUE(log.wait(kDeliveryTimeout)) << "a publish_message() was never completed";
  }

  static std::shared_ptr<LoadedPlugin> plugin_;
  static std::string load_error_;
  const flowrelay_broker_vtable* vt_ = nullptr;
  BrokerTestHost host_;
  flowrelay_broker* broker_ = nullptr;
  std::string prefix_;
  int markers_ = 0;
};

std::shared_ptr<LoadedPlugin> BrokerConformance::plugin_;
std::string BrokerConformance::load_error_;

#define SKIP_WITHOUT_PUBLISH_MESSAGE()                                                      \
  if (!has_publish_message()) {                                                             \
    GTEST_SKIP() << "the broker has no publish_message slot (a broker older than ABI 1.2)"; \
  }
#define SKIP_WITHOUT_HISTORY_SLOT()                                                         \
  if (!has_publish_message() || !has_history_slot()) {                                      \
    GTEST_SKIP() << "the broker has no publish_message/history slots (older than ABI 1.2)"; \
  }
// After start_broker(): also skips a broker configured without history.
#define SKIP_WITHOUT_HISTORY()                                                                \
  if (!keeps_history()) {                                                                     \
    GTEST_SKIP() << "the broker keeps no history (history() returns FLOWRELAY_EUNSUPPORTED)"; \
  }

std::vector<Message> message_lane(const std::string& stem, int n) {
  std::vector<Message> out;
  for (int i = 1; i <= n; ++i)
    out.push_back({FLOWRELAY_LANE_MESSAGE, 0, "", stem + std::to_string(i)});
  return out;
}

TEST_F(BrokerConformance, DescribesItselfAsABroker) {
  const flowrelay_plugin_info& info = plugin_->info();
  ASSERT_NE(info.name, nullptr);
  EXPECT_GT(std::strlen(info.name), 0u);
  ASSERT_NE(info.version, nullptr);
  EXPECT_EQ(vt_->abi_major, static_cast<uint32_t>(FLOWRELAY_ABI_MAJOR));
  EXPECT_GE(vt_->struct_size, sizeof(flowrelay_broker_vtable));
  for (auto slot :
       {reinterpret_cast<const void*>(vt_->create), reinterpret_cast<const void*>(vt_->start),
        reinterpret_cast<const void*>(vt_->destroy), reinterpret_cast<const void*>(vt_->publish),
        reinterpret_cast<const void*>(vt_->subscribe),
        reinterpret_cast<const void*>(vt_->unsubscribe)})
    EXPECT_NE(slot, nullptr) << "a broker slot of ABI 1.0 is NULL";
}

// What `flowrelayd --check-config` does: create() and destroy() without start().
TEST_F(BrokerConformance, CreateDestroyWithoutStart) {
  ASSERT_NO_FATAL_FAILURE(create_broker());
  destroy_broker();
  std::this_thread::sleep_for(kQuietPeriod);
  EXPECT_EQ(host_.total_deliveries(), 0u);
}

TEST_F(BrokerConformance, CreateStartDestroy) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  destroy_broker();
  std::this_thread::sleep_for(kQuietPeriod);  // a late callback from a broker thread shows here
}

TEST_F(BrokerConformance, ReportsReadyWithinFiveSeconds) {
  ASSERT_NO_FATAL_FAILURE(create_broker());
  char err[512] = "";
  auto started = std::chrono::steady_clock::now();
  ASSERT_EQ(vt_->start(broker_, err, sizeof err), FLOWRELAY_OK) << err;
  EXPECT_TRUE(host_.wait_ready(1, kReadyTimeout));
  EXPECT_LE(std::chrono::steady_clock::now() - started, kReadyTimeout);
  auto history = host_.ready_history();
  ASSERT_FALSE(history.empty());
  for (int32_t r : history) EXPECT_TRUE(r == 0 || r == 1) << "set_ready(" << r << ")";
}

TEST_F(BrokerConformance, RejectsAnUnknownOptionNamingIt) {
  const std::string key = "conformance_no_such_option";
  OptionList options = configured_options();
  options.add(key, "1");
  char err[512];
  std::memset(err, 'Z', sizeof err);
  auto* const untouched = reinterpret_cast<flowrelay_broker*>(uintptr_t{0x5a5a5a5a});
  flowrelay_broker* out = untouched;
  flowrelay_status st = vt_->create(host_.api(), host_.handle(), options.data(), options.size(),
                                    &out, err, sizeof err);
  EXPECT_EQ(st, FLOWRELAY_EINVAL);
  EXPECT_EQ(out, untouched) << "*out was written although create() failed";
  if (out != untouched && st == FLOWRELAY_OK) broker_ = out;  // destroyed by TearDown
  ASSERT_NE(std::memchr(err, '\0', sizeof err), nullptr) << "message not NUL-terminated";
  std::string message(err);
  EXPECT_FALSE(message.empty());
  EXPECT_NE(message.find(key), std::string::npos) << "message does not name the key: " << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << "message is not one line: " << message;
}

TEST_F(BrokerConformance, ErrorMessageRespectsTheBufferSize) {
  OptionList options = configured_options();
  options.add("conformance_no_such_option_with_a_rather_long_name", "1");
  char err[64];
  std::memset(err, 'Z', sizeof err);
  const size_t cap = 16;
  flowrelay_broker* out = nullptr;
  EXPECT_EQ(
      vt_->create(host_.api(), host_.handle(), options.data(), options.size(), &out, err, cap),
      FLOWRELAY_EINVAL);
  EXPECT_EQ(out, nullptr);
  EXPECT_NE(std::memchr(err, '\0', cap), nullptr) << "no NUL within err_cap";
  for (size_t i = cap; i < sizeof err; ++i)
    ASSERT_EQ(err[i], 'Z') << "create() wrote past err_cap at offset " << i;
}

TEST_F(BrokerConformance, DeliversAnEmptyPayload) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string ch = channel("empty");
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  ASSERT_NO_FATAL_FAILURE(publish(ch, ""));
  ASSERT_TRUE(host_.wait_deliveries(ch, 1, kDeliveryTimeout));
  ASSERT_NO_FATAL_FAILURE(flush_through(ch));
  auto got = host_.deliveries(ch);
  ASSERT_EQ(got.size(), 2u) << "expected the empty message then the marker";
  EXPECT_EQ(got[0], "");
}

TEST_F(BrokerConformance, DeliversBinaryPayloadWithNulBytesExactly) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string ch = channel("binary");
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  std::string payload;
  for (int round = 0; round < 2; ++round)
    for (int b = 0; b < 256; ++b) payload.push_back(static_cast<char>(b));
  payload += std::string(5, '\0');  // trailing NULs must not be trimmed either
  ASSERT_NO_FATAL_FAILURE(publish(ch, payload));
  ASSERT_TRUE(host_.wait_deliveries(ch, 1, kDeliveryTimeout));
  auto got = host_.deliveries(ch);
  ASSERT_EQ(got[0].size(), payload.size());
  EXPECT_TRUE(got[0] == payload) << "payload bytes differ";
}

TEST_F(BrokerConformance, DeliversAOneMebibytePayloadExactly) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string ch = channel("large");
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  std::string payload(1 << 20, '\0');
  std::mt19937 rng(42);
  for (auto& c : payload) c = static_cast<char>(rng());
  ASSERT_NO_FATAL_FAILURE(publish(ch, payload));
  ASSERT_TRUE(host_.wait_deliveries(ch, 1, kDeliveryTimeout));
  auto got = host_.deliveries(ch);
  ASSERT_EQ(got[0].size(), payload.size());
  EXPECT_TRUE(got[0] == payload) << "payload bytes differ";
}

// Arguments are borrowed for the call only: a broker that queues must copy them.
TEST_F(BrokerConformance, CopiesBorrowedArgumentsBeforeReturning) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string ch = channel("borrowed");
  std::vector<char> name(ch.begin(), ch.end());
  flowrelay_status st = call_subscribe(vt_, broker_, flowrelay_str{name.data(), name.size()});
  std::fill(name.begin(), name.end(), 'X');
  if (st == FLOWRELAY_PENDING) st = host_.take_subscribed(ch, kDeliveryTimeout).value_or(-1);
  ASSERT_EQ(st, FLOWRELAY_OK);
  const std::string expected = "borrowed payload";
  std::vector<char> payload(expected.begin(), expected.end());
  std::vector<char> name2(ch.begin(), ch.end());
  ASSERT_EQ(vt_->publish(broker_, flowrelay_str{name2.data(), name2.size()},
                         flowrelay_str{payload.data(), payload.size()}),
            FLOWRELAY_OK);
  std::fill(payload.begin(), payload.end(), 'Y');
  std::fill(name2.begin(), name2.end(), 'Y');
  ASSERT_TRUE(host_.wait_deliveries(ch, 1, kDeliveryTimeout));
  EXPECT_EQ(host_.deliveries(ch)[0], expected);
  EXPECT_EQ(host_.all_deliveries().size(), 1u) << "a delivery went to a garbled channel name";
}

TEST_F(BrokerConformance, DoesNotDeliverAChannelNotSubscribed) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string on = channel("subscribed");
  const std::string off = channel("not-subscribed");
  ASSERT_NO_FATAL_FAILURE(subscribe(on));
  ASSERT_NO_FATAL_FAILURE(publish(off, "nobody listens"));
  ASSERT_NO_FATAL_FAILURE(flush_through(on));
  EXPECT_TRUE(host_.deliveries(off).empty());
  EXPECT_EQ(host_.all_deliveries().size(), 1u);
}

TEST_F(BrokerConformance, UnsubscribeStopsDelivery) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string ch = channel("leaving");
  const std::string control = channel("control");
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  ASSERT_NO_FATAL_FAILURE(subscribe(control));
  ASSERT_NO_FATAL_FAILURE(publish(ch, "before"));
  ASSERT_TRUE(host_.wait_deliveries(ch, 1, kDeliveryTimeout));
  ASSERT_NO_FATAL_FAILURE(unsubscribe(ch));
  std::this_thread::sleep_for(kUnsubscribeGrace);
  ASSERT_NO_FATAL_FAILURE(publish(ch, "after"));
  ASSERT_NO_FATAL_FAILURE(flush_through(control));
  EXPECT_EQ(host_.deliveries(ch), std::vector<std::string>{"before"});
}

TEST_F(BrokerConformance, ChannelsAreIsolated) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  // Names sharing prefixes, differing in case or trailing bytes, and glob characters (a broker
  // that pattern-subscribes would leak between them).
  const std::vector<std::string> subscribed = {channel("a.b"), channel("a.bc"), channel("g.*"),
                                               channel("h.?")};
  const std::vector<std::string> others = {
      channel("a.b.c"), channel("a."),   channel("a"),
      channel("A.B"),   channel("a.b "), channel("a.bcd"),
      channel("g.x"),   channel("h.y"),  channel("a.b") + std::string(1, '\0')};
  for (const auto& ch : subscribed) ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  for (const auto& ch : others) ASSERT_NO_FATAL_FAILURE(publish(ch, "to " + ch));
  for (const auto& ch : subscribed) ASSERT_NO_FATAL_FAILURE(publish(ch, "to " + ch));
  for (const auto& ch : subscribed) ASSERT_TRUE(host_.wait_deliveries(ch, 1, kDeliveryTimeout));
  ASSERT_NO_FATAL_FAILURE(flush_through(subscribed[0]));
  auto all = host_.all_deliveries();
  EXPECT_EQ(all.size(), subscribed.size()) << "deliveries on a channel not subscribed";
  for (const auto& ch : subscribed) {
    auto got = all[ch];
    ASSERT_GE(got.size(), 1u) << ch;
    EXPECT_EQ(got[0], "to " + ch);
    if (ch != subscribed[0]) {
      EXPECT_EQ(got.size(), 1u) << ch;
    }
  }

  // Leaving a.b must not end a.bc (or the reverse).
  ASSERT_NO_FATAL_FAILURE(unsubscribe(subscribed[0]));
  std::this_thread::sleep_for(kUnsubscribeGrace);
  ASSERT_NO_FATAL_FAILURE(publish(subscribed[0], "after leaving"));
  ASSERT_NO_FATAL_FAILURE(flush_through(subscribed[1]));
  for (const auto& got : host_.deliveries(subscribed[0])) EXPECT_NE(got, "after leaving");
}

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
                         const std::vector<std::string>& channels, int threads, int per_thread,
                         flowrelay_status (*publish_fn)(const flowrelay_broker_vtable*,
                                                        flowrelay_broker*, const std::string&,
                                                        const std::string&)) {
  std::atomic<int> failures{0};
  std::atomic<int> waiting{threads};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      const std::string& ch = channels[t % channels.size()];
      --waiting;
      while (waiting.load() > 0) std::this_thread::yield();
      for (int n = 0; n < per_thread; ++n)
        if (publish_fn(vt, b, ch, std::to_string(t) + ":" + std::to_string(n)) != FLOWRELAY_OK)
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
  EXPECT_EQ(publish_concurrently(vt_, broker_, {ch}, 4, 2500, &publish_on), 0);
  ASSERT_TRUE(host_.wait_deliveries(ch, 10000, kBulkTimeout))
      << "got " << host_.deliveries(ch).size() << " of 10000";
  ASSERT_NO_FATAL_FAILURE(flush_through(ch));
  auto got = host_.deliveries(ch);
  got.pop_back();  // the marker
  EXPECT_EQ(got.size(), 10000u);
  expect_each_once_in_thread_order(got, {0, 1, 2, 3}, 2500);
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
      for (const auto& c : batch)
        if (vt_->unsubscribe(broker_, view(c)) != FLOWRELAY_OK) ++churn_failures;
    }
  });
  int failures = publish_concurrently(vt_, broker_, chans, 4, 2500, &publish_on);
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

TEST_F(BrokerConformance, DestroyWithLiveSubscriptionsIsClean) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string kept = channel("kept");
  for (int i = 0; i < 100; ++i) ASSERT_NO_FATAL_FAILURE(subscribe(channel(std::to_string(i))));
  ASSERT_NO_FATAL_FAILURE(subscribe(kept));
  for (int i = 0; i < 100; ++i) ASSERT_NO_FATAL_FAILURE(publish(channel(std::to_string(i)), "x"));
  ASSERT_TRUE(host_.wait_total_deliveries(100, kDeliveryTimeout));
  destroy_broker();
  std::this_thread::sleep_for(kQuietPeriod);
  EXPECT_EQ(host_.callbacks_after_destroy(), 0);

  // A new instance starts with no subscriptions: nothing of the old one survives.
  BrokerTestHost second;
  OptionList options = configured_options();
  char err[512] = "";
  flowrelay_broker* b = nullptr;
  ASSERT_EQ(vt_->create(second.api(), second.handle(), options.data(), options.size(), &b, err,
                        sizeof err),
            FLOWRELAY_OK)
      << err;
  ASSERT_EQ(vt_->start(b, err, sizeof err), FLOWRELAY_OK) << err;
  EXPECT_TRUE(second.wait_ready(1, kReadyTimeout));
  const std::string probe = channel("probe");
  flowrelay_status st = call_subscribe(vt_, b, view(probe));
  if (st == FLOWRELAY_PENDING) st = second.take_subscribed(probe, kDeliveryTimeout).value_or(-1);
  EXPECT_EQ(st, FLOWRELAY_OK);
  EXPECT_EQ(publish_on(vt_, b, kept, "old subscription?"), FLOWRELAY_OK);
  EXPECT_EQ(publish_on(vt_, b, probe, "probe"), FLOWRELAY_OK);
  EXPECT_TRUE(second.wait_deliveries(probe, 1, kDeliveryTimeout));
  std::this_thread::sleep_for(kQuietPeriod);
  EXPECT_TRUE(second.deliveries(kept).empty()) << "a subscription outlived its instance";
  vt_->destroy(b);
  second.mark_destroyed();
  std::this_thread::sleep_for(kQuietPeriod);
  EXPECT_EQ(second.callbacks_after_destroy(), 0);
  EXPECT_EQ(second.concurrent_deliveries(), 0);
  EXPECT_EQ(second.subscribed_inside_subscribe(), 0);
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
    for (const auto& ch : chans) ASSERT_NO_FATAL_FAILURE(unsubscribe(ch));
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

// Repeated subscribe/unsubscribe of one channel leaves exactly one live subscription behind.
TEST_F(BrokerConformance, ResubscribingOneChannelDeliversOnce) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string ch = channel("again");
  for (int i = 0; i < 1000; ++i) {
    flowrelay_status st = call_subscribe(vt_, broker_, view(ch));
    ASSERT_TRUE(st == FLOWRELAY_OK || st == FLOWRELAY_PENDING) << st;
    ASSERT_NO_FATAL_FAILURE(unsubscribe(ch));
  }
  // subscribed() of those PENDING subscribes is optional once unsubscribed: let stragglers
  // arrive and forget them, so that the next one answers the subscribe below.
  std::this_thread::sleep_for(kUnsubscribeGrace);
  host_.forget_subscribed(ch);
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  ASSERT_NO_FATAL_FAILURE(publish(ch, "once"));
  ASSERT_NO_FATAL_FAILURE(flush_through(ch));
  auto got = host_.deliveries(ch);
  ASSERT_EQ(got.size(), 2u) << "expected the message once, then the marker";
  EXPECT_EQ(got[0], "once");
}

// ------------------------------------------------------------------------------ ABI 1.2

// One epoch and offsets 1..N in publish order when the broker keeps history; offset 0 and no
// epoch when it does not. Each completion once; deliveries carry the same lane/offset/epoch.
TEST_F(BrokerConformance, PublishMessageAssignsOffsetsInOrderAndDeliversThem) {
  SKIP_WITHOUT_PUBLISH_MESSAGE();
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const bool history = keeps_history();
  const std::string ch = channel("offsets");
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  const auto sent = message_lane("m", 50);
  PublishedLog log(sent.size());
  ASSERT_NO_FATAL_FAILURE(publish_messages(ch, sent, log));
  ASSERT_TRUE(host_.wait_deliveries(ch, sent.size(), kDeliveryTimeout));
  std::this_thread::sleep_for(kQuietPeriod);
  const auto results = log.results();
  const std::string epoch = results[0].epoch;
  EXPECT_EQ(epoch.empty(), !history) << "epoch '" << epoch << "'";
  std::vector<Message> expected;
  for (size_t i = 0; i < sent.size(); ++i) {
    SCOPED_TRACE("message " + std::to_string(i + 1));
    EXPECT_EQ(results[i].calls, 1) << "completion not called exactly once";
    EXPECT_EQ(results[i].status, FLOWRELAY_OK);
    EXPECT_EQ(results[i].offset, history ? i + 1 : 0);
    EXPECT_EQ(results[i].epoch, epoch);
    expected.push_back({FLOWRELAY_LANE_MESSAGE, results[i].offset, epoch, sent[i].data, true});
  }
  EXPECT_EQ(host_.messages(ch), expected);
}

// One offset sequence across lanes; the lane travels with the message, into history too.
TEST_F(BrokerConformance, LogLaneRoundTripsWithItsOffset) {
  SKIP_WITHOUT_PUBLISH_MESSAGE();
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const bool history = keeps_history();
  const std::string ch = channel("lanes");
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  const std::vector<Message> sent = {{FLOWRELAY_LANE_MESSAGE, 0, "", "question"},
                                     {FLOWRELAY_LANE_LOG, 0, "", "thinking..."},
                                     {FLOWRELAY_LANE_LOG, 0, "", std::string("a\nb\0c", 5)},
                                     {FLOWRELAY_LANE_MESSAGE, 0, "", "answer"}};
  PublishedLog log(sent.size());
  ASSERT_NO_FATAL_FAILURE(publish_messages(ch, sent, log));
  ASSERT_TRUE(host_.wait_deliveries(ch, sent.size(), kDeliveryTimeout));
  const auto results = log.results();
  std::vector<Message> expected;
  for (size_t i = 0; i < sent.size(); ++i) {
    EXPECT_EQ(results[i].offset, history ? i + 1 : 0) << "message " << i + 1;
    expected.push_back({sent[i].lane, results[i].offset, results[i].epoch, sent[i].data, true});
  }
  EXPECT_EQ(host_.messages(ch), expected);
  if (!history) return;
  HistoryRead read;
  ASSERT_EQ(read_history(ch, 0, read), FLOWRELAY_OK);
  EXPECT_EQ(read.messages, expected);
}

TEST_F(BrokerConformance, PublishMessageCopiesItsArgumentsAndTakesANullCompletion) {
  SKIP_WITHOUT_PUBLISH_MESSAGE();
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string ch = channel("null-done");
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  std::vector<char> name(ch.begin(), ch.end());
  std::string data = "borrowed";
  flowrelay_message m{};
  m.struct_size = sizeof m;
  m.lane = FLOWRELAY_LANE_LOG;
  m.data = view(data);
  ASSERT_EQ(vt_->publish_message(broker_, {name.data(), name.size()}, &m, nullptr, nullptr),
            FLOWRELAY_OK);
  std::fill(name.begin(), name.end(), 'X');
  std::fill(data.begin(), data.end(), 'Y');
  m.lane = 99;
  ASSERT_TRUE(host_.wait_deliveries(ch, 1, kDeliveryTimeout));
  const auto got = host_.messages(ch);
  EXPECT_EQ(got[0].data, "borrowed");
  EXPECT_EQ(got[0].lane, static_cast<flowrelay_lane>(FLOWRELAY_LANE_LOG));
  EXPECT_EQ(host_.all_deliveries().size(), 1u) << "a delivery went to a garbled channel name";
}

// A lane this broker cannot carry (a future one): refused as the ABI's "not supported", the
// daemon's 501, rather than delivered under a number the host does not know.
TEST_F(BrokerConformance, PublishMessageRefusesAnUnknownLane) {
  SKIP_WITHOUT_PUBLISH_MESSAGE();
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string ch = channel("bad-lane");
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  std::string data = "lane 7";
  flowrelay_message m{};
  m.struct_size = sizeof m;
  m.lane = 7;
  m.data = view(data);
  PublishedLog log(1);
  EXPECT_EQ(vt_->publish_message(broker_, view(ch), &m, &PublishedLog::on_done, log.ctx(0)),
            FLOWRELAY_EUNSUPPORTED);
  ASSERT_NO_FATAL_FAILURE(flush_through(ch));
  EXPECT_EQ(host_.deliveries(ch).size(), 1u) << "the refused message was delivered";
  EXPECT_EQ(log.results()[0].calls, 0) << "completion called although publish_message failed";
}

// publish() is publish_message() on the message lane without a completion: it takes its place
// in the one offset sequence (a 1.1 daemon's publishes must not open gaps in a 1.2 cluster's
// history) and arrives through deliver_message().
TEST_F(BrokerConformance, PlainPublishIsTheMessageLaneOfTheSameSequence) {
  SKIP_WITHOUT_PUBLISH_MESSAGE();
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const bool history = keeps_history();
  const std::string ch = channel("plain");
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  PublishedLog first(1), last(1);
  ASSERT_NO_FATAL_FAILURE(publish_messages(ch, message_lane("first", 1), first));
  ASSERT_NO_FATAL_FAILURE(publish(ch, "plain"));
  ASSERT_NO_FATAL_FAILURE(publish_messages(ch, message_lane("last", 1), last));
  ASSERT_TRUE(host_.wait_deliveries(ch, 3, kDeliveryTimeout));
  const std::string epoch = first.results()[0].epoch;
  const Message plain{FLOWRELAY_LANE_MESSAGE, history ? 2u : 0u, epoch, "plain", true};
  EXPECT_EQ(host_.messages(ch)[1], plain);
  EXPECT_EQ(last.results()[0].offset, history ? 3u : 0u);
  if (!history) return;
  HistoryRead read;
  ASSERT_EQ(read_history(ch, 1, read), FLOWRELAY_OK);
  ASSERT_EQ(read.messages.size(), 2u);
  EXPECT_EQ(read.messages[0], plain);
}

// A daemon built before ABI 1.2 has no deliver_message: it gets the message lane through
// deliver() and never a log line it would show as a chat message.
TEST_F(BrokerConformance, OlderHostGetsTheMessageLaneThroughDeliverOnly) {
  SKIP_WITHOUT_PUBLISH_MESSAGE();
  BrokerTestHost old_host(1);
  OptionList options = configured_options();
  char err[512] = "";
  flowrelay_broker* b = nullptr;
  ASSERT_EQ(vt_->create(old_host.api(), old_host.handle(), options.data(), options.size(), &b, err,
                        sizeof err),
            FLOWRELAY_OK)
      << err;
  broker_ = b;  // destroyed by TearDown if an assertion ends the test early
  ASSERT_EQ(vt_->start(b, err, sizeof err), FLOWRELAY_OK) << err;
  ASSERT_TRUE(old_host.wait_ready(1, kReadyTimeout));
  const std::string ch = channel("old-host");
  flowrelay_status st = call_subscribe(vt_, b, view(ch));
  if (st == FLOWRELAY_PENDING) st = old_host.take_subscribed(ch, kDeliveryTimeout).value_or(-1);
  ASSERT_EQ(st, FLOWRELAY_OK);
  PublishedLog log(3);
  ASSERT_NO_FATAL_FAILURE(publish_messages(ch,
                                           {{FLOWRELAY_LANE_MESSAGE, 0, "", "before"},
                                            {FLOWRELAY_LANE_LOG, 0, "", "log line"},
                                            {FLOWRELAY_LANE_MESSAGE, 0, "", "after"}},
                                           log));
  ASSERT_TRUE(old_host.wait_deliveries(ch, 2, kDeliveryTimeout));
  std::this_thread::sleep_for(kQuietPeriod);
  EXPECT_EQ(old_host.messages(ch),
            (std::vector<Message>{{FLOWRELAY_LANE_MESSAGE, 0, "", "before"},
                                  {FLOWRELAY_LANE_MESSAGE, 0, "", "after"}}));
  destroy_broker();
  old_host.mark_destroyed();
  EXPECT_EQ(old_host.callbacks_after_destroy(), 0);
  EXPECT_TRUE(old_host.errors().empty());
}

TEST_F(BrokerConformance, HistoryReturnsExactlyTheMessagesAfterSince) {
  SKIP_WITHOUT_HISTORY_SLOT();
  ASSERT_NO_FATAL_FAILURE(start_broker());
  SKIP_WITHOUT_HISTORY();
  const std::string ch = channel("history");
  const auto sent = message_lane("h", 10);
  PublishedLog log(sent.size());
  ASSERT_NO_FATAL_FAILURE(publish_messages(ch, sent, log));
  const std::string epoch = log.results()[0].epoch;
  for (uint64_t since : {0, 4, 9, 10, 15}) {
    SCOPED_TRACE("since " + std::to_string(since));
    HistoryRead read;
    ASSERT_EQ(read_history(ch, since, read), FLOWRELAY_OK);
    EXPECT_EQ(read.calls(), 1);
    EXPECT_FALSE(read.bad_struct);
    EXPECT_EQ(read.status, FLOWRELAY_OK);
    EXPECT_EQ(read.epoch, epoch);
    EXPECT_EQ(read.top, 10u);
    std::vector<Message> expected;
    for (uint64_t o = since + 1; o <= 10; ++o)
      expected.push_back({FLOWRELAY_LANE_MESSAGE, o, epoch, sent[o - 1].data, true});
    EXPECT_EQ(read.messages, expected);
  }
}

TEST_F(BrokerConformance, HistoryKeepsTheNewestHistorySizeMessages) {
  SKIP_WITHOUT_HISTORY_SLOT();
  if (!accepts_option("history_size=5")) GTEST_SKIP() << "the broker has no history_size option";
  ASSERT_NO_FATAL_FAILURE(start_broker("history_size=5"));
  SKIP_WITHOUT_HISTORY();
  const std::string ch = channel("bounded");
  const auto sent = message_lane("b", 10);
  PublishedLog log(sent.size());
  ASSERT_NO_FATAL_FAILURE(publish_messages(ch, sent, log));
  EXPECT_EQ(log.results().back().offset, 10u);
  for (uint64_t since : {0, 3}) {
    SCOPED_TRACE("since " + std::to_string(since));
    HistoryRead read;
    ASSERT_EQ(read_history(ch, since, read), FLOWRELAY_OK);
    EXPECT_EQ(read.top, 10u);
    std::vector<uint64_t> offsets;
    for (const auto& m : read.messages) offsets.push_back(m.offset);
    EXPECT_EQ(offsets, (std::vector<uint64_t>{6, 7, 8, 9, 10}));
    ASSERT_FALSE(read.messages.empty());
    EXPECT_EQ(read.messages[0].data, "b6");
  }
}

TEST_F(BrokerConformance, HistoryOfAnUnknownChannelIsEmpty) {
  SKIP_WITHOUT_HISTORY_SLOT();
  ASSERT_NO_FATAL_FAILURE(start_broker());
  SKIP_WITHOUT_HISTORY();
  HistoryRead read;
  ASSERT_EQ(read_history(channel("never-published"), 0, read), FLOWRELAY_OK);
  EXPECT_EQ(read.status, FLOWRELAY_OK);
  EXPECT_FALSE(read.bad_struct);
  EXPECT_EQ(read.epoch, "");
  EXPECT_EQ(read.top, 0u);
  EXPECT_TRUE(read.messages.empty());
}

TEST_F(BrokerConformance, HistorySizeZeroKeepsNoHistory) {
  SKIP_WITHOUT_HISTORY_SLOT();
  if (!accepts_option("history_size=0")) GTEST_SKIP() << "the broker has no history_size option";
  ASSERT_NO_FATAL_FAILURE(start_broker("history_size=0"));
  HistoryRead read;
  EXPECT_EQ(vt_->history(broker_, view(channel("none")), 0, &HistoryRead::on_done, &read),
            FLOWRELAY_EUNSUPPORTED);
  const std::string ch = channel("no-history");
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  PublishedLog log(2);
  ASSERT_NO_FATAL_FAILURE(publish_messages(
      ch, {{FLOWRELAY_LANE_MESSAGE, 0, "", "m"}, {FLOWRELAY_LANE_LOG, 0, "", "l"}}, log));
  for (const auto& r : log.results()) {
    EXPECT_EQ(r.status, FLOWRELAY_OK);
    EXPECT_EQ(r.offset, 0u);
    EXPECT_EQ(r.epoch, "");
  }
  ASSERT_TRUE(host_.wait_deliveries(ch, 2, kDeliveryTimeout));
  EXPECT_EQ(host_.messages(ch), (std::vector<Message>{{FLOWRELAY_LANE_MESSAGE, 0, "", "m", true},
                                                      {FLOWRELAY_LANE_LOG, 0, "", "l", true}}));
  std::this_thread::sleep_for(kQuietPeriod);
  EXPECT_EQ(read.calls(), 0) << "completion called although history() was refused";
}

// Whatever is still queued when destroy() is called is completed (with an error) before it
// returns; nothing completes twice or later.
TEST_F(BrokerConformance, EveryCompletionRunsOnceBeforeDestroyReturns) {
  SKIP_WITHOUT_PUBLISH_MESSAGE();
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const bool history = keeps_history();
  const std::string ch = channel("destroy");
  constexpr size_t kCount = 2000;
  PublishedLog log(kCount);
  std::vector<HistoryRead> reads(history ? 10 : 0);
  std::string data = "queued";
  flowrelay_message m{};
  m.struct_size = sizeof m;
  m.data = view(data);
  for (size_t i = 0; i < kCount; ++i) {
    ASSERT_EQ(vt_->publish_message(broker_, view(ch), &m, &PublishedLog::on_done, log.ctx(i)),
              FLOWRELAY_OK);
    if (i % 200 == 0 && i / 200 < reads.size()) {
      ASSERT_EQ(vt_->history(broker_, view(ch), 0, &HistoryRead::on_done, &reads[i / 200]),
                FLOWRELAY_OK);
    }
  }
  destroy_broker();
  auto check = [&] {
    for (const auto& r : log.results()) {
      ASSERT_EQ(r.calls, 1) << "a publish_message() completion ran " << r.calls << " times";
      ASSERT_TRUE(r.status == FLOWRELAY_OK || r.status == FLOWRELAY_EUNAVAIL) << r.status;
    }
    for (const auto& read : reads) {
      ASSERT_EQ(read.calls(), 1) << "a history() completion ran " << read.calls() << " times";
      ASSERT_TRUE(read.status == FLOWRELAY_OK || read.status == FLOWRELAY_EUNAVAIL) << read.status;
    }
  };
  ASSERT_NO_FATAL_FAILURE(check());
  std::this_thread::sleep_for(kQuietPeriod);
  ASSERT_NO_FATAL_FAILURE(check());
}

}  // namespace
}  // namespace flowrelay::test
