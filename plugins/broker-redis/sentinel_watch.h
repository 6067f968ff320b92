// Sentinel mode: which Redis is the master. Two links to one sentinel at a time, on the broker
// thread: a query link (SENTINEL get-master-addr-by-name, at once when up, every
// sentinel_check_ms, and whenever the broker asks again) and a subscribed link (+switch-master,
// since a RESP2 subscribed connection cannot run SENTINEL commands). A sentinel that fails or
// does not know the master: the next one in the URL's list. A new address goes into
// ctx.master; the broker then relinks the master links (take_master_change()).
#pragma once

#include <hiredis/async.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "redis_context.h"
#include "redis_link.h"

namespace flowrelay::redis {

class SentinelWatch final : private LinkEvents {
 public:
  explicit SentinelWatch(RedisContext& ctx);
  SentinelWatch(const SentinelWatch&) = delete;
  SentinelWatch& operator=(const SentinelWatch&) = delete;

  // [broker thread]
  void connect();
  void ask_now() { _next_ask_ms = 0; }  // a master link went down: the master may have moved
  // True once after ctx.master changed: the master links must reconnect.
  bool take_master_change() { return std::exchange(_master_changed, false); }
  int64_t check(int64_t now);
  void free_dead_adapters();
  void close();

 private:
  void link_connected(RedisLink&) override {}
  void link_up(RedisLink& link) override;
  void link_down(RedisLink& link, bool refused, const std::string& reason) override;
  void ask();
  void next_sentinel(const std::string& reason);
  void set_master(std::string_view host, std::string_view port);
  static void addr_cb(redisAsyncContext* ac, void* reply, void* self);
  static void switch_cb(redisAsyncContext* ac, void* reply, void* self);

  RedisContext& _ctx;
  size_t _index = 0;        // the sentinel in use, in options.sentinels
  RedisEndpoint _sentinel;  // its address: both links' target
  RedisLink _query;
  RedisLink _switches;
  bool _asking = false;    // a query in flight
  bool _rotating = false;  // next_sentinel() dropping the links
  bool _unknown_reported = false;
  bool _master_changed = false;
  int64_t _next_ask_ms = 0;
};

}  // namespace flowrelay::redis
