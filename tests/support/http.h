// HTTP for tests: one request on a fresh connection, or a keep-alive session, to 127.0.0.1.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "support/wait.h"

namespace flowrelay::test {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpResult {
  int status = 0;  // 0: no answer (connection refused, timeout); then body says why
  std::string content_type;
  std::string body;
  HttpHeaders headers;  // the response's (sorted by name, as Poco keeps them)
  // First response header of that name (case-insensitive), or nullopt.
  std::optional<std::string> header(std::string_view name) const;
};

// One request on a fresh connection to 127.0.0.1:<port>.
HttpResult http_request(uint16_t port, const std::string& method, const std::string& path,
                        const std::string& body = "", const HttpHeaders& headers = {},
                        Millis timeout = 5s);
HttpResult http_get(uint16_t port, const std::string& path, Millis timeout = 2s);
HttpResult http_post(uint16_t port, const std::string& path, const std::string& body,
                     const HttpHeaders& headers = {}, Millis timeout = 5s);

// One keep-alive connection reused for every request (as a backend streaming a reply token by
// token would do); reconnects by itself if the server closed it.
class HttpSession {
 public:
  explicit HttpSession(uint16_t port, Millis timeout = 5s);
  ~HttpSession();
  HttpSession(const HttpSession&) = delete;
  HttpSession& operator=(const HttpSession&) = delete;
  HttpResult post(const std::string& path, const std::string& body,
                  const HttpHeaders& headers = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> _impl;
};

}  // namespace flowrelay::test
