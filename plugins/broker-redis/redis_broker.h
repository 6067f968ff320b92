// broker-redis: Redis Pub/Sub through hiredis, on one thread of its own with two connections:
// one SUBSCRIBEs (one subscription per channel per node, whatever the number of clients), one
// PUBLISHes (commands pipelined: everything queued goes out in one write) and, with history on,
// appends to and reads the channels' history through Lua scripts (history_scripts.h), from which
// it also fills what Pub/Sub missed while the subscriber link was down (gap_fill.h).
#pragma once

#include <flowrelay/plugin.h>
#include <hiredis/async.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <vector>

#include "gap_fill.h"
#include "hiredis_epoll.h"
#include "publisher_request.h"
#include "redis_options.h"

namespace flowrelay::redis {

class RedisBroker {
 public:
  RedisBroker(const flowrelay_broker_host_api* api, flowrelay_host* host, RedisOptions options);
  ~RedisBroker();
  RedisBroker(const RedisBroker&) = delete;
  RedisBroker& operator=(const RedisBroker&) = delete;

  bool start(std::string& err);
  std::string metrics() const;
  // Applies timeouts, buffer and history bounds live; returns what needs a restart (the URL).
  std::string reconfigure(const RedisOptions& fresh);
  // [any thread, non-blocking] Queued for the publisher connection; EAGAIN past the buffer.
  // Appended to history while history_size > 0; `done` (may be NULL) gets the offset once
  // Redis answered, or FLOWRELAY_EUNAVAIL if destroyed first. EUNSUPPORTED: unknown lane.
  flowrelay_status publish_message(std::string_view channel, const flowrelay_message& message,
                                   flowrelay_published_fn done, void* ctx);
  // publish_message() on the message lane, without completion (a 1.1 daemon's publishes
  // get offsets too, so a mixed-version cluster keeps one gap-free sequence).
  flowrelay_status publish(std::string_view channel, std::string_view payload);
  // Queued like a publish (bounded by the same buffer, held while Redis is away) so that it
  // is answered after everything this node published before it; EUNSUPPORTED without history.
  flowrelay_status history(std::string_view channel, uint64_t since, flowrelay_history_fn done,
                           void* ctx);
  // [any thread, non-blocking] PENDING; confirmed by host->subscribed() once Redis answers.
  flowrelay_status subscribe(std::string_view channel);
  flowrelay_status unsubscribe(std::string_view channel);

 private:
  struct Op {
    bool subscribe;
    std::string channel;
  };
  enum class State { Down, Connecting, Authenticating, Up };
  struct GapRead;  // context of a history read issued for the gap fill
  struct Link {
    RedisBroker* broker = nullptr;
    const char* role = "";  // "publisher" / "subscriber", for logs
    redisAsyncContext* ac = nullptr;
    HiredisEpoll* adapter = nullptr;
    State state = State::Down;
    int64_t since_ms = 0;     // when the current state began
    int64_t retry_at_ms = 0;  // next connect attempt when Down
    uint32_t backoff_ms = 0;
    uint32_t failures = 0;     // consecutive failed attempts (logged once, then on recovery)
    int64_t ping_sent_ms = 0;  // 0: no PING outstanding
    int64_t next_ping_ms = 0;
    std::string drop_reason;  // why we closed it ourselves, for the log
  };

  void run();
  flowrelay_status enqueue(PublisherRequest&& request);
  void queue_op(Op&& op);
  void wake();
  void take_requests();
  void connect(Link& link);
  void on_connected(Link& link);
  void on_up(Link& link);
  void mark_down(Link& link, const std::string& reason);
  // Closes the link now (a timeout, a refusal); it reconnects after the backoff.
  void drop(Link& link, const std::string& reason, bool in_callback);
  void send_pending();
  void load_scripts(Link& link);
  void finish(const PublisherRequest& request, const redisReply* reply);
  void retry_after_reload(PublisherRequest&& request);
  void finish_reload();
  void requeue_unanswered();
  void abandon_requests();
  void deliver(std::string_view channel, const WireMessage& wire);
  // redis_broker_gap.cpp: the history reads of the gap fill (gap_fill.h).
  void read_gap(const std::string& channel, bool resubscribed, int64_t now);
  void resubscribe();
  void send_subscription(bool subscribe, const std::vector<std::string>& channels);
  void update_ready();
  void check_timers(int64_t now);
  int next_wait_ms(int64_t now) const;
  void free_dead_adapters();

