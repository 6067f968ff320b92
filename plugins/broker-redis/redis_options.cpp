#include "redis_options.h"

#include <Poco/Exception.h>
#include <Poco/URI.h>

#include <cctype>
#include <string_view>

namespace flowrelay::redis {

using sdk::parse_number;
using sdk::Reload;

namespace {

constexpr double kMaxMs = 3600000;
constexpr double kMaxHistorySize = 10000000;
constexpr double kMaxHistoryAgeMs = 365.0 * 24 * 3600 * 1000;  // a year
constexpr const char* kMs = "milliseconds from 1 to 3600000";

const sdk::OptionTable<RedisOptions>& table() {
  using O = RedisOptions;
  static const sdk::OptionTable<RedisOptions> t(
      "broker-redis",
      {
          {"url", &O::url, "redis://localhost:6379", 0, 0, Reload::Restart, nullptr,
           "redis://[user:password@]host[:port][/db], unix:///path[?db=N] or "
           "redis+sentinel://[user:password@]host[:port][,host[:port]...]/MASTER[/db] (the "
           "sentinels' default port is 26379); REDIS_URL wins"},
          {"mode", &O::mode, "standalone", 0, 0, Reload::Restart, nullptr,
           "standalone (one Redis, or its Sentinels' master) or cluster (a Redis Cluster: url "
           "lists seed nodes, redis://host1:port1,host2:port2; sharded Pub/Sub, Redis >= 7)"},
          {"sentinel_password", &O::sentinel_password, "", 0, 0, Reload::Restart, nullptr,
           "AUTH to the sentinels when set (the URL's password is the master's)"},
          {"sentinel_check_ms", &O::sentinel_check_ms, "2000", 1, kMaxMs, Reload::Live, kMs,
           "the sentinels are asked for the master this often, besides +switch-master"},
          {"connect_timeout_ms", &O::connect_timeout_ms, "2000", 1, kMaxMs, Reload::Live, kMs,
           "a connection not up within this is retried"},
          {"command_timeout_ms", &O::command_timeout_ms, "3000", 1, kMaxMs, Reload::Live, kMs,
           "a reply (or heartbeat) later than this: reconnect and resend"},
          {"ping_interval_ms", &O::ping_interval_ms, "1000", 1, kMaxMs, Reload::Live, kMs,
           "liveness probe of the subscriber connection"},
          {"reconnect_min_ms", &O::reconnect_min_ms, "50", 1, kMaxMs, Reload::Live, kMs,
           "reconnect backoff starts here and doubles..."},
          {"reconnect_max_ms", &O::reconnect_max_ms, "1000", 1, kMaxMs, Reload::Live, kMs,
           "...up to this"},
          {"buffer_max_messages", &O::buffer_max_messages, "100000", 1, 4294967296.0, Reload::Live,
           "a number from 1 to 4294967296",
           "publishes held while Redis is away (and in flight); past it: EAGAIN"},
          {"buffer_max_bytes", &O::buffer_max_bytes, "67108864", 1024, 1099511627776.0,
           Reload::Live, "a byte count of at least 1024", "bytes of those publishes"},
          {"history_size", &O::history_size, "2000", 0, kMaxHistorySize, Reload::Live,
           "a number from 0 (no history) to 10000000", "messages kept per channel; 0: none"},
          {"history_max_age_ms", &O::history_max_age_ms, "600000", 1, kMaxHistoryAgeMs,
           Reload::Live, "milliseconds from 1 to 31536000000",
           "older messages are trimmed; a channel idle this long starts a new epoch"},
          {"history_max_bytes", &O::history_max_bytes, "4194304", 1, 1099511627776.0, Reload::Live,
           "a byte count from 1 to 1099511627776",
           "data bytes kept per channel (messages, replies' text); oldest entries leave first, "
           "and a reply step that would take the open replies' text past it is refused (413)"},
          {"presence_ttl_ms", &O::presence_ttl_ms, "10000", 1000, kMaxMs, Reload::Live,
           "milliseconds from 1000 to 3600000",
           "a node's presence counts expire this long after its last refresh (every third of "
           "it): how long a crashed node's clients still count"},
          {"wait_replicas", &O::wait_replicas, "0", 0, 100, Reload::Live,
           "a number from 0 (off) to 100",
           "after each batch of history writes, WAIT for this many replicas to acknowledge "
           "them before completing the publishes (survives a failover; costs a round trip "
           "to the replicas per batch)"},
          {"wait_timeout_ms", &O::wait_timeout_ms, "1000", 1, kMaxMs, Reload::Live, kMs,
           "the WAIT's timeout: fewer replicas by then completes the batch anyway (counted)"},
      });
  return t;
}

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

namespace {

bool valid_master_name(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-')
      return false;
  return true;
}

// "host[:port]"; the port defaults to the sentinels' 26379. IPv6 literals are not accepted.
bool parse_sentinel_host(std::string_view item, RedisEndpoint& out, std::string& error) {
  const auto colon = item.find(':');
  out.host.assign(item.substr(0, colon));
  out.port = 26379;
  if (out.host.empty()) {
    error = "empty sentinel host in '" + std::string(item) + "'";
    return false;
  }
  if (colon != std::string_view::npos &&
      !parse_number(item.substr(colon + 1), 1, 65535, out.port)) {
    error = "sentinel port must be a number from 1 to 65535 in '" + std::string(item) + "'";
    return false;
  }
  return true;
}

}  // namespace

bool parse_sentinel_url(const std::string& url, RedisOptions& o, std::string& error) {
  constexpr std::string_view kScheme = "redis+sentinel://";
  std::string_view rest(url);
  if (!rest.starts_with(kScheme)) {
    error = "scheme must be redis+sentinel://";
    return false;
  }
  rest.remove_prefix(kScheme.size());
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    const std::string_view info = authority.substr(0, at);
    const auto colon = info.find(':');
    if (colon == std::string_view::npos) {
      o.endpoint.password.assign(info);
    } else {
      o.endpoint.user.assign(info.substr(0, colon));
      o.endpoint.password.assign(info.substr(colon + 1));
    }
    authority.remove_prefix(at + 1);
  }
  o.sentinels.clear();
  while (true) {
    const auto comma = authority.find(',');
    RedisEndpoint sentinel;
    if (!parse_sentinel_host(authority.substr(0, comma), sentinel, error)) return false;
    o.sentinels.push_back(std::move(sentinel));
    if (comma == std::string_view::npos) break;
    authority.remove_prefix(comma + 1);
  }
  const auto db_slash = path.find('/');
  const std::string_view name = path.substr(0, db_slash);
  if (name.empty()) {
    error = "missing master name: redis+sentinel://host:26379/MASTER_NAME";
    return false;
  }
  if (!valid_master_name(name)) {
    error = "master name '" + std::string(name) + "' must be letters, digits, '.', '_' or '-'";
    return false;
  }
  o.master_name.assign(name);
  if (db_slash != std::string_view::npos &&
      !parse_number(path.substr(db_slash + 1), 0, 1 << 20, o.endpoint.db)) {
    error = "the path after the master name must be a database number, got '" +
            std::string(path.substr(db_slash + 1)) + "'";
    return false;
  }
  return true;
}

bool parse_cluster_url(const std::string& url, RedisOptions& o, std::string& error) {
  constexpr std::string_view kScheme = "redis://";
  if (!url.starts_with(kScheme)) {
    error =
        "mode: cluster takes redis://[user:password@]host1:port1,host2:port2 (one or more "
        "seed nodes; unix://, rediss:// and redis+sentinel:// are not for a cluster)";
    return false;
  }
  std::string_view rest(url);
  rest.remove_prefix(kScheme.size());
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  const std::string path(slash == std::string_view::npos ? "" : rest.substr(slash));
  std::string userinfo;
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    userinfo.assign(authority.substr(0, at + 1));
    authority.remove_prefix(at + 1);
  }
  // Each seed as a URL of its own, with the shared credentials: one parser for every form.
  o.cluster_seeds.clear();
  while (true) {
    const auto comma = authority.find(',');
    const std::string item(authority.substr(0, comma));
    RedisEndpoint seed;
    if (!seed.parse(std::string(kScheme) + userinfo + item + path, error)) {
      error = "seed '" + item + "': " + error;
      return false;
    }
    if (seed.db != 0) {
      error = "a Redis Cluster has only database 0";
      return false;
    }
    o.cluster_seeds.push_back(std::move(seed));
    if (comma == std::string_view::npos) break;
    authority.remove_prefix(comma + 1);
  }
  o.endpoint = o.cluster_seeds.front();
  return true;
}

