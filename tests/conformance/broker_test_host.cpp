#include "broker_test_host.h"

#include <cstdio>
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

std::atomic<int> BrokerTestHost::_foreign{0};
thread_local bool BrokerTestHost::_in_subscribe = false;

BrokerTestHost::BrokerTestHost() : _api{} {
  _api.struct_size = sizeof(flowrelay_broker_host_api);
  _api.abi_minor = FLOWRELAY_ABI_MINOR;
  _api.log = &on_log;
  _api.deliver = &on_deliver;
  _api.subscribed = &on_subscribed;
  _api.report_error = &on_report_error;
  _api.set_ready = &on_set_ready;
}

BrokerTestHost* BrokerTestHost::from(flowrelay_host* h) {
  auto* self = reinterpret_cast<BrokerTestHost*>(h);
  if (!self || self->_magic != kMagic) {
    ++_foreign;
    return nullptr;
  }
  self->note_callback();
  return self;
}

void BrokerTestHost::note_callback() {
  if (_destroyed) ++_after_destroy;
}

void BrokerTestHost::on_log(flowrelay_host* h, flowrelay_log_level level,
                            flowrelay_str message) noexcept {
  if (!from(h)) return;
  std::fprintf(stderr, "[plugin log %d] %.*s\n", static_cast<int>(level),
               static_cast<int>(message.len), message.ptr);
}

void BrokerTestHost::on_deliver(flowrelay_host* h, flowrelay_str channel,
                                flowrelay_str payload) noexcept {
  BrokerTestHost* self = from(h);
  if (!self) return;
  std::string name(channel.ptr, channel.len);
  {
    std::lock_guard lock(self->_mutex);
    if (++self->_delivering[name] > 1) ++self->_concurrent;
  }
  // Widen the window in which an overlapping deliver() of the same channel is noticed.
  std::this_thread::yield();
  std::string bytes(payload.ptr, payload.len);
  {
    std::lock_guard lock(self->_mutex);
    --self->_delivering[name];
    self->_delivered[name].push_back(std::move(bytes));
    ++self->_total;
  }
  self->_changed.notify_all();
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
