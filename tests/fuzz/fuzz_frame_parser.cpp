// libFuzzer target: the client->server byte stream of transport-ws, through the real Session
// (plugins/transport-ws/session.h) as the event loop drives it, minus the socket: the upgrade,
// then reads split at points taken from the fuzz input. The frame codec functions are also
// checked on their own over the same stream.
//
// Input layout (see tests/fuzz/make_seeds.py):
//   byte 0        bits 0-2: number of read splits k (0..7)
//                 bits 3-4: max_message_size: 125, 1000, 65536, 1 MiB
//                 bit 5:    envelope mode (subprotocol flowrelay.v1)
//                 bit 6:    the broker confirms late: the stream arrives while Joining
//   bytes 1..2k   k little-endian uint16 split points (taken modulo the stream length)
//   the rest      the byte stream a client sends after its handshake
//
// Every read is held in a heap buffer of exactly its size, so a parse past the bytes received
// is a heap-buffer-overflow under ASan. Invariants that do not need ASan are checked with
// FUZZ_CHECK (abort with a message):
//  - splitting the reads changes nothing: same state, publishes and output bytes;
//  - the output is whole, unmasked server frames; at most one close, last, with a valid code
//    and a UTF-8 reason; what is published is valid UTF-8 within max_message_size;
//  - a stream of nothing but valid text frames is published exactly, and the session stays open.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "../unit/session_test_host.h"

using namespace flowrelay::ws;
using namespace flowrelay::ws::testing;

