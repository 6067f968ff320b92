// libFuzzer target: the client->server frame path of transport-ws, driven the way
// plugins/transport-ws/event_loop.cpp (on_input / on_frames / on_frame) drives it, minus the
// sockets: input arrives in reads split at points taken from the fuzz input, unparsed bytes are
// carried over, each frame goes through parse_header, validate_client_frame, unmask and
// Utf8Validator, and a fragmented text message is reassembled.
//
// Input layout (see tests/fuzz/make_seeds.py):
//   byte 0        bits 0-2: number of read splits k (0..7)
//                 bits 3-4: max_message_size: 125, 1000, 65536, 1 MiB
//   bytes 1..2k   k little-endian uint16 split points (taken modulo the stream length)
//   the rest      the byte stream a client sends after its handshake
//
// Every read is held in a heap buffer of exactly its size, so a parse past the bytes received
// is a heap-buffer-overflow under ASan. Invariants that do not need ASan are checked with
// FUZZ_CHECK (abort with a message).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "frame_codec.h"

using namespace flowrelay::ws;

#define FUZZ_CHECK(cond)                                                              \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "fuzz_frame_parser: invariant failed at %s:%d: %s\n", __FILE__, \
                   __LINE__, #cond);                                                  \
      std::abort();                                                                   \
    }                                                                                 \
  } while (0)

