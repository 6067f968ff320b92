// Session: the handshake, the lifecycle, the outbound queue and its policies, the resume seam.
// The client's frames are in session_frames.cpp.
#include "session.h"

#include <algorithm>
#include <cstring>

#include "access_policy.h"
#include "ack_window.h"
#include "delta_merge.h"
#include "envelope.h"
#include "envelope_reply.h"
#include "handshake.h"
#include "history_entry.h"
#include "utf8_repair.h"

namespace flowrelay::ws {

Session::Session(SessionHost& host, const SessionConfig& config, uint64_t id)
    : Connection(host, config, id) {}

Session::~Session() {
  delete _in;
  delete _message;
  if (_accept_101) _accept_101->unref();
}

void Session::start() { _host.set_timer(*this, SessionTimer::Handshake); }

void Session::reject(int status, std::string_view reason) {
  if (_state != State::Handshake && _state != State::Authorizing && _state != State::Joining)
    return;
  send_http(http_error(status, reason));
}

// ---------------------------------------------------------------------------- handshake

size_t Session::on_handshake(char* data, size_t len) {
  const std::string_view text(data, len);
  const size_t max_header = _config.limits.max_header_size.load(std::memory_order_relaxed);
  const size_t end = text.find("\r\n\r\n");
  if (end == std::string_view::npos ? len > max_header : end + 4 > max_header) {
    send_http(http_error(431, "request headers too large"));
    return 0;
  }
  if (end == std::string_view::npos) return 0;  // wait for the rest of the headers
  const auto policy = _host.access_policy();
  HandshakeResult hs = accept_handshake(
      text.substr(0, end + 4), _config.path,
      _config.limits.max_conversation_id_length.load(std::memory_order_relaxed), policy.get());
  if (hs.status != 101) {
    if (hs.status == 401 || hs.status == 403) _config.stats.access_rejections.add();
    send_http(hs.response);
    return 0;
  }
  _can_publish = hs.can_publish;
  _envelope = hs.envelope;
  if (!hs.user.empty()) _user = std::make_unique<std::string>(std::move(hs.user));
  if (hs.resume) {
    _seam.begin(hs.since, hs.epoch);  // live frames are held from the first one on
    _resume_since = hs.since;
  }
  _bucket.fill(_config.limits, _host.now_ms());
  _accept_101 = SharedFrame::raw(hs.response);
  // The backend's connect proxy has the last word, after the local checks. Meanwhile the
  // connection is parked: what the client sends waits in `_in` (bounded as while Joining) and
  // the handshake timer bounds the wait.
  const flowrelay_status a = _host.authorize(*this, hs.conversation, hs.cookie, hs.authorization);
  if (a == FLOWRELAY_OK) {
    _state = State::Authorizing;
  } else if (a == FLOWRELAY_EUNSUPPORTED) {
    join(hs.conversation);
  } else {
    send_http(http_error(503, "the backend cannot admit clients now"));
  }
  return end + 4;
}

void Session::join(std::string_view conversation) {
  const flowrelay_status s = _host.join(*this, conversation);
  if (s != FLOWRELAY_OK && s != FLOWRELAY_PENDING)
    return send_http(http_error(503, "the broker cannot take this conversation now"));
  if (s == FLOWRELAY_OK) return open();
  // The 101 waits for the broker's confirmation, so that no message published after the
  // client sees its 101 can miss it. Frames the client sends meanwhile wait in `_in`.
  _state = State::Joining;
}

void Session::authorized(const ConnectAnswer& a) {
  if (_state != State::Authorizing) return;  // timed out or closed meanwhile
  if (a.code == 200) {
    _can_publish = _can_publish && a.can_publish;  // both the token and the backend must grant it
    if (!a.user.empty()) _user = std::make_unique<std::string>(a.user);
    join(a.conversation);
    return drain_held();
  }
  if (a.code == 401 || a.code == 403) {
    _config.stats.access_rejections.add();
    const std::string_view reason = a.reason.empty() ? std::string_view("not admitted") : a.reason;
    return send_http(http_error(static_cast<int>(a.code), utf8_prefix(reason, 256)));
  }
  send_http(http_error(503, "the backend cannot admit clients now"));
}

void Session::admit() {
  if (_state == State::Joining) open();
}

void Session::open() {
  _state = State::Open;
  _host.opened(*this);
  touch();
  send(_accept_101);
  _accept_101 = nullptr;
  if (_seam.active()) _host.read_history(*this, _resume_since);
}

void Session::drain_held() {
  if (_state != State::Open || !_in) return;
  std::string held;
  held.swap(*_in);
  delete _in;
  _in = nullptr;
  feed(held.data(), held.size());
}

// ---------------------------------------------------------------------------- timers

void Session::touch() {
  _ping_sent = false;
  const bool idle = _config.limits.idle_timeout_ms.load(std::memory_order_relaxed) != 0;
  _host.set_timer(*this, idle ? SessionTimer::Idle : SessionTimer::None);
}

void Session::on_timer() {
  switch (_state) {
    case State::Handshake:  // headers too slow: no answer owed
    case State::Closing:
      _state = State::Closed;
      return;
    case State::Authorizing:
      return send_http(http_error(503, "the backend did not answer in time"));
    case State::Joining:
      return send_http(http_error(503, "the broker did not confirm this conversation"));
    case State::Open:
      if (_ping_sent) {
        _config.stats.idle_closes.add();
        return send_close(close_code::GoingAway, "idle timeout");
      }
      // Quiet for idle_timeout_ms: ping; any frame (the pong) restarts the timer.
      touch();
      _ping_sent = true;
      return send(ws_frame({}, Opcode::Ping, {}));
    case State::Closed:
      return;
  }
}

bool Session::take_token() { return _bucket.take(_config.limits, _host.now_ms()); }

// ---------------------------------------------------------------------------- output

void Session::send(SharedFrame* f) {
  if (_slow) {  // already being dropped: nothing more is queued for it
    f->unref();
    return;
  }
  const uint64_t max = _config.limits.max_outbound_bytes.load(std::memory_order_relaxed);
  const uint64_t queued = _out.bytes() + f->size();
  if (queued > max / 2) [[unlikely]] {
    if (f->lane() == FLOWRELAY_LANE_LOG) {
      // Falling behind: the log lane goes first, so the conversation keeps its room.
      f->unref();
      _config.stats.log_frames_shed.add();
      return;
    }
    if (f->is_delta() && merge_into_tail(f)) {
      if (_out.bytes() > max && _state == State::Open) drop_slow(_out.bytes());
      return;
    }
  }
  const bool was_empty = _out.empty();
  _out.push(f);
  if (queued > max && _state == State::Open) drop_slow(queued);
  if (was_empty) _host.wants_write(*this);
}

// Backed up: a delta that continues the queued tail delta (same reply, next seq) joins it, so
// a slow reader gets the whole text in fewer frames instead of being dropped. Only then: the
// merged frame is this session's own copy (no longer shared), which costs CPU. Takes `f` when
// it returns true.
bool Session::merge_into_tail(SharedFrame* f) {
  if (_out.empty() || (_out.count() == 1 && _out.head_offset() > 0)) return false;  // started
  const SharedFrame* tail = _out.back();
  if (!can_merge(*tail, *f)) return false;
  _out.replace_back(merge_deltas(*tail, *f));
  f->unref();
  _config.stats.deltas_merged.add();
  return true;
}

// Slow consumer: its backlog is dropped now (memory stays bounded) and a close 1008 is queued
// behind whatever frame was half written, so the stream stays whole frames.
void Session::drop_slow(uint64_t queued) {
  _out.drop_unstarted();
  _slow = true;
  _config.stats.slow_consumer_closes.add();
  _host.slow_consumer(*this, queued);
  static constexpr char kBody[] = "\x03\xf0slow consumer";  // 1008
  static_assert(close_code::PolicyViolation == 0x03f0);
  _out.push(ws_frame({}, Opcode::Close, {kBody, sizeof kBody - 1}));
  _state = State::Closing;
  _host.leave(*this);
  _host.set_timer(*this, SessionTimer::Closing);
}

void Session::send_error(int code, std::string_view reason, std::string_view id) {
  send(ws_frame({}, Opcode::Text, envelope_error(code, reason, id)));
}

void Session::close(uint16_t code, std::string_view reason) {
  if (_state == State::Joining || _state == State::Authorizing) return reject(503, reason);
  send_close(code, reason);
}

void Session::send_close(uint16_t code, std::string_view reason) {
  if (_state != State::Open) return;
  if (code == close_code::ProtocolError || code == close_code::UnsupportedData ||
      code == close_code::InvalidPayload || code == close_code::TooBig)
    _config.stats.protocol_closes.add();
  char body[125];
  body[0] = char(code >> 8);
  body[1] = char(code & 0xff);
  const size_t n = utf8_prefix(reason, sizeof body - 2).size();  // whole characters only
  if (n) std::memcpy(body + 2, reason.data(), n);                // reason may be {} (null data)
  begin_closing(ws_frame({}, Opcode::Close, {body, n + 2}));
}

void Session::send_http(std::string_view response) {
  _config.stats.handshakes_rejected.add();
  begin_closing(SharedFrame::raw(response));
}

void Session::begin_closing(SharedFrame* goodbye) {
  const bool member = _state == State::Joining || _state == State::Open;
  _state = State::Closing;
  if (member) _host.leave(*this);
  send(goodbye);
  _host.set_timer(*this, SessionTimer::Closing);
}

// ---------------------------------------------------------------------------- resume

namespace {

// A history entry's frame: a message, or a reply's SNAPSHOT / REPLY (or any other step).
SharedFrame* history_frame(const HistoryResult::Entry& e, std::string_view epoch) {
  SharedFrame* f = ws_frame({}, Opcode::Text, history_envelope(e, epoch));
  f->set_position(e.lane, e.offset);
  return f;
}

}  // namespace

// History first, then a "resumed" frame, then the frames held meanwhile minus those the replay
// already carried (or, when not recovered, up to the offset the client is told). See
// docs/PROTOCOL.md and plugins/common/resume_seam.h.
void Session::replay(const HistoryResult& h) {
  const auto done = _seam.replay(
      h, _state == State::Open, _config.stats, history_frame,
      [](bool recovered, uint64_t offset, std::string_view epoch) {
        return ws_frame({}, Opcode::Text, envelope_resumed(recovered, offset, epoch));
      },
      [this](SharedFrame* f) { send(f); });
  if (done == ResumeSeam::Replayed::Overflow) {
    // More live traffic arrived during the read than the session may queue: closed like any
    // slow consumer; it can resume again from its last offset.
    _config.stats.slow_consumer_closes.add();
    send_close(close_code::PolicyViolation, "slow consumer");
  }
}

}  // namespace flowrelay::ws
