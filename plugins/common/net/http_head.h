// Reading an HTTP/1.x request head out of a growing receive buffer, for every listener built on
// an event loop (the daemon's HTTP API, transport-ws's upgrade, transport-sse): where the head
// ends, the size limits (431, 413), the body framing (Content-Length; chunked is refused with
// 411) and whether the connection stays open after the answer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace Poco::Net {
class HTTPRequest;
}

namespace flowrelay::net {

// The offset just past the blank line that ends the head in `buf`, or npos. `from` is where
// the previous call stopped looking (the caller keeps it so a head that trickles in byte by
// byte is not scanned from the start every time).
size_t find_head_end(std::string_view buf, size_t from = 0);

// True if `buf` (no complete head found yet) or the head already exceeds `max_head`: 431.
inline bool head_too_large(size_t head_end, size_t buffered, size_t max_head) {
  return head_end == std::string_view::npos ? buffered > max_head : head_end > max_head;
}

struct RequestHead {
  std::string method;
  std::string target;  // as sent: path and query
  std::string path;    // before '?'
  std::string query;   // after '?' ("" if none)
  bool http11 = true;  // HTTP/1.1 (else 1.0)
  std::vector<std::pair<std::string, std::string>> headers;
  uint64_t content_length = 0;
  bool keep_alive = true;  // the connection may serve another request after this one

  // The first header of that name (case-insensitive), or "".
  std::string_view header(std::string_view name) const;
};

struct HeadParse {
  int status = 0;      // 0: parsed; else the HTTP error to answer (then close)
  std::string reason;  // why, for the error body
  RequestHead head;
};

// Poco reads `head` (request line and headers through the blank line) into `req`, with its own
// field count and size limits: "" if fine, else why it is malformed (400). Every listener reads
// a head this way, so a malformed one is refused with the same words.
std::string read_request(std::string_view head, Poco::Net::HTTPRequest& req);

// Parses `head` (request line and headers through the blank line). Refuses a malformed
// request (400), a body larger than `max_body` (413), a chunked body (411), an HTTP version
// other than 1.0 and 1.1 (505).
HeadParse parse_request_head(std::string_view head, uint64_t max_body);

// Case-insensitive search of `token` in a comma-separated header value (Connection: a, b).
bool has_token(std::string_view list, std::string_view token);

}  // namespace flowrelay::net
