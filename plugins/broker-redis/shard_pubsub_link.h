// A link for Redis Cluster's sharded Pub/Sub (SSUBSCRIBE, Redis >= 7.0) to one master: the
// subscriptions of the channels whose slots that master serves, and the messages SPUBLISH
// sends them.
//
// Written on hiredis' reply reader, not its async API: hiredis 0.14's async context knows
// SUBSCRIBE and PSUBSCRIBE only. It takes `ssubscribe` for a plain command with one reply and
// asserts on the next push (an `smessage` with no callback waiting). So this link drives a
// non-blocking redisContext from the broker's own epoll loop (EpollHandler): hiredis formats
// the commands, buffers the socket and parses the replies; the link matches them with what it
// sent, in order, and tells the pushes apart:
//   ["ssubscribe", ch, n]    the answer to SSUBSCRIBE ch (or Redis' error, e.g. MOVED)
//   ["sunsubscribe", ch, n]  the answer to our SUNSUBSCRIBE ch, or, unasked, Redis ending the
//                            subscription because ch's slot moved to another master (a reshard
//                            or this master's demotion): lost(), to subscribe it on the new
//                            owner and fill the gap from history
//   ["smessage", ch, data]   a message
// PING proves the link alive (a SIGSTOPped or partitioned Redis answers nothing): ["pong", ""]
// while subscribed, +PONG otherwise. The connection steps and backoff are RedisLink's
// (LinkOutage): Down -> Connecting -> Authenticating (AUTH, PING) -> Up.
#pragma once

#include <hiredis/hiredis.h>

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "hiredis_epoll.h"
#include "redis_context.h"
#include "redis_link.h"

namespace flowrelay::redis {

class ShardPubSubLink;

class ShardPubSubEvents {
 public:
  virtual void shard_up(ShardPubSubLink& link) = 0;  // subscribe what the master serves
  // The link went down (`was_up`: every subscription of the link is gone with it) or an
  // attempt to connect failed (the master may be gone: time to ask for the slot map).
  virtual void shard_down(ShardPubSubLink& link, const std::string& reason, bool was_up) = 0;
  // The answer to subscribe(channel): `error` empty, or Redis' refusal (MOVED, CROSSSLOT,
  // NOPERM...); the link stays up either way.
  virtual void shard_subscribed(ShardPubSubLink& link, std::string_view channel,
                                std::string_view error) = 0;
  // Redis ended `channel`'s subscription unasked: its slot is no longer this master's.
  virtual void shard_lost(ShardPubSubLink& link, std::string_view channel) = 0;
  virtual void shard_message(ShardPubSubLink& link, std::string_view channel,
                             std::string_view data) = 0;

 protected:
  ~ShardPubSubEvents() = default;
};

class ShardPubSubLink final : public EpollHandler {
 public:
  enum class State { Down, Connecting, Authenticating, Up };

  // A link to `master` (host and port; user and password for AUTH). Call connect() once, then
  // check() from the loop; it reconnects by itself with backoff until close().
  ShardPubSubLink(RedisContext& ctx, ShardPubSubEvents& events, RedisEndpoint master);
  ~ShardPubSubLink();
  ShardPubSubLink(const ShardPubSubLink&) = delete;
  ShardPubSubLink& operator=(const ShardPubSubLink&) = delete;

  void connect();
  // [Up] One SSUBSCRIBE per channel: Redis refuses one naming channels of several slots
  // (CROSSSLOT), and one answer per channel keeps the matching simple.
  void subscribe(const std::vector<std::string>& channels);
  void unsubscribe(const std::vector<std::string>& channels);
  // Connect timeout, reconnects, and the heartbeat (ping_interval_ms; no PONG within
  // command_timeout_ms drops the link). Returns the next time it needs a call.
  int64_t check(int64_t now);
  // Closes the connection; it reconnects after the backoff unless closing.
  void drop(const std::string& reason);
  void close();  // [destroy] no reconnect, no events

  void handle(uint32_t events) override;
  bool up() const { return _state == State::Up; }
  State state() const { return _state; }
  const RedisEndpoint& master() const { return _master; }
  std::string describe() const { return _master.describe(); }

 private:
  // What a reply in order answers: AUTH, CLIENT SETNAME, the PING that makes the link Up, a
  // heartbeat PING, SSUBSCRIBE, SUNSUBSCRIBE.
  enum class Awaits { Auth, Setname, Ready, Ping, Subscribe, Unsubscribe };
  struct Expected {
    Awaits what;
    std::string channel;
  };

  void send(const std::vector<std::string_view>& argv, Awaits what, std::string channel = {});
  void on_connected();
  void flush();
  void read();
  // Returns false when the link went down meanwhile.
  bool dispatch(const redisReply* reply);
  bool answered(const Expected& e, const redisReply* reply);
  void watch(uint32_t events);
  void mark_down(const std::string& reason);

  RedisContext& _ctx;
  ShardPubSubEvents& _events;
  const RedisEndpoint _master;
  redisContext* _c = nullptr;
  State _state = State::Down;
  uint32_t _watched = 0;  // epoll events registered for _c's fd
  std::deque<Expected> _expected;
  int64_t _since_ms = 0;      // when the current state began
  int64_t _retry_at_ms = 0;   // next connect attempt when Down
  int64_t _ping_sent_ms = 0;  // 0: no PING outstanding
  int64_t _next_ping_ms = 0;
  LinkOutage _outage;
};

}  // namespace flowrelay::redis
