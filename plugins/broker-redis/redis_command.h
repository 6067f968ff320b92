// Writing a command to hiredis without allocating, and reading the plain parts of a reply:
// shared by the requests of the publisher link (publisher_request.cpp, reply_request.cpp).
#pragma once

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <array>
#include <charconv>
#include <cstdint>
#include <string_view>

#include "redis_context.h"

namespace flowrelay::redis {

inline bool is_string(const redisReply* r) {
  return r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS;
}

inline bool number_of(const redisReply* r, uint64_t& out) {
  if (!is_string(r)) return false;
  const std::string_view s = str_of(r);
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

// A number's decimal digits, on the stack: no allocation per command (a node id has 20).
class Decimal {
 public:
  explicit Decimal(uint64_t n) {
    _len = std::to_chars(_digits, _digits + sizeof _digits, n).ptr - _digits;
  }
  operator std::string_view() const { return {_digits, _len}; }

 private:
  char _digits[20];
  size_t _len;
};

// One command from its arguments (anything a string_view can view), without allocating.
template <typename... Args>
int write_argv(redisAsyncContext* ac, redisCallbackFn* fn, void* priv, const Args&... args) {
  std::array<const char*, sizeof...(Args)> argv{std::string_view(args).data()...};
  const std::array<size_t, sizeof...(Args)> lens{std::string_view(args).size()...};
  return redisAsyncCommandArgv(ac, fn, priv, static_cast<int>(argv.size()), argv.data(),
                               lens.data());
}

}  // namespace flowrelay::redis
