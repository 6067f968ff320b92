// Server-Sent Events for tests: the HTML Living Standard's "event stream interpretation" on
// received (or canned) bytes, and a blocking loopback client for transport-sse's streams (SSE
// and NDJSON) and its POST publish (docs/PROTOCOL.md "SSE and NDJSON").
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "support/http.h"
#include "support/wait.h"
#include "support/ws_client.h"
#include "support/ws_frame.h"

namespace flowrelay::test {

// What a browser's EventSource would hand to a listener, or a comment line.
struct SseEvent {
  bool comment = false;           // a comment line (": hb"): then `data` is the text after ':'
  std::string event = "message";  // the event type ("message" when no event: field)
  std::string data;               // the data: lines joined by LF
  std::string id;                 // the last event ID string at dispatch (it persists)
  std::string describe() const;
};

// The event stream interpretation (HTML LS, server-sent events), fed incrementally: bytes may be
// split anywhere, even between the CR and the LF of one line end.
class SseParser {
 public:
  void feed(std::string_view bytes);
  // End of the stream: an event whose blank line never came is discarded (as the spec says).
  void finish();
  // The next comment or dispatched event, in stream order.
  std::optional<SseEvent> pop();
  const std::string& last_event_id() const { return _last_id; }
  // The last valid retry: value (only ASCII digits), nullopt before one.
  std::optional<uint64_t> retry_ms() const { return _retry; }

 private:
  void process_line(std::string_view line);
  void dispatch();

  std::string _line;      // the current line, its end not seen yet
  bool _skip_lf = false;  // the last byte was a CR: an LF right after it ends the same line
  std::string _start;     // the first bytes while a UTF-8 BOM (skipped once) is still possible
  bool _started = false;
  std::string _data, _type, _id_buffer, _last_id;
  std::optional<uint64_t> _retry;
  std::deque<SseEvent> _ready;
};

class SseClient {
 public:
  // GET <path_and_query> on 127.0.0.1:<port> with "Accept: text/event-stream" (an Accept in
  // `headers` replaces it; an empty value sends none) and `headers` (Last-Event-ID, Origin,
  // Authorization...), then reads the response head within `timeout` (status() 0 if none came).
  // Throws if the TCP connection fails.
  static SseClient connect(uint16_t port, const std::string& path_and_query,
                           const HttpHeaders& headers = {}, Millis timeout = 5s);
  // POST <path> with that Content-Type on a fresh connection (the publish of transport-sse).
  static HttpResult post(uint16_t port, const std::string& path, const std::string& content_type,
                         const std::string& body, HttpHeaders headers = {}, Millis timeout = 5s);

  int status() const { return _head.status; }
  const HttpHead& head() const { return _head; }
  std::optional<std::string> header(std::string_view name) const { return _head.header(name); }

  // The next dispatched event (comments too when `with_comments`), waiting up to `timeout`;
  // nullopt on timeout or once the stream ended.
  std::optional<SseEvent> next_event(Millis timeout = 5s, bool with_comments = false);
  // NDJSON mode: the next line (without its LF or CRLF). Use one of next_event / next_line per
  // stream.
  std::optional<std::string> next_line(Millis timeout = 5s);
  // The body ended: EOF (the server closed), or a proxy's last chunk. What came before it is
  // still returned by next_event / next_line.
  bool closed() const { return _raw.closed() || _body_done; }
  // Without reading the socket: the next event already received (for pump_sse_clients).
  std::optional<SseEvent> pop_event(bool with_comments = false);
  const SseParser& parser() const { return _parser; }
  RawClient& raw() { return _raw; }

 private:
  explicit SseClient(uint16_t port) : _raw(port) {}
  void absorb();  // socket buffer -> de-chunked body -> parser / lines
  bool wait_bytes(Clock::time_point deadline);  // one bounded read; false when nothing came

  RawClient _raw;
  HttpHead _head;
  bool _chunked = false;  // Transfer-Encoding: chunked (nginx re-frames a close-delimited body)
  std::string _wire;      // received, not yet de-chunked
  size_t _chunk_left = 0;
  bool _chunk_crlf = false;  // the CRLF after a chunk's data is still due
  bool _body_done = false;   // the last (empty) chunk came
  std::string _text;         // de-chunked body not yet split into lines (NDJSON mode)
  bool _lines = false;       // next_line was used: body bytes go to _text, not the parser
  SseParser _parser;
};

// Polls all clients until `done()` or `timeout`, handing every event (no comments) to
// on_event(index, event). Returns done().
bool pump_sse_clients(const std::vector<SseClient*>& clients,
                      const std::function<void(size_t, SseEvent&&)>& on_event,
                      const std::function<bool()>& done, Millis timeout);

}  // namespace flowrelay::test
