// The publisher pipeline: publishing threads queue requests into the outbox (bounded by count
// and bytes, numbered by origin seq under the lock that orders it); the broker thread moves them
// to `pending`, writes everything pending in one go once the node is ready, and matches Redis'
// replies in order against `inflight`. A lost link requeues what Redis did not answer, in order,
// ahead of what was never sent (the append script stores a resend once: history_scripts.h;
// a reply step is recognised by its seq or its ended state: reply_scripts.h);
// NOSCRIPT (Redis lost the scripts) holds new requests, reloads, and resends what was refused
// (renumbered if it never ran: publisher.cpp's requeue_refused).
//
// Durability across a failover (docs/PROTOCOL.md "Failover and lost writes"): every write
// carries the channel's floor (channel_floors.h) for the scripts' regression fence; with
// wait_replicas each batch of writes is followed by one WAIT, and the batch completes when it
// answered (a link lost before that requeues the batch like any unanswered request).
#pragma once

#include <hiredis/async.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "channel_floors.h"
#include "publisher_request.h"
#include "redis_context.h"
#include "redis_link.h"
#include "reply_copy.h"
#include "slot_map.h"

namespace flowrelay::redis {

class Publisher;

// One connection's pipeline: to the Redis (standalone; in sentinel mode the master the
// sentinels name), or in cluster mode to one master. Replies come back in order per
// connection, so what was written, what waits for its WAIT and what NOSCRIPT refused is kept
// per pipe; the order of requests across pipes is the Publisher's.
struct PublisherPipe {
  PublisherPipe(RedisContext& ctx, LinkEvents& events);                        // to ctx.master
  PublisherPipe(RedisContext& ctx, LinkEvents& events, RedisEndpoint master);  // a cluster master
  const RedisEndpoint endpoint;  // cluster mode; (ctx.master otherwise)
  RedisLink link;
  Publisher* owner = nullptr;
  std::deque<PublisherRequest> inflight;  // written, waiting for Redis' reply (in order)
  std::deque<PublisherRequest> retry;     // refused with NOSCRIPT, resent once reloaded
  // Answered by their script, completed once their batch's WAIT answers (in order).
  std::deque<std::pair<PublisherRequest, CopiedReply>> awaiting_wait;
  int64_t progress_ms = 0;         // last write into an empty pipeline, or last reply
  bool reloading = false;          // NOSCRIPT seen: hold new requests until reloaded
  bool scripts_refused = false;    // SCRIPT LOAD failed: NOSCRIPT is final, no retry
  bool wait_short_logged = false;  // once per outage: until a WAIT reaches wait_replicas
  bool retired = false;            // cluster: no longer a master of the map; closed once idle
  bool writable() const { return link.up() && !reloading; }
};

class Publisher : private LinkEvents {
 public:
  using WakeFn = void (*)(void* owner);
  // `events` learns of every pipe link's transitions (after the publisher's own handling).
  // With `cluster` (mode: cluster), requests go to the master of their channel's slot, the
  // scripts publish with SPUBLISH, and a redirect (MOVED, ASK, TRYAGAIN, CLUSTERDOWN) sends a
  // request again, in its place in the order of its slot.
  Publisher(RedisContext& ctx, LinkEvents& events, WakeFn wake, void* owner,
            SlotRoutes* cluster = nullptr);
  ~Publisher();
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;

  // [any thread, non-blocking] Queues `r`: FLOWRELAY_OK, or FLOWRELAY_EAGAIN past the buffer
  // bound (nothing queued). A publish gets origin {node_id, its session, next seq}.
  flowrelay_status enqueue(PublisherRequest&& r);

  // [broker thread] A read of the broker's own (the gap fill): not bounded, not counted.
  void push_internal(PublisherRequest&& r);
  // Takes what the publishing threads queued.
  void take_outbox();
  // Writes everything pending that can go, unless the node is not ready (every link up and
  // every channel resubscribed). In cluster mode a request waits while its slot has no known
  // master, its master's link is down or reloading, or requests of its slot are still in
  // flight on another master's link (so a slot's writes reach Redis in order across a move).
  void send_pending();
  void set_ready(bool ready);
  // [broker thread] The links: connect at start, the loop's checks, destroy.
  void connect();
  // Command timeouts, reconnects, history floor sweeps, retry delays; the next time it needs
  // a call.
  int64_t check(int64_t now);
  void free_dead_adapters();
  void close();
  // Cluster mode: the slot map changed: pipes to new masters, old ones retired.
  void map_changed();
  // [destroy, broker thread gone] Completes, in order, what Redis never answered.
  void abandon();

