#include "support/http.h"

#include <Poco/Exception.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>

#include <sstream>

#include "support/text.h"

namespace flowrelay::test {

namespace {

Poco::Timespan timespan(Millis timeout) {
  return Poco::Timespan(static_cast<long>(timeout.count()) * 1000);
}

// Sends one request on `session` and reads the whole answer; status 0 on any failure.
HttpResult exchange(Poco::Net::HTTPClientSession& session, const std::string& method,
                    const std::string& path, const std::string& body, const HttpHeaders& headers) {
  HttpResult r;
  try {
    Poco::Net::HTTPRequest req(method, path, Poco::Net::HTTPMessage::HTTP_1_1);
    req.setKeepAlive(session.getKeepAlive());
    for (const auto& [name, value] : headers) req.set(name, value);
    if (!body.empty() || method == Poco::Net::HTTPRequest::HTTP_POST) {
      if (!req.has("Content-Type")) req.setContentType("application/json");
      req.setContentLength(static_cast<std::streamsize>(body.size()));
    }
    std::ostream& out = session.sendRequest(req);
    out.write(body.data(), static_cast<std::streamsize>(body.size()));
    out.flush();
    Poco::Net::HTTPResponse resp;
    std::istream& in = session.receiveResponse(resp);
    r.status = static_cast<int>(resp.getStatus());
    r.content_type = resp.getContentType();
    for (const auto& [name, value] : resp) r.headers.emplace_back(name, value);
    std::ostringstream ss;
    Poco::StreamCopier::copyStream(in, ss);
    r.body = ss.str();
  } catch (const Poco::Exception& e) {
    r = HttpResult{};
    r.body = e.displayText();
    session.reset();
  } catch (const std::exception& e) {
    r = HttpResult{};
    r.body = e.what();
    session.reset();
  }
  return r;
}

}  // namespace

std::optional<std::string> HttpResult::header(std::string_view name) const {
  const std::string wanted = lower(name);
  for (const auto& [n, v] : headers) {
    if (lower(n) == wanted) return v;
  }
  return std::nullopt;
}

HttpResult http_request(uint16_t port, const std::string& method, const std::string& path,
                        const std::string& body, const HttpHeaders& headers, Millis timeout) {
  Poco::Net::HTTPClientSession session("127.0.0.1", port);
  session.setTimeout(timespan(timeout));
  session.setKeepAlive(false);
  return exchange(session, method, path, body, headers);
}

HttpResult http_get(uint16_t port, const std::string& path, Millis timeout) {
  return http_request(port, Poco::Net::HTTPRequest::HTTP_GET, path, "", {}, timeout);
}

HttpResult http_post(uint16_t port, const std::string& path, const std::string& body,
                     const HttpHeaders& headers, Millis timeout) {
  return http_request(port, Poco::Net::HTTPRequest::HTTP_POST, path, body, headers, timeout);
}

struct HttpSession::Impl {
  Poco::Net::HTTPClientSession session;
  Impl(uint16_t port, Millis timeout) : session("127.0.0.1", port) {
    session.setTimeout(timespan(timeout));
    session.setKeepAlive(true);
  }
};

HttpSession::HttpSession(uint16_t port, Millis timeout)
    : _impl(std::make_unique<Impl>(port, timeout)) {}
HttpSession::~HttpSession() = default;

HttpResult HttpSession::post(const std::string& path, const std::string& body,
                             const HttpHeaders& headers) {
  return exchange(_impl->session, Poco::Net::HTTPRequest::HTTP_POST, path, body, headers);
}

}  // namespace flowrelay::test
