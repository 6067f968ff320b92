// RFC 6455 frame codec. See frame_codec.h. No allocation, no I/O, no exceptions.
#include "frame_codec.h"

#include <bit>
#include <cstring>

namespace flowrelay::ws {

namespace {

inline uint64_t load_be16(const uint8_t* p) {
  return (static_cast<uint64_t>(p[0]) << 8) | static_cast<uint64_t>(p[1]);
}

inline uint64_t load_be64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  if constexpr (std::endian::native == std::endian::little) {
    v = __builtin_bswap64(v);
  }
  return v;
}

inline void store_be16(uint8_t* p, uint64_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

inline void store_be64(uint8_t* p, uint64_t v) {
  if constexpr (std::endian::native == std::endian::little) {
    v = __builtin_bswap64(v);
  }
  std::memcpy(p, &v, sizeof v);
}

// Indexed by `len_class` (0: 7-bit length, 1: 16-bit, 2: 64-bit).
constexpr uint8_t kExtLenBytes[3] = {0, 2, 8};
constexpr uint64_t kMinExtLen[3] = {0, 126, 65536};

}  // namespace

ParseResult parse_header(const uint8_t* data, size_t len, FrameHeader& out) {
  if (len < 2) [[unlikely]] {
    return ParseResult::NeedMore;
  }
  const uint8_t b0 = data[0];
  const uint8_t b1 = data[1];
  const uint8_t len7 = b1 & 0x7F;
  const bool masked = (b1 & 0x80) != 0;

  // 0 for 0..125, 1 for 126, 2 for 127 (compiles to a compare + cmov).
  const unsigned len_class = len7 >= 126 ? static_cast<unsigned>(len7 - 125) : 0u;
  const size_t ext = kExtLenBytes[len_class];
  const size_t header_len = 2 + ext + (static_cast<size_t>(masked) << 2);

  if (len < 2 + ext) [[unlikely]] {
    return ParseResult::NeedMore;
  }
  uint64_t payload_len = len7;
  if (len_class == 1) {
    payload_len = load_be16(data + 2);
  } else if (len_class == 2) {
    payload_len = load_be64(data + 2);
  }
  // Non-minimal encodings and 64-bit lengths with the top bit set are rejected as soon as the
  // length bytes are available, even if the mask has not arrived yet.
  if ((payload_len < kMinExtLen[len_class]) | ((payload_len >> 63) != 0)) [[unlikely]] {
    return ParseResult::Malformed;
  }
  if (len < header_len) [[unlikely]] {
    return ParseResult::NeedMore;
  }

  out.fin = (b0 & 0x80) != 0;
  out.rsv = static_cast<uint8_t>((b0 >> 4) & 0x7);
  out.opcode = static_cast<uint8_t>(b0 & 0x0F);
  out.masked = masked;
  out.payload_len = payload_len;
  out.header_len = header_len;
  if (masked) {
    std::memcpy(out.mask, data + 2 + ext, 4);
  } else {
    std::memset(out.mask, 0, 4);
  }
  return ParseResult::Ok;
}

uint16_t validate_client_frame(const FrameHeader& h, bool in_fragmented_message,
                               uint64_t max_message_size) {
  // RFC 6455 5.1: a client MUST mask every frame.
  if (!h.masked) return close_code::ProtocolError;
  // 5.2: RSV bits MUST be 0 unless an extension defining them was negotiated (none is).
  if (h.rsv != 0) return close_code::ProtocolError;

  const uint8_t op = h.opcode;
  if (op >= 0x8) {
    // 5.5: control frames: known opcode, FIN set, payload <= 125.
    if (op > 0xA) return close_code::ProtocolError;
    if (!h.fin || h.payload_len > 125) return close_code::ProtocolError;
    // 5.5.1: a Close body is empty or starts with a 2-byte status code.
    if (op == static_cast<uint8_t>(Opcode::Close) && h.payload_len == 1) {
      return close_code::ProtocolError;
    }
    return 0;
  }
  if (op > 0x2) return close_code::ProtocolError;  // reserved non-control opcodes 3-7
  // 5.4: fragmentation.
  const bool is_continuation = op == static_cast<uint8_t>(Opcode::Continuation);
  if (is_continuation != in_fragmented_message) return close_code::ProtocolError;
  if (h.payload_len > max_message_size) return close_code::TooBig;
  return 0;
}

void unmask(uint8_t* data, size_t len, const uint8_t mask[4], uint64_t offset) {
  const unsigned shift = static_cast<unsigned>(offset & 3);
  // rotated[i] = mask[(offset + i) % 4]: the mask as seen from data[0].
  uint8_t rotated[8];
  for (unsigned i = 0; i < 8; ++i) rotated[i] = mask[(shift + i) & 3];
  uint64_t m64;
  std::memcpy(&m64, rotated, sizeof m64);

  // 8 bytes at a time; 8 is a multiple of 4 so the rotation stays valid.
  while (len >= 8) {
    uint64_t w;
    std::memcpy(&w, data, sizeof w);
    w ^= m64;
    std::memcpy(data, &w, sizeof w);
    data += 8;
    len -= 8;
  }
  for (size_t i = 0; i < len; ++i) data[i] ^= rotated[i];
}

size_t encode_header(uint8_t* out, Opcode opcode, uint64_t payload_len) {
  out[0] = static_cast<uint8_t>(0x80 | (static_cast<uint8_t>(opcode) & 0x0F));
  if (payload_len < 126) {
    out[1] = static_cast<uint8_t>(payload_len);
    return 2;
  }
  if (payload_len <= 0xFFFF) {
    out[1] = 126;
    store_be16(out + 2, payload_len);
    return 4;
  }
  out[1] = 127;
  store_be64(out + 2, payload_len);
  return 10;
}

bool is_valid_close_code(uint16_t code) {
  if (code >= 3000) return code <= 4999;
  // 1000-1003 and 1007-1014 (1012-1014 are IANA-registered).
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014);
}

}  // namespace flowrelay::ws
