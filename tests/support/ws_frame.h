// RFC 6455 on the wire, for tests: frames built byte by byte (also invalid ones), frames and
// HTTP response heads parsed from received bytes, and the opening handshake's text.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace flowrelay::test {

enum Op : uint8_t {
  kCont = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

// A frame as received.
struct Frame {
  bool fin = false;
  uint8_t rsv = 0;  // the three RSV bits, shifted down (0..7)
  uint8_t opcode = 0;
  bool masked = false;
  std::string payload;  // unmasked
  bool has_close_code() const { return opcode == kClose && payload.size() >= 2; }
  uint16_t close_code() const;
  std::string close_reason() const;
  std::string describe() const;
};

// A frame to send.
struct FrameSpec {
  uint8_t opcode = kText;
  std::string payload;
  bool fin = true;
  uint8_t rsv = 0;  // 0..7: RSV1 = 4, RSV2 = 2, RSV3 = 1
  bool masked = true;
  std::array<uint8_t, 4> mask{{0x37, 0xfa, 0x21, 0x3d}};
  // Length written in the header if it differs from payload.size() (e.g. to announce a huge
  // frame and send only its header).
  std::optional<uint64_t> declared_len;
  // 0: minimal length encoding; 16 or 64: force that extended length form.
  int len_bits = 0;
};

std::string encode_frame(const FrameSpec& spec);
// The first complete frame at the start of `buffer`, removed from it; nullopt while incomplete.
std::optional<Frame> take_frame(std::string& buffer);
// A close frame's payload: the code (network order), then the reason.
std::string close_payload(uint16_t code, std::string_view reason = "");

struct HttpHead {
  int status = 0;           // 0: no (complete) response head
  std::string status_line;  // e.g. "HTTP/1.1 400 Bad Request"
  std::vector<std::pair<std::string, std::string>> headers;
  // First header of that name (case-insensitive), or nullopt.
  std::optional<std::string> header(std::string_view name) const;
};

// The response head at the start of `buffer` (through the blank line), removed from it;
// nullopt while incomplete.
std::optional<HttpHead> take_head(std::string& buffer);

// A random Sec-WebSocket-Key (base64 of 16 random bytes) and its expected accept value.
std::string make_ws_key();
std::string expected_accept(const std::string& key);

// "GET <path> HTTP/1.1" with Host, Upgrade, Connection, Sec-WebSocket-Key/Version, followed by
// `extra_headers` (complete "Name: value\r\n" lines) and the blank line.
std::string handshake_request(const std::string& path, const std::string& key,
                              const std::string& extra_headers = "");

}  // namespace flowrelay::test
