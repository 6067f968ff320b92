// The conversation id rule shared by the WebSocket path and the publish API: 1..max_length
// characters of A-Z a-z 0-9 _ . : - (safe in a URL path, a Redis key and a log line).
#pragma once

#include <cstddef>
#include <string_view>

namespace flowrelay {

inline bool valid_conversation_id(std::string_view id, size_t max_length) {
  if (id.empty() || id.size() > max_length) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace flowrelay
