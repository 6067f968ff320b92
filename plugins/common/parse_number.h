// Option values arrive as text: the whole string must be a number within [min, max].
// Shared by the in-tree plugins (not part of the SDK).
#pragma once

#include <charconv>
#include <string_view>

namespace flowrelay::plugin {

template <typename T>
bool parse_number(std::string_view text, T min, T max, T& out) {
  T value{};
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || !(value >= min && value <= max))  // rejects NaN too
    return false;
  out = value;
  return true;
}

}  // namespace flowrelay::plugin
