#include "redis_options.h"

#include "parse_number.h"

#include <Poco/Exception.h>
#include <Poco/URI.h>

#include <cstdio>
#include <string_view>

namespace flowrelay::redis {

using plugin::parse_number;

namespace {
constexpr uint64_t kMaxHistorySize = 10000000;
constexpr uint64_t kMaxHistoryAgeMs = 365ull * 24 * 3600 * 1000;  // a year
}  // namespace

bool RedisEndpoint::parse(const std::string& url, std::string& error) {
  try {
    Poco::URI uri(url);
    if (uri.getScheme() == "unix") {
      unix_path = uri.getPath();
      if (unix_path.empty()) {
        error = "unix URL needs a path: unix:///run/redis/redis.sock";
        return false;
      }
      for (const auto& [k, v] : uri.getQueryParameters())
        if (k == "db" && !parse_number(std::string_view(v), 0, 1 << 20, db)) {
          error = "db must be a number";
          return false;
        }
      return true;
    }
    if (uri.getScheme() != "redis") {
      error = "scheme must be redis:// or unix:// (rediss:// TLS is not supported)";
      return false;
    }
    if (uri.getHost().empty()) {
      error = "missing host";
      return false;
    }
    host = uri.getHost();
    port = uri.getPort() ? uri.getPort() : 6379;
    const std::string info = uri.getUserInfo();
    if (!info.empty()) {
      const auto colon = info.find(':');
      if (colon == std::string::npos) {
        password = info;  // redis://secret@host, as redis-py accepts
      } else {
        user = info.substr(0, colon);
        password = info.substr(colon + 1);
      }
    }
    std::string path = uri.getPath();
    if (!path.empty() && path != "/" &&
        !parse_number(std::string_view(path).substr(1), 0, 1 << 20, db)) {
      error = "the path must be a database number, got '" + path + "'";
      return false;
    }
    return true;
  } catch (const Poco::Exception& e) {
    error = e.displayText();
    return false;
  }
}

std::string RedisEndpoint::describe() const {
  std::string s =
      unix_path.empty() ? "redis://" + host + ":" + std::to_string(port) : "unix://" + unix_path;
  if (db) s += " db " + std::to_string(db);
  return s;
}

bool RedisOptions::parse(const flowrelay_option* options, size_t n, const char* env_url, char* err,
                         size_t err_cap) {
  for (size_t i = 0; i < n; ++i) {
    const std::string_view key(options[i].key.ptr, options[i].key.len);
    const std::string_view value(options[i].value.ptr, options[i].value.len);
    auto bad = [&](const char* expected) {
      std::snprintf(err, err_cap, "broker-redis: option '%.*s' must be %s, got '%.*s'",
                    static_cast<int>(key.size()), key.data(), expected,
                    static_cast<int>(value.size()), value.data());
      return false;
    };
    auto ms = [&](uint32_t& out) {
      return parse_number<uint32_t>(value, 1, 3600000, out) ||
             bad("milliseconds from 1 to 3600000");
    };
    if (key == "url") {
      url.assign(value);
    } else if (key == "connect_timeout_ms") {
      if (!ms(connect_timeout_ms)) return false;
    } else if (key == "command_timeout_ms") {
      if (!ms(command_timeout_ms)) return false;
    } else if (key == "ping_interval_ms") {
      if (!ms(ping_interval_ms)) return false;
    } else if (key == "reconnect_min_ms") {
      if (!ms(reconnect_min_ms)) return false;
    } else if (key == "reconnect_max_ms") {
      if (!ms(reconnect_max_ms)) return false;
    } else if (key == "buffer_max_messages") {
      if (!parse_number<uint64_t>(value, 1, uint64_t{1} << 32, buffer_max_messages))
        return bad("a number from 1 to 4294967296");
    } else if (key == "buffer_max_bytes") {
      if (!parse_number<uint64_t>(value, 1024, uint64_t{1} << 40, buffer_max_bytes))
        return bad("a byte count of at least 1024");
    } else if (key == "history_size") {
      if (!parse_number<uint64_t>(value, 0, kMaxHistorySize, history_size))
        return bad("a number from 0 (no history) to 10000000");
    } else if (key == "history_max_age_ms") {
      if (!parse_number<uint64_t>(value, 1, kMaxHistoryAgeMs, history_max_age_ms))
        return bad("milliseconds from 1 to 31536000000");
    } else {
      std::snprintf(err, err_cap,
                    "broker-redis: unknown option '%.*s' (known: url, connect_timeout_ms, "
                    "command_timeout_ms, ping_interval_ms, reconnect_min_ms, reconnect_max_ms, "
                    "buffer_max_messages, buffer_max_bytes, history_size, history_max_age_ms)",
                    static_cast<int>(key.size()), key.data());
      return false;
    }
  }
  if (reconnect_max_ms < reconnect_min_ms) reconnect_max_ms = reconnect_min_ms;
  const bool from_env = env_url && *env_url;
  if (from_env) url = env_url;
  std::string error;
  if (!endpoint.parse(url, error)) {
    std::snprintf(err, err_cap, "broker-redis: invalid %s '%s': %s",
                  from_env ? "REDIS_URL" : "option 'url'", url.c_str(), error.c_str());
    return false;
  }
  return true;
}

}  // namespace flowrelay::redis
