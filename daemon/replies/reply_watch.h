// The reply watch: every node watches the open replies it delivers (OPEN, DELTA; a SNAPSHOT of
// a gap fill too) and keeps per (channel, reply) the time of the last step. A reply without a
// delta for channels.reply_stall_ms is announced to the local transports as STALLED (once per
// stall); after channels.reply_timeout_ms it is sealed: this node publishes its END with reason
// producer_lost, and the broker decides once cluster-wide (other nodes doing the same get a
// duplicate or ECONFLICT, which is expected and ignored).
//
// One timer thread serves every reply (not a thread or a timer per reply): a min-heap of
// deadlines, armed once per reply and re-armed lazily when it fires early (a delta only moves
// a reply's deadline later, so the step itself never touches the heap). Only channels with
// local sessions are watched: a node whose last session left stops watching (its deliveries
// stop, so it could not tell a live reply from a lost one).
#pragma once

#include <flowrelay/plugin.h>
#include <flowrelay/plugin_metrics.hpp>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <queue>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "replies/reply_metrics.h"

namespace flowrelay {

class ReplyWatch {
 public:
  // Hands a STALLED message to the local transports.
  using DeliverFn = std::function<void(std::string_view channel, const flowrelay_message&)>;
  // Publishes a reply step from this node (Router::publish_reply).
  using PublishFn = std::function<flowrelay_status(
      std::string_view channel, const flowrelay_message&, flowrelay_reply_published_fn, void*)>;

  ReplyWatch(uint64_t node_id, DeliverFn deliver, PublishFn publish);
  ~ReplyWatch() { stop(); }
  ReplyWatch(const ReplyWatch&) = delete;
  ReplyWatch& operator=(const ReplyWatch&) = delete;

  // [any thread] channels.reply_stall_ms / reply_timeout_ms (0: off); applies to every reply
  // watched, at once (SIGHUP).
  void set_timers(uint32_t stall_ms, uint32_t timeout_ms);

  // [any thread, under the router's channel lock] `channel` has local sessions now / none left
  // (its replies are forgotten).
  void watch_channel(std::string_view channel);
  void forget_channel(std::string_view channel);

  // [broker thread] A delivered reply step (any kind): liveness and metrics.
  void observe(std::string_view channel, const flowrelay_message& message,
               const flowrelay_reply& reply);

  // [main] Ends the timer thread; nothing is delivered or published after it returns.
  void stop();

  size_t open() const;
  void metrics(sdk::PrometheusText& out) const { _metrics.write(out, open()); }

 private:
  struct Watched {
    int64_t last_us = 0;        // the last OPEN/DELTA/SNAPSHOT seen
    int64_t last_delta_us = 0;  // the last DELTA accepted through this node (0: none or not ours)
    int64_t armed_us = 0;       // the deadline of this reply's live heap item (0: none)
    uint64_t seq = 0;
    bool stalled = false;  // announced; a delta clears it
    bool sealing = false;  // our END producer_lost is with the broker
  };
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using Replies = std::unordered_map<std::string, Watched, Hash, std::equal_to<>>;
  struct Due {
    int64_t at;
    std::string channel;
    std::string reply;
    bool operator>(const Due& other) const { return at > other.at; }
  };
  struct Action {
    bool seal;  // else: a stalled notice
    std::string channel;
    std::string reply;
    uint64_t seq;
  };
  struct SealCtx;

  static int64_t now_us();
  int64_t due_locked(const Watched& w) const;
  void arm_locked(std::string_view channel, std::string_view reply, Watched& w);
  void fire_locked(const Due& due, int64_t now, std::vector<Action>& actions);
  void act(const Action& action);
  void sealed(const SealCtx& ctx, flowrelay_status status);
  void run();

  const uint64_t _node_id;
  const DeliverFn _deliver;
  const PublishFn _publish;
  ReplyMetrics _metrics;

  mutable std::mutex _mutex;  // guards all below; never held across _deliver or _publish
  std::condition_variable _wake;
  std::unordered_map<std::string, Replies, Hash, std::equal_to<>> _channels;
  std::priority_queue<Due, std::vector<Due>, std::greater<>> _heap;
  size_t _open = 0;
  uint32_t _stall_ms = 10000;
  uint32_t _timeout_ms = 60000;
  bool _stopping = false;
  std::thread _thread;  // started with the first reply armed
};

}  // namespace flowrelay
