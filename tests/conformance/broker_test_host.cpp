#include "broker_test_host.h"

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <random>
#include <thread>

namespace flowrelay::test {

OptionList OptionList::parse(const std::string& spec) {
  OptionList list;
  size_t start = 0;
  while (start <= spec.size()) {
    size_t end = spec.find(';', start);
    if (end == std::string::npos) end = spec.size();
    std::string item = spec.substr(start, end - start);
    if (!item.empty()) {
      size_t eq = item.find('=');
      if (eq == std::string::npos)
        list.add(item, "");
      else
        list.add(item.substr(0, eq), item.substr(eq + 1));
    }
    start = end + 1;
  }
  return list;
}

void OptionList::add(std::string key, std::string value) {
  _owned.emplace_back(std::move(key), std::move(value));
  _views.clear();
  for (const auto& [k, v] : _owned) _views.push_back(flowrelay_option{view(k), view(v)});
}

void PrintTo(const Message& m, std::ostream* out) {
  *out << "{lane " << m.lane << ", offset " << m.offset << ", epoch '" << m.epoch << "', origin {"
       << m.origin.node << ", " << m.origin.session << ", " << m.origin.seq << "}, data '"
       << (m.data.size() > 64 ? m.data.substr(0, 64) + "..." : m.data) << "' (" << m.data.size()
       << " bytes)";
  if (m.reply)
    *out << ", reply {kind " << m.reply->kind << ", id '" << m.reply->id << "', seq "
         << m.reply->seq << ", reason '" << m.reply->reason << "'}";
  *out << "}";
}

std::vector<Message> without_seq(std::vector<Message> messages) {
  for (auto& m : messages) m.origin.seq = 0;
  return messages;
}

namespace {
Message copy(const flowrelay_message& m) {
  Message out{
      m.lane, m.offset, str(m.epoch), str(m.data), {m.origin.node, m.origin.session, m.origin.seq}};
  if (const flowrelay_reply* r = flowrelay_reply_of(&m))
    out.reply = ReplyInfo{r->kind,       str(r->id), r->seq,         str(r->reason),
                          str(r->error), r->ttft_ms, r->duration_ms, r->bytes};
  return out;
}
}  // namespace

std::atomic<int> BrokerTestHost::_foreign{0};
thread_local bool BrokerTestHost::_in_subscribe = false;

PublishedLog::PublishedLog(size_t n) : _slots(n, Slot{this, {}}) {}

void PublishedLog::on_done(void* ctx, flowrelay_status status, uint64_t offset,
                           flowrelay_str epoch) noexcept {
  auto* slot = static_cast<Slot*>(ctx);
  PublishedLog* self = slot->owner;
  {
    std::lock_guard lock(self->_mutex);
    if (slot->result.calls++ == 0) ++self->_called;
    slot->result.status = status;
    slot->result.offset = offset;
    slot->result.epoch = str(epoch);
    // Notified under the lock: the waiter may destroy this log (a stack object) as soon as
    // it sees the result, which must not happen while notify_all still touches it.
    self->_changed.notify_all();
  }
}

bool PublishedLog::wait(Clock::duration timeout, size_t n) {
  std::unique_lock lock(_mutex);
  n = std::min(n, _slots.size());
  return _changed.wait_for(lock, timeout, [&] {
    for (size_t i = 0; i < n; ++i)
      if (_slots[i].result.calls == 0) return false;
    return true;
  });
}

std::vector<PublishedLog::Result> PublishedLog::results() const {
  std::lock_guard lock(_mutex);
  std::vector<Result> out;
  for (const auto& slot : _slots) out.push_back(slot.result);
  return out;
}

void HistoryRead::on_done(void* ctx, flowrelay_status status, const flowrelay_history* h) noexcept {
  auto* self = static_cast<HistoryRead*>(ctx);
  {
    std::lock_guard lock(self->_mutex);
    ++self->_calls;
    self->status = status;
    if (!h || h->struct_size < sizeof(flowrelay_history) || (h->count && !h->messages)) {
      self->bad_struct = true;
    } else {
      self->epoch = str(h->epoch);
      self->top = h->top;
      self->has_trimmed = FLOWRELAY_HAS_SLOT(h, flowrelay_history, trimmed);
      self->trimmed = self->has_trimmed ? h->trimmed : 0;
      self->messages.clear();
      for (size_t i = 0; i < h->count; ++i) {
        const flowrelay_message& m = h->messages[i];
        if (m.struct_size < sizeof(flowrelay_message)) self->bad_struct = true;
        self->messages.push_back(copy(m));
      }
    }
    self->_changed.notify_all();  // under the lock: see PublishedLog::on_done
  }
}

bool HistoryRead::wait(Clock::duration timeout) {
  std::unique_lock lock(_mutex);
  return _changed.wait_for(lock, timeout, [&] { return _calls > 0; });
}

int HistoryRead::calls() const {
  std::lock_guard lock(_mutex);
  return _calls;
}

flowrelay_status publish_messages(const flowrelay_broker_vtable* vt, flowrelay_broker* b,
                                  const std::string& ch, const std::vector<Message>& messages,
                                  PublishedLog& log, std::chrono::steady_clock::duration timeout) {
  for (size_t i = 0; i < messages.size(); ++i) {
    flowrelay_message m{};
    m.struct_size = sizeof m;
    m.lane = messages[i].lane;
    m.origin = {messages[i].origin.node, messages[i].origin.session, messages[i].origin.seq};
    m.data = view(messages[i].data);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    flowrelay_status st;
    while ((st = vt->publish(b, view(ch), &m, &PublishedLog::on_done, log.ctx(i))) ==
               FLOWRELAY_EAGAIN &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (st != FLOWRELAY_OK) return st;
  }
  return FLOWRELAY_OK;
}

BrokerTestHost::BrokerTestHost(std::string config_dir)
    : _config_dir(config_dir.empty() ? std::filesystem::current_path().string()
                                     : std::move(config_dir)),
      _api{} {
  // The counter in the low half keeps node ids of one process distinct; the random high half
  // keeps two test processes sharing a backend apart.
  static std::atomic<uint32_t> hosts{0};
  _api.struct_size = sizeof(flowrelay_broker_host_api);
  _api.abi_minor = FLOWRELAY_ABI_MINOR;
  _api.node_id = (uint64_t{std::random_device{}()} << 32) | ++hosts;
  _api.config_dir = view(_config_dir);
  _api.log = &on_log;
  _api.now_ms = &on_now_ms;
  _api.report_error = &on_report_error;
  _api.set_ready = &on_set_ready;
  _api.deliver = &on_deliver;
  _api.subscribed = &on_subscribed;
}

Message BrokerTestHost::message(flowrelay_lane lane, std::string data, uint64_t session) const {
  return {lane, 0, "", std::move(data), {node_id(), session, 0}};
}

int64_t BrokerTestHost::now_ms() const {
  const auto real =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch());
  return real.count() + _clock_offset_ms.load();
}

BrokerTestHost* BrokerTestHost::from(flowrelay_host* h) {
  auto* self = reinterpret_cast<BrokerTestHost*>(h);
  if (!self || self->_magic != kMagic) {
    ++_foreign;
    return nullptr;
  }
  if (self->_destroyed) ++self->_after_destroy;
  return self;
}

void BrokerTestHost::on_log(flowrelay_host* h, flowrelay_log_level level,
                            flowrelay_str message) noexcept {
  if (!from(h)) return;
  std::fprintf(stderr, "[plugin log %d] %.*s\n", static_cast<int>(level),
               static_cast<int>(message.len), message.ptr);
}

int64_t BrokerTestHost::on_now_ms(flowrelay_host* h) noexcept {
  BrokerTestHost* self = from(h);
  return self ? self->now_ms() : 0;
}

void BrokerTestHost::on_deliver(flowrelay_host* h, flowrelay_str channel,
                                const flowrelay_message* m) noexcept {
  BrokerTestHost* self = from(h);
  if (!self) return;
  if (!m || m->struct_size < sizeof(flowrelay_message)) {
    ++self->_bad_messages;
    return;
  }
  self->record(channel, copy(*m));
}

void BrokerTestHost::record(flowrelay_str channel, Message message) {
  std::string name(channel.ptr, channel.len);
  {
    std::lock_guard lock(_mutex);
    if (++_delivering[name] > 1) ++_concurrent;
  }
  // Widen the window in which an overlapping delivery of the same channel is noticed.
  std::this_thread::yield();
  {
    std::lock_guard lock(_mutex);
    --_delivering[name];
    _delivered[name].push_back(message.data);
    _messages[name].push_back(std::move(message));
    ++_total;
  }
  _changed.notify_all();
}

void BrokerTestHost::on_subscribed(flowrelay_host* h, flowrelay_str channel,
                                   flowrelay_status status) noexcept {
  BrokerTestHost* self = from(h);
  if (!self) return;
  if (_in_subscribe) ++self->_subscribed_inside;
  {
    std::lock_guard lock(self->_mutex);
    self->_subscribed[std::string(channel.ptr, channel.len)].push_back(status);
  }
  self->_changed.notify_all();
}

void BrokerTestHost::on_report_error(flowrelay_host* h, flowrelay_status code,
                                     flowrelay_str detail) noexcept {
  BrokerTestHost* self = from(h);
  if (!self) return;
  std::string text(detail.ptr, detail.len);
  std::fprintf(stderr, "[plugin report_error %d] %s\n", static_cast<int>(code), text.c_str());
  {
    std::lock_guard lock(self->_mutex);
    self->_errors.emplace_back(code, std::move(text));
  }
  self->_changed.notify_all();
}

void BrokerTestHost::on_set_ready(flowrelay_host* h, int32_t ready) noexcept {
  BrokerTestHost* self = from(h);
  if (!self) return;
  {
    std::lock_guard lock(self->_mutex);
    self->_ready.push_back(ready);
  }
  self->_changed.notify_all();
}

bool BrokerTestHost::wait_ready(int32_t ready, Clock::duration timeout) {
  std::unique_lock lock(_mutex);
  return _changed.wait_for(lock, timeout,
                           [&] { return !_ready.empty() && _ready.back() == ready; });
}

bool BrokerTestHost::wait_deliveries(const std::string& channel, size_t count,
                                     Clock::duration timeout) {
  std::unique_lock lock(_mutex);
  return _changed.wait_for(lock, timeout, [&] {
    auto it = _delivered.find(channel);
    return it != _delivered.end() && it->second.size() >= count;
  });
}

bool BrokerTestHost::wait_total_deliveries(size_t count, Clock::duration timeout) {
  std::unique_lock lock(_mutex);
  return _changed.wait_for(lock, timeout, [&] { return _total >= count; });
}

std::optional<flowrelay_status> BrokerTestHost::take_subscribed(const std::string& channel,
                                                                Clock::duration timeout) {
  std::unique_lock lock(_mutex);
  bool got = _changed.wait_for(lock, timeout, [&] {
    auto it = _subscribed.find(channel);
    return it != _subscribed.end() && !it->second.empty();
  });
  if (!got) return std::nullopt;
  auto& queue = _subscribed[channel];
  flowrelay_status status = queue.front();
  queue.pop_front();
  return status;
}

void BrokerTestHost::forget_subscribed(const std::string& channel) {
  std::lock_guard lock(_mutex);
  _subscribed.erase(channel);
}

std::vector<std::string> BrokerTestHost::deliveries(const std::string& channel) const {
  std::lock_guard lock(_mutex);
  auto it = _delivered.find(channel);
  return it == _delivered.end() ? std::vector<std::string>{} : it->second;
}

std::vector<Message> BrokerTestHost::messages(const std::string& channel) const {
  std::lock_guard lock(_mutex);
  auto it = _messages.find(channel);
  return it == _messages.end() ? std::vector<Message>{} : it->second;
}

std::map<std::string, std::vector<std::string>> BrokerTestHost::all_deliveries() const {
  std::lock_guard lock(_mutex);
  return _delivered;
}

size_t BrokerTestHost::total_deliveries() const {
  std::lock_guard lock(_mutex);
  return _total;
}

std::vector<int32_t> BrokerTestHost::ready_history() const {
  std::lock_guard lock(_mutex);
  return _ready;
}

std::vector<std::pair<flowrelay_status, std::string>> BrokerTestHost::errors() const {
  std::lock_guard lock(_mutex);
  return _errors;
}

}  // namespace flowrelay::test
