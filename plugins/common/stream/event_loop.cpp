// EventLoop: the thread, the inbox, the fan-out, accept and read. What the sessions ask for, the
// channels, flushing and timers are in loop_session.cpp.
#include "event_loop.h"

#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "close_code.h"

namespace flowrelay::stream {

namespace {

constexpr size_t kScratchSize = 64 * 1024;
constexpr int kReadBudget = 4;      // reads per readiness event before others get a turn
constexpr int kAcceptBudget = 128;  // accepts per readiness event
char kListenTag, kWakeTag;          // epoll data for the two non-connection fds
thread_local EventLoop* tls_current = nullptr;

}  // namespace

EventLoop::EventLoop(const TransportContext& ctx, int listen_fd, unsigned index)
    : _ctx(ctx),
      _sample_bit(uint64_t(1) << (index % 64)),
      _session_config{ctx.limits, ctx.options.path, _stats},
      _listen_fd(listen_fd),
      _acceptor(listen_fd),
      _scratch(new char[kScratchSize]) {
  _epoll_fd = net::open_loop_epoll(_inbox.fd(), &kWakeTag, _listen_fd, &kListenTag);
}

EventLoop::~EventLoop() {
  join_thread();
  for (auto& item : _inbox.close()) {
    if (item.frame) item.frame->unref();
    if (item.envelope) item.envelope->unref();
  }
  if (_epoll_fd >= 0) close(_epoll_fd);
  delete[] _scratch;
}

void EventLoop::start() {
  _thread = std::thread([this] { run(); });
}

void EventLoop::join_thread() {
  if (_thread.joinable()) _thread.join();
}

// ---------------------------------------------------------------------------- inbox

void EventLoop::post(Item&& item) {
  // Refused only once closed, in the destructor: no thread posts then.
  _inbox.post(std::move(item), tls_current == this);
}

void EventLoop::post_deliver(SharedFrame* raw, SharedFrame* envelope, uint64_t skip) {
  Item item{Item::Deliver};
  item.frame = raw;
  item.envelope = envelope;
  item.skip = skip;
  post(std::move(item));
}

void EventLoop::post_history(std::unique_ptr<HistoryResult> result) {
  Item item{Item::History};
  item.history = std::move(result);
  post(std::move(item));
}

void EventLoop::post_subscribed(std::string_view channel, flowrelay_status status) {
  Item item{Item::Subscribed};
  item.channel.assign(channel);
  item.value = status;
  post(std::move(item));
}

void EventLoop::post_stop(uint32_t timeout_ms) {
  Item item{Item::Stop};
  item.value = static_cast<int32_t>(timeout_ms);
  post(std::move(item));
}

void EventLoop::drain_inbox() {
  _inbox.take(_work);
  for (auto& item : _work) {
    switch (item.kind) {
      case Item::Deliver: {
        SharedFrame* any = item.frame ? item.frame : item.envelope;
        auto it = _channels.find(any->channel());
        if (it != _channels.end()) fan_out(it->second, item.frame, item.envelope, item.skip);
        if (item.frame) item.frame->unref();
        if (item.envelope) item.envelope->unref();
        break;
      }
      case Item::History:
        on_history(std::move(item.history));
        break;
      case Item::Published:
        on_published(std::move(item.published));
        break;
      case Item::Authorized:
        on_authorized(std::move(item.connect));
        break;
      case Item::Subscribed:
        on_subscribed(item.channel, item.value);
        break;
      case Item::Stop:
        begin_stop(static_cast<uint32_t>(item.value));
        break;
    }
  }
  _work.clear();
}

void EventLoop::fan_out(LoopChannel& ch, SharedFrame* raw, SharedFrame* envelope, uint64_t skip) {
  // One reference per member and frame, taken in one atomic add each; those not used (the
  // skipped sender, sessions of the other mode) are given back after. The inbox item's own
  // references keep the counts above zero meanwhile.
  const uint32_t members = static_cast<uint32_t>(ch.members.size());
  if (raw) raw->ref(members);
  if (envelope) envelope->ref(members);
  FanOutCounts counts;
  _fanning_out = true;  // a member closing now leaves the channel after the loop
  _ctx.fan_out(ch.members.data(), ch.members.size(), raw, envelope, skip, counts);
  const uint32_t used_raw = counts.used_plain, used_envelope = counts.used_envelope;
  _fanning_out = false;
  // The message's relay latency is sampled once on this loop: at the first write of the frame
  // it sent (envelope if any session took it, else raw). Armed before the flush of this pass.
  if (SharedFrame* sampled = used_envelope ? envelope : used_raw ? raw : nullptr)
    sampled->arm_sample(_sample_bit);
  if (raw && members > used_raw) raw->release(members - used_raw);
  if (envelope && members > used_envelope) envelope->release(members - used_envelope);
  _stats.deliveries.add(counts.sent);
  _stats.bytes_out.add(counts.bytes);
  for (Connection* c : _leaving) channel_remove(c);  // may forget `ch`
  _leaving.clear();
}

void EventLoop::on_subscribed(std::string_view channel, flowrelay_status status) {
  auto it = _channels.find(channel);
  if (it == _channels.end()) return;
  LoopChannel* ch = &it->second;
  std::vector<Connection*> waiting;
  waiting.swap(ch->waiting);
  if (status == FLOWRELAY_OK) {
    // All join first, then their early frames run: a session closing in that second pass can
    // then only empty the channel once everyone else has left it too.
    for (Connection* c : waiting) {
      c->member_index = static_cast<uint32_t>(ch->members.size());
      ch->members.push_back(c);
      c->admit();
    }
    for (Connection* c : waiting) {
      c->drain_held();
      settle(c);
    }
    return;
  }
  // Refused, or lost for good after a broker reconnect: nobody stays. Those waiting are refused
  // (503); those open are told to reconnect (1013), and resume where they were.
  const std::vector<Connection*> open = ch->members;
  for (Connection* c : waiting) {
    c->channel = nullptr;
    c->counted = false;
    _ctx.host.unsubscribe(ch->name);
    c->reject(503, "the broker refused this conversation; try again later");
  }
  if (open.empty()) {
    _channels.erase(it);
    return;
  }
  for (Connection* c : open) c->close(close_code::TryAgainLater, "subscription lost, reconnect");
}

// ---------------------------------------------------------------------------- main loop

void EventLoop::run() {
  tls_current = this;
  epoll_event events[256];
  for (;;) {
    const int timeout =
        _read_again.empty() && _dirty.empty() && !_inbox.self_posted() ? next_timeout_ms() : 0;
    const int n = epoll_wait(_epoll_fd, events, 256, timeout);
    for (int i = 0; i < n; ++i) {
      void* tag = events[i].data.ptr;
      if (tag == &kWakeTag) {
        _inbox.consume_wakeup();
      } else if (tag == &kListenTag) {
        if (!_stopping) on_accept();
      } else {
        auto* c = static_cast<Connection*>(tag);
        if (c->dead) continue;
        if (events[i].events & EPOLLOUT) flush(c);
        if (!c->dead && (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
          on_readable(c);
      }
    }
    if (!_read_again.empty()) {
      std::vector<Connection*> again;
      again.swap(_read_again);
      for (Connection* c : again) {
        c->read_pending = false;
        if (!c->dead) on_readable(c);
      }
    }
    drain_inbox();
    expire_timers();  // before the flush: a ping or close it queues goes out now
    flush_dirty();
    reap();
    if (_stopping && (_connections == 0 || now_ms() >= _stop_deadline_ms)) break;
  }
  // Whatever is left after the stop deadline is dropped (open sessions without an idle timer
  // are on no timer list: found through their channel).
  for (auto* list : {&_handshakes, &_closings, &_idle})
    while (list->head) close_now(list->head);
  std::vector<Connection*> left;
  for (auto& [name, ch] : _channels) {
    left.insert(left.end(), ch.members.begin(), ch.members.end());
    left.insert(left.end(), ch.waiting.begin(), ch.waiting.end());
  }
  for (Connection* c : left) close_now(c);
  reap();
  tls_current = nullptr;
}

void EventLoop::begin_stop(uint32_t timeout_ms) {
  if (_stopping) return;
  _stopping = true;
  _stop_deadline_ms = now_ms() + timeout_ms;
  epoll_ctl(_epoll_fd, EPOLL_CTL_DEL, _listen_fd, nullptr);
  while (_handshakes.head) close_now(_handshakes.head);  // also holds Joining sessions
  std::vector<Connection*> open;
  for (auto& [name, ch] : _channels) open.insert(open.end(), ch.members.begin(), ch.members.end());
  for (Connection* c : open) c->close(close_code::GoingAway, "server shutting down");
}

// ---------------------------------------------------------------------------- accept

void EventLoop::on_accept() {
  for (int i = 0; i < kAcceptBudget; ++i) {
    sockaddr_storage peer{};
    bool out_of_fds = false;
    const int fd = _acceptor.accept(peer, out_of_fds);
    if (fd < 0) {
      if (out_of_fds) {
        const int64_t now = now_ms();
        if (now - _last_emfile_log_ms > 10000) {
          _last_emfile_log_ms = now;
          _ctx.log(FLOWRELAY_LOG_WARNING,
                   "out of file descriptors: refusing new connections (raise LimitNOFILE)");
        }
      }
      return;  // EAGAIN (another loop took it) or an error for this one connection only
    }
    Connection* c = _ctx.make_connection(*this, _session_config, _ctx.host.new_session_id());
    c->fd = fd;
    epoll_event ev{};
    // EPOLLOUT only while a write is blocked (see flush): registered all the time, every ACK
    // that frees send space would wake the loop for nothing.
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = c;
    if (epoll_ctl(_epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
      close(fd);
      delete c;
      continue;
    }
    ++_connections;
    _stats.connections_total.add();
    if (peer.ss_family == AF_INET6) {
      std::memcpy(c->ip.data(), &reinterpret_cast<sockaddr_in6*>(&peer)->sin6_addr, 16);
      c->port = ntohs(reinterpret_cast<sockaddr_in6*>(&peer)->sin6_port);
    } else if (peer.ss_family == AF_INET) {
      c->ip[10] = c->ip[11] = 0xff;
      std::memcpy(c->ip.data() + 12, &reinterpret_cast<sockaddr_in*>(&peer)->sin_addr, 4);
      c->port = ntohs(reinterpret_cast<sockaddr_in*>(&peer)->sin_port);
    }
    const int refused = _ctx.caps.admit(c->ip, _ctx.limits.max_connections.load(),
                                        _ctx.limits.max_connections_per_ip.load());
    if (refused) {
      // Answered at once, before reading the request: a flood costs one small write each.
      _stats.limit_rejections.add();
      c->reject(refused, refused == 429 ? "too many connections from your address"
                                        : "server at its connection limit");
      flush(c);
      continue;
    }
    c->capped = true;
    c->start();
  }
}

// ---------------------------------------------------------------------------- input

void EventLoop::on_readable(Connection* c) {
  for (int i = 0; i < kReadBudget; ++i) {
    const ssize_t n = read(c->fd, _scratch, kScratchSize);
    if (n > 0) {
      c->feed(_scratch, static_cast<size_t>(n));
      settle(c);
      if (c->dead) return;
      if (static_cast<size_t>(n) < kScratchSize) return;  // drained (edge-triggered)
      continue;
    }
    if (n == 0) return close_now(c);  // peer closed (abruptly, or after the close handshake)
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    if (errno == EINTR) continue;
    return close_now(c);  // ECONNRESET and friends
  }
  if (!c->read_pending) {  // budget spent: more may be waiting, come back next round
    c->read_pending = true;
    _read_again.push_back(c);
  }
}

void EventLoop::settle(Connection* c) {
  if (c->state() == Connection::State::Closed) close_now(c);
}

}  // namespace flowrelay::stream
