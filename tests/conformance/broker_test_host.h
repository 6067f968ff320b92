// A flowrelay_broker_host_api (ABI 2) implementation for tests: records every callback,
// thread-safely, lets a test wait for what an asynchronous broker reports later, and gives the
// broker a clock the test moves (advance()) instead of sleeping out real ages.
#pragma once

#include <flowrelay/plugin.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <ostream>
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
inline std::string str(flowrelay_str s) { return std::string(s.ptr, s.len); }

// flowrelay_origin, comparable.
struct Origin {
  uint64_t node = 0;
  uint64_t session = 0;
  uint64_t seq = 0;
  bool operator==(const Origin&) const = default;
};

// ABI 2.2: a delivered or read message's reply info (flowrelay_reply), copied.
struct ReplyInfo {
  flowrelay_kind kind = FLOWRELAY_KIND_MESSAGE;
  std::string id;
  uint64_t seq = 0;
  std::string reason;
  std::string error;
  int64_t ttft_ms = -1;
  int64_t duration_ms = -1;
  uint64_t bytes = 0;
  bool operator==(const ReplyInfo&) const = default;
};

// A message to publish, or a delivered or read one, copied. Equality covers every field,
// origin.seq included: compare deliveries with what was published through without_seq().
struct Message {
  flowrelay_lane lane = FLOWRELAY_LANE_MESSAGE;
  uint64_t offset = 0;
  std::string epoch;
  std::string data;
  Origin origin;
  std::optional<ReplyInfo> reply = std::nullopt;  // set when the message has reply info
  bool operator==(const Message&) const = default;
};
void PrintTo(const Message& m, std::ostream* out);  // readable GoogleTest failures

// The messages with origin.seq set to 0 (the broker assigns seq; a publisher leaves it 0).
std::vector<Message> without_seq(std::vector<Message> messages);

// Completions of publish(): one slot per call (its ctx), each counting its calls.
class PublishedLog {
 public:
  using Clock = std::chrono::steady_clock;
  struct Result {
    int calls = 0;
    flowrelay_status status = -1;
    uint64_t offset = 0;
    std::string epoch;
  };
  explicit PublishedLog(size_t n);
  PublishedLog(const PublishedLog&) = delete;
  PublishedLog& operator=(const PublishedLog&) = delete;

  void* ctx(size_t i) { return &_slots[i]; }
  static void on_done(void* ctx, flowrelay_status status, uint64_t offset,
                      flowrelay_str epoch) noexcept;
  // Waits until the first `n` slots (all by default) have been called at least once.
  bool wait(Clock::duration timeout, size_t n = SIZE_MAX);
  std::vector<Result> results() const;

 private:
  struct Slot {
    PublishedLog* owner;
    Result result;
  };
  mutable std::mutex _mutex;
  std::condition_variable _changed;
  std::vector<Slot> _slots;  // never resized: ctx() points into it
  size_t _called = 0;        // slots called at least once
};

// The completion of one history() call.
class HistoryRead {
 public:
  using Clock = std::chrono::steady_clock;
  HistoryRead() = default;
  HistoryRead(const HistoryRead&) = delete;
  HistoryRead& operator=(const HistoryRead&) = delete;

  static void on_done(void* ctx, flowrelay_status status, const flowrelay_history* h) noexcept;
  bool wait(Clock::duration timeout);

  // Valid once wait() returned true.
  int calls() const;
  flowrelay_status status = -1;
  std::string epoch;
  uint64_t top = 0;
  std::vector<Message> messages;
  bool has_trimmed = false;  // ABI 2.2: the answer carries `trimmed`
  uint64_t trimmed = 0;
  bool bad_struct = false;  // history or message struct_size too small, or messages NULL

 private:
  mutable std::mutex _mutex;
  std::condition_variable _changed;
  int _calls = 0;
};

// publish() of each message (lane, origin, data) in order on `ch`, retrying while the buffer
// is full (FLOWRELAY_EAGAIN, up to `timeout`), with the completion of message i in log slot i.
// Returns FLOWRELAY_OK, or the first other status (the rest is not sent).
flowrelay_status publish_messages(const flowrelay_broker_vtable* vt, flowrelay_broker* b,
                                  const std::string& ch, const std::vector<Message>& messages,
                                  PublishedLog& log, std::chrono::steady_clock::duration timeout);

class BrokerTestHost {
 public:
  using Clock = std::chrono::steady_clock;

  // A node of its own: node_id() is unique among the hosts of this process, never 0.
  // config_dir: what api()->config_dir says (default: the current directory).
  explicit BrokerTestHost(std::string config_dir = "");
  BrokerTestHost(const BrokerTestHost&) = delete;
  BrokerTestHost& operator=(const BrokerTestHost&) = delete;

  const flowrelay_broker_host_api* api() const { return &_api; }
  flowrelay_host* handle() { return reinterpret_cast<flowrelay_host*>(this); }
  uint64_t node_id() const { return _api.node_id; }
  const std::string& config_dir() const { return _config_dir; }

  // A message as one of this node's sessions publishes it: origin {node_id(), session, 0}.
  Message message(flowrelay_lane lane, std::string data, uint64_t session = 0) const;

  // The broker's clock (now_ms()): the real steady clock plus what advance() added.
  int64_t now_ms() const;
  void advance(std::chrono::milliseconds by) { _clock_offset_ms += by.count(); }

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

  // Payloads (data) delivered on `channel`.
  std::vector<std::string> deliveries(const std::string& channel) const;
  // The same deliveries with lane, offset, epoch and origin.
  std::vector<Message> messages(const std::string& channel) const;
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
  // deliver() calls with a NULL message or a struct_size too small.
  int bad_messages() const { return _bad_messages; }
  // Callbacks that passed a host handle other than handle().
  static int foreign_host_calls() { return _foreign; }

 private:
  static BrokerTestHost* from(flowrelay_host* h);
  static void on_log(flowrelay_host* h, flowrelay_log_level level, flowrelay_str message) noexcept;
  static int64_t on_now_ms(flowrelay_host* h) noexcept;
  static void on_deliver(flowrelay_host* h, flowrelay_str channel,
                         const flowrelay_message* message) noexcept;
  static void on_subscribed(flowrelay_host* h, flowrelay_str channel,
                            flowrelay_status status) noexcept;
  static void on_report_error(flowrelay_host* h, flowrelay_status code,
                              flowrelay_str detail) noexcept;
  static void on_set_ready(flowrelay_host* h, int32_t ready) noexcept;
  void record(flowrelay_str channel, Message message);

  static constexpr uint64_t kMagic = 0x666c6f7772656c61;  // "flowrela"
  uint64_t _magic = kMagic;
  std::string _config_dir;
  flowrelay_broker_host_api _api;
  std::atomic<int64_t> _clock_offset_ms{0};
  mutable std::mutex _mutex;
  std::condition_variable _changed;
  std::map<std::string, std::vector<std::string>> _delivered;
  std::map<std::string, std::vector<Message>> _messages;
  size_t _total = 0;
  std::map<std::string, int> _delivering;  // deliver() calls in progress per channel
  std::map<std::string, std::deque<flowrelay_status>> _subscribed;
  std::vector<int32_t> _ready;
  std::vector<std::pair<flowrelay_status, std::string>> _errors;
  std::atomic<bool> _destroyed{false};
  std::atomic<int> _after_destroy{0};
  std::atomic<int> _concurrent{0};
  std::atomic<int> _subscribed_inside{0};
  std::atomic<int> _bad_messages{0};
  static std::atomic<int> _foreign;
  static thread_local bool _in_subscribe;
};

}  // namespace flowrelay::test
