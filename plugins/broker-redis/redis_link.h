// One connection to Redis and its state machine: Down -> Connecting -> Authenticating -> Up,
// with AUTH/SELECT/CLIENT SETNAME on connect, a connect timeout, and capped exponential backoff
// between attempts. Each state change is logged once per outage, not per attempt. What a link
// carries (publishes, subscriptions) is its owner's: the owner learns of every transition
// through LinkEvents, on the broker thread.
#pragma once

#include <hiredis/async.h>

#include <cstdint>
#include <string>
#include <vector>

#include "hiredis_epoll.h"
#include "redis_context.h"

namespace flowrelay::redis {

class RedisLink;

// What every kind of link does between connections: capped exponential backoff
// (reconnect_min_ms doubling up to reconnect_max_ms), and one log line per outage rather than
// per attempt, with one more once it is over.
class LinkOutage {
 public:
  // The link (`role`, last connected to `where`) is down: logged if it was up or this is the
  // first failed attempt. Returns when to try again.
  int64_t down(const RedisContext& ctx, const char* role, const std::string& where,
               const std::string& reason, bool was_up);
  // The link is up: logs that it is (again) and counts a reconnect after an outage.
  void up(RedisContext& ctx, const char* role, const std::string& where);
  // The next attempt goes at once (the master moved).
  void reset_backoff() { _backoff_ms = 0; }

 private:
  uint32_t _backoff_ms = 0;
  uint32_t _failures = 0;  // consecutive failed attempts
};

class LinkEvents {
 public:
  // Connected; AUTH/SELECT/SETNAME are queued: what else must precede the link being Up.
  virtual void link_connected(RedisLink& link) = 0;
  virtual void link_up(RedisLink& link) = 0;
  // The link went down. `refused`: Redis answered one of its commands with an error hiredis
  // cannot hand to a callback (in subscribed mode: a refused SUBSCRIBE); `reason` then holds
  // Redis' words.
  virtual void link_down(RedisLink& link, bool refused, const std::string& reason) = 0;

 protected:
  ~LinkEvents() = default;
};

class RedisLink {
 public:
  enum class State { Down, Connecting, Authenticating, Up };

  // A link to the master (ctx.master). `role` names it in logs ("publisher"), `client_name` in
  // CLIENT LIST; `select_db`: send SELECT (Pub/Sub ignores databases, keys do not). In sentinel
  // mode it is Up only once ROLE said "master": nothing is written to a demoted replica.
  RedisLink(RedisContext& ctx, LinkEvents& events, const char* role, const char* client_name,
            bool select_db);
  // A link to `target` (a sentinel), which must outlive it; no ROLE check. A target with no
  // host is not known yet: the link stays Down, silently.
  RedisLink(RedisContext& ctx, LinkEvents& events, const char* role, const char* client_name,
            const RedisEndpoint& target);
  ~RedisLink();
  RedisLink(const RedisLink&) = delete;
  RedisLink& operator=(const RedisLink&) = delete;

  void connect();
  // Closes the link now (a timeout, a refusal); it reconnects after the backoff. From inside a
  // hiredis callback of this link, `in_callback` must be true.
  void drop(const std::string& reason, bool in_callback);
  // Drops the link if it is not Down and connects again at once, without backoff (the master
  // moved). Not from inside this link's hiredis callbacks.
  void reconnect_now(const std::string& reason);
  // Connect timeout and reconnect; returns the next time it needs a call.
  int64_t check(int64_t now);
  // Frees adapters hiredis is done with (outside hiredis callbacks).
  void free_dead_adapters();
  // [destroy] Frees the context: pending callbacks run with no reply.
  void close();

  bool up() const { return _state == State::Up; }
  State state() const { return _state; }
  redisAsyncContext* context() const { return _ac; }
  const char* role() const { return _role; }
  // The endpoint of the current (or last) connection, for logs: no password.
  std::string describe() const { return _connected_to.describe(); }

 private:
  void on_connected();
  void on_up();
  void mark_down(const std::string& reason, bool refused);

  static void connect_cb(const redisAsyncContext* ac, int status);
  static void disconnect_cb(const redisAsyncContext* ac, int status);
  static void auth_cb(redisAsyncContext* ac, void* reply, void* last);
  static void role_cb(redisAsyncContext* ac, void* reply, void*);

  RedisContext& _ctx;
  LinkEvents& _events;
  const char* _role;
  const char* _client_name;
  bool _select_db;
  const RedisEndpoint& _target;
  bool _check_role;
  bool _role_error_logged = false;  // ROLE refused (ACL): logged once, then accepted
  bool _replica_logged = false;     // connected to a replica: logged once per episode
  RedisEndpoint _connected_to;      // _target as of connect()
  redisAsyncContext* _ac = nullptr;
  State _state = State::Down;
  int64_t _since_ms = 0;     // when the current state began
  int64_t _retry_at_ms = 0;  // next connect attempt when Down
  LinkOutage _outage;
  std::string _drop_reason;  // why we closed it ourselves, for the log
  std::vector<HiredisEpoll*> _adapters;
};

}  // namespace flowrelay::redis