#define FUZZ_CHECK(cond)                                                                   \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      std::fprintf(stderr, "fuzz_frame_parser: invariant failed at %s:%d: %s\n", __FILE__, \
                   __LINE__, #cond);                                                       \
      std::abort();                                                                        \
    }                                                                                      \
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
bool reference_utf8(std::string_view s) {
  return reference_utf8(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// Copies `n` bytes into a heap block of exactly n bytes (ASan then catches any read past it).
struct ExactBuffer {
  std::unique_ptr<char[]> bytes;
  size_t size;
  ExactBuffer(const uint8_t* p, size_t n) : bytes(new char[std::max<size_t>(n, 1)]), size(n) {
    if (n) std::memcpy(bytes.get(), p, n);
  }
};

// The codec on its own: a header parses the same from every prefix at least header_len long,
// needs more before, agrees with the bytes, and its length encodes back.
void check_header(const uint8_t* p, size_t len) {
  FrameHeader h;
  const ParseResult r = parse_header(p, len, h);
  if (r == ParseResult::NeedMore) {
    FUZZ_CHECK(len < 14);  // never once the longest header is there
    return;
  }
  FUZZ_CHECK(len >= 2);
  const uint8_t len7 = p[1] & 0x7F;
  const size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
  if (r == ParseResult::Malformed) {
    FUZZ_CHECK(ext != 0 && len >= 2 + ext);  // a 7-bit length is always minimal
    return;
  }
  FUZZ_CHECK(h.header_len == 2 + ext + ((p[1] & 0x80) ? 4 : 0) && h.header_len <= len);
  FUZZ_CHECK(h.fin == ((p[0] & 0x80) != 0) && h.rsv == ((p[0] >> 4) & 7));
  FUZZ_CHECK(h.opcode == (p[0] & 0x0F) && (h.payload_len >> 63) == 0);
  if (ext == 0) FUZZ_CHECK(h.payload_len == len7);
  if (ext == 2) FUZZ_CHECK(h.payload_len >= 126 && h.payload_len <= 0xFFFF);
  if (ext == 8) FUZZ_CHECK(h.payload_len >= 65536);
  for (size_t n = 0; n <= h.header_len; ++n) {
    ExactBuffer prefix(p, n);
    FrameHeader h2;
    const ParseResult r2 =
        parse_header(n ? reinterpret_cast<uint8_t*>(prefix.bytes.get()) : nullptr, n, h2);
    FUZZ_CHECK(r2 == (n < h.header_len ? ParseResult::NeedMore : ParseResult::Ok));
  }
  uint8_t enc[14];
  const size_t elen = encode_header(enc, static_cast<Opcode>(h.opcode), h.payload_len);
  FrameHeader h3;
  FUZZ_CHECK(parse_header(enc, elen, h3) == ParseResult::Ok);
  FUZZ_CHECK(h3.header_len == elen && h3.payload_len == h.payload_len && h3.fin && !h3.masked);
}

struct Run {
  SessionEnv env;
  RecordingHost host;
  std::unique_ptr<Session> session;
};

// Upgrade, then the stream in reads cut at `cuts`; a late confirmation admits after them.
void drive(Run& run, uint64_t max, bool envelope, bool late, const uint8_t* stream,
           const std::vector<size_t>& cuts) {
  run.env.limits.max_message_size = max;
  run.env.limits.publish_rate = 0;  // a fixed clock: the rate limit has its own tests
  run.host.join_status = late ? FLOWRELAY_PENDING : FLOWRELAY_OK;
  run.session = std::make_unique<Session>(run.host, run.env.config, 1);
  Session& s = *run.session;
  s.start();
  feed(s, upgrade_request("/ws/42", envelope ? kEnvelopeOffer : std::string_view()));
  FUZZ_CHECK(s.state() == (late ? Session::State::Joining : Session::State::Open));
  for (size_t i = 0; i + 1 < cuts.size(); ++i) {
    ExactBuffer read(stream + cuts[i], cuts[i + 1] - cuts[i]);  // as read() fills its buffer
    s.feed(read.bytes.get(), read.size);
  }
  if (late && s.state() == Session::State::Joining) {
    s.admit();
    s.drain_held();
  }
}

void check_output(const Run& run, const std::string& bytes, uint64_t max) {
  const Output o = parse_output(bytes, true);
  FUZZ_CHECK(!o.malformed && o.rest.empty());
  const auto state = run.session->state();
  if (state != Session::State::Closed) FUZZ_CHECK(o.status() == 101);
  for (size_t i = 0; i < o.frames.size(); ++i) {
    const ServerFrame& f = o.frames[i];
    FUZZ_CHECK(f.fin);
    if (f.opcode == uint8_t(Opcode::Close)) {
      FUZZ_CHECK(i + 1 == o.frames.size());  // nothing after our close
      FUZZ_CHECK(state == Session::State::Closing);
      FUZZ_CHECK(f.payload.size() != 1 && f.payload.size() <= 125);
      if (f.payload.size() >= 2) {
        FUZZ_CHECK(is_valid_close_code(f.close_code()));
        FUZZ_CHECK(reference_utf8(std::string_view(f.payload).substr(2)));
      }
    } else if (f.opcode == uint8_t(Opcode::Pong)) {
      FUZZ_CHECK(f.payload.size() <= 125);
    } else {
      FUZZ_CHECK(f.opcode == uint8_t(Opcode::Text) && run.session->envelope());  // error frames
      FUZZ_CHECK(reference_utf8(f.payload));
    }
  }
  if (state == Session::State::Open) FUZZ_CHECK(run.host.leaves == 0);
  for (const auto& p : run.host.published) {
    FUZZ_CHECK(reference_utf8(p.data));
    if (!run.session->envelope()) FUZZ_CHECK(p.data.size() <= max);
  }
}

// If the stream is nothing but whole, masked, valid single-frame text messages, returns them.
bool plain_text_messages(const uint8_t* p, size_t n, uint64_t max, std::vector<std::string>& out) {
  size_t used = 0;
  while (used < n) {
    check_header(p + used, n - used);
    FrameHeader h;
    if (parse_header(p + used, n - used, h) != ParseResult::Ok) return false;
    if (validate_client_frame(h, false, max) != 0 || h.opcode != uint8_t(Opcode::Text) || !h.fin)
      return false;
    if (n - used < h.header_len + h.payload_len) return false;
    std::string payload(reinterpret_cast<const char*>(p + used + h.header_len), h.payload_len);
    for (size_t i = 0; i < payload.size(); ++i) payload[i] ^= char(h.mask[i & 3]);
    if (!reference_utf8(payload)) return false;
    out.push_back(std::move(payload));
    used += h.header_len + h.payload_len;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static constexpr uint64_t kMax[4] = {125, 1000, 65536, 1 << 20};
  const unsigned splits = data[0] & 7;
  const uint64_t max = kMax[(data[0] >> 3) & 3];
  const bool envelope = data[0] & 0x20;
  const bool late = data[0] & 0x40;
  size_t pos = 1;
  std::vector<uint16_t> points;
  for (unsigned i = 0; i < splits && pos + 2 <= size; ++i, pos += 2)
    points.push_back(static_cast<uint16_t>(data[pos] | data[pos + 1] << 8));
  const uint8_t* stream = data + pos;
  const size_t n = size - pos;

  std::vector<size_t> cuts = {0, n};
  for (uint16_t pt : points) cuts.push_back(n ? pt % (n + 1) : 0);
  std::sort(cuts.begin(), cuts.end());

  Run split, whole;
  drive(split, max, envelope, late, stream, cuts);
  drive(whole, max, envelope, late, stream, {0, n});
  const std::string split_out = queued_bytes(*split.session, false);
  const std::string whole_out = queued_bytes(*whole.session, false);
  FUZZ_CHECK(split.session->state() == whole.session->state());
  FUZZ_CHECK(split_out == whole_out);
  FUZZ_CHECK(split.host.published.size() == whole.host.published.size());
  for (size_t i = 0; i < split.host.published.size(); ++i)
    FUZZ_CHECK(split.host.published[i].data == whole.host.published[i].data &&
               split.host.published[i].lane == whole.host.published[i].lane);
  check_output(split, split_out, max);

  std::vector<std::string> expected;
  // (Late: a stream that big before the confirmation is a flood, closed unread.)
  if (!envelope && !late && plain_text_messages(stream, n, max, expected)) {
    FUZZ_CHECK(split.session->state() == Session::State::Open);
    FUZZ_CHECK(split.host.published.size() == expected.size());
    for (size_t i = 0; i < expected.size(); ++i)
      FUZZ_CHECK(split.host.published[i].data == expected[i]);
  }
  return 0;
}
