// The queue through which other threads hand work to an event loop: items under a mutex, and
// an eventfd the loop's epoll watches, written once per batch (not once per item) so a burst
// of posts costs one wake-up. Posts from the loop's own thread write nothing: the loop checks
// self_posted() before it sleeps.
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace flowrelay::net {

template <class Item>
class WakeInbox {
 public:
  WakeInbox() : _fd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    if (_fd < 0) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
  }
  ~WakeInbox() { ::close(_fd); }
  WakeInbox(const WakeInbox&) = delete;
  WakeInbox& operator=(const WakeInbox&) = delete;

  // The descriptor to watch for EPOLLIN.
  int fd() const { return _fd; }

  // [any thread] Queues `item`; `own_thread`: the caller is the loop itself. False (the item
  // left untouched in the caller's hands) once closed.
  bool post(Item&& item, bool own_thread) {
    bool wake = false;
    {
      std::lock_guard lock(_mutex);
      if (_closed) return false;
      _items.push_back(std::move(item));
      if (own_thread)
        _self_posted = true;  // only the loop's thread touches the flag
      else if (!_wake_pending)
        wake = _wake_pending = true;
    }
    if (wake) {
      const uint64_t one = 1;
      ssize_t r = write(_fd, &one, sizeof one);
      (void)r;  // EAGAIN only if the counter is saturated: the loop is awake anyway
    }
    return true;
  }

  // [loop] The eventfd was readable: reset it.
  void consume_wakeup() {
    uint64_t v;
    ssize_t r = read(_fd, &v, sizeof v);
    (void)r;
  }

  // [loop] Moves every queued item to `out` (which must be empty; its capacity is reused).
  void take(std::vector<Item>& out) {
    std::lock_guard lock(_mutex);
    out.swap(_items);
    _wake_pending = false;
    _self_posted = false;
  }

  // [loop] Something was posted by the loop itself since the last take(): do not sleep.
  bool self_posted() const { return _self_posted; }

  // [any thread] Refuse every later post (the loop is going away); returns what was queued.
  std::vector<Item> close() {
    std::lock_guard lock(_mutex);
    _closed = true;
    return std::move(_items);
  }

 private:
  const int _fd;
  std::mutex _mutex;
  std::vector<Item> _items;
  bool _wake_pending = false;  // guarded by _mutex
  bool _closed = false;        // guarded by _mutex
  bool _self_posted = false;   // loop thread only
};

}  // namespace flowrelay::net
