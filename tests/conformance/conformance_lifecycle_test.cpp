// Conformance: the plugin's tables, create/start/destroy, option errors, optional slots.
#include <cstring>
#include <thread>

#include "broker_fixture.h"

namespace flowrelay::test {
namespace {

TEST_F(BrokerConformance, DescribesItselfAsAnAbi2Broker) {
  const flowrelay_plugin_info& info = plugin_->info();
  ASSERT_NE(info.name, nullptr);
  EXPECT_GT(std::strlen(info.name), 0u);
  ASSERT_NE(info.version, nullptr);
  EXPECT_EQ(info.abi_major, static_cast<uint32_t>(FLOWRELAY_ABI_MAJOR));
  EXPECT_EQ(vt_->abi_major, static_cast<uint32_t>(FLOWRELAY_ABI_MAJOR));
  EXPECT_GE(vt_->struct_size, sizeof(flowrelay_broker_vtable));
  EXPECT_NE(vt_->create, nullptr);
  EXPECT_NE(vt_->start, nullptr);
  EXPECT_NE(vt_->destroy, nullptr);
  EXPECT_NE(vt_->publish, nullptr);
  EXPECT_NE(vt_->subscribe, nullptr);
  EXPECT_NE(vt_->unsubscribe, nullptr);
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
  EXPECT_NE(message.find("'" + key + "'"), std::string::npos)
      << "message does not name the key in single quotes: " << message;
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
  EXPECT_EQ(publish_on(vt_, b, second, kept, "old subscription?"), FLOWRELAY_OK);
  EXPECT_EQ(publish_on(vt_, b, second, probe, "probe"), FLOWRELAY_OK);
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

// Prometheus text whose families and samples all carry the "flowrelay_" prefix.
TEST_F(BrokerMetrics, WritesPrometheusTextWithTheFlowrelayPrefix) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  std::string text;
  vt_->metrics(
      broker_,
      [](void* ctx, flowrelay_str piece) {
        static_cast<std::string*>(ctx)->append(piece.ptr, piece.len);
      },
      &text);
  ASSERT_FALSE(text.empty()) << "metrics() wrote nothing";
  EXPECT_EQ(text.back(), '\n');
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    const std::string line = text.substr(start, end - start);
    start = end == std::string::npos ? text.size() : end + 1;
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
      EXPECT_EQ(line.compare(7, 10, "flowrelay_"), 0) << line;
      continue;
    }
    EXPECT_EQ(line.rfind("flowrelay_", 0), 0u) << "sample without the prefix: " << line;
    EXPECT_NE(line.find(' '), std::string::npos) << "sample without a value: " << line;
  }
}

// Unchanged options apply as they are; invalid ones change nothing and name the key.
TEST_F(BrokerReconfigure, TakesTheSameOptionsAndRefusesAnUnknownOne) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  OptionList same = configured_options();
  char err[512] = "";
  EXPECT_EQ(vt_->reconfigure(broker_, same.data(), same.size(), err, sizeof err), FLOWRELAY_OK)
      << err;
  OptionList bad = configured_options("conformance_no_such_option=1");
  EXPECT_EQ(vt_->reconfigure(broker_, bad.data(), bad.size(), err, sizeof err), FLOWRELAY_EINVAL);
  EXPECT_NE(std::string(err).find("'conformance_no_such_option'"), std::string::npos) << err;
  // Still serving after both.
  const std::string ch = channel("after-reload");
  ASSERT_NO_FATAL_FAILURE(subscribe(ch));
  ASSERT_NO_FATAL_FAILURE(flush_through(ch));
}

}  // namespace
}  // namespace flowrelay::test
