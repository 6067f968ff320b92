// The publish ids of one envelope connection (docs/PROTOCOL.md, acks): which are in flight and
// how many answers each owes, and the acks of the last kRemembered completed ones, so that a
// client resending an id is answered again without the message being published twice. Made on
// the connection's first publish with an id: an idle or id-less connection pays nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace flowrelay::stream {

class AckWindow {
 public:
  static constexpr size_t kRemembered = 128;

  struct Ack {
    uint64_t offset = 0;
    std::string_view epoch;
    bool relayed = true;
    bool duplicate = false;  // a reply step stored before
  };

  // A resend of an id still in flight: one more answer is owed when it completes (true).
  bool owe_again(std::string_view id) {
    auto it = _in_flight.find(id);
    if (it == _in_flight.end()) return false;
    ++it->second;
    return true;
  }
  // The remembered ack of a completed id, if it is still in the window.
  bool remembered(std::string_view id, Ack& out) const {
    for (const Entry& e : _done)
      if (e.id == id) {
        out = {e.offset, _epochs[e.epoch], e.relayed, e.duplicate};
        return true;
      }
    return false;
  }
  // The host took the publish of `id`: it is in flight.
  void start(std::string_view id) { _in_flight.emplace(std::string(id), 1u); }
  // `id` completed: returns how many answers it owes (1 + the resends meanwhile); `ack` (when
  // not null: it was accepted) is remembered, the oldest remembered one making room.
  uint32_t finish(std::string_view id, const Ack* ack) {
    uint32_t owed = 1;
    if (auto it = _in_flight.find(id); it != _in_flight.end()) {
      owed = it->second;
      _in_flight.erase(it);
    }
    if (ack) remember(id, *ack);
    return owed;
  }

 private:
  struct Entry {
    std::string id;
    uint64_t offset;
    uint32_t epoch;  // index in _epochs: an epoch is shared by the many acks that carry it
    bool relayed;
    bool duplicate;
  };
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  void remember(std::string_view id, const Ack& ack) {
    uint32_t epoch = 0;
    while (epoch < _epochs.size() && _epochs[epoch] != ack.epoch) ++epoch;
    if (epoch == _epochs.size()) {
      if (_epochs.size() >= kRemembered) compact_epochs();
      epoch = static_cast<uint32_t>(_epochs.size());
      _epochs.emplace_back(ack.epoch);
    }
    Entry e{std::string(id), ack.offset, epoch, ack.relayed, ack.duplicate};
    if (_done.size() < kRemembered) {
      _done.push_back(std::move(e));
    } else {
      _done[_next] = std::move(e);
      _next = (_next + 1) % kRemembered;
    }
  }
  // Drops the epochs no remembered ack refers to any more (the list stays <= kRemembered).
  void compact_epochs() {
    std::vector<std::string> kept;
    std::vector<uint32_t> moved(_epochs.size(), UINT32_MAX);
    for (Entry& e : _done) {
      if (moved[e.epoch] == UINT32_MAX) {
        moved[e.epoch] = static_cast<uint32_t>(kept.size());
        kept.push_back(std::move(_epochs[e.epoch]));
      }
      e.epoch = moved[e.epoch];
    }
    _epochs.swap(kept);
  }

  std::unordered_map<std::string, uint32_t, Hash, std::equal_to<>> _in_flight;  // id -> owed
  std::vector<Entry> _done;  // a ring once full; _next is the oldest
  size_t _next = 0;
  std::vector<std::string> _epochs;
};

}  // namespace flowrelay::stream
