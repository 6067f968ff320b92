// This node's presence in Redis (presence_scripts.h): presence_set() only notes a channel's
// new count (it runs under the daemon's channel lock); the broker thread writes the changes
// at most kFlushDelayMs later, rewrites every channel this node has clients in each
// presence_ttl_ms / 3 (and after every reconnect), and removes this node's entries on a clean
// shutdown. Reads run the read script. Everything goes over the publisher link, next to the
// publishes, but outside the publish buffer: presence is a snapshot, rewritten when the link
// is back, never replayed, so an outage does not pile writes up.
#pragma once

#include <flowrelay/plugin.h>
#include <hiredis/async.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "publisher.h"
#include "redis_context.h"
#include "redis_link.h"

namespace flowrelay::redis {

class Presence {
 public:
  using WakeFn = void (*)(void* owner);
  // Writes go delayed by up to this, so that a burst of joins costs one write per channel.
  static constexpr int64_t kFlushDelayMs = 50;
  // Reads waiting for the broker thread, at most (past it: EAGAIN).
  static constexpr size_t kMaxQueuedReads = 10000;

  // Over the publisher's links: the one serving each channel (cluster mode: its master's).
  Presence(RedisContext& ctx, Publisher& publisher, WakeFn wake, void* owner);
  Presence(const Presence&) = delete;
  Presence& operator=(const Presence&) = delete;

  // [any thread, non-blocking] This node has `clients` sessions in `channel` now.
  void set(std::string_view channel, uint64_t clients);
  // [any thread, non-blocking] Queues a read: OK (done is called once, from the broker thread
  // or destroy), EAGAIN when too many are queued.
  flowrelay_status read(std::string_view channel, flowrelay_presence_fn done, void* ctx);

  // [broker thread] The link's hooks: the scripts are loaded on connect, and everything this
  // node counts is written again once it is up.
  void on_connected(RedisLink& link);
  void on_up();
  // Takes the queued reads and changes; sends them when the link is up (a read fails with
  // EUNAVAIL when it is not). Writes changes and refreshes when due; drops the link when Redis
  // does not answer within command_timeout_ms. Returns the next time it needs a call.
  int64_t check(int64_t now);
  // [broker thread, stopping] Removes this node's entries (if the link is up). Returns true
  // while their replies are awaited.
  bool withdraw();
  bool awaiting_replies() const { return _inflight > 0; }
  // [destroy, broker thread gone] Completes the reads never sent with EUNAVAIL.
  void abandon();

 private:
  struct Read {
    std::string channel;
    flowrelay_presence_fn done;
    void* ctx;
  };
  struct Command;  // one script call in flight (presence.cpp)
  struct Entry {
    uint64_t clients = 0;
    bool dirty = false;
  };

  void take_changes();
  void flush_dirty();
  void refresh_all();
  void send_set(const std::string& channel, uint64_t clients);
  void send_read(Read&& read);
  void send(Command* command, bool by_sha);
  static void reply_cb(redisAsyncContext* ac, void* reply, void* priv);

  RedisContext& _ctx;
  Publisher& _publisher;
  const std::string _set_sha, _read_sha;
  const std::string _node;  // this node's field name: its id in decimal
  WakeFn _wake;
  void* _owner;

  // Shared with the daemon's threads.
  std::mutex _mutex;
  std::unordered_map<std::string, uint64_t> _changes;  // latest count per changed channel
  std::vector<Read> _reads;
  bool _wake_pending = false;

  // The broker thread's own.
  std::unordered_map<std::string, Entry> _channels;  // counted here (0: removal not yet sent)
  std::vector<std::string> _dirty;                   // channels whose entry must be written
  int64_t _flush_at_ms = 0;                          // 0: nothing dirty
  int64_t _refresh_at_ms = 0;
  int64_t _progress_ms = 0;  // last send into an empty pipeline, or last reply
  uint64_t _inflight = 0;
  bool _write_refused = false;  // logged; quiet until a write succeeds again
};

}  // namespace flowrelay::redis
