// The newest place (epoch, offset) this node knows each channel's history reached: from the
// writes Redis acknowledged to it and the messages its subscriber delivered. The scripts take it
// as the floor of their regression fence (channel_state_lua.h's regressed()): after a failover
// to a replica that lagged, a history of that epoch ending below it lost acknowledged writes.
//
// Bounded: a channel neither written to nor delivered for history_max_age_ms is dropped by the
// sweep (its history expired meanwhile anyway: the next write starts a new epoch). O(1) a note.
// The broker thread's own.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace flowrelay::redis {

class ChannelFloors {
 public:
  struct Floor {
    std::string epoch;
    uint64_t offset = 0;
    int64_t touched_ms = 0;
  };

  // `channel` reached (epoch, offset) at `now_ms`: a later epoch replaces the place, the same
  // one only moves it forward.
  void note(std::string_view channel, std::string_view epoch, uint64_t offset, int64_t now_ms) {
    if (epoch.empty() || offset == 0) return;
    auto it = _floors.find(channel);
    if (it == _floors.end()) it = _floors.emplace(std::string(channel), Floor{}).first;
    Floor& f = it->second;
    if (f.epoch != epoch) {
      f.epoch.assign(epoch);
      f.offset = offset;
    } else if (offset > f.offset) {
      f.offset = offset;
    }
    f.touched_ms = now_ms;
  }

  const Floor* find(std::string_view channel) const {
    auto it = _floors.find(channel);
    return it == _floors.end() ? nullptr : &it->second;
  }

  // Drops the floors not touched since `before_ms`.
  void sweep(int64_t before_ms) {
    std::erase_if(_floors, [&](const auto& entry) { return entry.second.touched_ms < before_ms; });
  }

  size_t size() const { return _floors.size(); }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, Floor, Hash, std::equal_to<>> _floors;
};

}  // namespace flowrelay::redis
