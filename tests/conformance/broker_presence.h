// Presence reads for the broker tests (ABI 2.1 presence_set / presence): one completion, and
// a wait until the broker's count reaches an expected value (writes may be batched, so a
// count shows up a little after presence_set()).
#pragma once

#include <flowrelay/plugin.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>

namespace flowrelay::test {

// The completion of one presence() call.
class PresenceRead {
 public:
  static void on_done(void* ctx, flowrelay_status status, uint64_t clients,
                      uint32_t nodes) noexcept {
    auto* self = static_cast<PresenceRead*>(ctx);
    std::lock_guard lock(self->_mutex);
    ++self->_calls;
    self->status = status;
    self->clients = clients;
    self->nodes = nodes;
    self->_changed.notify_all();
  }
  bool wait(std::chrono::steady_clock::duration timeout) {
    std::unique_lock lock(_mutex);
    return _changed.wait_for(lock, timeout, [&] { return _calls > 0; });
  }
  int calls() const {
    std::lock_guard lock(_mutex);
    return _calls;
  }
  flowrelay_status status = -1;
  uint64_t clients = 0;
  uint32_t nodes = 0;

 private:
  mutable std::mutex _mutex;
  std::condition_variable _changed;
  int _calls = 0;
};

struct PresenceCount {
  flowrelay_status status = -1;  // of the call, or of its completion
  uint64_t clients = 0;
  uint32_t nodes = 0;
  bool operator==(const PresenceCount&) const = default;
};

inline bool has_presence(const flowrelay_broker_vtable* vt) {
  return FLOWRELAY_HAS_SLOT(vt, flowrelay_broker_vtable, presence) &&
         FLOWRELAY_HAS_SLOT(vt, flowrelay_broker_vtable, presence_set) && vt->presence &&
         vt->presence_set;
}

// One presence() call and its completion (status -1 when it never came within `timeout`).
inline PresenceCount read_presence(const flowrelay_broker_vtable* vt, flowrelay_broker* b,
                                   const std::string& ch,
                                   std::chrono::steady_clock::duration timeout) {
  PresenceRead read;
  const flowrelay_status st =
      vt->presence(b, flowrelay_str{ch.data(), ch.size()}, &PresenceRead::on_done, &read);
  if (st != FLOWRELAY_OK) return {st, 0, 0};
  if (!read.wait(timeout)) return {};
  return {read.status, read.clients, read.nodes};
}

// Reads until the answer is {OK, clients, nodes} or `timeout` passed; returns the last answer.
inline PresenceCount await_presence(const flowrelay_broker_vtable* vt, flowrelay_broker* b,
                                    const std::string& ch, uint64_t clients, uint32_t nodes,
                                    std::chrono::steady_clock::duration timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const PresenceCount want{FLOWRELAY_OK, clients, nodes};
  for (;;) {
    PresenceCount got = read_presence(vt, b, ch, timeout);
    if (got == want || std::chrono::steady_clock::now() > deadline) return got;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

inline void PrintTo(const PresenceCount& c, std::ostream* out) {
  *out << "{status " << c.status << ", clients " << c.clients << ", nodes " << c.nodes << "}";
}

}  // namespace flowrelay::test
