// The subscriber side: one SUBSCRIBE per channel per node on its own link, re-subscribed after
// every reconnect; what Redis delivers goes to the host in order, minus duplicates, with the
// gap a subscriber outage leaves filled from history (gap_fill.h). A heartbeat published on
// the publisher link and expected back here proves the link alive (a hung Redis answers
// nothing).
//
// The subscribe contract (plugin.h): every subscribe() is PENDING and answered exactly once by
// host subscribed() (unless unsubscribed first); a re-subscribe after a reconnect that works is
// not reported; one Redis refuses (ACL NOPERM...) is reported once as subscribed(channel,
// error), and the channel is dropped until subscribed again. hiredis 0.14 cannot hand an error
// reply in subscribed mode to a callback: it closes the link with Redis' words, which the link
// reports as `refused`; the refused command is the oldest SUBSCRIBE not yet confirmed. Alone in
// it, its channel is refused; with others, they are re-subscribed one per command next time,
// which finds it.
#pragma once

#include <hiredis/async.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "gap_fill.h"
#include "publisher.h"
#include "redis_context.h"
#include "redis_link.h"

namespace flowrelay::redis {

class Subscriber {
 public:
  using WakeFn = void (*)(void* owner);
  // `resubscribed` runs on the broker thread when the last channel of a re-subscribe is back.
  Subscriber(RedisContext& ctx, LinkEvents& events, Publisher& publisher, WakeFn wake, void* owner,
             std::function<void()> resubscribed);
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

  // [any thread, non-blocking] Queued for the broker thread.
  void subscribe(std::string_view channel) { queue_op(true, channel); }
  void unsubscribe(std::string_view channel) { queue_op(false, channel); }

  // [broker thread]
  void take_ops();
  void on_up();  // the link is up: re-subscribe everything
  void on_down(bool refused, const std::string& reason);
  void publisher_down() { _ping_sent_ms = 0; }  // a heartbeat in flight is lost with it
  // Heartbeat and gap fill deadlines; returns the next time it needs a call.
  int64_t check(int64_t now);
  bool resubscribed() const { return _resubscribing.empty(); }

  RedisLink& link() { return _link; }
  const GapFill& gaps() const { return _gaps; }

 private:
  struct Op {
    bool subscribe;
    std::string channel;
  };
  // A SUBSCRIBE sent and not yet confirmed for all its channels: Redis answers in order.
  struct Sent {
    std::vector<std::string> channels;
    size_t confirmed = 0;
  };
  void queue_op(bool subscribe, std::string_view channel);
  void send(bool subscribe, const std::vector<std::string>& channels);
  void confirmed(const std::string& channel);
  void refuse(const std::string& channel, const std::string& reason);
  void deliver(std::string_view channel, const WireMessage& wire);
  // The history read of the gap fill (gap_read.h), if one is needed.
  void read_gap(const std::string& channel, bool resubscribed, int64_t now);
  static void reply_cb(redisAsyncContext* ac, void* reply, void* self);
  static void heartbeat_cb(redisAsyncContext* ac, void* reply, void* self);

  RedisContext& _ctx;
  RedisLink _link;
  Publisher& _publisher;
  WakeFn _wake;
  void* _owner;
  std::function<void()> _on_resubscribed;

  // Shared with the calling threads.
  std::mutex _mutex;
  std::vector<Op> _ops;
  bool _wake_pending = false;

  // The broker thread's own.
  std::unordered_set<std::string> _channels;        // subscriptions this node wants
  std::unordered_set<std::string> _awaiting;        // subscribe() calls not yet answered
  std::unordered_set<std::string> _resubscribing;   // not yet confirmed after a reconnect
  std::unordered_set<std::string> _alone;           // re-subscribed one per command (see top)
  std::unordered_map<std::string, int> _in_flight;  // SUBSCRIBE commands not yet confirmed
  std::deque<Sent> _sent;
  std::string _heartbeat_channel;  // this node's own: proves the subscriber link is alive
  bool _heartbeat_refused = false;
  int64_t _ping_sent_ms = 0;  // 0: no heartbeat outstanding
  int64_t _next_ping_ms = 0;
  GapFill _gaps;                         // fills what Pub/Sub missed while the link was away
  int64_t _gap_deadline_ms = INT64_MAX;  // earliest fill to give up
};

}  // namespace flowrelay::redis
