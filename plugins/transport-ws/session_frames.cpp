// Session: what the client sends. The upgrade request, then RFC 6455 frames: parsing straight
// from the bytes read (carried over only when a frame is incomplete), fragmentation, UTF-8,
// control frames, the close handshake. What the messages mean is session_publish.cpp.
#include "session.h"

namespace flowrelay::ws {

void Session::feed(char* data, size_t len) {
  if (_state == State::Closing || _state == State::Closed) return;  // after our goodbye: ignored
  if (_state == State::Open) touch();
  // Parse straight from the caller's buffer unless earlier bytes are carried over.
  if (_in) {
    _in->append(data, len);
    data = _in->data();
    len = _in->size();
  }
  size_t used = 0;
  for (;;) {
    size_t n = 0;
    if (_state == State::Handshake)
      n = on_handshake(data + used, len - used);
    else if (_state == State::Open)
      n = on_frames(data + used, len - used);
    used += n;
    // Stop when nothing more can be parsed now; a handshake may be followed by frames.
    if (n == 0 || used == len || (_state != State::Open && _state != State::Handshake)) break;
  }
  const size_t rest = len - used;
  if ((_state == State::Joining || _state == State::Authorizing) &&
      rest > _config.limits.max_message_size.load(std::memory_order_relaxed) +
                 _config.limits.max_header_size.load(std::memory_order_relaxed)) {
    _state = State::Closed;  // floods before it was even let in
  }
  if (rest == 0 || _state == State::Closing || _state == State::Closed) {
    delete _in;
    _in = nullptr;
  } else if (_in) {
    _in->erase(0, used);
  } else {
    _in = new std::string(data + used, rest);
  }
}

size_t Session::on_frames(char* data, size_t len) {
  size_t used = 0;
  const uint64_t max = _config.limits.max_message_size.load(std::memory_order_relaxed);
  while (_state == State::Open) {
    FrameHeader h;
    const auto* p = reinterpret_cast<uint8_t*>(data + used);
    const ParseResult r = parse_header(p, len - used, h);
    if (r == ParseResult::NeedMore) break;
    if (r == ParseResult::Malformed) {
      send_close(close_code::ProtocolError, "malformed frame length");
      break;
    }
    if (uint16_t code = validate_client_frame(h, _frag_opcode != 0, max)) {
      send_close(code, code == close_code::TooBig ? "message too big" : "protocol error");
      break;
    }
    if (h.opcode == uint8_t(Opcode::Continuation) && _message &&
        _message->size() + h.payload_len > max) {
      send_close(close_code::TooBig, "message too big");
      break;
    }
    if (h.opcode == uint8_t(Opcode::Binary)) {  // relayed as text would corrupt; refused
      send_close(close_code::UnsupportedData, "binary frames are not supported");
      break;
    }
    if (len - used < h.header_len + h.payload_len) break;  // wait for the whole frame
    char* payload = data + used + h.header_len;
    unmask(reinterpret_cast<uint8_t*>(payload), h.payload_len, h.mask, 0);
    used += h.header_len + h.payload_len;
    on_frame(h, payload);
  }
  return used;
}

void Session::on_frame(const FrameHeader& h, char* payload) {
  const size_t len = h.payload_len;
  const auto* bytes = reinterpret_cast<const uint8_t*>(payload);
  switch (static_cast<Opcode>(h.opcode)) {
    case Opcode::Text:
      if (h.fin) {
        Utf8Validator v;
        if (!v.feed(bytes, len) || !v.complete())
          return send_close(close_code::InvalidPayload, "invalid UTF-8");
        return on_message({payload, len});
      }
      _utf8.reset();
      if (!_utf8.feed(bytes, len)) return send_close(close_code::InvalidPayload, "invalid UTF-8");
      _frag_opcode = h.opcode;
      _message = new std::string(payload, len);
      return;
    case Opcode::Continuation:
      if (!_utf8.feed(bytes, len)) return send_close(close_code::InvalidPayload, "invalid UTF-8");
      _message->append(payload, len);
      if (!h.fin) return;
      if (!_utf8.complete()) return send_close(close_code::InvalidPayload, "invalid UTF-8");
      _frag_opcode = 0;
      {
        std::unique_ptr<std::string> message(_message);
        _message = nullptr;
        on_message(*message);
      }
      return;
    case Opcode::Ping:
      return send(ws_frame({}, Opcode::Pong, {payload, len}));
    case Opcode::Pong:
      return;
    case Opcode::Close:
      return on_close_frame(payload, len);
    default:
      return send_close(close_code::ProtocolError, "unexpected opcode");
  }
}

void Session::on_close_frame(const char* payload, size_t len) {
  if (len == 0) return begin_closing(ws_frame({}, Opcode::Close, {}));
  if (len == 1) return send_close(close_code::ProtocolError, "close payload of one byte");
  const uint16_t code = uint16_t(uint8_t(payload[0]) << 8 | uint8_t(payload[1]));
  if (!is_valid_close_code(code)) return send_close(close_code::ProtocolError, "bad close code");
  Utf8Validator v;
  if (!v.feed(reinterpret_cast<const uint8_t*>(payload + 2), len - 2) || !v.complete())
    return send_close(close_code::InvalidPayload, "invalid UTF-8 in close reason");
  send_close(code, {});  // echo the peer's code (RFC 6455 5.5.1)
}

}  // namespace flowrelay::ws
