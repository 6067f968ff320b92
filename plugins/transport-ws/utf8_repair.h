// Text that reaches clients must be valid UTF-8 (RFC 6455 text frames, JSON strings). What
// clients publish is checked on the way in; what a backend PUBLISHes straight into Redis is
// not, so deliveries are checked once per message and repaired rather than dropped.
#pragma once

#include <string>
#include <string_view>

namespace flowrelay::ws {

// True if `s` is valid UTF-8 (the fast path: one DFA pass).
bool is_valid_utf8(std::string_view s);

// `s` with every invalid or truncated sequence replaced by U+FFFD (one per maximal invalid
// prefix, as decoders commonly do), valid sequences kept byte for byte.
std::string repair_utf8(std::string_view s);

// The longest prefix of valid UTF-8 `s` that fits in `max_bytes` and ends on a character
// boundary (close reasons: 123 bytes).
std::string_view utf8_prefix(std::string_view s, size_t max_bytes);

}  // namespace flowrelay::ws
