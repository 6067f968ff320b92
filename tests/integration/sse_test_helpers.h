// What the transport-sse integration suites (sse_stream_test.cpp, sse_publish_test.cpp,
// sse_http_test.cpp) share: the daemon options, reading events and acks, a hand-written
// keep-alive connection, and the one-daemon fixture.
#pragma once

#include <gtest/gtest.h>
#include <poll.h>

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "support/envelope_client.h"
#include "support/itest.h"
#include "support/sse_client.h"

namespace flowrelay::itest::sse {

inline const std::string kKey = "sse-protocol-key";

inline DaemonOptions sse_options(const std::string& sse_extra = "") {
  DaemonOptions o;
  o.sse = true;
  o.api_key = kKey;
  o.sse_extra = sse_extra;
  return o;
}

// "<epoch>:<offset>" of a publish API answer.
inline std::string id_of(const Published& p) {
  return p.epoch.value_or("?") + ":" + (p.offset ? std::to_string(*p.offset) : "?");
}

// The JSON object in `text`, or null.
inline Poco::JSON::Object::Ptr json_object(const std::string& text) {
  try {
    Poco::JSON::Parser parser;
    return parser.parse(text).extract<Poco::JSON::Object::Ptr>();
  } catch (...) {
    return nullptr;
  }
}

inline std::string describe(const HttpHead& h) {
  std::string s = h.status_line.empty() ? "(no response)" : h.status_line;
  for (const auto& [k, v] : h.headers) s += " | " + k + ": " + v;
  return s;
}

inline std::string describe(const HttpResult& r) {
  std::string s = std::to_string(r.status);
  for (const auto& [k, v] : r.headers) s += " | " + k + ": " + v;
  return s + " | body: " + r.body;
}

// The next `n` events (no comments) of `c`; fewer if the stream went quiet for `timeout`.
inline std::vector<SseEvent> events(SseClient& c, size_t n, Millis timeout = 5s) {
  std::vector<SseEvent> out;
  while (out.size() < n) {
    auto e = c.next_event(timeout);
    if (!e) break;
    out.push_back(std::move(*e));
  }
  return out;
}

// An ack of a POST: 200 application/json {"type":"ack","offset":N,"epoch":"E"[,"id"]}\n.
struct Ack {
  bool ok = false;
  uint64_t offset = 0;
  std::string epoch;
  std::optional<std::string> id;
  std::optional<bool> relayed;
  std::string id_string() const { return epoch + ":" + std::to_string(offset); }
};
inline Ack parse_ack(int status, const std::string& content_type, const std::string& body) {
  Ack a;
  EXPECT_EQ(status, 200) << body;
  EXPECT_EQ(content_type.substr(0, 16), "application/json") << body;
  EXPECT_TRUE(!body.empty() && body.back() == '\n') << "the ack does not end with LF: " << body;
  const auto o = json_object(body);
  EXPECT_TRUE(o) << "not a JSON object: " << body;
  if (status != 200 || !o) return a;
  EXPECT_EQ(o->optValue<std::string>("type", ""), "ack") << body;
  if (!o->has("offset") || !o->has("epoch")) {
    ADD_FAILURE() << "no offset/epoch in the ack: " << body;
    return a;
  }
  a.offset = o->getValue<uint64_t>("offset");
  a.epoch = o->getValue<std::string>("epoch");
  if (o->has("id")) a.id = o->getValue<std::string>("id");
  if (o->has("relayed")) a.relayed = o->getValue<bool>("relayed");
  a.ok = !a.epoch.empty() && a.offset > 0;
  return a;
}
inline Ack parse_ack(const HttpResult& r) { return parse_ack(r.status, r.content_type, r.body); }

// A keep-alive HTTP/1.1 connection written by hand (RawClient), so that a test knows every
// request went over the same TCP connection (HttpSession reconnects by itself).
struct RawAnswer {
  HttpHead head;
  std::string body;
};
class RawHttp {
 public:
  explicit RawHttp(uint16_t port) : _port(port), _c(port) {}
  RawAnswer request(const std::string& method, const std::string& path,
                    const std::string& content_type, const std::string& body,
                    const std::string& extra_headers = "", Millis timeout = 5s) {
    std::string req =
        method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(_port) + "\r\n";
    if (!content_type.empty()) req += "Content-Type: " + content_type + "\r\n";
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n" + extra_headers + "\r\n";
    req += body;
    RawAnswer a;
    a.head = _c.request(req, timeout);
    if (a.head.status == 0) return a;
    const size_t length = std::stoul(a.head.header("Content-Length").value_or("0"));
    a.body = _c.take_bytes();
    const auto deadline = Clock::now() + timeout;
    while (a.body.size() < length && !_c.closed() && Clock::now() < deadline) {
      pollfd p{_c.fd(), POLLIN, 0};
      if (::poll(&p, 1, remaining_ms(deadline)) > 0) _c.pump();
      a.body += _c.take_bytes();
    }
    return a;
  }
  RawClient& raw() { return _c; }

 private:
  uint16_t _port;
  RawClient _c;
};

// ---------------------------------------------------------------------------------------------
// One daemon (default transport-sse options) for the framing, resume and routing tests.

class SseProtocol : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { daemon = std::make_unique<Daemon>(sse_options()); }
  static void TearDownTestSuite() { daemon.reset(); }
  void TearDown() override {
    ASSERT_TRUE(daemon->running()) << "daemon died; stderr:\n" << daemon->stderr_text();
  }
  static uint16_t sse() { return daemon->sse_port(); }
  static Published publish(HttpSession& api, const std::string& conv, const std::string& text,
                           const std::string& lane = "") {
    Published p = publish_via_api(api, kKey, conv, text, lane);
    EXPECT_EQ(p.status, 200) << p.body;
    EXPECT_TRUE(p.offset && p.epoch) << p.body;
    return p;
  }
  static std::unique_ptr<Daemon> daemon;
};
inline std::unique_ptr<Daemon> SseProtocol::daemon;

}  // namespace flowrelay::itest::sse
