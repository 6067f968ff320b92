// Text that reaches clients must be valid UTF-8 (RFC 6455 text frames, JSON strings). What
// clients publish is checked on the way in; what a backend PUBLISHes straight into Redis is
// not, so deliveries are checked once per message and repaired rather than dropped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace flowrelay::stream {

// Incremental UTF-8 validator (Bjoern Hoehrmann's DFA): feed fragments in order; a code point
// may be split across calls. State 0 = accept (complete), 1 = reject; others = mid-sequence.
struct Utf8Validator {
  uint32_t state = 0;
  // Returns false as soon as the input so far cannot be valid UTF-8.
  bool feed(const uint8_t* data, size_t len);
  bool complete() const { return state == 0; }
  void reset() { state = 0; }
};

// True if `s` is valid UTF-8 (the fast path: one DFA pass).
bool is_valid_utf8(std::string_view s);

// `s` with every invalid or truncated sequence replaced by U+FFFD (one per maximal invalid
// prefix, as decoders commonly do), valid sequences kept byte for byte.
std::string repair_utf8(std::string_view s);

// The longest prefix of valid UTF-8 `s` that fits in `max_bytes` and ends on a character
// boundary (close reasons: 123 bytes).
std::string_view utf8_prefix(std::string_view s, size_t max_bytes);

}  // namespace flowrelay::stream
