#include "broker_fixture.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <random>
#include <thread>

namespace flowrelay::test {

std::shared_ptr<LoadedPlugin> BrokerFixture::plugin_;
std::string BrokerFixture::load_error_;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

flowrelay_status call_subscribe(const flowrelay_broker_vtable* vt, flowrelay_broker* b,
                                flowrelay_str ch) {
  BrokerTestHost::InSubscribeCall in_call;
  return vt->subscribe(b, ch);
}

flowrelay_status publish_on(const flowrelay_broker_vtable* vt, flowrelay_broker* b,
                            const BrokerTestHost& host, const std::string& ch,
                            const std::string& data, uint64_t session) {
  flowrelay_message m{};
  m.struct_size = sizeof m;
  m.lane = FLOWRELAY_LANE_MESSAGE;
  m.origin = {host.node_id(), session, 0};
  m.data = view(data);
  const auto deadline = std::chrono::steady_clock::now() + kDeliveryTimeout;
  for (;;) {
    flowrelay_status st = vt->publish(b, view(ch), &m, nullptr, nullptr);
    if (st != FLOWRELAY_EAGAIN || std::chrono::steady_clock::now() > deadline) return st;
    std::this_thread::sleep_for(1ms);
  }
}

std::vector<Message> message_lane(const BrokerTestHost& host, const std::string& stem, int n) {
  std::vector<Message> out;
  for (int i = 1; i <= n; ++i)
    out.push_back(host.message(FLOWRELAY_LANE_MESSAGE, stem + std::to_string(i)));
  return out;
}

void expect_seq_numbering(const std::vector<Message>& got) {
  if (got.empty() || got[0].origin.seq == 0) {
    for (const auto& m : got) EXPECT_EQ(m.origin.seq, 0u) << "seq set on some deliveries only";
    return;
  }
  for (size_t i = 1; i < got.size(); ++i)
    EXPECT_GT(got[i].origin.seq, got[i - 1].origin.seq) << "seq not increasing at " << i;
}

const std::string& BrokerFixture::load_plugin() {
  if (plugin_ || !load_error_.empty()) return load_error_;
  const std::string path = env("FLOWRELAY_BROKER_PLUGIN");
  if (path.empty()) {
    load_error_ = "FLOWRELAY_BROKER_PLUGIN is not set (path of the broker .so to test)";
    return load_error_;
  }
  try {
    plugin_ = LoadedPlugin::load(path);
    if (!plugin_->broker()) load_error_ = path + ": the plugin provides no broker table";
  } catch (const PluginError& e) {
    load_error_ = e.what();
  }
  return load_error_;
}

OptionList BrokerFixture::configured_options(const std::string& extra) {
  return OptionList::parse(env("FLOWRELAY_BROKER_OPTIONS") + ";" + extra);
}

void BrokerFixture::SetUp() {
  ASSERT_TRUE(load_error_.empty()) << load_error_;
  vt_ = plugin_->broker();
  static std::atomic<int> test_number{0};
  std::random_device rd;
  prefix_ = "conformance." + std::to_string(getpid()) + "." + std::to_string(rd() % 100000) + "." +
            std::to_string(++test_number) + ".";
}

void BrokerFixture::TearDown() {
  destroy_broker();
  EXPECT_EQ(host_.callbacks_after_destroy(), 0) << "host callbacks ran after destroy()";
  EXPECT_EQ(host_.concurrent_deliveries(), 0)
      << "deliver() ran on two threads at once for one channel";
  EXPECT_EQ(host_.subscribed_inside_subscribe(), 0)
      << "subscribed() was called from inside subscribe()";
  EXPECT_EQ(BrokerTestHost::foreign_host_calls(), 0)
      << "a callback passed a host handle that create() was not given";
  EXPECT_EQ(host_.bad_messages(), 0)
      << "deliver() got a NULL message or one with a short struct_size";
  for (const auto& [code, detail] : host_.errors())
    ADD_FAILURE() << "unexpected report_error(" << code << ", \"" << detail << "\")";
}

void BrokerFixture::create_broker(const std::string& extra) {
  OptionList options = configured_options(extra);
  char err[512] = "";
  flowrelay_broker* b = nullptr;
  flowrelay_status st =
      vt_->create(host_.api(), host_.handle(), options.data(), options.size(), &b, err, sizeof err);
  ASSERT_EQ(st, FLOWRELAY_OK) << "create() failed: " << err;
  ASSERT_NE(b, nullptr) << "create() returned FLOWRELAY_OK without an instance";
  broker_ = b;
}

void BrokerFixture::start_broker(const std::string& extra) {
  ASSERT_NO_FATAL_FAILURE(create_broker(extra));
  char err[512] = "";
  ASSERT_EQ(vt_->start(broker_, err, sizeof err), FLOWRELAY_OK) << "start() failed: " << err;
  ASSERT_TRUE(host_.wait_ready(1, kReadyTimeout))
      << "the broker did not report set_ready(1) within 5 s";
}

void BrokerFixture::destroy_broker() {
  if (!broker_) return;
  vt_->destroy(broker_);
  broker_ = nullptr;
  host_.mark_destroyed();
}

void BrokerFixture::subscribe(const std::string& ch) {
  flowrelay_status st = call_subscribe(vt_, broker_, view(ch));
  if (st == FLOWRELAY_PENDING) {
    auto done = host_.take_subscribed(ch, kDeliveryTimeout);
    ASSERT_TRUE(done.has_value()) << "no subscribed() for PENDING subscribe of " << ch;
    st = *done;
  }
  ASSERT_EQ(st, FLOWRELAY_OK) << "subscribe(" << ch << ")";
}

void BrokerFixture::publish_messages(const std::string& ch, const std::vector<Message>& messages,
                                     PublishedLog& log) {
  ASSERT_EQ(test::publish_messages(vt_, broker_, ch, messages, log, kDeliveryTimeout),
            FLOWRELAY_OK);
  ASSERT_TRUE(log.wait(kDeliveryTimeout)) << "a publish() was never completed";
}

void BrokerFixture::flush_through(const std::string& ch) {
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

flowrelay_status BrokerFixture::read_history(const std::string& ch, uint64_t since,
                                             HistoryRead& read) {
  if (!vt_->history) return FLOWRELAY_EUNSUPPORTED;
  flowrelay_status st = vt_->history(broker_, view(ch), since, &HistoryRead::on_done, &read);
  if (st == FLOWRELAY_OK) {
    EXPECT_TRUE(read.wait(kDeliveryTimeout)) << "history() not completed";
  }
  return st;
}

bool BrokerFixture::keeps_history() {
  HistoryRead probe;
  return read_history(channel("probe"), 0, probe) != FLOWRELAY_EUNSUPPORTED;
}

}  // namespace flowrelay::test
