// What an HTTP endpoint of the daemon sees and answers: one parsed request, and a reply that
// may be sent later from any thread (the publish API answers from the broker's completion).
// The event-driven listener (http_api.*) parses requests into this and writes the answers.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace flowrelay {

struct HttpRequest {
  std::string method;                                        // "GET", "POST", ...
  std::string path;                                          // the target before '?', not decoded
  std::string query;                                         // after '?', not decoded ("" if none)
  std::vector<std::pair<std::string, std::string>> headers;  // as received
  std::string body;                                          // complete (Content-Length)
  std::string remote_addr;                                   // "ip:port"

  // The first header of that name (case-insensitive), or "".
  std::string_view header(std::string_view name) const;
};

struct HttpAnswer {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra ones (Allow, Retry-After)
};

// Completes a request. Call exactly once, from any thread; the listener may already have closed
// the connection (then the answer is dropped).
using HttpReply = std::function<void(HttpAnswer)>;

// An answer with `body` (a JSON object) plus the newline every JSON answer ends with.
HttpAnswer json_answer(int status, std::string body);

}  // namespace flowrelay