  static void connect_cb(const redisAsyncContext* ac, int status);
  static void disconnect_cb(const redisAsyncContext* ac, int status);
  static void auth_cb(redisAsyncContext* ac, void* reply, void* priv);
  static void script_load_cb(redisAsyncContext* ac, void* reply, void* priv);
  static void publisher_cb(redisAsyncContext* ac, void* reply, void* priv);
  static void heartbeat_cb(redisAsyncContext* ac, void* reply, void* priv);
  static void subscriber_cb(redisAsyncContext* ac, void* reply, void* priv);
  static void gap_read_cb(void* ctx, flowrelay_status status, const flowrelay_history* history);

  void log(flowrelay_log_level level, const std::string& text) const;
  void report(flowrelay_status code, const std::string& text) const;

  const flowrelay_broker_host_api* _api;
  flowrelay_host* _host;
  const bool _deliver_message;  // the host takes lanes and offsets (ABI 1.2)
  const RedisOptions _options;  // url/endpoint as started; the tunables live in _live
  const HistoryScripts _scripts;
  struct Live {
    std::atomic<uint32_t> connect_timeout_ms, command_timeout_ms, ping_interval_ms;
    std::atomic<uint32_t> reconnect_min_ms, reconnect_max_ms;
    std::atomic<uint64_t> buffer_max_messages, buffer_max_bytes;
    std::atomic<uint64_t> history_size, history_max_age_ms;
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
    }
  } _live;
  struct Counters {
    std::atomic<uint64_t> published{0};       // acknowledged by Redis
    std::atomic<uint64_t> publish_errors{0};  // refused by Redis (reported)
    std::atomic<uint64_t> buffer_full{0};     // publishes refused with EAGAIN
    std::atomic<uint64_t> received{0};        // messages delivered to this node
    std::atomic<uint64_t> history_reads{0};   // history reads Redis answered
    std::atomic<uint64_t> script_reloads{0};  // NOSCRIPT recoveries (SCRIPT FLUSH)
    std::atomic<uint64_t> reconnects{0};      // links re-established after a loss
    std::atomic<int> pub_up{0}, sub_up{0};
  } _count;

  // Shared with publishing threads.
  std::mutex _mutex;
  std::vector<PublisherRequest> _outbox;
  std::vector<Op> _ops;
  bool _wake_pending = false;
  bool _stop = false;
  std::atomic<uint64_t> _buffered_messages{0};  // accepted and not yet acknowledged by Redis
  std::atomic<uint64_t> _buffered_bytes{0};

  // The broker thread's own.
  std::thread _thread;
  int _epoll_fd = -1;
  int _wake_fd = -1;
  Link _pub, _sub;
  std::deque<PublisherRequest> _pending;      // accepted, not yet written to Redis (in order)
  std::deque<PublisherRequest> _inflight;     // written, waiting for Redis' reply (in order)
  std::deque<PublisherRequest> _retry;        // refused with NOSCRIPT, resent once reloaded
  bool _reloading = false;                    // NOSCRIPT seen: hold new requests until reloaded
  bool _scripts_refused = false;              // SCRIPT LOAD failed: NOSCRIPT is final, no retry
  std::unordered_set<std::string> _channels;  // subscriptions this node wants
  std::unordered_set<std::string> _resubscribing;  // not yet confirmed after a reconnect
  std::vector<HiredisEpoll*> _adapters;
  std::string _heartbeat_channel;        // this node's own: proves the subscriber link is alive
  GapFill _gaps;                         // fills what Pub/Sub missed while the subscriber was away
  int64_t _gap_deadline_ms = INT64_MAX;  // earliest fill to give up
  bool _ready = false;
  bool _closing = false;
};

}  // namespace flowrelay::redis
