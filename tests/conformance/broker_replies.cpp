#include "broker_replies.h"

#include <thread>

namespace flowrelay::test {
namespace {

class ReplyDone {
 public:
  static void on_done(void* ctx, const flowrelay_reply_published* r) noexcept {
    auto* self = static_cast<ReplyDone*>(ctx);
    std::lock_guard lock(self->_mutex);
    ReplyResult& out = self->result;
    ++out.calls;
    if (!r || r->struct_size < sizeof(flowrelay_reply_published)) {
      out.bad_struct = true;
    } else {
      out.status = r->status;
      out.duplicate = r->duplicate != 0;
      out.offset = r->offset;
      out.epoch = str(r->epoch);
      out.expected_seq = r->expected_seq;
      out.ended = str(r->ended);
    }
    self->_changed.notify_all();  // under the lock: the waiter owns this object
  }
  bool wait(std::chrono::steady_clock::duration timeout) {
    std::unique_lock lock(_mutex);
    return _changed.wait_for(lock, timeout, [&] { return result.calls > 0; });
  }
  ReplyResult snapshot() {
    std::lock_guard lock(_mutex);
    return result;
  }

 private:
  std::mutex _mutex;
  std::condition_variable _changed;
  ReplyResult result;
};

}  // namespace

ReplyResult publish_step(const flowrelay_broker_vtable* vt, flowrelay_broker* b,
                         const BrokerTestHost& host, const std::string& ch, const Step& step) {
  flowrelay_reply reply{
      sizeof reply, step.kind, view(step.id), step.seq, view(step.reason), view(step.error), -1,
      -1,           0};
  flowrelay_message m{};
  m.struct_size = sizeof m;
  m.lane = FLOWRELAY_LANE_MESSAGE;
  m.origin = {host.node_id(), 0, 0};
  m.data = view(step.data);
  m.reply = &reply;
  if (!has_publish_reply(vt)) {
    ReplyResult r;
    r.returned = FLOWRELAY_EUNSUPPORTED;
    return r;
  }
  ReplyDone done;
  const flowrelay_status st = vt->publish_reply(b, view(ch), &m, &ReplyDone::on_done, &done);
  if (st != FLOWRELAY_OK) {
    std::this_thread::sleep_for(kQuietPeriod);  // a completion must not come: see calls
    ReplyResult r = done.snapshot();
    r.returned = st;
    return r;
  }
  EXPECT_TRUE(done.wait(kDeliveryTimeout)) << "publish_reply() returned OK but never completed";
  ReplyResult r = done.snapshot();
  r.returned = st;
  return r;
}

const std::string& replies_missing() {
  static const std::string missing = [] {
    const flowrelay_broker_vtable* vt = BrokerFixture::plugin()->broker();
    if (!has_publish_reply(vt)) return std::string("publish_reply() is missing or NULL");
    BrokerTestHost host;
    OptionList options = BrokerFixture::configured_options();
    char err[512] = "";
    flowrelay_broker* b = nullptr;
    if (vt->create(host.api(), host.handle(), options.data(), options.size(), &b, err,
                   sizeof err) != FLOWRELAY_OK)
      return std::string();  // the tests fail loudly in their own setup
    std::string why;
    if (vt->start(b, err, sizeof err) == FLOWRELAY_OK && host.wait_ready(1, kReadyTimeout) &&
        publish_step(vt, b, host, "conformance.probe.replies", open_step("probe")).returned ==
            FLOWRELAY_EUNSUPPORTED)
      why = "publish_reply() answers FLOWRELAY_EUNSUPPORTED (the broker keeps no reply streams)";
    vt->destroy(b);
    return why;
  }();
  return missing;
}

void BrokerReplyFixture::SetUp() {
  ASSERT_NO_FATAL_FAILURE(BrokerFixture::SetUp());
  if (!replies_missing().empty()) GTEST_SKIP() << replies_missing();
}

// Why a started instance with the configured options keeps no history ("" if it keeps one).
const std::string& history_missing() {
  static const std::string missing = [] {
    const flowrelay_broker_vtable* vt = BrokerFixture::plugin()->broker();
    if (!vt->history) return std::string("history() is NULL");
    BrokerTestHost host;
    OptionList options = BrokerFixture::configured_options();
    char err[512] = "";
    flowrelay_broker* b = nullptr;
    if (vt->create(host.api(), host.handle(), options.data(), options.size(), &b, err,
                   sizeof err) != FLOWRELAY_OK)
      return std::string();
    std::string why;
    HistoryRead read;
    if (vt->start(b, err, sizeof err) == FLOWRELAY_OK && host.wait_ready(1, kReadyTimeout)) {
      const std::string ch = "conformance.probe.history";
      const flowrelay_status st = vt->history(b, view(ch), 0, &HistoryRead::on_done, &read);
      if (st == FLOWRELAY_EUNSUPPORTED)
        why = "the broker keeps no history with the configured options";
      else if (st == FLOWRELAY_OK)
        read.wait(kDeliveryTimeout);
    }
    vt->destroy(b);
    return why;
  }();
  return missing;
}

void BrokerReplyHistory::SetUp() {
  ASSERT_NO_FATAL_FAILURE(BrokerReplyFixture::SetUp());
  if (!IsSkipped() && !history_missing().empty()) GTEST_SKIP() << history_missing();
}

uint64_t BrokerReplyFixture::stored(const std::string& ch, const Step& s) {
  const ReplyResult r = step(ch, s);
  EXPECT_EQ(r.returned, FLOWRELAY_OK) << "kind " << s.kind << " seq " << s.seq;
  EXPECT_EQ(r.calls, 1);
  EXPECT_EQ(r.status, FLOWRELAY_OK) << "kind " << s.kind << " seq " << s.seq;
  EXPECT_FALSE(r.duplicate) << "kind " << s.kind << " seq " << s.seq;
  EXPECT_FALSE(r.bad_struct);
  return r.offset;
}

std::vector<Message> BrokerReplyFixture::reply_deliveries(const std::string& ch) const {
  std::vector<Message> out;
  for (auto& m : host_.messages(ch))
    if (m.reply) out.push_back(m);
  return out;
}

void BrokerReplyFixture::start_with_option(const std::string& extra) {
  OptionList options = configured_options(extra);
  char err[512] = "";
  flowrelay_broker* b = nullptr;
  if (vt_->create(host_.api(), host_.handle(), options.data(), options.size(), &b, err,
                  sizeof err) != FLOWRELAY_OK)
    GTEST_SKIP() << "the broker does not take " << extra << ": " << err;
  vt_->destroy(b);
  ASSERT_NO_FATAL_FAILURE(start_broker(extra));
}

}  // namespace flowrelay::test
