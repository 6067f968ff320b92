// broker-redis options (the plugin's YAML section; REDIS_URL overrides `url`).
#pragma once

#include <flowrelay/plugin.h>

#include <cstdint>
#include <string>

namespace flowrelay::redis {

struct RedisEndpoint {
  std::string host = "localhost";
  int port = 6379;
  std::string unix_path;  // set for unix:///path
  std::string user;       // AUTH user pass (Redis 6 ACL) when both are set
  std::string password;   // AUTH pass when only this is set
  int db = 0;             // SELECT db when not 0

  // redis://[[user]:pass@]host[:port][/db] or unix:///path[?db=N]. Returns false with a
  // message on anything else.
  bool parse(const std::string& url, std::string& error);
  std::string describe() const;  // for logs: no password
};

struct RedisOptions {
  std::string url = "redis://localhost:6379";
  RedisEndpoint endpoint;
  uint32_t connect_timeout_ms = 2000;
  uint32_t command_timeout_ms = 3000;     // a reply (or PING answer) later than this: reconnect
  uint32_t ping_interval_ms = 1000;       // liveness probe on the subscriber connection
  uint32_t reconnect_min_ms = 50;         // backoff starts here and doubles...
  uint32_t reconnect_max_ms = 1000;       // ...up to this
  uint64_t buffer_max_messages = 100000;  // publishes held while Redis is away (and in flight)
  uint64_t buffer_max_bytes = 64ull << 20;
  uint64_t history_size = 2000;          // messages kept per channel; 0: no history
  uint64_t history_max_age_ms = 600000;  // older ones are trimmed; idle this long: new epoch

  // `env_url` (REDIS_URL) wins over the `url` option when set and non-empty.
  bool parse(const flowrelay_option* options, size_t n, const char* env_url, char* err,
             size_t err_cap);
};

}  // namespace flowrelay::redis