  // [broker thread] The subscriber delivered (epoch, offset) of `channel`: a floor too.
  void note_delivered(std::string_view channel, std::string_view epoch, uint64_t offset) {
    _floors.note(channel, epoch, offset, monotonic_ms());
  }

  // The first pipe's link: standalone and sentinel mode's only one (presence and the
  // subscriber's heartbeat ride on it).
  RedisLink& link() { return _pipes.front()->link; }
  bool owns(const RedisLink& link) const;
  // The link serving `channel`: the only one, or in cluster mode its slot's master's (nullptr
  // while the map does not know it). Presence rides on it.
  RedisLink* link_for(std::string_view channel);
  bool clustered() const { return _cluster != nullptr; }
  // Every pipe up (cluster mode: every master of the map; false before the map is known).
  bool up() const;
  uint64_t buffered_messages() const { return _buffered_messages.load(std::memory_order_relaxed); }
  uint64_t buffered_bytes() const { return _buffered_bytes.load(std::memory_order_relaxed); }

 private:
  struct SlotFlight {
    PublisherPipe* pipe = nullptr;
    uint32_t count = 0;
  };

  PublisherPipe* route(const PublisherRequest& r, int64_t now);
  PublisherPipe* pipe_for(const RedisEndpoint& master);
  bool write(PublisherPipe& pipe, PublisherRequest& r, bool wait);
  void landed(const PublisherRequest& r);
  void requeue(PublisherRequest&& r);
  bool redirected(const PublisherPipe& pipe, PublisherRequest& r, const redisReply* reply);
  void load_scripts(PublisherPipe& pipe);
  void finish(const PublisherRequest& request, const redisReply* reply);
  void noted(const PublisherRequest& request, const PublisherRequest::Ack& ack);
  void write_wait(PublisherPipe& pipe);
  void wait_answered(PublisherPipe& pipe, const redisReply* reply);
  void retry_after_reload(PublisherPipe& pipe, PublisherRequest&& request);
  void finish_reload(PublisherPipe& pipe);
  void requeue_unanswered(PublisherPipe& pipe);
  void requeue_refused(PublisherPipe& pipe);
  void renumber_unrun();
  void drop_idle_retired();
  PublisherPipe* pipe_of(const RedisLink& link);
  static void reply_cb(redisAsyncContext* ac, void* reply, void* pipe);
  static void script_load_cb(redisAsyncContext* ac, void* reply, void* pipe);

  void link_connected(RedisLink& link) override;
  void link_up(RedisLink& link) override;
  void link_down(RedisLink& link, bool refused, const std::string& reason) override;

  RedisContext& _ctx;
  LinkEvents& _events;
  SlotRoutes* const _cluster;
  const std::string _append_lua, _history_lua, _reply_lua;  // SPUBLISH in cluster mode
  const HistoryScripts _scripts;
  WakeFn _wake;
  void* _owner;

  // Shared with publishing threads.
  std::mutex _mutex;
  std::vector<PublisherRequest> _outbox;
  uint64_t _next_seq = 0;  // origin.seq of the last publish queued
  bool _wake_pending = false;
  std::atomic<uint64_t> _buffered_messages{0};  // accepted and not yet answered by Redis
  std::atomic<uint64_t> _buffered_bytes{0};

  // The broker thread's own.
  std::vector<std::unique_ptr<PublisherPipe>> _pipes;  // standalone: exactly one
  std::deque<PublisherRequest> _pending;  // accepted, not yet written to Redis (by `order`)
  uint64_t _next_order = 0;
  std::unordered_map<uint16_t, SlotFlight> _slot_flight;  // cluster: slots with writes out
  int64_t _next_retry_ms = INT64_MAX;  // cluster: the earliest delayed retry (TRYAGAIN...)
  bool _sending = false;               // cluster: send_pending() under way
  ChannelFloors _floors;
  int64_t _next_sweep_ms = 0;
  bool _ready = false;
};

}  // namespace flowrelay::redis
