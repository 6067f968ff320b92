// Drives a transport-ws Session (or any stream Connection: transport-sse's too) without a
// socket, as its event loop does: a SessionHost that records what the session asks for, client
// bytes to feed it, and its output read back as the loop would write it. Shared by the Session
// unit tests and the fuzz targets (tests/fuzz).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "envelope_reply.h"
#include "frame_codec.h"
#include "session.h"
#include "ws_options.h"

namespace flowrelay::ws::testing {

// Limits (the option table's defaults unless a test changes them), counters and config.
struct SessionEnv {
  WsOptions options = parse_ws_options(nullptr, 0, "");
  LiveLimits limits{options};
  LoopStats stats;
  SessionConfig config{limits, "/ws/", stats};
};

class RecordingHost final : public SessionHost {
 public:
  struct Published {
    flowrelay_lane lane;
    std::string data;
    std::string id;
  };
  struct ReplyStep {
    ClientReplyStep step;
    std::string data;
    std::string id;
  };
  flowrelay_status join_status = FLOWRELAY_OK;
  flowrelay_status publish_status = FLOWRELAY_OK;
  flowrelay_status reply_status = FLOWRELAY_OK;
  std::vector<ReplyStep> reply_steps;
  flowrelay_status authorize_status = FLOWRELAY_EUNSUPPORTED;  // no connect proxy
  std::shared_ptr<const AccessPolicy> policy;
  int64_t clock_ms = 1000;

  std::vector<std::string> joined;
  int leaves = 0;
  int opens = 0;
  std::vector<std::string> authorizations;  // "conversation|cookie|authorization"
  std::vector<Published> published;
  std::vector<std::string> published_to;  // publish_to()'s conversations (transport-sse POSTs)
  std::vector<uint64_t> history_reads;
  int write_requests = 0;
  SessionTimer timer = SessionTimer::None;
  std::vector<uint64_t> slow;

