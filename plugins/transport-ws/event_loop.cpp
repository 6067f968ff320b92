#include "event_loop.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "envelope.h"
#include "handshake.h"

namespace flowrelay::ws {

namespace {

constexpr size_t kScratchSize = 64 * 1024;
constexpr int kReadBudget = 4;      // reads per readiness event before others get a turn
constexpr int kAcceptBudget = 128;  // accepts per readiness event
constexpr int kMaxIov = 64;
constexpr int64_t kOwnTtlMs = 10000;  // see OwnPublish
char kListenTag, kWakeTag;            // epoll data for the two non-connection fds
thread_local EventLoop* tls_current = nullptr;

int64_t now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace

EventLoop::EventLoop(const TransportContext& ctx, int listen_fd)
    : _ctx(ctx), _listen_fd(listen_fd), _scratch(new char[kScratchSize]) {
  _epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  _wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  _spare_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (_epoll_fd < 0 || _wake_fd < 0) throw std::runtime_error(std::strerror(errno));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &kWakeTag;
  epoll_ctl(_epoll_fd, EPOLL_CTL_ADD, _wake_fd, &ev);
  // Every loop waits on the one listening socket; EPOLLEXCLUSIVE wakes only one per connection.
  ev.events = EPOLLIN | EPOLLEXCLUSIVE;
  ev.data.ptr = &kListenTag;
  if (epoll_ctl(_epoll_fd, EPOLL_CTL_ADD, _listen_fd, &ev) != 0)
    throw std::runtime_error(std::string("epoll_ctl(listen): ") + std::strerror(errno));
}

EventLoop::~EventLoop() {
  join();
  for (auto& item : _inbox) {
    if (item.frame) item.frame->unref();
    if (item.envelope) item.envelope->unref();
  }
  if (_epoll_fd >= 0) close(_epoll_fd);
  if (_wake_fd >= 0) close(_wake_fd);
  if (_spare_fd >= 0) close(_spare_fd);
  delete[] _scratch;
}

void EventLoop::start() {
  _thread = std::thread([this] { run(); });
}

void EventLoop::join() {
  if (_thread.joinable()) _thread.join();
}

// ---------------------------------------------------------------------------- inbox

void EventLoop::post(Item&& item) {
  bool wake = false;
  {
    std::lock_guard lock(_inbox_mutex);
    _inbox.push_back(std::move(item));
    if (tls_current == this)
      _self_posted = true;  // only this thread touches the flag
    else if (!_wake_pending)
      wake = _wake_pending = true;
  }
  if (wake) {
    const uint64_t one = 1;
    ssize_t r = write(_wake_fd, &one, sizeof one);
    (void)r;  // EAGAIN only if the counter is saturated: the loop is awake anyway
  }
}

void EventLoop::post_deliver(SharedFrame* raw, SharedFrame* envelope, std::size_t hash) {
  Item item{Item::Deliver};
  item.frame = raw;
  item.envelope = envelope;
  item.hash = hash;
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
  {
    std::lock_guard lock(_inbox_mutex);
    _work.swap(_inbox);
    _wake_pending = false;
  }
  _self_posted = false;
  for (auto& item : _work) {
    switch (item.kind) {
      case Item::Deliver: {
        SharedFrame* any = item.frame ? item.frame : item.envelope;
        auto it = _channels.find(any->channel());
        if (it != _channels.end()) fan_out(it->second, item.frame, item.envelope, item.hash);
        if (item.frame) item.frame->unref();
        if (item.envelope) item.envelope->unref();
        break;
      }
      case Item::History: {
        auto it = _recovering.find(item.history->session);
        if (it == _recovering.end()) break;  // the session left meanwhile
        Connection* c = it->second;
        _recovering.erase(it);
        finish_resume(c, *item.history);
        break;
      }
      case Item::Subscribed: {
        auto it = _channels.find(std::string_view(item.channel));
        if (it == _channels.end()) break;
        LoopChannel* ch = &it->second;
        std::vector<Connection*> waiting;
        waiting.swap(ch->waiting);
        if (item.value == FLOWRELAY_OK) {
          // All join first, then their early frames run: a session closing in that second
          // pass can then only empty the channel once everyone else has left it too.
          for (Connection* c : waiting)
            if (c->state == ConnState::Joining) open(c);
          for (Connection* c : waiting) process_held_input(c);
        } else {
          for (Connection* c : waiting) {
            c->channel = nullptr;
            c->counted = false;
            _ctx.api->unsubscribe(_ctx.host, {ch->name.data(), ch->name.size()});
            send_http_and_close(c, http_error(503,
                                              "the broker refused this conversation; "
                                              "try again later"));
          }
          if (ch->members.empty()) _channels.erase(it);
        }
        break;
      }
      case Item::Stop:
        begin_stop(static_cast<uint32_t>(item.value));
        break;
    }
  }
  _work.clear();
}

void EventLoop::fan_out(LoopChannel& ch, SharedFrame* raw, SharedFrame* envelope,
                        std::size_t hash) {
  uint64_t skip = 0;  // the sender, when echo is off and this is its message coming back
  if (!ch.own.empty()) {
    const int64_t now = now_ms();
    while (!ch.own.empty() && now - ch.own.front().at_ms > kOwnTtlMs) ch.own.pop_front();
    if (!ch.own.empty() && ch.own.front().hash == hash) {
      skip = ch.own.front().session;
      ch.own.pop_front();
    }
  }
  // One reference per member and frame, taken in one atomic add each; those not used (the
  // skipped sender, sessions of the other mode) are given back after. The inbox item's own
  // references keep the counts above zero meanwhile.
  const uint32_t members = static_cast<uint32_t>(ch.members.size());
  if (raw) raw->ref(members);
  if (envelope) envelope->ref(members);
  uint32_t used_raw = 0, used_envelope = 0, sent = 0;
  uint64_t bytes = 0;
  for (Connection* c : ch.members) {
    if (c->id == skip) continue;
    SharedFrame* f = c->envelope ? envelope : raw;
    if (!f) continue;  // raw sessions do not get the log lane
    ++(c->envelope ? used_envelope : used_raw);
    if (c->resume) {  // still replaying history: this frame follows the replay
      hold(c, f);
      continue;
    }
    if (replayed_already(c, f)) {
      f->unref();
      continue;
    }
    send(c, f);
    ++sent;
    bytes += f->size();
  }
  if (raw && members > used_raw) raw->release(members - used_raw);
  if (envelope && members > used_envelope) envelope->release(members - used_envelope);
  _stats.deliveries.add(sent);
  _stats.bytes_out.add(bytes);
}

// ---------------------------------------------------------------------------- main loop

void EventLoop::run() {
  tls_current = this;
  epoll_event events[256];
  for (;;) {
    const int timeout =
        _read_again.empty() && _dirty.empty() && !_self_posted ? next_timeout_ms() : 0;
    const int n = epoll_wait(_epoll_fd, events, 256, timeout);
    for (int i = 0; i < n; ++i) {
      void* tag = events[i].data.ptr;
      if (tag == &kWakeTag) {
        uint64_t v;
        ssize_t r = read(_wake_fd, &v, sizeof v);
        (void)r;
      } else if (tag == &kListenTag) {
        if (!_stopping) on_accept();
      } else {
        auto* c = static_cast<Connection*>(tag);
        if (c->state == ConnState::Dead) continue;
        if (events[i].events & EPOLLOUT) flush(c);
        if (c->state != ConnState::Dead &&
            (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
          on_readable(c);
      }
    }
    if (!_read_again.empty()) {
      std::vector<Connection*> again;
      again.swap(_read_again);
      for (Connection* c : again) {
        c->read_pending = false;
        if (c->state != ConnState::Dead) on_readable(c);
      }
    }
    drain_inbox();
    leave_slow_consumers();
    expire_timers();  // before the flush: a ping or close it queues goes out now
    flush_dirty();
    leave_slow_consumers();  // (again: timers may have queued to one) before anything is freed
    reap();
    if (_stopping && (_connections == 0 || now_ms() >= _stop_deadline_ms)) break;
  }
  // Whatever is left after the stop deadline is dropped.
  for (auto* list : {&_handshakes, &_closings, &_idle})
    while (list->head) close_now(list->head);
  for (auto& [name, ch] : _channels) {
    while (!ch.members.empty()) close_now(ch.members.back());
    while (!ch.waiting.empty()) close_now(ch.waiting.back());
  }
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
  for (Connection* c : open) send_close(c, close_code::GoingAway, "server shutting down");
}

// ---------------------------------------------------------------------------- accept

void EventLoop::on_accept() {
  for (int i = 0; i < kAcceptBudget; ++i) {
    sockaddr_storage peer{};
    socklen_t peer_len = sizeof peer;
    const int fd = accept4(_listen_fd, reinterpret_cast<sockaddr*>(&peer), &peer_len,
                           SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE) {
        // Out of descriptors: accept with the spare one and close at once, so the client is
        // refused instead of the listen queue spinning this loop.
        if (_spare_fd >= 0) {
          close(_spare_fd);
          const int victim = accept4(_listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
          if (victim >= 0) close(victim);
          _spare_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        }
        const int64_t now = now_ms();
        if (now - _last_emfile_log_ms > 10000) {
          _last_emfile_log_ms = now;
          _ctx.log(FLOWRELAY_LOG_WARNING,
                   "out of file descriptors: refusing new connections (raise LimitNOFILE)");
        }
      }
      return;  // EAGAIN (another loop took it) or an error for this one connection only
    }
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto* c = new Connection;
    c->id = _next_session_id++;
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
    } else if (peer.ss_family == AF_INET) {
      c->ip[10] = c->ip[11] = 0xff;
      std::memcpy(c->ip.data() + 12, &reinterpret_cast<sockaddr_in*>(&peer)->sin_addr, 4);
    }
    const int refused = _ctx.caps.admit(c->ip, _ctx.limits.max_connections.load(),
                                        _ctx.limits.max_connections_per_ip.load());
    if (refused) {
      // Answered at once, before reading the request: a flood costs one small write each.
      _stats.limit_rejections.add();
      send_http_and_close(
          c, http_error(refused, refused == 429 ? "too many connections from your address"
                                                : "server at its connection limit"));
      flush(c);
      continue;
    }
    c->capped = true;
    timer_add(c, TimerList::Handshake,
              _ctx.limits.handshake_timeout_ms.load(std::memory_order_relaxed));
  }
}

// ---------------------------------------------------------------------------- input

void EventLoop::on_readable(Connection* c) {
  for (int i = 0; i < kReadBudget; ++i) {
    const ssize_t n = read(c->fd, _scratch, kScratchSize);
    if (n > 0) {
      if (c->state == ConnState::Closing) continue;  // after our close: discard until EOF
      on_input(c, _scratch, static_cast<size_t>(n));
      if (c->state == ConnState::Dead) return;
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

void EventLoop::touch(Connection* c) {
  const uint32_t idle = _ctx.limits.idle_timeout_ms.load(std::memory_order_relaxed);
  c->ping_sent = false;
  if (idle == 0) return timer_remove(c);
  // Unlink + append: O(1) per read, and the list stays sorted by deadline.
  timer_remove(c);
  timer_add(c, TimerList::Idle, idle);
}

bool EventLoop::take_token(Connection* c) {
  const double rate = _ctx.limits.publish_rate.load(std::memory_order_relaxed);
  if (rate <= 0) return true;
  const double burst = _ctx.limits.publish_burst.load(std::memory_order_relaxed);
  const uint32_t now = static_cast<uint32_t>(now_ms());
  const double refill = (now - c->tokens_at_ms) * rate / 1000.0;
  c->tokens = static_cast<float>(std::min(burst, c->tokens + refill));
  c->tokens_at_ms = now;
  if (c->tokens < 1.0f) return false;
  c->tokens -= 1.0f;
  return true;
}

void EventLoop::on_input(Connection* c, char* data, size_t len) {
  if (c->state == ConnState::Open) touch(c);
  // Parse straight from the scratch buffer unless earlier bytes are carried over.
  if (c->in) {
    c->in->append(data, len);
    data = c->in->data();
    len = c->in->size();
  }
  size_t used = 0;
  for (;;) {
    size_t n = 0;
    if (c->state == ConnState::Handshake)
      n = on_handshake(c, data + used, len - used);
    else if (c->state == ConnState::Open)
      n = on_frames(c, data + used, len - used);
    used += n;
    // Stop when nothing more can be parsed now; a handshake may be followed by frames.
    if (n == 0 || used == len || (c->state != ConnState::Open && c->state != ConnState::Handshake))
      break;
  }
  if (c->state == ConnState::Dead) return;
  if (c->state == ConnState::Joining &&
      len - used > _ctx.limits.max_message_size.load(std::memory_order_relaxed) +
                       _ctx.limits.max_header_size.load(std::memory_order_relaxed))
    return close_now(c);  // floods before it was even let in
  const size_t rest = len - used;
  if (rest == 0 || c->state == ConnState::Closing) {
    delete c->in;
    c->in = nullptr;
  } else if (c->in) {
    c->in->erase(0, used);
  } else {
    c->in = new std::string(data + used, rest);
  }
}

size_t EventLoop::on_handshake(Connection* c, char* data, size_t len) {
  const std::string_view text(data, len);
  const size_t end = text.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (len > _ctx.limits.max_header_size.load(std::memory_order_relaxed))
      send_http_and_close(c, http_error(431, "request headers too large"));
    return 0;
  }
  if (end + 4 > _ctx.limits.max_header_size.load(std::memory_order_relaxed)) {
    send_http_and_close(c, http_error(431, "request headers too large"));
    return 0;
  }
  const auto policy = _ctx.policy();
  HandshakeResult hs =
      accept_handshake(text.substr(0, end + 4), _ctx.options.path,
                       _ctx.limits.max_conversation_id_length.load(), policy.get());
  if (hs.status != 101) {
    if (hs.status == 401 || hs.status == 403) _stats.access_rejections.add();
    send_http_and_close(c, hs.response);
    return 0;
  }
  c->can_publish = hs.can_publish;
  if (hs.envelope) {
    c->envelope = true;
    _ctx.envelope_clients.fetch_add(1, std::memory_order_acq_rel);
  }
  if (hs.resume) {
    c->resume = new Resume;
    c->resume->since = hs.since;
    c->resume->epoch = std::move(hs.epoch);
  }
  c->tokens = static_cast<float>(_ctx.limits.publish_burst.load());
  c->tokens_at_ms = static_cast<uint32_t>(now_ms());
  const std::string channel = _ctx.options.channel_prefix + hs.conversation;
  const flowrelay_status s = _ctx.api->subscribe(_ctx.host, {channel.data(), channel.size()});
  if (s != FLOWRELAY_OK && s != FLOWRELAY_PENDING) {
    send_http_and_close(c, http_error(503, "the broker cannot take this conversation now"));
    return 0;
  }
  c->counted = true;
  c->channel = channel_for(channel);
  c->accept_101 = SharedFrame::raw(hs.response);
  if (s == FLOWRELAY_OK) {
    open(c);
  } else {
    // The 101 waits for the broker's confirmation, so that no message published after the
    // client sees its 101 can miss it. Frames the client sends meanwhile are held in `in`.
    c->state = ConnState::Joining;
    c->member_index = static_cast<uint32_t>(c->channel->waiting.size());
    c->channel->waiting.push_back(c);
  }
  return end + 4;
}

void EventLoop::open(Connection* c) {
  timer_remove(c);
  c->state = ConnState::Open;
  touch(c);
  c->member_index = static_cast<uint32_t>(c->channel->members.size());
  c->channel->members.push_back(c);
  if (c->accept_101) {
    send(c, c->accept_101);
    c->accept_101 = nullptr;
  }
  if (c->resume) start_resume(c);
}

void EventLoop::process_held_input(Connection* c) {
  if (c->state != ConnState::Open || !c->in) return;
  std::string held;
  held.swap(*c->in);
  delete c->in;
  c->in = nullptr;
  on_input(c, held.data(), held.size());
}

size_t EventLoop::on_frames(Connection* c, char* data, size_t len) {
  size_t used = 0;
  const uint64_t max = _ctx.limits.max_message_size.load(std::memory_order_relaxed);
  while (c->state == ConnState::Open) {
    FrameHeader h;
    const auto* p = reinterpret_cast<uint8_t*>(data + used);
    const ParseResult r = parse_header(p, len - used, h);
    if (r == ParseResult::NeedMore) break;
    if (r == ParseResult::Malformed) {
      send_close(c, close_code::ProtocolError, "malformed frame length");
      break;
    }
    if (uint16_t code = validate_client_frame(h, c->frag_opcode != 0, max)) {
      send_close(c, code, code == close_code::TooBig ? "message too big" : "protocol error");
      break;
    }
    if (h.opcode == uint8_t(Opcode::Continuation) && c->message &&
        c->message->size() + h.payload_len > max) {
      send_close(c, close_code::TooBig, "message too big");
      break;
    }
    if (h.opcode == uint8_t(Opcode::Binary)) {  // relayed as text would corrupt; refused
      send_close(c, close_code::UnsupportedData, "binary frames are not supported");
      break;
    }
    if (len - used < h.header_len + h.payload_len) break;  // wait for the whole frame
    char* payload = data + used + h.header_len;
    unmask(reinterpret_cast<uint8_t*>(payload), h.payload_len, h.mask, 0);
    used += h.header_len + h.payload_len;
    on_frame(c, h, payload);
  }
  return used;
}

void EventLoop::on_frame(Connection* c, const FrameHeader& h, char* payload) {
  const size_t len = h.payload_len;
  const auto* bytes = reinterpret_cast<const uint8_t*>(payload);
  switch (static_cast<Opcode>(h.opcode)) {
    case Opcode::Text:
      if (h.fin) {
        Utf8Validator v;
        if (!v.feed(bytes, len) || !v.complete())
          return send_close(c, close_code::InvalidPayload, "invalid UTF-8");
        return on_message(c, {payload, len});
      }
      c->utf8.reset();
      if (!c->utf8.feed(bytes, len))
        return send_close(c, close_code::InvalidPayload, "invalid UTF-8");
      c->frag_opcode = h.opcode;
      c->message = new std::string(payload, len);
      return;
    case Opcode::Continuation:
      if (!c->utf8.feed(bytes, len))
        return send_close(c, close_code::InvalidPayload, "invalid UTF-8");
      c->message->append(payload, len);
      if (!h.fin) return;
      if (!c->utf8.complete()) return send_close(c, close_code::InvalidPayload, "invalid UTF-8");
      c->frag_opcode = 0;
      {
        std::string* message = c->message;
        c->message = nullptr;
        on_message(c, *message);
        delete message;
      }
      return;
    case Opcode::Ping:
      return send(c, SharedFrame::message({}, Opcode::Pong, {payload, len}));
    case Opcode::Pong:
      return;
    case Opcode::Close:
      return on_close_frame(c, payload, len);
    default:
      return send_close(c, close_code::ProtocolError, "unexpected opcode");
  }
}

void EventLoop::on_close_frame(Connection* c, const char* payload, size_t len) {
  if (len == 0) return begin_closing(c, SharedFrame::message({}, Opcode::Close, {}));
  if (len == 1) return send_close(c, close_code::ProtocolError, "close payload of one byte");
  const uint16_t code = uint16_t(uint8_t(payload[0]) << 8 | uint8_t(payload[1]));
  if (!is_valid_close_code(code)) return send_close(c, close_code::ProtocolError, "bad close code");
  Utf8Validator v;
  if (!v.feed(reinterpret_cast<const uint8_t*>(payload + 2), len - 2) || !v.complete())
    return send_close(c, close_code::InvalidPayload, "invalid UTF-8 in close reason");
  send_close(c, code, {});  // echo the peer's code (RFC 6455 5.5.1)
}

void EventLoop::on_message(Connection* c, std::string_view text) {
  if (!c->envelope) return publish(c, text, FLOWRELAY_LANE_MESSAGE);
  ClientPublish p;
  std::string error;
  if (!parse_client_frame(text, p, error)) {
    _stats.envelope_errors.add();
    return send_error(c, 400, error);
  }
  publish(c, p.data, p.lane);
}

void EventLoop::send_error(Connection* c, int code, std::string_view reason) {
  send(c, SharedFrame::message({}, Opcode::Text, envelope_error(code, reason)));
}

void EventLoop::publish(Connection* c, std::string_view payload, flowrelay_lane lane) {
  if (!c->can_publish) {
    _stats.forbidden_publishes.add();
    return send_close(c, close_code::PolicyViolation, "not allowed to publish here");
  }
  if (!take_token(c)) {
    _stats.rate_limited.add();
    return send_close(c, close_code::PolicyViolation, "publish rate exceeded");
  }
  const std::string& channel = c->channel->name;
  (lane == FLOWRELAY_LANE_LOG ? _stats.log_messages_in : _stats.messages_in).add();
  _stats.bytes_in.add(payload.size());
  if (!_ctx.options.echo)
    c->channel->own.push_back({c->id, std::hash<std::string_view>{}(payload), now_ms()});
  const flowrelay_str ch{channel.data(), channel.size()};
  const flowrelay_message m{
      sizeof(flowrelay_message), lane, 0, {nullptr, 0}, {payload.data(), payload.size()}};
  flowrelay_status s = FLOWRELAY_EUNSUPPORTED;
  if (FLOWRELAY_HAS_SLOT(_ctx.api, flowrelay_transport_host_api, publish_message) &&
      _ctx.api->publish_message)
    s = _ctx.api->publish_message(_ctx.host, ch, &m, nullptr, nullptr);
  else if (lane == FLOWRELAY_LANE_MESSAGE)
    s = _ctx.api->publish(_ctx.host, ch, m.data);
  if (s == FLOWRELAY_OK || s == FLOWRELAY_PENDING) return;
  if (!_ctx.options.echo && c->channel && !c->channel->own.empty()) c->channel->own.pop_back();
  _stats.publish_errors.add();
  if (s == FLOWRELAY_EUNSUPPORTED && c->envelope)  // a lane this broker cannot carry
    return send_error(c, 501, "the broker does not support this lane");
  // The client must learn that its message was not taken (never silent loss).
  if (s == FLOWRELAY_EAGAIN || s == FLOWRELAY_EUNAVAIL)
    send_close(c, close_code::TryAgainLater, "broker unavailable, message not published");
  else
    send_close(c, close_code::InternalError, "message not published");
}

// ---------------------------------------------------------------------------- output

void EventLoop::send(Connection* c, SharedFrame* f) {
  if (c->slow) {  // already being dropped: nothing more is queued for it
    f->unref();
    return;
  }
  const uint64_t queued = c->out.bytes() + f->size();
  if (f->lane() == FLOWRELAY_LANE_LOG &&
      queued > _ctx.limits.max_outbound_bytes.load(std::memory_order_relaxed) / 2) {
    // Falling behind: the log lane goes first, so the conversation keeps its room.
    f->unref();
    _stats.log_frames_shed.add();
    return;
  }
  c->out.push(f);
  if (queued > _ctx.limits.max_outbound_bytes.load(std::memory_order_relaxed) &&
      c->state == ConnState::Open) {
    // Slow consumer: its backlog is dropped now (memory stays bounded) and a close 1008 is
    // queued behind whatever frame was half written. It leaves the channel at the end of this
    // loop pass (the caller may be iterating the channel's members), then lingers on the close
    // timer like any close.
    c->out.drop_unstarted();
    c->slow = true;
    _stats.slow_consumer_closes.add();
    _ctx.log(FLOWRELAY_LOG_NOTICE, "closing a slow consumer on " + c->channel->name + " (" +
                                       std::to_string(queued) + " bytes queued)");
    char body[] = {char(close_code::PolicyViolation >> 8),
                   char(close_code::PolicyViolation & 0xff),
                   's',
                   'l',
                   'o',
                   'w',
                   ' ',
                   'c',
                   'o',
                   'n',
                   's',
                   'u',
                   'm',
                   'e',
                   'r'};
    c->out.push(SharedFrame::message({}, Opcode::Close, {body, sizeof body}));
    _slow.push_back(c);
  }
  if (!c->dirty) {
    c->dirty = true;
    _dirty.push_back(c);
  }
}

void EventLoop::leave_slow_consumers() {
  for (Connection* c : _slow) {
    if (c->state != ConnState::Open) continue;
    channel_remove(c);
    c->state = ConnState::Closing;
    timer_remove(c);
    timer_add(c, TimerList::Closing, _ctx.limits.close_timeout_ms.load(std::memory_order_relaxed));
  }
  _slow.clear();
}

void EventLoop::send_close(Connection* c, uint16_t code, std::string_view reason) {
  if (c->state != ConnState::Open && c->state != ConnState::Joining) return;
  if (code == close_code::ProtocolError || code == close_code::UnsupportedData ||
      code == close_code::InvalidPayload || code == close_code::TooBig)
    _stats.protocol_closes.add();
  char body[125];
  body[0] = char(code >> 8);
  body[1] = char(code & 0xff);
  const size_t n = std::min(reason.size(), sizeof body - 2);
  if (n) std::memcpy(body + 2, reason.data(), n);  // reason may be {} (null data)
  begin_closing(c, SharedFrame::message({}, Opcode::Close, {body, n + 2}));
}

void EventLoop::send_http_and_close(Connection* c, const std::string& response) {
  _stats.handshakes_rejected.add();
  begin_closing(c, SharedFrame::raw(response));
}

void EventLoop::begin_closing(Connection* c, SharedFrame* goodbye) {
  channel_remove(c);
  c->state = ConnState::Closing;
  send(c, goodbye);
  timer_remove(c);
  timer_add(c, TimerList::Closing, _ctx.limits.close_timeout_ms.load(std::memory_order_relaxed));
}

void EventLoop::flush(Connection* c) {
  while (!c->out.empty()) {
    iovec iov[kMaxIov];
    const uint32_t n = std::min<uint32_t>(c->out.count(), kMaxIov);
    for (uint32_t i = 0; i < n; ++i) {
      SharedFrame* f = c->out.at(i);
      const uint32_t skip = i == 0 ? c->out.head_offset() : 0;
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
    c->out.consume(static_cast<size_t>(w), [&](const SharedFrame* f) {
      if (f->created_ns()) _stats.observe_latency_ns(now - f->created_ns());
    });
  }
  watch_writable(c, false);
  // Everything written: after our close frame or HTTP error, half-close so the peer sees EOF
  // right away; we keep reading until it closes too (or the close timer fires).
  if (c->state == ConnState::Closing && !c->write_shut) {
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
    if (c->state != ConnState::Dead) flush(c);
  }
  _dirty.clear();
}

// ---------------------------------------------------------------------------- teardown

void EventLoop::close_now(Connection* c) {
  if (c->state == ConnState::Dead) return;
  channel_remove(c);
  timer_remove(c);
  close(c->fd);
  c->fd = -1;
  c->state = ConnState::Dead;
  _stats.connections_closed.add();
  if (c->envelope) _ctx.envelope_clients.fetch_sub(1, std::memory_order_acq_rel);
  if (c->resume) _recovering.erase(c->id);
  if (c->capped) {
    c->capped = false;
    _ctx.caps.release(c->ip);
  }
  c->out.clear();
  --_connections;
  _dead.push_back(c);
}

void EventLoop::reap() {
  // close_now() is the only producer and adds each connection once (it returns early on Dead).
  for (Connection* c : _dead) delete c;
  _dead.clear();
}

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
  auto& list = c->state == ConnState::Joining ? ch->waiting : ch->members;
  if (c->member_index < list.size() && list[c->member_index] == c) {
    list[c->member_index] = list.back();
    list[c->member_index]->member_index = c->member_index;
    list.pop_back();
  }
  c->channel = nullptr;
  if (c->counted) {
    c->counted = false;
    _ctx.api->unsubscribe(_ctx.host, {ch->name.data(), ch->name.size()});
  }
  if (ch->members.empty() && ch->waiting.empty()) _channels.erase(ch->name);
}

// ---------------------------------------------------------------------------- timers

void EventLoop::timer_add(Connection* c, TimerList list, uint32_t timeout_ms) {
  TimerQueue& q = queue(list);
  c->timer = list;
  c->deadline_ms = now_ms() + timeout_ms;
  c->prev = q.tail;
  c->next = nullptr;
  (q.tail ? q.tail->next : q.head) = c;
  q.tail = c;
}

void EventLoop::timer_remove(Connection* c) {
  if (c->timer == TimerList::None) return;
  TimerQueue& q = queue(c->timer);
  (c->prev ? c->prev->next : q.head) = c->next;
  (c->next ? c->next->prev : q.tail) = c->prev;
  c->prev = c->next = nullptr;
  c->timer = TimerList::None;
}

void EventLoop::expire_timers() {
  const int64_t now = now_ms();
  while (_handshakes.head && _handshakes.head->deadline_ms <= now) {
    Connection* c = _handshakes.head;
    if (c->state == ConnState::Joining)
      send_http_and_close(c, http_error(503, "the broker did not confirm this conversation"));
    else
      close_now(c);  // headers too slow: no answer owed
  }
  while (_closings.head && _closings.head->deadline_ms <= now) close_now(_closings.head);
  while (_idle.head && _idle.head->deadline_ms <= now) {
    Connection* c = _idle.head;
    if (c->ping_sent) {
      _stats.idle_closes.add();
      send_close(c, close_code::GoingAway, "idle timeout");  // moves it to the closing list
      continue;
    }
    // Quiet for idle_timeout_ms: ping; any frame (the pong) restarts the timer.
    timer_remove(c);
    timer_add(c, TimerList::Idle, _ctx.limits.idle_timeout_ms.load(std::memory_order_relaxed));
    c->ping_sent = true;
    send(c, SharedFrame::message({}, Opcode::Ping, {}));
  }
}

int EventLoop::next_timeout_ms() const {
  int64_t next = now_ms() + 1000;
  if (_handshakes.head) next = std::min(next, _handshakes.head->deadline_ms);
  if (_closings.head) next = std::min(next, _closings.head->deadline_ms);
  if (_idle.head) next = std::min(next, _idle.head->deadline_ms);
  if (_stopping) next = std::min(next, _stop_deadline_ms);
  return static_cast<int>(std::max<int64_t>(0, next - now_ms()));
}

}  // namespace flowrelay::ws
