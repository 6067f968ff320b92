#include "sse_session.h"

#include <algorithm>

#include "envelope.h"
#include "history_entry.h"
#include "net/http_head.h"
#include "net/http_response.h"
#include "utf8_repair.h"

namespace flowrelay::sse {

SseSession::SseSession(SessionHost& host, const SessionConfig& config, uint64_t id)
    : Connection(host, config, id) {}

SseSession::~SseSession() { delete _in; }

void SseSession::start() {
  _bucket.fill(_config.limits, _host.now_ms());
  _host.set_timer(*this, SessionTimer::Handshake);
}

void SseSession::reject(int status, std::string_view reason) {
  if (_state != State::Handshake && _state != State::Authorizing && _state != State::Joining)
    return;
  send_http(net::http_error(status, reason, _request ? _request->cors : std::string()));
}

// ---------------------------------------------------------------------------- requests

void SseSession::feed(char* data, size_t len) {
  // An open stream reads nothing: what a client sends on it is dropped (EOF still closes it).
  if (_state == State::Open || _state == State::Closing || _state == State::Closed) return;
  if (!_in) _in = new std::string;
  const uint64_t bound = _config.limits.max_header_size.load(std::memory_order_relaxed) +
                         _config.limits.max_message_size.load(std::memory_order_relaxed);
  if (_in->size() + len > 2 * bound) {
    // A client pipelining requests while one waits for the backend or the broker.
    return send_http(net::http_error(429, "too many requests queued on this connection"));
  }
  _in->append(data, len);
  on_input();
}

void SseSession::drain_held() { on_input(); }

void SseSession::on_input() {
  while (_in && _state == State::Handshake && !_publishing) {
    if (_request) {  // a POST waiting for its body
      if (_in->size() < _request->content_length) return;
      on_body();
      continue;
    }
    const size_t max_header = _config.limits.max_header_size.load(std::memory_order_relaxed);
    const size_t end = net::find_head_end(*_in);
    if (net::head_too_large(end, _in->size(), max_header))
      return send_http(net::http_error(431, "request headers too large"));
    if (end == std::string::npos) return;  // wait for the rest of the head
    const auto policy = _host.access_policy();
    SseRequest r = parse_request(
        std::string_view(*_in).substr(0, end), _config.path,
        _config.limits.max_conversation_id_length.load(std::memory_order_relaxed),
        _config.limits.max_message_size.load(std::memory_order_relaxed), policy.get());
    if (r.status != 0) {
      if (r.status == 401 || r.status == 403) _config.stats.access_rejections.add();
      return send_http(r.response);
    }
    _in->erase(0, end);
    on_request(std::move(r));
  }
}

void SseSession::on_request(SseRequest&& r) {
  if (r.kind == RequestKind::Preflight) {
    std::string response = "HTTP/1.1 204 No Content\r\n" + r.cors;
    if (!r.keep_alive) response += "Connection: close\r\n";
    response += "\r\n";
    _request = std::make_unique<SseRequest>(std::move(r));
    return answer(std::move(response));
  }
  _can_publish = r.can_publish;
  if (!r.user.empty()) _user = std::make_unique<std::string>(r.user);
  _request = std::make_unique<SseRequest>(std::move(r));
  if (_request->kind == RequestKind::Publish) return;  // on_input() waits for the body
  _envelope = _request->ndjson;
  if (_request->resume) {
    _seam.begin(_request->since, _request->epoch);  // live frames are held from now on
  }
  delete _in;  // a stream takes no more input
  _in = nullptr;
  const SseRequest& q = *_request;
  const flowrelay_status a = _host.authorize(*this, q.conversation, q.cookie, q.authorization);
  if (a == FLOWRELAY_OK) {
    _state = State::Authorizing;
  } else if (a == FLOWRELAY_EUNSUPPORTED) {
    join();
  } else {
    send_http(net::http_error(503, "the backend cannot admit clients now", q.cors));
  }
}

void SseSession::on_body() {
  SseRequest& q = *_request;
  _body.assign(*_in, 0, q.content_length);
  _in->erase(0, q.content_length);
  _config.stats.bytes_in.add(_body.size());
  auto refuse = [&](int status, std::string_view reason, std::string_view extra = {}) {
    answer(response(status, "text/plain", std::string(reason) + "\n", q.keep_alive,
                    std::string(extra) + q.cors));
  };
  if (!is_valid_utf8(_body)) return refuse(400, "the body is not valid UTF-8");
  _lane = FLOWRELAY_LANE_MESSAGE;
  _publish_id.clear();
  if (q.body_type == BodyType::Json) {
    ClientPublish frame;
    std::string error;
    if (!parse_client_frame(_body, frame, error)) {
      _config.stats.envelope_errors.add();
      return refuse(400, error);
    }
    if (frame.is_reply)
      return refuse(400, "reply steps go through the publish API or a WebSocket producer");
    _lane = frame.lane;
    _body = std::move(frame.data);
    _publish_id = std::move(frame.id);
  }
  if (!take_token()) {
    _config.stats.rate_limited.add();
    return refuse(429, "publishing faster than publish_rate", "Retry-After: 1\r\n");
  }
  const flowrelay_status a = _host.authorize(*this, q.conversation, q.cookie, q.authorization);
  if (a == FLOWRELAY_OK) {
    _state = State::Authorizing;
  } else if (a == FLOWRELAY_EUNSUPPORTED) {
    publish();
  } else {
    refuse(503, "the backend cannot admit clients now");
  }
}

void SseSession::publish() {
  const SseRequest& q = *_request;
  if (!_can_publish) {
    _config.stats.forbidden_publishes.add();
    return answer(response(403, "text/plain", "this token does not grant publishing here\n",
                           q.keep_alive, q.cors));
  }
  (_lane == FLOWRELAY_LANE_LOG ? _config.stats.log_messages_in : _config.stats.messages_in).add();
  const flowrelay_status s = _host.publish_to(*this, q.conversation, _lane, _body, _publish_id);
  std::string().swap(_body);  // the host copied it: a kept-alive connection holds no body
  if (s == FLOWRELAY_OK) {
    _publishing = true;  // published() answers; the handshake timer keeps running meanwhile
    _waited = false;
    return;
  }
  _config.stats.publish_errors.add();
  const int code = s == FLOWRELAY_EUNSUPPORTED ? 501 : 503;
  answer(response(code, "text/plain", "the broker cannot take this message now\n", q.keep_alive,
                  q.cors));
}

void SseSession::published(const PublishOutcome& o) {
  if (!_publishing || !_request) return;
  _publishing = false;
  const SseRequest& q = *_request;
  if (o.ok) {
    // The same JSON as an envelope ack: {"type":"ack","offset":N,"epoch":"E"} (+ "id").
    answer(response(200, "application/json",
                    envelope_ack(o.id, o.offset, o.epoch, o.relayed) + "\n", q.keep_alive, q.cors));
  } else {
    const uint32_t code = o.code >= 400 && o.code <= 599 ? o.code : 500;
    (code < 500    ? _config.stats.refused_4xx
     : code == 501 ? _config.stats.refused_501
     : code == 503 ? _config.stats.refused_503
                   : _config.stats.refused_500)
        .add();
    answer(response(static_cast<int>(code), "text/plain",
                    (o.reason.empty() ? std::string("not published") : o.reason) + "\n",
                    q.keep_alive, q.cors));
  }
  on_input();  // what the client pipelined meanwhile
}

void SseSession::answer(std::string bytes) {
  const bool keep = _request && _request->keep_alive;
  _request.reset();
  send_bytes(bytes);
  if (!keep) return begin_closing();
  _state = State::Handshake;  // the next request, with a fresh timer
  _host.set_timer(*this, SessionTimer::Handshake);
  // What the client pipelined: on_input()'s loop goes on with it (an answer given inside it),
  // or published() and authorized() call on_input() (an answer given later).
}

void SseSession::authorized(const ConnectAnswer& a) {
  if (_state != State::Authorizing || !_request) return;  // timed out or closed meanwhile
  const std::string cors = _request->cors;
  if (a.code == 200) {
    _can_publish = _can_publish && a.can_publish;  // both the token and the backend must grant it
    if (!a.user.empty()) _user = std::make_unique<std::string>(a.user);
    if (_request->kind == RequestKind::Stream) return join();
    _state = State::Handshake;
    publish();
    return on_input();
  }
  if (a.code == 401 || a.code == 403) {
    _config.stats.access_rejections.add();
    const std::string_view reason = a.reason.empty() ? std::string_view("not admitted") : a.reason;
    return send_http(net::http_error(static_cast<int>(a.code), utf8_prefix(reason, 256), cors));
  }
  send_http(net::http_error(503, "the backend cannot admit clients now", cors));
}

// ---------------------------------------------------------------------------- the stream

void SseSession::join() {
  const flowrelay_status s = _host.join(*this, _request->conversation);
  if (s != FLOWRELAY_OK && s != FLOWRELAY_PENDING)
    return send_http(
        net::http_error(503, "the broker cannot take this conversation now", _request->cors));
  if (s == FLOWRELAY_OK) return open();
  // The head waits for the broker's confirmation, so that no message published after the
  // client sees its 200 can miss it.
  _state = State::Joining;
}

void SseSession::admit() {
  if (_state == State::Joining) open();
}

void SseSession::open() {
  _state = State::Open;
  _host.opened(*this);
  send_bytes(stream_head(_envelope, _request->cors,
                         _config.limits.retry_ms.load(std::memory_order_relaxed)));
  const bool heartbeats = _config.limits.idle_timeout_ms.load(std::memory_order_relaxed) != 0;
  _host.set_timer(*this, heartbeats ? SessionTimer::Idle : SessionTimer::None);
  if (_seam.active()) _host.read_history(*this, _request->since);
  _request.reset();  // an open stream needs none of it: an idle stream stays small
}

bool SseSession::deliver(SharedFrame* f) {
  if (_seam.intercept(f, _config.limits.max_outbound_bytes)) [[unlikely]]
    return false;
  send(f);
  return true;
}

// History first, then a `resumed` event, then the events held meanwhile minus those the replay
// carried (plugins/common/resume_seam.h).
void SseSession::replay(const HistoryResult& h) {
  const auto done = _seam.replay(
      h, _state == State::Open, _config.stats,
      [this](const HistoryResult::Entry& e, std::string_view epoch) {
        SharedFrame* f = SharedFrame::raw(history_event(e, epoch, _envelope));
        f->set_position(e.lane, e.offset);
        return f;
      },
      [this](bool recovered, uint64_t offset, std::string_view epoch) {
        return SharedFrame::raw(resumed_event(_envelope, recovered, offset, epoch));
      },
      [this](SharedFrame* f) { send(f); });
  if (done == ResumeSeam::Replayed::Overflow) {
    _config.stats.slow_consumer_closes.add();
    close(close_code::PolicyViolation, "slow consumer");
  }
}

void SseSession::on_timer() {
  switch (_state) {
    case State::Handshake:
      // The host answers every publish (the publish proxy and the broker have their own
      // timeouts): wait one more period for it. An answer lost even so (out of memory) closes
      // the connection without one, so the client knows the outcome is unknown rather than
      // being told a refusal that may be false.
      if (_publishing && !_waited) {
        _waited = true;
        _host.set_timer(*this, SessionTimer::Handshake);
        return;
      }
      _state = State::Closed;  // a request too slow, or a kept-alive connection left idle
      return;
    case State::Closing:
      _state = State::Closed;
      return;
    case State::Authorizing:
      return send_http(net::http_error(503, "the backend did not answer in time"));
    case State::Joining:
      return send_http(net::http_error(503, "the broker did not confirm this conversation"));
    case State::Open:
      // A heartbeat only when a whole period passed without a write: a busy stream pays
      // nothing, a quiet one says something every one to two periods.
      if (!_wrote) send_bytes(heartbeat(_envelope));
      _wrote = false;
      _host.set_timer(*this, SessionTimer::Idle);
      return;
    case State::Closed:
      return;
  }
}

void SseSession::close(uint16_t code, std::string_view reason) {
  if (_state == State::Joining || _state == State::Authorizing) return reject(503, reason);
  if (_state != State::Open) return;
  send_bytes(close_event(_envelope, code, utf8_prefix(reason, 123)));
  begin_closing();
}

// ---------------------------------------------------------------------------- output

void SseSession::send(SharedFrame* f) {
  if (_slow) {  // already being dropped: nothing more is queued for it
    f->unref();
    return;
  }
  _wrote = true;
  const uint64_t max = _config.limits.max_outbound_bytes.load(std::memory_order_relaxed);
  const uint64_t queued = _out.bytes() + f->size();
  if (queued > max / 2 && f->lane() == FLOWRELAY_LANE_LOG) [[unlikely]] {
    // Falling behind: the log lane goes first, so the conversation keeps its room.
    f->unref();
    _config.stats.log_frames_shed.add();
    return;
  }
  const bool was_empty = _out.empty();
  _out.push(f);
  if (queued > max && _state == State::Open) return drop_slow(queued);
  if (was_empty) _host.wants_write(*this);
}

void SseSession::send_bytes(std::string_view bytes) { send(SharedFrame::raw(bytes)); }

void SseSession::send_http(std::string_view response) {
  _config.stats.handshakes_rejected.add();
  send_bytes(response);
  begin_closing();
}

void SseSession::begin_closing() {
  const bool member = _state == State::Joining || _state == State::Open;
  _state = State::Closing;
  if (member) _host.leave(*this);
  _host.set_timer(*this, SessionTimer::Closing);
}

// Slow consumer: its backlog is dropped now (memory stays bounded) and the close event queued
// behind whatever event was half written, so the stream stays whole events.
void SseSession::drop_slow(uint64_t queued) {
  _out.drop_unstarted();
  _config.stats.slow_consumer_closes.add();
  _host.slow_consumer(*this, queued);
  _out.push(SharedFrame::raw(close_event(_envelope, close_code::PolicyViolation, "slow consumer")));
  _slow = true;
  _host.wants_write(*this);
  begin_closing();
}

// Both the connection's bucket and its address's: a client cannot reset the rate by opening a
// new connection for each POST.
bool SseSession::take_token() {
  return _bucket.take(_config.limits, _host.now_ms()) && _host.take_address_token(*this);
}

}  // namespace flowrelay::sse
