#include "http_response.h"

#include <Poco/Net/HTTPResponse.h>

namespace flowrelay::net {

const std::string& status_text(int status) {
  return Poco::Net::HTTPResponse::getReasonForStatus(
      static_cast<Poco::Net::HTTPResponse::HTTPStatus>(status));
}

std::string build_response(const ResponseParts& r) {
  std::string out;
  out.reserve(128 + r.body.size());
  out += "HTTP/1.1 ";
  out += std::to_string(r.status);
  out += ' ';
  out += status_text(r.status);
  out += "\r\nContent-Type: ";
  out += r.content_type;
  out += "\r\nContent-Length: ";
  out += std::to_string(r.body.size());
  out += "\r\n";
  if (!r.keep_alive)
    out += "Connection: close\r\n";
  else if (r.http10_keep_alive)
    out += "Connection: keep-alive\r\n";
  if (r.headers)
    for (const auto& [name, value] : *r.headers) {
      out += name;
      out += ": ";
      out += value;
      out += "\r\n";
    }
  out += "\r\n";
  if (!r.head_only) out += r.body;
  return out;
}

std::string http_error(int status, std::string_view reason, std::string_view extra_headers) {
  std::string body(reason);
  body += "\n";
  std::string r = "HTTP/1.1 " + std::to_string(status) + " " + status_text(status) +
                  "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
                  "\r\nConnection: close\r\n";
  r.append(extra_headers);
  r += "\r\n";
  r += body;
  return r;
}

}  // namespace flowrelay::net
