// EventLoop: what its sessions ask for (SessionHost), the channel member lists, flushing,
// teardown and the timer lists.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "event_loop.h"

namespace flowrelay::stream {

namespace {

constexpr int kMaxIov = 64;

}  // namespace

int64_t EventLoop::now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// ---------------------------------------------------------------------------- SessionHost

flowrelay_status EventLoop::join(Connection& s, std::string_view conversation) {
  Connection& c = s;
  // Counted before the subscribe, so that no delivery that can reach it skips its frame;
  // uncounted once, in close_now().
  c.joined_count = true;
  (s.envelope() ? _ctx.envelope_clients : _ctx.plain_clients)
      .fetch_add(1, std::memory_order_acq_rel);
  std::string channel(_ctx.host.channel_prefix());
  channel += conversation;
  const flowrelay_status status = _ctx.host.subscribe(channel);
  if (status != FLOWRELAY_OK && status != FLOWRELAY_PENDING) return status;
  c.counted = true;
  c.channel = channel_for(channel);
  auto& list = status == FLOWRELAY_OK ? c.channel->members : c.channel->waiting;
  c.member_index = static_cast<uint32_t>(list.size());
  list.push_back(&c);
  return status;
}

void EventLoop::leave(Connection& s) {
  if (_fanning_out)
    _leaving.push_back(&s);  // the fan-out is iterating the member list
  else
    channel_remove(&s);
}

void EventLoop::wants_write(Connection& s) {
  Connection& c = s;
  if (c.dirty) return;
  c.dirty = true;
  _dirty.push_back(&c);
}

void EventLoop::set_timer(Connection& s, SessionTimer timer) {
  Connection& c = s;
  timer_remove(&c);  // unlink + append: O(1), and each list stays sorted by deadline
  if (timer != SessionTimer::None) timer_add(&c, timer);
}

void EventLoop::slow_consumer(Connection& s, uint64_t queued) {
  const Connection& c = s;
  _ctx.log(FLOWRELAY_LOG_NOTICE, "closing a slow consumer on " +
                                     (c.channel ? c.channel->name : std::string("?")) + " (" +
                                     std::to_string(queued) + " bytes queued)");
}

// ---------------------------------------------------------------------------- channels

LoopChannel* EventLoop::channel_for(std::string_view name) {
  auto it = _channels.find(name);
  if (it == _channels.end()) {
    it = _channels.emplace(std::string(name), LoopChannel{}).first;
    it->second.name = it->first;
  }
  return &it->second;
}

// Takes the connection off its channel's lists, releases its router count, and forgets the
// channel when this loop has no session left on it.
void EventLoop::channel_remove(Connection* c) {
  LoopChannel* ch = c->channel;
  if (!ch) return;
  if (c->joined_event) client_event(c, false);  // while it still knows its conversation
  for (auto* list : {&ch->members, &ch->waiting}) {
    if (c->member_index < list->size() && (*list)[c->member_index] == c) {
      (*list)[c->member_index] = list->back();
      (*list)[c->member_index]->member_index = c->member_index;
      list->pop_back();
      break;
    }
  }
  c->channel = nullptr;
  if (c->counted) {
    c->counted = false;
    _ctx.host.unsubscribe(ch->name);
  }
  if (ch->members.empty() && ch->waiting.empty()) _channels.erase(ch->name);
}

// ---------------------------------------------------------------------------- output

void EventLoop::flush(Connection* c) {
  OutQueue& out = c->out();
  while (!out.empty()) {
    iovec iov[kMaxIov];
    const uint32_t n = std::min<uint32_t>(out.count(), kMaxIov);
    for (uint32_t i = 0; i < n; ++i) {
      SharedFrame* f = out.at(i);
      const uint32_t skip = i == 0 ? out.head_offset() : 0;
      iov[i].iov_base = const_cast<char*>(f->data()) + skip;
      iov[i].iov_len = f->size() - skip;
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = n;
    const ssize_t w = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return watch_writable(c, true);
      return close_now(c);
    }
    const int64_t now = SharedFrame::monotonic_ns();
    out.consume(static_cast<size_t>(w), [&](SharedFrame* f) {
      if (!f->created_ns()) return;
      _stats.observe_latency_ns(now - f->created_ns());
      if (f->take_sample(_sample_bit)) _stats.relay_latency.observe_ns(now - f->created_ns());
    });
  }
  watch_writable(c, false);
  // Everything written: after our close frame or HTTP error, half-close so the peer sees EOF
  // right away; we keep reading until it closes too (or the close timer fires).
  if (c->state() == Connection::State::Closing && !c->write_shut) {
    shutdown(c->fd, SHUT_WR);
    c->write_shut = true;
  }
}

void EventLoop::watch_writable(Connection* c, bool on) {
  if (c->want_write == on) return;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET | (on ? EPOLLOUT : 0u);
  ev.data.ptr = c;
  epoll_ctl(_epoll_fd, EPOLL_CTL_MOD, c->fd, &ev);
  c->want_write = on;
}

void EventLoop::flush_dirty() {
  for (size_t i = 0; i < _dirty.size(); ++i) {  // flush may close; the list may not grow
    Connection* c = _dirty[i];
    c->dirty = false;
    if (!c->dead) flush(c);
  }
  _dirty.clear();
}

// ---------------------------------------------------------------------------- teardown

void EventLoop::close_now(Connection* c) {
  if (c->dead) return;
  channel_remove(c);
  timer_remove(c);
  close(c->fd);
  c->fd = -1;
  c->dead = true;
  _stats.connections_closed.add();
  if (c->joined_count) {  // only what join() counted (a refused handshake never joined)
    c->joined_count = false;
    (c->envelope() ? _ctx.envelope_clients : _ctx.plain_clients)
        .fetch_sub(1, std::memory_order_acq_rel);
  }
  if (c->recovering) _recovering.erase(c->id());
  if (c->authorizing) _authorizing.erase(c->id());
  if (c->link) {  // publishes still in flight find it gone
    c->link->conn = nullptr;
    c->link->unref();
    c->link = nullptr;
  }
  // The read list outlives this pass (reap() frees the connection at its end).
  if (c->read_pending) std::erase(_read_again, c);
  if (c->capped) {
    c->capped = false;
    _ctx.caps.release(c->ip);
  }
  c->out().clear();
  --_connections;
  _dead.push_back(c);
}

void EventLoop::reap() {
  // close_now() is the only producer and adds each connection once (it returns early if dead).
  for (Connection* c : _dead) delete c;
  _dead.clear();
}

// ---------------------------------------------------------------------------- timers

void EventLoop::timer_add(Connection* c, SessionTimer timer) {
  const auto& l = _ctx.limits;
  const uint32_t ms = timer == SessionTimer::Handshake ? l.handshake_timeout_ms.load()
                      : timer == SessionTimer::Closing ? l.close_timeout_ms.load()
                                                       : l.idle_timeout_ms.load();
  TimerQueue& q = queue(timer);
  c->timer = timer;
  c->deadline_ms = now_ms() + ms;
  c->prev = q.tail;
  c->next = nullptr;
  (q.tail ? q.tail->next : q.head) = c;
  q.tail = c;
}

void EventLoop::timer_remove(Connection* c) {
  if (c->timer == SessionTimer::None) return;
  TimerQueue& q = queue(c->timer);
  (c->prev ? c->prev->next : q.head) = c->next;
  (c->next ? c->next->prev : q.tail) = c->prev;
  c->prev = c->next = nullptr;
  c->timer = SessionTimer::None;
}

void EventLoop::expire_timers() {
  const int64_t now = now_ms();
  for (TimerQueue* q : {&_handshakes, &_closings, &_idle}) {
    while (q->head && q->head->deadline_ms <= now) {
      Connection* c = q->head;
      timer_remove(c);  // the session re-arms what it still needs
      c->on_timer();
      settle(c);
    }
  }
}

int EventLoop::next_timeout_ms() {
  const int64_t now = now_ms();
  int64_t next = now + 1000;
  for (const TimerQueue* q : {&_handshakes, &_closings, &_idle})
    if (q->head) next = std::min(next, q->head->deadline_ms);
  if (_stopping) next = std::min(next, _stop_deadline_ms);
  return static_cast<int>(std::max<int64_t>(0, next - now));
}

}  // namespace flowrelay::stream
