#include "broker_redis_reply_fixture.h"

#include <sys/time.h>
#include <unistd.h>

#include <cstdlib>
#include <random>
#include <thread>

#include "wire_format.h"

namespace flowrelay::test {

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// The socket with_redis.sh started, from "url=unix://<path>[;...]".
std::string redis_socket() {
  const std::string options = env("FLOWRELAY_BROKER_OPTIONS");
  const std::string key = "url=unix://";
  const size_t at = options.find(key);
  if (at == std::string::npos) return "";
  const size_t end = options.find(';', at);
  return options.substr(at + key.size(), end == std::string::npos ? end : end - at - key.size());
}

void on_history(void* ctx, flowrelay_status status, const flowrelay_history* h) noexcept {
  auto* p = static_cast<std::pair<ReplyHistory, std::atomic<bool>>*>(ctx);
  ReplyHistory& out = p->first;
  out.status = status;
  if (h) {
    out.epoch = str(h->epoch);
    out.top = h->top;
    out.trimmed_known = FLOWRELAY_HAS_SLOT(h, flowrelay_history, trimmed);
    if (out.trimmed_known) out.trimmed = h->trimmed;
    for (size_t i = 0; i < h->count; ++i) out.messages.push_back(copy_message(h->messages[i]));
  }
  p->second = true;
}

}  // namespace

ReplyMessage copy_message(const flowrelay_message& m) {
  ReplyMessage out;
  out.offset = m.offset;
  out.epoch = str(m.epoch);
  out.data = str(m.data);
  out.origin = {m.origin.node, m.origin.session, m.origin.seq};
  if (const flowrelay_reply* r = flowrelay_reply_of(&m)) {
    out.kind = r->kind;
    out.id = str(r->id);
    out.reason = str(r->reason);
    out.error = str(r->error);
    out.seq = r->seq;
    out.bytes = r->bytes;
    out.ttft_ms = r->ttft_ms;
    out.duration_ms = r->duration_ms;
  }
  return out;
}

void StepLog::on_done(void* ctx, const flowrelay_reply_published* p) noexcept {
  auto* slot = static_cast<Slot*>(ctx);
  StepLog& log = *slot->owner;
  std::lock_guard lock(log._mutex);
  StepResult& r = slot->result;
  if (r.calls++ == 0) ++log._called;
  r.status = p->status;
  r.duplicate = p->duplicate != 0;
  r.offset = p->offset;
  r.expected_seq = p->expected_seq;
  r.epoch = str(p->epoch);
  r.ended = str(p->ended);
  log._changed.notify_all();
}

bool StepLog::wait(std::chrono::steady_clock::duration timeout) {
  std::unique_lock lock(_mutex);
  return _changed.wait_for(lock, timeout, [&] { return _called == _slots.size(); });
}

std::vector<StepResult> StepLog::results() const {
  std::lock_guard lock(_mutex);
  std::vector<StepResult> out;
  for (const auto& s : _slots) out.push_back(s.result);
  return out;
}

RawSubscriber::RawSubscriber(const std::string& socket, const std::string& channel) {
  _c = redisConnectUnix(socket.c_str());
  EXPECT_TRUE(_c && !_c->err);
  Reply r(
      static_cast<redisReply*>(redisCommand(_c, "SUBSCRIBE %b", channel.data(), channel.size())));
  EXPECT_TRUE(r && r->type == REDIS_REPLY_ARRAY);
}

RawSubscriber::~RawSubscriber() {
  if (_c) redisFree(_c);
}

std::vector<ReplyMessage> RawSubscriber::collect(std::chrono::milliseconds quiet) {
  const timeval tv{static_cast<time_t>(quiet.count() / 1000),
                   static_cast<suseconds_t>(quiet.count() % 1000 * 1000)};
  redisSetTimeout(_c, tv);
  std::vector<ReplyMessage> out;
  for (;;) {
    void* raw = nullptr;
    if (redisGetReply(_c, &raw) != REDIS_OK || !raw) break;  // the timeout: nothing more
    Reply r(static_cast<redisReply*>(raw));
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) continue;
    const redis::WireMessage w =
        redis::decode_wire({r->element[2]->str, static_cast<size_t>(r->element[2]->len)});
    out.push_back(copy_message(redis::to_message(w)));
  }
  return out;
}

std::shared_ptr<LoadedPlugin> BrokerRedisReplies::plugin_;
std::string BrokerRedisReplies::load_error_;

void BrokerRedisReplies::SetUpTestSuite() {
  try {
    plugin_ = LoadedPlugin::load(env("FLOWRELAY_BROKER_PLUGIN"));
  } catch (const PluginError& e) {
    load_error_ = e.what();
  }
}

