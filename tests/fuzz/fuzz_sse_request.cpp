// libFuzzer target: transport-sse's requests (plugins/transport-sse/sse_codec.h parse_request)
// with no access policy and with an Origin allow-list, and the same bytes through the real
// SseSession (sse_session.h) in two reads, every publish answered, a stream's heartbeat and
// close driven.
//
// The input is what a client sends: one or more requests (heads, bodies), pipelined.
//
// Invariants: parse_request answers one of the documented statuses {0 (serve it), 400, 401,
// 403, 404, 405, 406, 411, 413, 415, 505} and a refusal is a complete HTTP response with that
// status; a POST it serves has a body within max_body; the Origin allow-list only turns an
// answer into a 403, and a CORS header only ever echoes an allowed Origin. The session
// joins a channel only for a GET it serves, publishes only what a POST carried (valid UTF-8,
// within max_message_size), queues at most a bounded amount, and every byte it queues before a
// stream opens is a sequence of complete HTTP responses.
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "../unit/session_test_host.h"
#include "access_policy.h"
#include "sse_codec.h"
#include "sse_options.h"
#include "sse_session.h"
#include "utf8_repair.h"

using namespace flowrelay::sse;
using flowrelay::ws::testing::queued_bytes;
using flowrelay::ws::testing::RecordingHost;

#define FUZZ_CHECK(cond)                                                                         \
  do {                                                                                           \
    if (!(cond)) {                                                                               \
      std::fprintf(stderr, "fuzz_sse_request: invariant failed at %s:%d: %s\n", __FILE__,        \
                   __LINE__, #cond);                                                             \
      std::abort();                                                                              \
    }                                                                                            \
  } while (0)

namespace {

constexpr uint64_t kMaxBody = 4096;

const AccessPolicy& origin_policy() {
  static const AccessPolicy* p = [] {
    AccessSettings s;
    s.allowed_origins = {"https://chat.example.com"};
    return new AccessPolicy(s);  // lives for the process
  }();
  return *p;
}

bool is_documented(int status) {
  switch (status) {
    case 0:
    case 400:
    case 401:
    case 403:
    case 404:
    case 405:
    case 406:
    case 411:
    case 413:
    case 415:
    case 505:
      return true;
    default:
      return false;
  }
}

void check_request(std::string_view head) {
  const SseRequest open = parse_request(head, "/sse/", 128, kMaxBody, nullptr);
  FUZZ_CHECK(is_documented(open.status));
  if (open.status != 0) {
    FUZZ_CHECK(open.response.rfind("HTTP/1.1 " + std::to_string(open.status) + " ", 0) == 0);
    FUZZ_CHECK(open.response.find("\r\n\r\n") != std::string::npos);
  } else {
    FUZZ_CHECK(!open.conversation.empty());
    if (open.kind == RequestKind::Publish) FUZZ_CHECK(open.content_length <= kMaxBody);
  }
  const SseRequest guarded = parse_request(head, "/sse/", 128, kMaxBody, &origin_policy());
  FUZZ_CHECK(is_documented(guarded.status));
  if (guarded.status != open.status) FUZZ_CHECK(guarded.status == 403);
  if (!guarded.cors.empty()) {
    // The request's own Origin is echoed (a browser compares it exactly), and only an allowed
    // one (the allow-list compares case-insensitively).
    constexpr std::string_view kPrefix = "Access-Control-Allow-Origin: ";
    constexpr std::string_view kAllowed = "https://chat.example.com";
    FUZZ_CHECK(guarded.cors.rfind(kPrefix, 0) == 0);
    const std::string_view value =
        std::string_view(guarded.cors).substr(kPrefix.size(), kAllowed.size() + 2);
    FUZZ_CHECK(value.size() == kAllowed.size() + 2 && value.substr(kAllowed.size()) == "\r\n");
    for (size_t i = 0; i < kAllowed.size(); ++i)
      FUZZ_CHECK(std::tolower(static_cast<unsigned char>(value[i])) == kAllowed[i]);
  }
}

// Bytes queued before a stream opened: whole HTTP responses only.
void check_responses(std::string_view bytes) {
  while (!bytes.empty()) {
    FUZZ_CHECK(bytes.substr(0, 9) == "HTTP/1.1 ");
    const size_t end = bytes.find("\r\n\r\n");
    FUZZ_CHECK(end != std::string_view::npos);
    size_t length = 0;
    const size_t cl = bytes.substr(0, end).find("\r\nContent-Length: ");
    if (cl != std::string_view::npos) length = std::strtoul(bytes.data() + cl + 18, nullptr, 10);
    FUZZ_CHECK(end + 4 + length <= bytes.size());
    bytes.remove_prefix(end + 4 + length);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t head_end = input.find("\r\n\r\n");
  check_request(head_end == std::string::npos ? input : input.substr(0, head_end + 4));

  static SseOptions options = parse_sse_options(nullptr, 0, "");
  static LiveLimits limits{options};
  limits.max_message_size = kMaxBody;
  static LoopStats stats;
  static SessionConfig config{limits, "/sse/", stats};
  RecordingHost host;
  host.policy = std::shared_ptr<const AccessPolicy>(&origin_policy(), [](const AccessPolicy*) {});
  SseSession s(host, config, 1);
  s.start();
  std::string out;
  const size_t half = size / 2;
  std::string first = input.substr(0, half), second = input.substr(half);
  s.feed(first.data(), first.size());
  for (int round = 0; round < 64 && s.state() == Connection::State::Handshake; ++round) {
    const size_t before = host.published.size();
    if (round == 0) s.feed(second.data(), second.size());
    if (host.published.size() == before && round > 0) break;
    PublishOutcome o;
    o.ok = round % 3 != 2;
    o.code = 503;
    o.offset = round + 1;
    s.published(o);
  }
  for (const auto& p : host.published) {
    FUZZ_CHECK(p.data.size() <= kMaxBody);
    FUZZ_CHECK(is_valid_utf8(p.data));
  }
  FUZZ_CHECK(host.joined.size() <= 1);
  if (host.joined.empty()) {
    out = queued_bytes(s);
    check_responses(out);
  } else if (s.state() == Connection::State::Open) {
    s.on_timer();
    s.on_timer();
    s.close(close_code::GoingAway, "bye");
    FUZZ_CHECK(s.state() == Connection::State::Closing);
  }
  return 0;
}
