// HTTP/1.1 responses as bytes: the status line texts, complete answers with a body, and the
// short plain-text error answers every listener gives before it closes a connection.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace flowrelay::net {

// "Not Found" for 404 (Poco's table of RFC 9110 reason phrases).
const std::string& status_text(int status);

struct ResponseParts {
  int status = 200;
  std::string_view content_type;
  std::string_view body;
  const std::vector<std::pair<std::string, std::string>>* headers = nullptr;  // extra ones
  bool keep_alive = true;          // false: "Connection: close"
  bool http10_keep_alive = false;  // an HTTP/1.0 client asked to keep it: say so
  bool head_only = false;          // HEAD: Content-Length of the body, but no body
};

// The complete response (status line, headers, body).
std::string build_response(const ResponseParts& r);

// A complete error response with a short plain-text body and "Connection: close";
// `extra_headers` end in CRLF.
std::string http_error(int status, std::string_view reason, std::string_view extra_headers = {});

}  // namespace flowrelay::net