  flowrelay_status join(Connection&, std::string_view conversation) override {
    joined.emplace_back(conversation);
    return join_status;
  }
  void leave(Connection&) override { ++leaves; }
  flowrelay_status publish(Connection&, flowrelay_lane lane, std::string_view data,
                           std::string_view id) override {
    published.push_back({lane, std::string(data), std::string(id)});
    return publish_status;
  }
  flowrelay_status authorize(Connection&, std::string_view conversation, std::string_view cookie,
                             std::string_view authorization) override {
    authorizations.push_back(std::string(conversation) + "|" + std::string(cookie) + "|" +
                             std::string(authorization));
    return authorize_status;
  }
  flowrelay_status publish_reply(Connection&, const ClientReplyStep& step, std::string_view data,
                                 std::string_view id) override {
    reply_steps.push_back({step, std::string(data), std::string(id)});
    return reply_status;
  }
  flowrelay_status publish_to(Connection&, std::string_view conversation, flowrelay_lane lane,
                              std::string_view data, std::string_view id) override {
    published_to.emplace_back(conversation);
    published.push_back({lane, std::string(data), std::string(id)});
    return publish_status;
  }
  void opened(Connection&) override { ++opens; }
  void read_history(Connection&, uint64_t since) override { history_reads.push_back(since); }
  void wants_write(Connection&) override { ++write_requests; }
  void set_timer(Connection&, SessionTimer t) override { timer = t; }
  void slow_consumer(Connection&, uint64_t queued) override { slow.push_back(queued); }
  std::shared_ptr<const AccessPolicy> access_policy() override { return policy; }
  int64_t now_ms() override { return clock_ms; }
};

inline std::string upgrade_request(std::string_view target = "/ws/42",
                                   std::string_view extra_headers = {}) {
  std::string r = "GET ";
  r.append(target);
  r += " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
  r.append(extra_headers);
  return r + "\r\n";
}
inline constexpr std::string_view kEnvelopeOffer = "Sec-WebSocket-Protocol: flowrelay.v1\r\n";

// A client frame: masked (unless `masked` is false) with a fixed key.
inline std::string client_frame(Opcode opcode, std::string_view payload, bool fin = true,
                                bool masked = true) {
  std::string f;
  f += char((fin ? 0x80 : 0) | uint8_t(opcode));
  const uint8_t m = masked ? 0x80 : 0;
  if (payload.size() < 126) {
    f += char(m | payload.size());
  } else if (payload.size() <= 0xFFFF) {
    f += char(m | 126);
    f += char(payload.size() >> 8);
    f += char(payload.size() & 0xff);
  } else {
    f += char(m | 127);
    for (int s = 56; s >= 0; s -= 8) f += char((uint64_t(payload.size()) >> s) & 0xff);
  }
  const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
  if (masked) f.append(reinterpret_cast<const char*>(key), 4);
  for (size_t i = 0; i < payload.size(); ++i)
    f += masked ? char(uint8_t(payload[i]) ^ key[i & 3]) : payload[i];
  return f;
}

inline std::string close_payload(uint16_t code, std::string_view reason = {}) {
  std::string p{char(code >> 8), char(code & 0xff)};
  p.append(reason);
  return p;
}

// What the session queued, parsed back: an HTTP response (if any) then server frames.
struct ServerFrame {
  uint8_t opcode = 0;
  bool fin = false;
  std::string payload;
  uint16_t close_code() const {
    return payload.size() >= 2 ? uint16_t(uint8_t(payload[0]) << 8 | uint8_t(payload[1])) : 0;
  }
};
struct Output {
  std::string http;
  std::vector<ServerFrame> frames;
  std::string rest;        // bytes that are not a whole frame
  bool malformed = false;  // a frame a server must not send (masked, RSV, bad length)
  int status() const { return http.size() >= 12 ? std::atoi(http.c_str() + 9) : 0; }
};

inline Output parse_output(std::string_view bytes, bool expect_http) {
  Output out;
  if (expect_http && bytes.substr(0, 9) == "HTTP/1.1 ") {
    size_t end = bytes.find("\r\n\r\n");
    if (end == std::string_view::npos) {
      out.http.assign(bytes);
      return out;
    }
    end += 4;
    const size_t cl = bytes.substr(0, end).find("\r\nContent-Length: ");
    if (cl != std::string_view::npos) end += std::strtoul(bytes.data() + cl + 18, nullptr, 10);
    out.http.assign(bytes.substr(0, end));
    bytes.remove_prefix(std::min(end, bytes.size()));
  }
  while (!bytes.empty()) {
    FrameHeader h;
    const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
    if (parse_header(p, bytes.size(), h) != ParseResult::Ok ||
        bytes.size() < h.header_len + h.payload_len) {
      out.rest.assign(bytes);
      out.malformed = true;
      break;
    }
    if (h.masked || h.rsv) out.malformed = true;
    out.frames.push_back({h.opcode, h.fin, std::string(bytes.substr(h.header_len, h.payload_len))});
    bytes.remove_prefix(h.header_len + h.payload_len);
  }
  return out;
}

// The bytes queued, as the loop would write them; `consume` marks them written.
inline std::string queued_bytes(Connection& s, bool consume = true) {
  OutQueue& q = s.out();
  std::string bytes;
  for (uint32_t i = 0; i < q.count(); ++i) {
    const SharedFrame* f = q.at(i);
    const uint32_t skip = i == 0 ? q.head_offset() : 0;
    bytes.append(f->data() + skip, f->size() - skip);
  }
  if (consume) q.consume(bytes.size(), [](const SharedFrame*) {});
  return bytes;
}

inline Output take_output(Connection& s, bool expect_http = false) {
  return parse_output(queued_bytes(s), expect_http);
}

inline void feed(Connection& s, std::string bytes) { s.feed(bytes.data(), bytes.size()); }

}  // namespace flowrelay::ws::testing
