#include "http_head.h"

#include <Poco/Exception.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/String.h>

#include <strings.h>
#include <charconv>
#include <sstream>

namespace flowrelay::net {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

HeadParse refuse(int status, std::string reason) {
  HeadParse p;
  p.status = status;
  p.reason = std::move(reason);
  return p;
}

}  // namespace

size_t find_head_end(std::string_view buf, size_t from) {
  // Back up over a terminator split across two reads.
  const size_t start = from >= 3 ? from - 3 : 0;
  const size_t pos = buf.find("\r\n\r\n", start);
  return pos == std::string_view::npos ? pos : pos + 4;
}

bool has_token(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    const size_t comma = list.find(',');
    if (iequals(trim(list.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

std::string_view RequestHead::header(std::string_view name) const {
  for (const auto& [n, v] : headers)
    if (iequals(n, name)) return v;
  return {};
}

std::string read_request(std::string_view head, Poco::Net::HTTPRequest& req) {
  try {
    std::istringstream in{std::string(head)};
    req.read(in);
  } catch (const Poco::Exception& e) {
    return "malformed HTTP request: " + e.message();
  }
  return {};
}

HeadParse parse_request_head(std::string_view text, uint64_t max_body) {
  Poco::Net::HTTPRequest req;
  if (std::string why = read_request(text, req); !why.empty()) return refuse(400, std::move(why));
  HeadParse p;
  RequestHead& h = p.head;
  const std::string& version = req.getVersion();
  if (version == Poco::Net::HTTPMessage::HTTP_1_0)
    h.http11 = false;
  else if (version.rfind("HTTP/", 0) != 0)
    return refuse(400, "malformed request line");
  else if (version != Poco::Net::HTTPMessage::HTTP_1_1)
    return refuse(505, "HTTP version not supported: " + version.substr(0, 16));
  if (req.getMethod().empty() || req.getURI().empty() || req.getURI()[0] != '/')
    return refuse(400, "malformed request line");
  h.method = req.getMethod();
  h.target = req.getURI();
  const size_t q = h.target.find('?');
  h.path = h.target.substr(0, q);
  if (q != std::string::npos) h.query = h.target.substr(q + 1);
  h.headers.reserve(req.size());
  for (const auto& [name, value] : req) h.headers.emplace_back(name, value);

  const std::string_view te = h.header("Transfer-Encoding");
  if (!te.empty() && !iequals(trim(te), "identity"))
    return refuse(411, "chunked request bodies are not supported: send Content-Length");
  bool length_seen = false;
  for (const auto& [name, value] : h.headers) {
    if (!iequals(name, "Content-Length")) continue;
    const std::string_view v = trim(value);
    uint64_t n = 0;
    const auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (v.empty() || ec == std::errc::invalid_argument || ptr != v.data() + v.size())
      return refuse(400, "Content-Length must be a decimal number");
    if (ec == std::errc::result_out_of_range || n > max_body)
      return refuse(413, "body larger than http.max_body_bytes (" + std::to_string(max_body) + ")");
    // Two different lengths make the framing ambiguous (request smuggling).
    if (length_seen && n != h.content_length) return refuse(400, "conflicting Content-Length");
    h.content_length = n;
    length_seen = true;
  }
  const std::string_view conn = h.header("Connection");
  h.keep_alive = h.http11 ? !has_token(conn, "close") : has_token(conn, "keep-alive");
  return p;
}

}  // namespace flowrelay::net
