// libFuzzer target: the HTTP upgrade request of transport-ws (accept_handshake), with no access
// policy and with an AccessPolicy of auth none plus an Origin allow-list, and the same bytes
// through the real Session (plugins/transport-ws/session.h) in two reads.
//
// The input is the request (request line, headers, blank line) as a client sends it. The
// Session hands accept_handshake the bytes up to and including the first blank line; the target
// also passes the raw input, since the function must not crash on anything.
//
// Invariants: the status is one of the documented answers {101,400,401,403,404,405,426,431};
// a 101 carries Sec-WebSocket-Accept and a valid conversation id, answers the flowrelay.v1
// subprotocol exactly when envelope mode was chosen, and resumes (since/epoch) only in
// envelope mode with an epoch of at most 64 characters; any other status is a
// complete HTTP response with that status; the Origin allow-list can only turn a 101 into a
// 403 (auth none never answers 401), and never changes any other answer. The Session answers
// exactly what accept_handshake decided (431 past max_header_size), joins the conversation
// only on a 101, and waits while the blank line has not arrived.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "../unit/session_test_host.h"
#include "access_policy.h"
#include "handshake.h"

using namespace flowrelay::ws;

#define FUZZ_CHECK(cond)                                                                          \
  do {                                                                                            \
    if (!(cond)) {                                                                                \
      std::fprintf(stderr, "fuzz_handshake: invariant failed at %s:%d: %s\n", __FILE__, __LINE__, \
                   #cond);                                                                        \
      std::abort();                                                                               \
    }                                                                                             \
  } while (0)

namespace {

const AccessPolicy& origin_policy(bool allow_missing) {
  static const AccessPolicy* policies[2] = {nullptr, nullptr};
  const AccessPolicy*& p = policies[allow_missing];
  if (!p) {
    AccessSettings s;
    s.auth = "none";
    s.allowed_origins = {"https://chat.example.com", "http://localhost:8080"};
    s.allow_missing_origin = allow_missing;
    p = new AccessPolicy(s);  // lives for the process
  }
  return *p;
}

bool is_documented(int status) {
  switch (status) {
    case 101:
    case 400:
    case 401:
    case 403:
    case 404:
    case 405:
    case 426:
    case 431:
      return true;
    default:
      return false;
  }
}

void check(const HandshakeResult& r, const char* which) {
  if (!is_documented(r.status)) {
    std::fprintf(stderr, "fuzz_handshake (%s): undocumented status %d\n", which, r.status);
    std::abort();
  }
  if (r.status == 101) {
    FUZZ_CHECK(r.response.rfind("HTTP/1.1 101 Switching Protocols\r\n", 0) == 0);
    FUZZ_CHECK(r.response.find("\r\nSec-WebSocket-Accept: ") != std::string::npos);
    FUZZ_CHECK(r.response.size() >= 4 &&
               r.response.compare(r.response.size() - 4, 4, "\r\n\r\n") == 0);
    FUZZ_CHECK(valid_conversation_id(r.conversation, 128));
    // Envelope mode is answered with the subprotocol; resume needs it (docs/PROTOCOL.md).
    FUZZ_CHECK(r.envelope == (r.response.find("\r\nSec-WebSocket-Protocol: flowrelay.v1\r\n") !=
                              std::string::npos));
    FUZZ_CHECK(!r.resume || r.envelope);
    FUZZ_CHECK(r.epoch.empty() || r.resume);
    FUZZ_CHECK(r.epoch.size() <= 64);
  } else {
    const std::string head = "HTTP/1.1 " + std::to_string(r.status) + " ";
    FUZZ_CHECK(r.response.rfind(head, 0) == 0);
    FUZZ_CHECK(r.response.find("\r\nConnection: close\r\n") != std::string::npos);
    const size_t body = r.response.find("\r\n\r\n");
    FUZZ_CHECK(body != std::string::npos);
    // Content-Length matches the body (the client reads exactly that much).
    const size_t cl = r.response.find("\r\nContent-Length: ");
    FUZZ_CHECK(cl != std::string::npos && cl < body);
    const size_t length = std::strtoul(r.response.c_str() + cl + 18, nullptr, 10);
    FUZZ_CHECK(length == r.response.size() - body - 4);
  }
}

void run(std::string_view request) {
  const HandshakeResult plain = accept_handshake(request, "/ws/", 128, nullptr);
  check(plain, "no policy");
  for (bool allow_missing : {true, false}) {
    const HandshakeResult guarded =
        accept_handshake(request, "/ws/", 128, &origin_policy(allow_missing));
    check(guarded, "origin policy");
    FUZZ_CHECK(guarded.status != 401);  // auth none asks for no token
    if (plain.status == 101) {
      FUZZ_CHECK(guarded.status == 101 || guarded.status == 403);
      if (guarded.status == 101) {
        FUZZ_CHECK(guarded.response == plain.response);
        FUZZ_CHECK(guarded.conversation == plain.conversation);
      }
    } else {
      FUZZ_CHECK(guarded.status == plain.status);
    }
  }
}

// The request through a Session, cut into two reads at `cut`.
void run_session(std::string_view raw, size_t cut) {
  using namespace flowrelay::ws::testing;
  SessionEnv env;
  RecordingHost host;
  Session s(host, env.config, 1);
  s.start();
  for (std::string_view read : {raw.substr(0, cut), raw.substr(cut)}) {
    std::string exact(read);  // own block: ASan sees a read past it
    s.feed(exact.data(), exact.size());
  }
  const std::string out = queued_bytes(s);
  const size_t max_header = env.limits.max_header_size.load();
  const size_t end = raw.find("\r\n\r\n");
  if (end == std::string_view::npos ? raw.size() > max_header : end + 4 > max_header) {
    FUZZ_CHECK(parse_output(out, true).status() == 431);
    FUZZ_CHECK(s.state() == Session::State::Closing && host.joined.empty());
    return;
  }
  if (end == std::string_view::npos) {
    FUZZ_CHECK(s.state() == Session::State::Handshake && out.empty());
    return;
  }
  const HandshakeResult hs = accept_handshake(raw.substr(0, end + 4), "/ws/", 128, nullptr);
  if (hs.status == 101) {
    FUZZ_CHECK(host.joined.size() == 1 && host.joined[0] == hs.conversation);
    FUZZ_CHECK(out.compare(0, hs.response.size(), hs.response) == 0);
    FUZZ_CHECK(s.envelope() == hs.envelope);
    FUZZ_CHECK(host.history_reads.size() == (hs.resume ? 1u : 0u));
  } else {
    FUZZ_CHECK(out == hs.response);
    FUZZ_CHECK(s.state() == Session::State::Closing && host.joined.empty());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view raw(reinterpret_cast<const char*>(data), size);
  run(raw);
  // What the event loop passes: up to and including the first blank line.
  const size_t end = raw.find("\r\n\r\n");
  if (end != std::string_view::npos && end + 4 != size) run(raw.substr(0, end + 4));
  run_session(raw, size ? data[0] % (size + 1) : 0);
  return 0;
}
