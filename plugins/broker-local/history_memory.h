// The node-wide bound of broker-local's histories (history_memory_limit): the bytes all of them
// hold, and their order of last use (published to or read), so that the least recently used
// conversations' histories can be dropped whole when the bytes pass the limit.
//
// Hand-written (an intrusive list under one mutex) because a touch runs on every publish: it
// must be O(1) and allocation-free; a touch of the conversation already in front (a busy one)
// takes no lock at all.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>

namespace flowrelay::local {

// A channel's place in the order of use; its fields belong to HistoryMemory (under its mutex).
struct LruLink {
  LruLink* newer = nullptr;
  LruLink* older = nullptr;
  bool linked = false;
};

class HistoryMemory {
 public:
  HistoryMemory() { _ring.newer = _ring.older = &_ring; }
  HistoryMemory(const HistoryMemory&) = delete;
  HistoryMemory& operator=(const HistoryMemory&) = delete;

  // Makes `link` the most recently used (linking it if it was not).
  void touch(LruLink& link) {
    // Unlocked read: a stale answer costs at most one touch of precision, never consistency.
    if (_newest.load(std::memory_order_relaxed) == &link) return;
    std::lock_guard lock(_mutex);
    if (link.linked) unlink(link);
    link.newer = &_ring;
    link.older = _ring.older;
    _ring.older->newer = &link;
    _ring.older = &link;
    link.linked = true;
    _newest.store(&link, std::memory_order_relaxed);
  }

  void remove(LruLink& link) {
    std::lock_guard lock(_mutex);
    if (link.linked) unlink(link);
  }

  // The least recently used link other than the most recent one (nullptr if there is none):
  // the conversation in use now is never dropped for the others' sake.
  LruLink* least_recent() {
    std::lock_guard lock(_mutex);
    LruLink* oldest = _ring.newer;
    return oldest == &_ring || oldest == _ring.older ? nullptr : oldest;
  }

  void add_bytes(int64_t delta) { _bytes.fetch_add(delta, std::memory_order_relaxed); }
  uint64_t bytes() const {
    const int64_t b = _bytes.load(std::memory_order_relaxed);
    return b > 0 ? static_cast<uint64_t>(b) : 0;
  }
  void set_limit(uint64_t limit) { _limit.store(limit, std::memory_order_relaxed); }
  uint64_t limit() const { return _limit.load(std::memory_order_relaxed); }  // 0: none
  bool over_limit() const {
    const uint64_t l = limit();
    return l != 0 && bytes() > l;
  }
  void count_dropped() { _dropped.fetch_add(1, std::memory_order_relaxed); }
  uint64_t dropped() const { return _dropped.load(std::memory_order_relaxed); }

 private:
  // _ring is the list's sentinel: _ring.newer is the oldest link, _ring.older the newest.
  void unlink(LruLink& link) {
    link.newer->older = link.older;
    link.older->newer = link.newer;
    link.newer = link.older = nullptr;
    link.linked = false;
    if (_newest.load(std::memory_order_relaxed) == &link)
      _newest.store(nullptr, std::memory_order_relaxed);
  }

  std::mutex _mutex;
  LruLink _ring;
  std::atomic<LruLink*> _newest{nullptr};
  std::atomic<int64_t> _bytes{0};
  std::atomic<uint64_t> _limit{0};
  std::atomic<uint64_t> _dropped{0};
};

}  // namespace flowrelay::local
