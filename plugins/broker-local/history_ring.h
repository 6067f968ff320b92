// One channel's history for broker-local: the newest messages, bounded by count and age, with
// the offsets they were given and the origin they were published with. Not thread-safe: the
// broker holds the channel's lock.
#pragma once

#include <flowrelay/plugin.h>

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

namespace flowrelay::local {

class HistoryRing {
 public:
  struct Entry {
    uint64_t offset;
    flowrelay_lane lane;
    flowrelay_origin origin;
    int64_t at_ms;
    std::string data;
  };

  explicit HistoryRing(std::string epoch) : _epoch(std::move(epoch)) {}

  const std::string& epoch() const { return _epoch; }
  uint64_t top() const { return _top; }
  int64_t last_at_ms() const { return _last_at_ms; }

  // Appends a copy of the message's lane, origin and data; returns the offset it was given.
  uint64_t append(const flowrelay_message& m, int64_t now_ms, size_t max_size) {
    _entries.push_back({++_top, m.lane, m.origin, now_ms, std::string(m.data.ptr, m.data.len)});
    _last_at_ms = now_ms;
    while (_entries.size() > max_size) _entries.pop_front();
    return _top;
  }

  void trim_older_than(int64_t oldest_ms) {
    while (!_entries.empty() && _entries.front().at_ms < oldest_ms) _entries.pop_front();
  }

  // Views of the kept entries with offset > since, oldest first (valid until the next change).
  std::vector<flowrelay_message> after(uint64_t since) const {
    std::vector<flowrelay_message> out;
    if (_entries.empty() || since >= _top) return out;
    // Offsets are contiguous, so the first wanted entry's index is arithmetic.
    const uint64_t first = _entries.front().offset;
    const size_t skip = since >= first ? static_cast<size_t>(since + 1 - first) : 0;
    out.reserve(_entries.size() - skip);
    for (size_t i = skip; i < _entries.size(); ++i) {
      const Entry& e = _entries[i];
      out.push_back({sizeof(flowrelay_message),
                     e.lane,
                     e.offset,
                     {_epoch.data(), _epoch.size()},
                     e.origin,
                     {e.data.data(), e.data.size()}});
    }
    return out;
  }

 private:
  std::string _epoch;
  uint64_t _top = 0;
  int64_t _last_at_ms = 0;
  std::deque<Entry> _entries;
};

}  // namespace flowrelay::local