void BrokerRedisReplies::SetUp() {
  ASSERT_TRUE(load_error_.empty()) << load_error_;
  vt_ = plugin_->broker();
  ASSERT_NE(vt_, nullptr);
  ASSERT_TRUE(FLOWRELAY_HAS_SLOT(vt_, flowrelay_broker_vtable, publish_reply) && vt_->publish_reply)
      << "broker-redis has no publish_reply";
  socket_ = redis_socket();
  ASSERT_FALSE(socket_.empty()) << "run through with_redis.sh (no url=unix://... option)";
  redis_ = redisConnectUnix(socket_.c_str());
  ASSERT_TRUE(redis_ && !redis_->err) << "cannot connect to " << socket_;
  std::random_device rd;
  prefix_ = "redis-replies." + std::to_string(getpid()) + "." + std::to_string(rd() % 100000) + ".";
}

void BrokerRedisReplies::TearDown() {
  for (auto& node : nodes_) {
    if (node->broker) vt_->destroy(node->broker);
    node->host.mark_destroyed();
  }
  for (auto& node : nodes_) {
    EXPECT_EQ(node->host.callbacks_after_destroy(), 0);
    EXPECT_EQ(node->host.bad_messages(), 0);
    if (!allow_errors_)
      for (const auto& [code, detail] : node->host.errors())
        ADD_FAILURE() << "unexpected report_error(" << code << ", \"" << detail << "\")";
  }
  if (redis_) redisFree(redis_);
}

Reply BrokerRedisReplies::command(const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  return Reply(static_cast<redisReply*>(
      redisCommandArgv(redis_, static_cast<int>(argv.size()), argv.data(), lens.data())));
}

long long BrokerRedisReplies::integer(const std::vector<std::string>& args) {
  Reply r = command(args);
  EXPECT_TRUE(r && r->type == REDIS_REPLY_INTEGER) << args[0] << " " << args[1];
  return r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
}

ReplyNode& BrokerRedisReplies::start_node(const std::string& extra) {
  auto node = std::make_unique<ReplyNode>();
  OptionList options = OptionList::parse(env("FLOWRELAY_BROKER_OPTIONS") + ";" + extra);
  char err[512] = "";
  EXPECT_EQ(vt_->create(node->host.api(), node->host.handle(), options.data(), options.size(),
                        &node->broker, err, sizeof err),
            FLOWRELAY_OK)
      << err;
  if (node->broker) {
    EXPECT_EQ(vt_->start(node->broker, err, sizeof err), FLOWRELAY_OK) << err;
    EXPECT_TRUE(node->host.wait_ready(1, kTimeout)) << "not ready";
  }
  nodes_.push_back(std::move(node));
  return *nodes_.back();
}

flowrelay_status BrokerRedisReplies::send_step(ReplyNode& node, const std::string& ch,
                                               flowrelay_kind kind, const std::string& id,
                                               uint64_t seq, const std::string& data,
                                               const std::string& reason, StepLog& log, size_t i) {
  flowrelay_reply r{};
  r.struct_size = sizeof r;
  r.kind = kind;
  r.id = view(id);
  r.seq = seq;
  r.reason = view(reason);
  r.ttft_ms = r.duration_ms = -1;
  if (kind == FLOWRELAY_KIND_END) r.error = view(data);
  flowrelay_message m{};
  m.struct_size = sizeof m;
  m.origin.node = node.host.node_id();
  if (kind == FLOWRELAY_KIND_DELTA) m.data = view(data);
  m.reply = &r;
  flowrelay_status st;
  const auto deadline = std::chrono::steady_clock::now() + kTimeout;
  while ((st = vt_->publish_reply(node.broker, view(ch), &m, &StepLog::on_done, log.ctx(i))) ==
             FLOWRELAY_EAGAIN &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return st;
}

StepResult BrokerRedisReplies::step(ReplyNode& node, const std::string& ch, flowrelay_kind kind,
                                    const std::string& id, uint64_t seq, const std::string& data,
                                    const std::string& reason) {
  StepLog log(1);
  EXPECT_EQ(send_step(node, ch, kind, id, seq, data, reason, log, 0), FLOWRELAY_OK);
  EXPECT_TRUE(log.wait(kTimeout)) << "publish_reply() not completed";
  return log.results()[0];
}

PublishedLog::Result BrokerRedisReplies::publish(ReplyNode& node, const std::string& ch,
                                                 const std::string& data) {
  PublishedLog log(1);
  EXPECT_EQ(publish_messages(vt_, node.broker, ch,
                             {node.host.message(FLOWRELAY_LANE_MESSAGE, data)}, log, kTimeout),
            FLOWRELAY_OK);
  EXPECT_TRUE(log.wait(kTimeout)) << "publish() not completed";
  return log.results()[0];
}

ReplyHistory BrokerRedisReplies::history(ReplyNode& node, const std::string& ch, uint64_t since) {
  std::pair<ReplyHistory, std::atomic<bool>> read;
  read.second = false;
  EXPECT_EQ(vt_->history(node.broker, view(ch), since, on_history, &read), FLOWRELAY_OK);
  const auto deadline = std::chrono::steady_clock::now() + kTimeout;
  while (!read.second && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_TRUE(read.second) << "history() not completed";
  return read.first;
}

}  // namespace flowrelay::test
