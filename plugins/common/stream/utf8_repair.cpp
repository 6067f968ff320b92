#include "utf8_repair.h"

#include <bit>
#include <cstring>

#include <cstdint>

namespace flowrelay::stream {

namespace {

// Bjoern Hoehrmann's UTF-8 DFA (http://bjoern.hoehrmann.de/utf-8/decoder/dfa/), the variant
// whose states are pre-multiplied by 12: 0 = accept, 12 = reject.
// Copyright (c) 2008-2009 Bjoern Hoehrmann <bjoern@hoehrmann.de>, MIT licence.
// clang-format off
constexpr uint8_t kUtf8Dfa[] = {
  // Byte -> character class.
   0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,  0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
   0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,  0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
   0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,  0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
   0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,  0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
   1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,  9,9,9,9,9,9,9,9,9,9,9,9,9,9,9,9,
   7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,  7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,
   8,8,2,2,2,2,2,2,2,2,2,2,2,2,2,2,  2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,
  10,3,3,3,3,3,3,3,3,3,3,3,3,4,3,3, 11,6,6,6,5,8,8,8,8,8,8,8,8,8,8,8,
  // (state + class) -> state.
   0,12,24,36,60,96,84,12,12,12,48,72, 12,12,12,12,12,12,12,12,12,12,12,12,
  12, 0,12,12,12,12,12, 0,12, 0,12,12, 12,24,12,12,12,12,12,24,12,24,12,12,
  12,12,12,12,12,12,12,24,12,12,12,12, 12,24,12,12,12,12,12,12,12,24,12,12,
  12,12,12,12,12,12,12,36,12,36,12,12, 12,36,12,12,12,12,12,36,12,36,12,12,
  12,36,12,12,12,12,12,12,12,12,12,12,
};
// clang-format on
static_assert(sizeof(kUtf8Dfa) == 256 + 108);

constexpr uint32_t kDfaAccept = 0;
constexpr uint32_t kDfaReject = 12;
// Public encoding of the reject state (see Utf8Validator in the header). Internal
// mid-sequence states are 24..96, so 1 never collides with one of them.
constexpr uint32_t kPublicReject = 1;
constexpr uint64_t kHighBits = 0x8080808080808080ull;

}  // namespace

bool Utf8Validator::feed(const uint8_t* data, size_t len) {
  uint32_t s = state;
  if (s == kPublicReject) return false;
  const uint8_t* p = data;
  const uint8_t* const end = data + len;
  while (p != end) {
    if (s == kDfaAccept) {
      // Fast path: skip whole 8-byte words of ASCII.
      while (static_cast<size_t>(end - p) >= 8) {
        uint64_t w;
        std::memcpy(&w, p, sizeof w);
        const uint64_t high = w & kHighBits;
        if (high != 0) {
          // Skip the ASCII bytes in front of the first non-ASCII one.
          if constexpr (std::endian::native == std::endian::little) {
            p += std::countr_zero(high) >> 3;
          } else {
            p += std::countl_zero(high) >> 3;
          }
          break;
        }
        p += 8;
      }
      if (p == end) break;
    }
    s = kUtf8Dfa[256 + s + kUtf8Dfa[*p++]];
    if (s == kDfaReject) [[unlikely]] {
      state = kPublicReject;
      return false;
    }
  }
  state = s;
  return true;
}

bool is_valid_utf8(std::string_view s) {
  Utf8Validator v;
  return v.feed(reinterpret_cast<const uint8_t*>(s.data()), s.size()) && v.complete();
}

std::string repair_utf8(std::string_view s) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  std::string out;
  out.reserve(s.size() + 8);
  Utf8Validator v;
  size_t start = 0;  // first byte of the sequence being decoded
  size_t i = 0;
  while (i < s.size()) {
    const auto byte = static_cast<uint8_t>(s[i]);
    if (!v.feed(&byte, 1)) {
      out += kReplacement;
      v.reset();
      // A byte that broke a sequence begun earlier may start a valid one itself.
      if (i == start) ++i;
      start = i;
      continue;
    }
    ++i;
    if (v.complete()) {
      out.append(s.data() + start, i - start);
      start = i;
    }
  }
  if (!v.complete()) out += kReplacement;  // truncated at the end
  return out;
}

std::string_view utf8_prefix(std::string_view s, size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  size_t n = max_bytes;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;  // a continuation
  return s.substr(0, n);
}

}  // namespace flowrelay::stream
