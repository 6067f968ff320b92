#include "http_route.h"

#include <Poco/JSON/Object.h>

#include <strings.h>
#include <sstream>

#include "http_api.h"

namespace flowrelay {

std::string_view HttpRequest::header(std::string_view name) const {
  for (const auto& [n, v] : headers)
    if (n.size() == name.size() && strncasecmp(n.data(), name.data(), n.size()) == 0) return v;
  return {};
}

HttpAnswer json_answer(int status, std::string body) {
  HttpAnswer a;
  a.status = status;
  a.body = std::move(body);
  a.body += '\n';
  return a;
}

HttpAnswer json_error(int status, const std::string& text) {
  Poco::JSON::Object o;
  o.set("error", text);
  std::ostringstream out;
  o.stringify(out);
  return json_answer(status, out.str());
}

}  // namespace flowrelay
