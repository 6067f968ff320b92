#include "utf8_repair.h"

#include <cstdint>

#include "frame_codec.h"

namespace flowrelay::ws {

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

}  // namespace flowrelay::ws
