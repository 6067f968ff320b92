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
#include <mutex>
#include <string>
#include <vector>

#include "channel_floors.h"
#include "publisher_request.h"
#include "redis_context.h"
#include "redis_link.h"
#include "reply_copy.h"

namespace flowrelay::redis {

class Publisher {
 public:
  using WakeFn = void (*)(void* owner);
  Publisher(RedisContext& ctx, LinkEvents& events, WakeFn wake, void* owner);
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;

  // [any thread, non-blocking] Queues `r`: FLOWRELAY_OK, or FLOWRELAY_EAGAIN past the buffer
  // bound (nothing queued). A publish gets origin {node_id, its session, next seq}.
  flowrelay_status enqueue(PublisherRequest&& r);

  // [broker thread] A read of the broker's own (the gap fill): not bounded, not counted.
  void push_internal(PublisherRequest&& r) { _pending.push_back(std::move(r)); }
  // Takes what the publishing threads queued.
  void take_outbox();
  // Writes everything pending, unless the link is down, the node not ready (both links up and
  // every channel resubscribed), or a script reload is under way.
  void send_pending();
  void set_ready(bool ready);
  // The link's hooks (RedisBroker forwards them): scripts first on connect; a lost link
  // requeues what Redis did not answer.
  void on_connected();
  void on_down();
  // No reply in time: drops the link. Returns the next time it needs a call.
  int64_t check(int64_t now);
  // [destroy, broker thread gone] Completes, in order, what Redis never answered.
  void abandon();

  // [broker thread] The subscriber delivered (epoch, offset) of `channel`: a floor too.
  void note_delivered(std::string_view channel, std::string_view epoch, uint64_t offset) {
    _floors.note(channel, epoch, offset, monotonic_ms());
  }

  RedisLink& link() { return _link; }
  uint64_t buffered_messages() const { return _buffered_messages.load(std::memory_order_relaxed); }
  uint64_t buffered_bytes() const { return _buffered_bytes.load(std::memory_order_relaxed); }

 private:
  void load_scripts();
  void finish(const PublisherRequest& request, const redisReply* reply);
  void noted(const PublisherRequest& request, const PublisherRequest::Ack& ack);
  void write_wait();
  void wait_answered(const redisReply* reply);
  void retry_after_reload(PublisherRequest&& request);
  void finish_reload();
  void requeue_unanswered();
  void requeue_refused();
  static void reply_cb(redisAsyncContext* ac, void* reply, void* self);
  static void script_load_cb(redisAsyncContext* ac, void* reply, void* self);

  RedisContext& _ctx;
  RedisLink _link;
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
  std::deque<PublisherRequest> _pending;   // accepted, not yet written to Redis (in order)
  std::deque<PublisherRequest> _inflight;  // written, waiting for Redis' reply (in order)
  std::deque<PublisherRequest> _retry;     // refused with NOSCRIPT, resent once reloaded
  // Answered by their script, completed once their batch's WAIT answers (in order).
  std::deque<std::pair<PublisherRequest, CopiedReply>> _awaiting_wait;
  ChannelFloors _floors;
  int64_t _next_sweep_ms = 0;
  bool _wait_short_logged = false;  // once per outage: until a WAIT reaches wait_replicas
  int64_t _progress_ms = 0;         // last write into an empty pipeline, or last reply
  bool _ready = false;
  bool _reloading = false;        // NOSCRIPT seen: hold new requests until reloaded
  bool _scripts_refused = false;  // SCRIPT LOAD failed: NOSCRIPT is final, no retry
};

}  // namespace flowrelay::redis
