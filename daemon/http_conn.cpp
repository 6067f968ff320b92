// HttpLoop: one connection's way through a request: read the head, read the body, dispatch,
// write the answer, then the next request (keep-alive) or close.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "http_api.h"
#include "http_loop.h"
#include "net/http_response.h"

namespace flowrelay {

namespace {

constexpr size_t kReadChunk = 16384;
constexpr int kReadBudget = 4;  // reads per readiness event before other connections get a turn
// Bytes of later (pipelined) requests buffered while one is being answered; past it the
// connection is not read until the answer is out.
constexpr size_t kPipelineBuffer = 65536;

}  // namespace

void HttpLoop::set_events(Conn* c) {
  uint32_t want = 0;
  const bool busy = c->state == State::Dispatched || c->state == State::Writing;
  if (!c->peer_closed && !(busy && c->in.size() >= kPipelineBuffer)) want |= EPOLLIN | EPOLLRDHUP;
  if (c->out_done < c->out.size()) want |= EPOLLOUT;
  if (want == c->events) return;
  c->events = want;
  epoll_event ev{};
  ev.events = want;
  ev.data.ptr = c;
  epoll_ctl(_epoll_fd, EPOLL_CTL_MOD, c->fd, &ev);
}

void HttpLoop::on_readable(Conn* c) {
  for (int i = 0; i < kReadBudget; ++i) {
    const size_t had = c->in.size();
    c->in.resize(had + kReadChunk);
    const ssize_t n = read(c->fd, c->in.data() + had, kReadChunk);
    c->in.resize(had + (n > 0 ? static_cast<size_t>(n) : 0));
    if (n > 0) {
      if (c->state == State::Lingering) c->in.clear();  // after an error answer: discarded
      if (static_cast<size_t>(n) < kReadChunk) break;
      continue;
    }
    if (n == 0) {
      c->peer_closed = true;  // a client may half-close after its requests: answer them
      break;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    if (errno == EINTR) continue;
    return close_now(c);  // ECONNRESET and friends
  }
  if (c->state == State::Head || c->state == State::Body) advance(c);
  if (c->dead) return;
  if (c->peer_closed && c->state != State::Dispatched && c->state != State::Writing)
    return close_now(c);  // nothing left that could still be answered
  set_events(c);
}

void HttpLoop::advance(Conn* c) {
  if (c->state == State::Head) {
    if (c->in.empty()) return;
    set_timer(c, Timer::Header);  // the first byte of a request: its head and body are due
    const size_t end = net::find_head_end(c->in, c->scanned);
    if (net::head_too_large(end, c->in.size(), _config.max_head_bytes))
      return refuse(
          c, 431, "request head larger than " + std::to_string(_config.max_head_bytes) + " bytes");
    if (end == std::string::npos) {
      c->scanned = c->in.size();
      return;
    }
    net::HeadParse p = net::parse_request_head(std::string_view(c->in).substr(0, end),
                                               _config.max_body_bytes->load());
    if (p.status != 0) return refuse(c, p.status, p.reason);
    c->head = std::move(p.head);
    c->head_len = end;
    c->state = State::Body;
  }
  if (c->state == State::Body && c->in.size() - c->head_len >= c->head.content_length) dispatch(c);
}

void HttpLoop::dispatch(Conn* c) {
  set_timer(c, Timer::None);  // the handler answers in its own time (the publish timeout)
  c->state = State::Dispatched;
  ++c->requests;
  _stats.requests.fetch_add(1, std::memory_order_relaxed);
  HttpRequest req;
  req.method = c->head.method;  // kept: HEAD answers carry no body
  req.path = std::move(c->head.path);
  req.query = std::move(c->head.query);
  req.headers = std::move(c->head.headers);
  req.body.assign(c->in, c->head_len, c->head.content_length);
  req.remote_addr = c->remote;
  c->in.erase(0, c->head_len + c->head.content_length);
  c->scanned = 0;
  try {
    _dispatch(req, reply_for(c));
  } catch (const std::exception& e) {
    // A handler that threw answered nothing; the reply it may have sent already wins.
    reply_for(c)(json_error(500, std::string("internal error: ") + e.what()));
  }
}

void HttpLoop::answer(Conn* c, HttpAnswer&& a) {
  net::ResponseParts r;
  r.status = a.status;
  r.content_type = a.content_type;
  r.body = a.body;
  r.headers = &a.headers;
  r.keep_alive = c->head.keep_alive && !(c->peer_closed && c->in.empty()) && !_stopping;
  r.http10_keep_alive = r.keep_alive && !c->head.http11;
  r.head_only = c->head.method == "HEAD";
  c->out = net::build_response(r);
  c->out_done = 0;
  c->state = State::Writing;
  flush(c);
}

void HttpLoop::refuse(Conn* c, int status, const std::string& reason) {
  _stats.bad_requests.fetch_add(status == 408 ? 0 : 1, std::memory_order_relaxed);
  const HttpAnswer a = json_error(status, reason);
  net::ResponseParts r;
  r.status = status;
  r.content_type = a.content_type;
  r.body = a.body;
  r.keep_alive = false;
  c->out = net::build_response(r);
  c->out_done = 0;
  c->head.keep_alive = false;
  c->state = State::Writing;
  flush(c);
}

void HttpLoop::flush(Conn* c) {
  while (c->out_done < c->out.size()) {
    const ssize_t n =
        send(c->fd, c->out.data() + c->out_done, c->out.size() - c->out_done, MSG_NOSIGNAL);
    if (n > 0) {
      c->out_done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      set_timer(c, Timer::Idle);  // a reader that stops reading is dropped after idle_timeout
      return set_events(c);
    }
    return close_now(c);
  }
  after_written(c);
}

void HttpLoop::on_writable(Conn* c) {
  if (c->state == State::Writing) flush(c);
}

void HttpLoop::after_written(Conn* c) {
  c->out.clear();
  c->out_done = 0;
  if (!c->head.keep_alive || _stopping) return linger(c);
  c->state = State::Head;
  c->head = {};
  set_timer(c, Timer::Idle);
  advance(c);  // a pipelined request may be waiting
  if (c->dead) return;
  if (c->peer_closed && c->state != State::Dispatched && c->state != State::Writing)
    return close_now(c);
  set_events(c);
}

void HttpLoop::linger(Conn* c) {
  if (c->peer_closed) return close_now(c);
  // Closing with unread input would reset the connection and could destroy the answer before
  // the client reads it: half-close, then wait (briefly) for the client to close its side.
  shutdown(c->fd, SHUT_WR);
  c->state = State::Lingering;
  c->in.clear();
  set_timer(c, Timer::Linger);
  set_events(c);
}

}  // namespace flowrelay
