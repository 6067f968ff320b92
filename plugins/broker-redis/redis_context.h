// What every part of broker-redis shares: the host, the options that apply live, the counters
// behind /metrics, and the broker thread's clock.
#pragma once

#include <hiredis/hiredis.h>
#include <flowrelay/plugin.hpp>

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "redis_options.h"

namespace flowrelay::redis {

// The broker thread's clock for timeouts and backoff (history ages are Redis' own: TIME in the
// scripts, shared by every node).
int64_t monotonic_ms();

inline std::string_view str_of(const redisReply* r) {
  return {r->str, static_cast<size_t>(r->len)};
}

// Options that reconfigure() changes while running; read on the broker thread.
struct LiveOptions {
  std::atomic<uint32_t> connect_timeout_ms{0}, command_timeout_ms{0}, ping_interval_ms{0};
  std::atomic<uint32_t> reconnect_min_ms{0}, reconnect_max_ms{0};
  std::atomic<uint64_t> buffer_max_messages{0}, buffer_max_bytes{0};
  std::atomic<uint64_t> history_size{0}, history_max_age_ms{0}, history_max_bytes{0};
  std::atomic<uint32_t> presence_ttl_ms{0};
  std::atomic<uint32_t> wait_replicas{0}, wait_timeout_ms{0};
  std::atomic<uint32_t> sentinel_check_ms{0};
  void apply(const RedisOptions& o) {
    connect_timeout_ms = o.connect_timeout_ms;
    command_timeout_ms = o.command_timeout_ms;
    ping_interval_ms = o.ping_interval_ms;
    reconnect_min_ms = o.reconnect_min_ms;
    reconnect_max_ms = o.reconnect_max_ms;
    buffer_max_messages = o.buffer_max_messages;
    buffer_max_bytes = o.buffer_max_bytes;
    history_size = o.history_size;
    history_max_age_ms = o.history_max_age_ms;
    history_max_bytes = o.history_max_bytes;
    presence_ttl_ms = o.presence_ttl_ms;
    wait_replicas = o.wait_replicas;
    wait_timeout_ms = o.wait_timeout_ms;
    sentinel_check_ms = o.sentinel_check_ms;
  }
};

struct Counters {
  using C = std::atomic<uint64_t>;
  C published{0};            // acknowledged by Redis
  C publish_errors{0};       // refused by Redis (reported)
  C buffer_full{0};          // publishes refused with EAGAIN
  C received{0};             // messages delivered to this node
  C history_reads{0};        // history reads Redis answered
  C script_reloads{0};       // NOSCRIPT recoveries (SCRIPT FLUSH)
  C reconnects{0};           // links re-established after a loss
  C resends_stored_once{0};  // resends the append script recognised: not stored again
  C resend_offsets_lost{0};  // of those, whose first entry was trimmed (completion: offset 0)
  C subscribe_refused{0};    // channels whose (re)subscribe Redis refused
  C history_regressions{0};  // histories found behind this node's floor: new epoch started
  C wait_short{0};           // WAITs answered by fewer replicas than wait_replicas
  C master_changes{0};       // the sentinels named another master
  C cluster_moved{0};        // mode: cluster: requests sent again after MOVED...
  C cluster_ask{0};          // ...after ASK
  C cluster_retries{0};      // ...tried again after TRYAGAIN or CLUSTERDOWN
  std::atomic<int> pub_up{0}, sub_up{0}, sentinel_up{0};
  void add(C& c, uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }
};

struct RedisContext {
  RedisContext(sdk::BrokerHost h, RedisOptions o)
      : host(h), options(std::move(o)), master(options.endpoint) {
    live.apply(options);
    if (sentinel_mode()) master.host.clear();  // not known until a sentinel names it
  }
  bool sentinel_mode() const { return !options.sentinels.empty(); }
  bool cluster_mode() const { return !options.cluster_seeds.empty(); }

  sdk::BrokerHost host;
  const RedisOptions options;  // as started: url/endpoint; the tunables live in `live`
  LiveOptions live;
  // [broker thread] Where the master links connect: options.endpoint, or in sentinel mode the
  // address the sentinels gave (host empty until then) with the URL's credentials and db.
  RedisEndpoint master;
  Counters count;
  int epoll_fd = -1;
  bool closing = false;  // [broker thread] destroy() under way: no reports, no reconnects

  void log(flowrelay_log_level level, const std::string& text) const { host.log(level, text); }
  void report(flowrelay_status code, const std::string& text) const {
    if (!closing) host.report_error(code, text);
  }
};

}  // namespace flowrelay::redis
