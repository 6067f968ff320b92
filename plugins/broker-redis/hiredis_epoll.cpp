#include "hiredis_epoll.h"

namespace flowrelay::redis {

HiredisEpoll* HiredisEpoll::attach(int epoll_fd, redisAsyncContext* ac) {
  auto* a = new HiredisEpoll(epoll_fd, ac);
  a->_fd = ac->c.fd;
  ac->ev.data = a;
  ac->ev.addRead = add_read;
  ac->ev.delRead = del_read;
  ac->ev.addWrite = add_write;
  ac->ev.delWrite = del_write;
  ac->ev.cleanup = cleanup;
  return a;
}

void HiredisEpoll::handle(uint32_t events) {
  if (!_ac) return;
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) redisAsyncHandleRead(_ac);
  if (_ac && (events & EPOLLOUT)) redisAsyncHandleWrite(_ac);
}

void HiredisEpoll::update(uint32_t events) {
  if (events == _events || _fd < 0) return;
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = static_cast<EpollHandler*>(this);
  if (_events == 0)
    epoll_ctl(_epoll_fd, EPOLL_CTL_ADD, _fd, &ev);
  else if (events == 0)
    epoll_ctl(_epoll_fd, EPOLL_CTL_DEL, _fd, nullptr);
  else
    epoll_ctl(_epoll_fd, EPOLL_CTL_MOD, _fd, &ev);
  _events = events;
}

void HiredisEpoll::add_read(void* self) {
  auto* a = static_cast<HiredisEpoll*>(self);
  a->update(a->_events | EPOLLIN);
}
void HiredisEpoll::del_read(void* self) {
  auto* a = static_cast<HiredisEpoll*>(self);
  a->update(a->_events & ~uint32_t(EPOLLIN));
}
void HiredisEpoll::add_write(void* self) {
  auto* a = static_cast<HiredisEpoll*>(self);
  a->update(a->_events | EPOLLOUT);
}
void HiredisEpoll::del_write(void* self) {
  auto* a = static_cast<HiredisEpoll*>(self);
  a->update(a->_events & ~uint32_t(EPOLLOUT));
}
void HiredisEpoll::cleanup(void* self) {
  auto* a = static_cast<HiredisEpoll*>(self);
  a->update(0);
  a->_ac = nullptr;  // freed by the owner once out of hiredis' call stack
}

}  // namespace flowrelay::redis
