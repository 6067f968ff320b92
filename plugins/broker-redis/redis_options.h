// broker-redis options (the plugin's YAML section; REDIS_URL overrides `url`). Every key is
// declared once in redis_options.cpp's table: parsed, validated, documented, diffed on reload.
#pragma once

#include <flowrelay/plugin.hpp>

#include <cstdint>
#include <string>
#include <vector>

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
  bool operator==(const RedisEndpoint&) const = default;
};

struct RedisOptions {
  std::string url;  // restart-only; the rest applies on reload
  // Standalone: the Redis to use. Sentinel mode: the master's user, password and db only; its
  // address comes from the sentinels (RedisContext::master).
  RedisEndpoint endpoint;
  // redis+sentinel://[user:pass@]host1[:port],host2[:port]/MASTER[/db]: asked in turn, each
  // with sentinel_password. Empty: standalone.
  std::vector<RedisEndpoint> sentinels;
  std::string master_name;
  // mode: cluster: Redis Cluster, url = redis://[user:pass@]host1[:port],host2[:port]... (the
  // seeds asked for CLUSTER SLOTS); endpoint then holds the first seed (the credentials every
  // node gets). Empty: standalone or sentinel.
  std::string mode;
  std::vector<RedisEndpoint> cluster_seeds;
  std::string sentinel_password;   // restart-only
  uint32_t sentinel_check_ms = 0;  // the master is re-asked this often
  uint32_t connect_timeout_ms = 0;
  uint32_t command_timeout_ms = 0;   // a reply (or heartbeat) later than this: reconnect
  uint32_t ping_interval_ms = 0;     // liveness probe of the subscriber connection
  uint32_t reconnect_min_ms = 0;     // backoff starts here and doubles...
  uint32_t reconnect_max_ms = 0;     // ...up to this
  uint64_t buffer_max_messages = 0;  // publishes held while Redis is away (and in flight)
  uint64_t buffer_max_bytes = 0;
  uint64_t history_size = 0;        // messages kept per channel; 0: no history
  uint64_t history_max_age_ms = 0;  // older ones are trimmed; idle this long: new epoch
  uint64_t history_max_bytes = 0;   // data bytes kept per channel (messages, replies' text)
  uint32_t presence_ttl_ms = 0;     // a node's presence entries expire this long after its last
                                    // refresh (it refreshes every third of it)
  // Durability across a failover (docs/PROTOCOL.md "Failover and lost writes").
  uint32_t wait_replicas = 0;    // WAIT for this many replicas after each batch of writes
  uint32_t wait_timeout_ms = 0;  // ...at most this long
};

// Defaults, then `options`; `env_url` (REDIS_URL) wins over `url` when set and non-empty.
// Throws sdk::OptionError naming the key ('history_size') or REDIS_URL.
// redis+sentinel://[user:pass@]host1[:port][,host2[:port]...]/MASTER[/db] into `o`'s
// endpoint (credentials, db), sentinels and master_name. False with a message otherwise.
bool parse_sentinel_url(const std::string& url, RedisOptions& o, std::string& error);

// redis://[user:pass@]host1[:port][,host2[:port]...][/0] into `o`'s cluster_seeds and
// endpoint. False with a message otherwise.
bool parse_cluster_url(const std::string& url, RedisOptions& o, std::string& error);

RedisOptions parse_options(const flowrelay_option* options, size_t n, const char* env_url);

}  // namespace flowrelay::redis