namespace {

// Reference UTF-8 check (RFC 3629), written independently of the DFA.
bool reference_utf8(const uint8_t* s, size_t n) {
  size_t i = 0;
  while (i < n) {
    const uint8_t c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (n - i < len) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}

// True if s[0..n) is a proper prefix of some valid UTF-8 string (what an incremental
// validator must accept mid-message).
bool reference_utf8_prefix(const uint8_t* s, size_t n) {
  // Strip an incomplete trailing sequence, if it is a valid beginning, and check the rest.
  for (size_t back = 0; back <= 3 && back <= n; ++back) {
    if (back > 0) {
      // s[n-back] must be a lead byte of a sequence longer than `back`, followed by
      // continuation bytes that keep it completable.
      uint8_t tail[4] = {0, 0, 0, 0};
      std::memcpy(tail, s + n - back, back);
      // Complete the sequence with the smallest continuation bytes that are valid, by trying
      // every continuation byte for the next position (cheap: at most 3 positions).
      bool completable = false;
      for (int fill = 0x80; fill <= 0xBF && !completable; ++fill) {
        for (size_t total = back + 1; total <= 4 && !completable; ++total) {
          uint8_t seq[4];
          std::memcpy(seq, tail, back);
          for (size_t k = back; k < total; ++k) seq[k] = static_cast<uint8_t>(fill);
          // The byte right after the given prefix decides the range (E0, ED, F0, F4 limit it);
          // every later one accepts 80..BF, so trying the same byte everywhere is enough.
          completable = reference_utf8(seq, total) && (seq[0] & 0xC0) != 0x80;
        }
      }
      if (!completable) continue;
      if (reference_utf8(s, n - back)) return true;
    } else if (reference_utf8(s, n)) {
      return true;
    }
  }
  return false;
}

// Copies `n` bytes into a heap block of exactly n bytes (ASan then catches any read past it).
struct ExactBuffer {
  std::unique_ptr<uint8_t[]> bytes;
  size_t size = 0;
  ExactBuffer(const uint8_t* a, size_t na, const uint8_t* b, size_t nb)
      : bytes(new uint8_t[std::max<size_t>(na + nb, 1)]), size(na + nb) {
    if (na) std::memcpy(bytes.get(), a, na);
    if (nb) std::memcpy(bytes.get() + na, b, nb);
  }
};

void check_header(const uint8_t* p, size_t len, ParseResult r, const FrameHeader& h) {
  if (r == ParseResult::NeedMore) {
    // Never NeedMore once the longest header (14 bytes) is there.
    FUZZ_CHECK(len < 14);
    return;
  }
  FUZZ_CHECK(len >= 2);
  const uint8_t len7 = p[1] & 0x7F;
  const bool masked = (p[1] & 0x80) != 0;
  const size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
  if (r == ParseResult::Malformed) {
    FUZZ_CHECK(ext != 0);  // a 7-bit length is always minimal
    FUZZ_CHECK(len >= 2 + ext);
    return;
  }
  FUZZ_CHECK(r == ParseResult::Ok);
  FUZZ_CHECK(h.header_len >= 2 && h.header_len <= 14);
  FUZZ_CHECK(h.header_len <= len);
  FUZZ_CHECK(h.header_len == 2 + ext + (masked ? 4 : 0));
  FUZZ_CHECK(h.masked == masked);
  FUZZ_CHECK(h.fin == ((p[0] & 0x80) != 0));
  FUZZ_CHECK(h.rsv == ((p[0] >> 4) & 7));
  FUZZ_CHECK(h.opcode == (p[0] & 0x0F));
  FUZZ_CHECK((h.payload_len >> 63) == 0);
  if (ext == 0) FUZZ_CHECK(h.payload_len == len7);
  if (ext == 2) FUZZ_CHECK(h.payload_len >= 126 && h.payload_len <= 0xFFFF);
  if (ext == 8) FUZZ_CHECK(h.payload_len >= 65536);
  if (masked) {
    FUZZ_CHECK(std::memcmp(h.mask, p + 2 + ext, 4) == 0);
  } else {
    FUZZ_CHECK(h.mask[0] == 0 && h.mask[1] == 0 && h.mask[2] == 0 && h.mask[3] == 0);
  }

  // The result only depends on the header bytes: every shorter prefix needs more (or is
  // already known to be malformed, which an Ok header cannot be), every prefix at least
  // header_len long parses to the same header. Each prefix in its own exact-size block.
  for (size_t n = 0; n <= h.header_len; ++n) {
    ExactBuffer prefix(p, n, nullptr, 0);
    FrameHeader h2;
    const ParseResult r2 = parse_header(n ? prefix.bytes.get() : nullptr, n, h2);
    if (n < h.header_len) {
      FUZZ_CHECK(r2 == ParseResult::NeedMore);
    } else {
      FUZZ_CHECK(r2 == ParseResult::Ok);
      FUZZ_CHECK(h2.header_len == h.header_len && h2.payload_len == h.payload_len &&
                 h2.opcode == h.opcode && h2.fin == h.fin && h2.rsv == h.rsv &&
                 std::memcmp(h2.mask, h.mask, 4) == 0);
    }
  }

  // encode_header writes the same length (unmasked, FIN) and it parses back.
  uint8_t enc[14];
  const size_t elen = encode_header(enc, static_cast<Opcode>(h.opcode & 0x0F), h.payload_len);
  FUZZ_CHECK(elen == 2 || elen == 4 || elen == 10);
  FrameHeader h3;
  FUZZ_CHECK(parse_header(enc, elen, h3) == ParseResult::Ok);
  FUZZ_CHECK(h3.header_len == elen && h3.payload_len == h.payload_len && h3.fin && !h3.masked &&
             h3.rsv == 0 && h3.opcode == (h.opcode & 0x0F));
}

void check_validation(const FrameHeader& h, bool fragmented, uint64_t max, uint16_t code) {
  FUZZ_CHECK(code == 0 || code == close_code::ProtocolError || code == close_code::TooBig);
  if (code != 0) return;
  FUZZ_CHECK(h.masked);
  FUZZ_CHECK(h.rsv == 0);
  const uint8_t op = h.opcode;
  FUZZ_CHECK(op <= 0x2 || (op >= 0x8 && op <= 0xA));
  if (op >= 0x8) {
    FUZZ_CHECK(h.fin && h.payload_len <= 125);
    FUZZ_CHECK(!(op == 0x8 && h.payload_len == 1));
  } else {
    FUZZ_CHECK((op == 0) == fragmented);
    FUZZ_CHECK(h.payload_len <= max);
  }
}

// Unmasks `payload` as the loop does (whole, offset 0) and checks it against a piecewise
// unmask at split points derived from the payload itself, and against a naive XOR.
void unmask_and_check(uint8_t* payload, size_t len, const uint8_t mask[4]) {
  std::vector<uint8_t> original(payload, payload + len);
  unmask(payload, len, mask, 0);
  for (size_t i = 0; i < len; ++i) FUZZ_CHECK(payload[i] == (original[i] ^ mask[i & 3]));
  if (len == 0) return;
  // Piecewise, pieces in exact-size blocks.
  std::vector<uint8_t> pieces;
  size_t pos = 0;
  size_t step = 1 + original[0] % 13;
  while (pos < len) {
    const size_t n = std::min(step, len - pos);
    ExactBuffer piece(original.data() + pos, n, nullptr, 0);
    unmask(piece.bytes.get(), n, mask, pos);
    pieces.insert(pieces.end(), piece.bytes.get(), piece.bytes.get() + n);
    pos += n;
    step = 1 + (step * 7 + 3) % 17;
  }
  FUZZ_CHECK(std::memcmp(pieces.data(), payload, len) == 0);
  // An involution: unmasking again gives the original back.
  std::vector<uint8_t> again(payload, payload + len);
  unmask(again.data(), len, mask, 0);
  FUZZ_CHECK(again == original);
}

// One connection in the Open state.
struct Conn {
  bool open = true;
  uint16_t close_sent = 0;
  uint8_t frag_opcode = 0;
  std::unique_ptr<std::string> message;  // fragmented message so far
  Utf8Validator utf8;                    // over `message`
  bool utf8_rejected = false;            // mirror: the validator once said no
  uint64_t max = 0;
  std::string carry;  // unparsed input carried over between reads (Connection::in)

  void close(uint16_t code) {
    FUZZ_CHECK(open);
    open = false;
    close_sent = code;
  }

  // Utf8Validator::feed with the monotonicity checks.
  bool feed(Utf8Validator& v, const uint8_t* p, size_t n, bool& rejected) {
    const bool ok = v.feed(p, n);
    if (rejected) FUZZ_CHECK(!ok && !v.complete());  // once rejected, stays rejected
    if (!ok) {
      rejected = true;
      FUZZ_CHECK(!v.complete());
      FUZZ_CHECK(!v.feed(nullptr, 0));
      FUZZ_CHECK(!v.feed(reinterpret_cast<const uint8_t*>("a"), 1));
      FUZZ_CHECK(!v.complete());
    }
    return ok;
  }

  void on_frame(const FrameHeader& h, uint8_t* payload) {
    const size_t len = h.payload_len;
    switch (static_cast<Opcode>(h.opcode)) {
      case Opcode::Text:
        if (h.fin) {
          Utf8Validator v;
          bool rejected = false;
          const bool ok = feed(v, payload, len, rejected) && v.complete();
          FUZZ_CHECK(ok == reference_utf8(payload, len));
          if (!ok) return close(close_code::InvalidPayload);
          return;  // published
        }
        utf8.reset();
        utf8_rejected = false;
        if (!feed(utf8, payload, len, utf8_rejected)) {
          FUZZ_CHECK(!reference_utf8_prefix(payload, len));
          return close(close_code::InvalidPayload);
        }
        FUZZ_CHECK(reference_utf8_prefix(payload, len));
        FUZZ_CHECK(utf8.complete() == reference_utf8(payload, len));
        frag_opcode = h.opcode;
        message = std::make_unique<std::string>(reinterpret_cast<char*>(payload), len);
        return;
      case Opcode::Continuation: {
        // validate_client_frame only lets a continuation through inside a message.
        FUZZ_CHECK(message != nullptr && frag_opcode != 0);
        const bool ok = feed(utf8, payload, len, utf8_rejected);
        message->append(reinterpret_cast<char*>(payload), len);
        const auto* m = reinterpret_cast<const uint8_t*>(message->data());
        // The incremental validator over the pieces agrees with one pass over the whole.
        FUZZ_CHECK(ok == reference_utf8_prefix(m, message->size()));
        if (!ok) return close(close_code::InvalidPayload);
        FUZZ_CHECK(message->size() <= max);
        if (!h.fin) return;
        FUZZ_CHECK(utf8.complete() == reference_utf8(m, message->size()));
        if (!utf8.complete()) return close(close_code::InvalidPayload);
        frag_opcode = 0;
        message.reset();  // published
        return;
      }
      case Opcode::Ping:
      case Opcode::Pong:
        FUZZ_CHECK(len <= 125);
        return;
      case Opcode::Close: {
        if (len == 0) return close(close_code::Normal);
        FUZZ_CHECK(len >= 2);  // validate_client_frame refuses a 1-byte close body
        const uint16_t code = uint16_t(payload[0] << 8 | payload[1]);
        if (!is_valid_close_code(code)) {
          FUZZ_CHECK(code < 1000 || code > 4999 || (code >= 1004 && code <= 1006) ||
                     (code >= 1015 && code < 3000));
          return close(close_code::ProtocolError);
        }
        Utf8Validator v;
        bool rejected = false;
        if (!feed(v, payload + 2, len - 2, rejected) || !v.complete())
          return close(close_code::InvalidPayload);
        return close(code);
      }
      default:
        FUZZ_CHECK(false);  // validate_client_frame let an unknown opcode through
    }
  }

  // EventLoop::on_frames over data[0..len): returns the bytes consumed.
  size_t on_frames(uint8_t* data, size_t len) {
    size_t used = 0;
    while (open) {
      FUZZ_CHECK(used <= len);
      FrameHeader h;
      const uint8_t* p = data + used;
      const ParseResult r = parse_header(p, len - used, h);
      check_header(p, len - used, r, h);
      if (r == ParseResult::NeedMore) break;
      if (r == ParseResult::Malformed) {
        close(close_code::ProtocolError);
        break;
      }
      const bool fragmented = frag_opcode != 0;
      const uint16_t code = validate_client_frame(h, fragmented, max);
      check_validation(h, fragmented, max, code);
      if (code) {
        close(code);
        break;
      }
      if (h.opcode == uint8_t(Opcode::Continuation) && message &&
          message->size() + h.payload_len > max) {
        close(close_code::TooBig);
        break;
      }
      if (h.opcode == uint8_t(Opcode::Binary)) {
        close(close_code::UnsupportedData);
        break;
      }
      if (len - used < h.header_len + h.payload_len) break;  // wait for the whole frame
      uint8_t* payload = data + used + h.header_len;
      FUZZ_CHECK(payload + h.payload_len <= data + len);
      unmask_and_check(payload, h.payload_len, h.mask);
      used += h.header_len + h.payload_len;
      on_frame(h, payload);
    }
    return used;
  }

  // EventLoop::on_input for an open connection: one read of `n` bytes.
  void on_read(const uint8_t* chunk, size_t n) {
    if (!open) return;
    // What the loop parses: carried-over bytes followed by this read, in one block.
    ExactBuffer buf(reinterpret_cast<const uint8_t*>(carry.data()), carry.size(), chunk, n);
    const size_t used = on_frames(buf.bytes.get(), buf.size);
    FUZZ_CHECK(used <= buf.size);
    if (!open) {
      carry.clear();
      return;
    }
    carry.assign(reinterpret_cast<const char*>(buf.bytes.get()) + used, buf.size - used);
    // What stays behind is never a complete frame the loop could have handled now.
    FrameHeader h;
    const ParseResult r = parse_header(reinterpret_cast<const uint8_t*>(carry.data()),
                                       carry.size(), h);
    if (r == ParseResult::Ok) FUZZ_CHECK(carry.size() < h.header_len + h.payload_len);
    else FUZZ_CHECK(r == ParseResult::NeedMore);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static constexpr uint64_t kMax[4] = {125, 1000, 65536, 1 << 20};
  const unsigned splits = data[0] & 7;
  const uint64_t max = kMax[(data[0] >> 3) & 3];
  size_t pos = 1;
  std::vector<uint16_t> points;
  for (unsigned i = 0; i < splits && pos + 2 <= size; ++i, pos += 2)
    points.push_back(static_cast<uint16_t>(data[pos] | data[pos + 1] << 8));
  const uint8_t* stream = data + pos;
  const size_t n = size - pos;

  std::vector<size_t> cuts = {0, n};
  for (uint16_t pt : points) cuts.push_back(n ? pt % (n + 1) : 0);
  std::sort(cuts.begin(), cuts.end());

  Conn c;
  c.max = max;
  for (size_t i = 0; i + 1 < cuts.size(); ++i) {
    const size_t len = cuts[i + 1] - cuts[i];
    // Each read in its own exact-size block, as read() fills the scratch buffer.
    ExactBuffer read(stream + cuts[i], len, nullptr, 0);
    c.on_read(read.bytes.get(), len);
  }

  // Splitting the reads must not change the outcome: one read of the whole stream closes with
  // the same code (or leaves the same unparsed tail).
  Conn whole;
  whole.max = max;
  {
    ExactBuffer read(stream, n, nullptr, 0);
    whole.on_read(read.bytes.get(), n);
  }
  FUZZ_CHECK(whole.open == c.open);
  FUZZ_CHECK(whole.close_sent == c.close_sent);
  if (whole.open) FUZZ_CHECK(whole.carry == c.carry && whole.frag_opcode == c.frag_opcode);
  return 0;
}
