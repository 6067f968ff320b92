// HttpLoop: the thread, accept, the inbox and the timers. The per-connection state machine
// (read, parse, dispatch, write) is in http_conn.cpp.
#include "http_loop.h"

#include <Poco/Logger.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "net/monotonic_clock.h"

namespace flowrelay {

namespace {

constexpr int kAcceptBudget = 128;    // accepts per readiness event
constexpr uint32_t kLingerMs = 2000;  // after an error answer: wait for the client to close
char kListenTag, kWakeTag;            // epoll data of the two non-connection fds
thread_local const void* tls_inbox = nullptr;  // the inbox of the loop running this thread

}  // namespace

HttpLoop::HttpLoop(int listen_fd, const HttpLoopConfig& config, HttpListenerStats& stats,
                   HttpDispatch dispatch)
    : _config(config),
      _stats(stats),
      _dispatch(std::move(dispatch)),
      _acceptor(listen_fd),
      _inbox(std::make_shared<Inbox>()) {
  _epoll_fd = net::open_loop_epoll(_inbox->fd(), &kWakeTag, listen_fd, &kListenTag);
}

HttpLoop::~HttpLoop() {
  stop();
  join();
  _inbox->close();
  close(_epoll_fd);
}

void HttpLoop::start() {
  _thread = std::thread([this] { run(); });
}

void HttpLoop::stop() {
  if (_stop_requested.exchange(true)) return;
  _inbox->post(Posted{}, tls_inbox == _inbox.get());  // a wake-up
}

void HttpLoop::join() {
  if (_thread.joinable()) _thread.join();
}

void HttpLoop::after(uint32_t ms, std::function<void()> fn) {
  Posted p;
  p.fn = std::move(fn);
  p.ms = ms;
  _inbox->post(std::move(p), tls_inbox == _inbox.get());
}

void HttpLoop::run() {
  tls_inbox = _inbox.get();
  epoll_event events[256];
  while (!_stop_requested.load(std::memory_order_acquire)) {
    const int n = epoll_wait(_epoll_fd, events, 256, _inbox->self_posted() ? 0 : next_timeout_ms());
    for (int i = 0; i < n; ++i) {
      void* tag = events[i].data.ptr;
      if (tag == &kWakeTag) {
        _inbox->consume_wakeup();
      } else if (tag == &kListenTag) {
        on_accept();
      } else {
        auto* c = static_cast<Conn*>(tag);
        if (!c->dead && (events[i].events & EPOLLOUT)) on_writable(c);
        if (!c->dead && (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
          on_readable(c);
      }
    }
    drain_inbox();
    expire_timers();
    for (Conn* c : _dead) delete c;
    _dead.clear();
  }
  // Answers still on their way are dropped: the inbox refuses them from now on.
  _inbox->close();
  std::vector<Conn*> open;
  for (auto& [id, c] : _conns) open.push_back(c);
  for (Conn* c : open) close_now(c);
  for (Conn* c : _dead) delete c;
  _dead.clear();
  _timers.clear();
  tls_inbox = nullptr;
}

void HttpLoop::drain_inbox() {
  _inbox->take(_work);
  const int64_t now = net::monotonic_ms();
  for (Posted& p : _work) {
    if (p.conn == 0) {
      if (p.fn) _timers.emplace(now + p.ms, std::move(p.fn));
      continue;
    }
    auto it = _conns.find(p.conn);
    // Gone (closed, timed out) or not waiting for this answer (a handler that replied twice).
    if (it == _conns.end() || it->second->state != State::Dispatched ||
        it->second->requests != p.request)
      continue;
    answer(it->second, std::move(p.answer));
  }
  _work.clear();
}

HttpReply HttpLoop::reply_for(Conn* c) {
  std::weak_ptr<Inbox> weak = _inbox;
  return [weak = std::move(weak), conn = c->id, request = c->requests](HttpAnswer a) {
    // The loop may be gone (daemon stopping): then the answer has nowhere to go.
    const std::shared_ptr<Inbox> inbox = weak.lock();
    if (!inbox) return;
    Posted p;
    p.conn = conn;
    p.request = request;
    p.answer = std::move(a);
    inbox->post(std::move(p), tls_inbox == inbox.get());
  };
}

void HttpLoop::on_accept() {
  for (int i = 0; i < kAcceptBudget; ++i) {
    sockaddr_storage peer{};
    bool out_of_fds = false;
    const int fd = _acceptor.accept(peer, out_of_fds);
    if (fd < 0) {
      if (out_of_fds) {
        const int64_t now = net::monotonic_ms();
        if (now - _last_emfile_log_ms > 10000) {
          _last_emfile_log_ms = now;
          Poco::Logger::get("flowrelayd")
              .warning("http: out of file descriptors: refusing connections (raise LimitNOFILE)");
        }
      }
      return;
    }
    if (_stats.open.load(std::memory_order_relaxed) >= _config.max_connections) {
      // Past the cap: refused at once, before reading anything (costs one accept and close).
      _stats.refused_at_cap.fetch_add(1, std::memory_order_relaxed);
      close(fd);
      continue;
    }
    auto* c = new Conn;
    c->id = _next_id++;
    c->fd = fd;
    c->remote = net::peer_address(peer);
    c->events = EPOLLIN | EPOLLRDHUP;
    epoll_event ev{};
    ev.events = c->events;
    ev.data.ptr = c;
    if (epoll_ctl(_epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
      close(fd);
      delete c;
      continue;
    }
    _conns.emplace(c->id, c);
    _stats.open.fetch_add(1, std::memory_order_relaxed);
    _stats.accepted.fetch_add(1, std::memory_order_relaxed);
    set_timer(c, Timer::Header);  // a client that never sends a full head gets 408
  }
}

void HttpLoop::close_now(Conn* c) {
  if (c->dead) return;
  set_timer(c, Timer::None);
  close(c->fd);
  c->fd = -1;
  c->dead = true;
  _conns.erase(c->id);
  _stats.open.fetch_sub(1, std::memory_order_relaxed);
  _dead.push_back(c);  // freed at the end of the pass: the event array may still name it
}

// ---------------------------------------------------------------------------- timers

void HttpLoop::set_timer(Conn* c, Timer t) {
  if (c->timer == t && t != Timer::Idle) return;  // the header deadline is not pushed back
  if (c->timer != Timer::None) list(c->timer).remove(c);
  c->timer = t;
  if (t == Timer::None) return;
  const uint32_t ms = t == Timer::Header ? _config.header_timeout_ms
                      : t == Timer::Idle ? _config.idle_timeout_ms
                                         : kLingerMs;
  list(t).push_back(c, net::monotonic_ms() + ms);
}

void HttpLoop::expire_timers() {
  const int64_t now = net::monotonic_ms();
  while (Conn* c = _header.expired(now)) {
    set_timer(c, Timer::None);
    _stats.header_timeouts.fetch_add(1, std::memory_order_relaxed);
    refuse(c, 408,
           "no complete request within http.header_timeout_ms (" +
               std::to_string(_config.header_timeout_ms) + " ms)");
  }
  while (Conn* c = _idle.expired(now)) {
    _stats.idle_closed.fetch_add(1, std::memory_order_relaxed);
    close_now(c);  // idle keep-alive, or a reader that stopped reading its answer
  }
  while (Conn* c = _linger.expired(now)) close_now(c);
  while (!_timers.empty() && _timers.begin()->first <= now) {
    auto fn = std::move(_timers.begin()->second);
    _timers.erase(_timers.begin());
    fn();
  }
}

int HttpLoop::next_timeout_ms() {
  const int64_t now = net::monotonic_ms();
  int64_t next = now + 1000;
  for (const auto* l : {&_header, &_idle, &_linger})
    if (l->head) next = std::min(next, l->head->deadline_ms);
  if (!_timers.empty()) next = std::min(next, _timers.begin()->first);
  return static_cast<int>(std::max<int64_t>(0, next - now));
}

}  // namespace flowrelay
