// A flowrelay_broker_host_api implementation for tests: records every callback, thread-safely,
// and lets a test wait for what an asynchronous broker reports later.
#pragma once

#include <flowrelay/plugin.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace flowrelay::test {

// Owned option strings and the borrowed flowrelay_option views create() takes.
class OptionList {
 public:
  // Parses "k=v;k2=v2" (empty entries skipped; a key without '=' gets an empty value).
  static OptionList parse(const std::string& spec);
  void add(std::string key, std::string value);
  const flowrelay_option* data() const { return _views.empty() ? nullptr : _views.data(); }
  size_t size() const { return _views.size(); }

 private:
  std::deque<std::pair<std::string, std::string>> _owned;  // stable addresses for the views
  std::vector<flowrelay_option> _views;
};

inline flowrelay_str view(const std::string& s) { return flowrelay_str{s.data(), s.size()}; }

class BrokerTestHost {
 public:
  using Clock = std::chrono::steady_clock;

  BrokerTestHost();
  BrokerTestHost(const BrokerTestHost&) = delete;
  BrokerTestHost& operator=(const BrokerTestHost&) = delete;

  const flowrelay_broker_host_api* api() const { return &_api; }
  flowrelay_host* handle() { return reinterpret_cast<flowrelay_host*>(this); }

  // Waits until the last set_ready() value is `ready`; false on timeout.
  bool wait_ready(int32_t ready, Clock::duration timeout);
  // Waits until `channel` has at least `count` deliveries; false on timeout.
  bool wait_deliveries(const std::string& channel, size_t count, Clock::duration timeout);
  // Waits until the deliveries of every channel add up to at least `count`.
  bool wait_total_deliveries(size_t count, Clock::duration timeout);
  // Waits for the next subscribed() of `channel` not yet taken; nullopt on timeout.
  std::optional<flowrelay_status> take_subscribed(const std::string& channel,
                                                  Clock::duration timeout);

  // Drops the subscribed() results of `channel` not taken yet.
  void forget_subscribed(const std::string& channel);

  std::vector<std::string> deliveries(const std::string& channel) const;
  std::map<std::string, std::vector<std::string>> all_deliveries() const;
  size_t total_deliveries() const;
  std::vector<int32_t> ready_history() const;
  std::vector<std::pair<flowrelay_status, std::string>> errors() const;

  // Call after the broker's destroy() returned: any later callback is a contract violation.
  void mark_destroyed() { _destroyed = true; }
  int callbacks_after_destroy() const { return _after_destroy; }
  // Times deliver() ran on two threads at once for one channel (the ABI forbids it).
  int concurrent_deliveries() const { return _concurrent; }
  // subscribed() calls made by the broker from inside its own subscribe() (the ABI forbids it:
  // the daemon holds its channel table locked around subscribe()).
  int subscribed_inside_subscribe() const { return _subscribed_inside; }
  // Marks the calling thread as inside the broker's subscribe() while it lives.
  class InSubscribeCall {
   public:
    InSubscribeCall() { _in_subscribe = true; }
    ~InSubscribeCall() { _in_subscribe = false; }
    InSubscribeCall(const InSubscribeCall&) = delete;
    InSubscribeCall& operator=(const InSubscribeCall&) = delete;
  };
  // Callbacks that passed a host handle other than handle().
  static int foreign_host_calls() { return _foreign; }

 private:
  static BrokerTestHost* from(flowrelay_host* h);
  static void on_log(flowrelay_host* h, flowrelay_log_level level, flowrelay_str message) noexcept;
  static void on_deliver(flowrelay_host* h, flowrelay_str channel, flowrelay_str payload) noexcept;
  static void on_subscribed(flowrelay_host* h, flowrelay_str channel,
                            flowrelay_status status) noexcept;
  static void on_report_error(flowrelay_host* h, flowrelay_status code,
                              flowrelay_str detail) noexcept;
  static void on_set_ready(flowrelay_host* h, int32_t ready) noexcept;
  void note_callback();

  static constexpr uint64_t kMagic = 0x666c6f7772656c61;  // "flowrela"
  uint64_t _magic = kMagic;
  flowrelay_broker_host_api _api;
  mutable std::mutex _mutex;
  std::condition_variable _changed;
  std::map<std::string, std::vector<std::string>> _delivered;
  size_t _total = 0;
  std::map<std::string, int> _delivering;  // deliver() calls in progress per channel
  std::map<std::string, std::deque<flowrelay_status>> _subscribed;
  std::vector<int32_t> _ready;
  std::vector<std::pair<flowrelay_status, std::string>> _errors;
  std::atomic<bool> _destroyed{false};
  std::atomic<int> _after_destroy{0};
  std::atomic<int> _concurrent{0};
  std::atomic<int> _subscribed_inside{0};
  static std::atomic<int> _foreign;
  static thread_local bool _in_subscribe;
};

}  // namespace flowrelay::test