RedisOptions parse_options(const flowrelay_option* options, size_t n, const char* env_url) {
  RedisOptions o = table().parse(options, n);
  if (o.reconnect_max_ms < o.reconnect_min_ms) o.reconnect_max_ms = o.reconnect_min_ms;
  const bool from_env = env_url && *env_url;
  if (from_env) o.url = env_url;
  if (o.mode != "standalone" && o.mode != "cluster")
    throw sdk::OptionError("broker-redis: option 'mode' must be standalone or cluster, got '" +
                           o.mode + "'");
  std::string error;
  const bool sentinel = o.url.starts_with("redis+sentinel://");
  bool parsed = false;
  if (o.mode == "cluster")
    parsed = parse_cluster_url(o.url, o, error);
  else if (sentinel)
    parsed = parse_sentinel_url(o.url, o, error);
  else if (o.url.find(',') != std::string::npos && !o.url.starts_with("unix:"))
    error = "several hosts are a Redis Cluster's seeds: set mode: cluster";
  else
    parsed = o.endpoint.parse(o.url, error);
  if (!parsed)
    throw sdk::OptionError("broker-redis: invalid " +
                           std::string(from_env ? "REDIS_URL" : "option 'url'") + " '" + o.url +
                           "': " + error);
  // The sentinels' own AUTH; the URL's user and password are the master's.
  for (auto& s : o.sentinels) s.password = o.sentinel_password;
  return o;
}

}  // namespace flowrelay::redis
