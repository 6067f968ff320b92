// Binds a hiredis async context to an epoll set (hiredis 0.14 ships adapters for libevent,
// libev, libuv..., none for a plain epoll loop, and a whole event library for two sockets is
// not worth a dependency).
#pragma once

#include <hiredis/async.h>
#include <sys/epoll.h>

namespace flowrelay::redis {

// What the broker loop's epoll set holds (epoll data.ptr): a hiredis async context's adapter,
// or the sharded Pub/Sub link that reads its own socket (shard_pubsub_link.h).
class EpollHandler {
 public:
  virtual void handle(uint32_t events) = 0;

 protected:
  ~EpollHandler() = default;
};

class HiredisEpoll final : public EpollHandler {
 public:
  // Attaches `ac`; hiredis calls cleanup() when the context goes away, after which the
  // adapter is `dead()` and can be freed by its owner outside hiredis callbacks.
  static HiredisEpoll* attach(int epoll_fd, redisAsyncContext* ac);

  // Called by the owner's loop when epoll reports `events` for this adapter.
  void handle(uint32_t events) override;
  bool dead() const { return _ac == nullptr; }

 private:
  HiredisEpoll(int epoll_fd, redisAsyncContext* ac) : _epoll_fd(epoll_fd), _ac(ac) {}
  void update(uint32_t events);
  static void add_read(void* self);
  static void del_read(void* self);
  static void add_write(void* self);
  static void del_write(void* self);
  static void cleanup(void* self);

  int _epoll_fd;
  redisAsyncContext* _ac;
  int _fd = -1;
  uint32_t _events = 0;
};

}  // namespace flowrelay::redis
