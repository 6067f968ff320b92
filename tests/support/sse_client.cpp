#include "support/sse_client.h"

#include <poll.h>

#include <algorithm>
#include <utility>

#include "support/text.h"

namespace flowrelay::test {

std::string SseEvent::describe() const {
  if (comment) return "comment \"" + data + "\"";
  return "event \"" + event + "\" id \"" + id + "\" data \"" +
         (data.size() > 200 ? data.substr(0, 200) + "..." : data) + "\"";
}

// ---------------------------------------------------------------------------------------------
// SseParser: the spec's steps, in its words where it helps.

void SseParser::feed(std::string_view bytes) {
  if (!_started) {
    // "One leading U+FEFF BYTE ORDER MARK character must be ignored if any are present."
    static constexpr std::string_view kBom = "\xEF\xBB\xBF";
    _start.append(bytes);
    if (_start.size() < kBom.size() && kBom.substr(0, _start.size()) == _start) return;
    _started = true;
    std::string start = std::move(_start);
    if (start.rfind(kBom, 0) == 0) start.erase(0, kBom.size());
    feed(start);
    return;
  }
  for (const char c : bytes) {
    // Lines end in CRLF, a lone LF or a lone CR; a CR at the end of one read may be the first
    // half of a CRLF, so the line ends at the CR and an LF right after it is dropped.
    if (std::exchange(_skip_lf, false) && c == '\n') continue;
    if (c == '\r' || c == '\n') {
      _skip_lf = (c == '\r');
      process_line(_line);
      _line.clear();
    } else {
      _line += c;
    }
  }
}

void SseParser::finish() {
  // "Once the end of the file is reached, any pending data must be discarded."
  _line.clear();
  _data.clear();
  _type.clear();
}

std::optional<SseEvent> SseParser::pop() {
  if (_ready.empty()) return std::nullopt;
  SseEvent e = std::move(_ready.front());
  _ready.pop_front();
  return e;
}

void SseParser::process_line(std::string_view line) {
  if (line.empty()) return dispatch();
  if (line.front() == ':') {  // a comment: ignored by the spec, reported here (heartbeats)
    SseEvent c;
    c.comment = true;
    c.data = std::string(line.substr(1));
    _ready.push_back(std::move(c));
    return;
  }
  const size_t colon = line.find(':');
  const std::string_view field = line.substr(0, colon);
  std::string_view value = colon == std::string_view::npos ? "" : line.substr(colon + 1);
  if (!value.empty() && value.front() == ' ') value.remove_prefix(1);  // one space only
  if (field == "event") {
    _type = value;
  } else if (field == "data") {
    _data.append(value).push_back('\n');
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) _id_buffer = value;
  } else if (field == "retry") {
    if (!value.empty() &&
        std::all_of(value.begin(), value.end(), [](char d) { return d >= '0' && d <= '9'; })) {
      _retry = std::stoull(std::string(value));
    }
  }  // any other field is ignored
}

void SseParser::dispatch() {
  // The last event ID string is set even when nothing is dispatched, and the buffer is not
  // reset: it stays until the server sets it again.
  _last_id = _id_buffer;
  if (_data.empty()) {
    _type.clear();
    return;
  }
  _data.pop_back();  // the LF after the last data line
  SseEvent e;
  if (!_type.empty()) e.event = std::move(_type);
  e.data = std::move(_data);
  e.id = _last_id;
  _ready.push_back(std::move(e));
  _data.clear();
  _type.clear();
}

// ---------------------------------------------------------------------------------------------
// SseClient

SseClient SseClient::connect(uint16_t port, const std::string& path_and_query,
                             const HttpHeaders& headers, Millis timeout) {
  SseClient c(port);
  std::string req =
      "GET " + path_and_query + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) + "\r\n";
  const bool own_accept = std::any_of(headers.begin(), headers.end(),
                                      [](const auto& h) { return lower(h.first) == "accept"; });
  if (!own_accept) req += "Accept: text/event-stream\r\n";
  for (const auto& [name, value] : headers) {
    if (!(lower(name) == "accept" && value.empty())) req += name + ": " + value + "\r\n";
  }
  req += "\r\n";
  c._head = c._raw.request(req, timeout);
  const auto te = c._head.header("Transfer-Encoding");
  c._chunked = te && lower(*te).find("chunked") != std::string::npos;
  return c;
}

HttpResult SseClient::post(uint16_t port, const std::string& path, const std::string& content_type,
                           const std::string& body, HttpHeaders headers, Millis timeout) {
  headers.emplace_back("Content-Type", content_type);
  return http_request(port, "POST", path, body, headers, timeout);
}

void SseClient::absorb() {
  _wire += _raw.take_bytes();
  std::string body;
  if (!_chunked) {
    body = std::exchange(_wire, {});
  } else {
    // "<hex size>[;ext]\r\n<data>\r\n" ... "0\r\n\r\n" (trailers are not expected here).
    while (!_body_done) {
      if (_chunk_left > 0) {
        const size_t n = std::min(_chunk_left, _wire.size());
        body.append(_wire, 0, n);
        _wire.erase(0, n);
        _chunk_left -= n;
        if (_chunk_left > 0) break;
        _chunk_crlf = true;
      }
      if (_chunk_crlf) {
        if (_wire.size() < 2) break;
        _wire.erase(0, 2);
        _chunk_crlf = false;
      }
      const size_t eol = _wire.find("\r\n");
      if (eol == std::string::npos) break;
      _chunk_left = std::stoul(_wire.substr(0, eol), nullptr, 16);
      _wire.erase(0, eol + 2);
      _body_done = (_chunk_left == 0);
    }
  }
  if (_lines) {
    _text += body;
  } else {
    _parser.feed(body);
    if (closed()) _parser.finish();
  }
}

bool SseClient::wait_bytes(Clock::time_point deadline) {
  if (closed()) return false;
  pollfd p{_raw.fd(), POLLIN, 0};
  if (::poll(&p, 1, remaining_ms(deadline)) <= 0) return false;
  _raw.pump();
  return true;
}

std::optional<SseEvent> SseClient::pop_event(bool with_comments) {
  absorb();
  while (auto e = _parser.pop()) {
    if (with_comments || !e->comment) return e;
  }
  return std::nullopt;
}

std::optional<SseEvent> SseClient::next_event(Millis timeout, bool with_comments) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (auto e = pop_event(with_comments)) return e;
    if (closed() || Clock::now() >= deadline) return std::nullopt;
    wait_bytes(deadline);
  }
}

std::optional<std::string> SseClient::next_line(Millis timeout) {
  _lines = true;
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    absorb();
    if (const size_t lf = _text.find('\n'); lf != std::string::npos) {
      std::string line = _text.substr(0, lf);
      _text.erase(0, lf + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return line;
    }
    if (closed() || Clock::now() >= deadline) return std::nullopt;
    wait_bytes(deadline);
  }
}

bool pump_sse_clients(const std::vector<SseClient*>& clients,
                      const std::function<void(size_t, SseEvent&&)>& on_event,
                      const std::function<bool()>& done, Millis timeout) {
  std::vector<RawClient*> raw;
  raw.reserve(clients.size());
  for (SseClient* c : clients) raw.push_back(&c->raw());
  return pump_raw_clients(
      raw,
      [&](size_t i) {
        while (auto e = clients[i]->pop_event()) on_event(i, std::move(*e));
      },
      done, timeout);
}

}  // namespace flowrelay::test
