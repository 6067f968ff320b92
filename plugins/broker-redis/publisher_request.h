// What the publisher link sends, one queued request per command, kept in order from the
// publishing thread to Redis' reply: a publish (plain, or appended to history by the script)
// or a history read. Each knows how to write itself and how to report its outcome.
#pragma once

#include <flowrelay/plugin.h>
#include <hiredis/async.h>

#include <cstdint>
#include <optional>
#include <string>

#include "redis_options.h"

namespace flowrelay::redis {

struct HistoryScripts {
  std::string append_sha, history_sha;  // SHA1 of history_scripts.h's scripts
  std::string reply_sha;                // ...and of reply_scripts.h's
  bool sharded = false;  // cluster mode: plain publishes use SPUBLISH (the scripts likewise)
};

struct HistoryBounds {
  uint64_t size = 0;  // 0: no history
  uint64_t max_age_ms = 0;
  uint64_t max_bytes = 0;
};

struct PublisherRequest {
  enum class Kind : uint8_t {
    Publish,  // through the append script while history is on, else a plain PUBLISH
    History,  // the read script
    Reply,    // a reply step through the reply script (reply_request.cpp)
    Wait,     // WAIT after a batch of writes (wait_replicas): the publisher's own marker
  };
  // Where a completed write (or a fenced read) left the channel, for the publisher's floors.
  struct Ack {
    std::string epoch;
    uint64_t offset = 0;  // 0: nothing to note
    bool fenced = false;  // the script found the history regressed and started a new epoch
  };
  // How Redis answered, as complete() saw it.
  enum class Outcome : uint8_t {
    Done,        // stored (or published) now, or read
    Resent,      // a resend Redis had stored already: completed with the first offset
    ResentLost,  // ...whose first entry was trimmed meanwhile: completed with offset 0
    Answered,    // a reply step Redis answered without storing it (duplicate, conflict, too big)
    Refused,     // an error or an unexpected reply: completed with FLOWRELAY_EINTERNAL
  };
  Kind kind = Kind::Publish;
  flowrelay_lane lane = FLOWRELAY_LANE_MESSAGE;
  flowrelay_origin origin{};  // Publish: seq assigned when queued, kept across resends
  std::string channel;
  std::string data;
  uint64_t since = 0;  // History
  // Reply: the step (OPEN, DELTA, END), the reply id, the delta's seq, the END's reason; the
  // delta's text or the END's error is in `data`.
  flowrelay_kind step = FLOWRELAY_KIND_MESSAGE;
  std::string reply_id;
  uint64_t reply_seq = 0;
  std::string reason;
  flowrelay_reply_published_fn replied = nullptr;
  flowrelay_published_fn published = nullptr;
  flowrelay_history_fn read = nullptr;
  void* ctx = nullptr;
  bool scripted = false;  // how write() last sent it: decides the shape of the reply
  // A copy was written on a link lost before Redis answered it: Redis may have run it. A
  // publish refused with NOSCRIPT without such a copy never ran (publisher.cpp renumbers it).
  bool may_have_run = false;
  // The broker's own read (gap_fill.h): outside the publish buffer and its accounting, and not
  // reported on failure (the gap fill gives up and logs it).
  bool internal = false;
  // The channel's floor when written (channel_floors.h; "" and 0: none), for the fence.
  std::string floor_epoch;
  uint64_t floor_offset = 0;
  // Written in a batch followed by WAIT (wait_replicas): completed once the WAIT answered.
  bool awaits_wait = false;
  // Cluster mode (publisher.cpp): the channel's slot, the request's place in the publisher's
  // order (a redirected request goes back to it), where an ASK sends it once (with ASKING),
  // and the redirects and retries so far (bounded) with the time of the next try.
  uint16_t slot = 0;
  uint64_t order = 0;
  std::optional<RedisEndpoint> ask;
  uint16_t redirects = 0;
  uint16_t retries = 0;
  int64_t retry_at_ms = 0;

  // Stores something in history (what WAIT must cover).
  bool stores() const { return kind == Kind::Reply || (kind == Kind::Publish && scripted); }

  // What it holds against the buffer bound.
  uint64_t bytes() const { return channel.size() + data.size() + reply_id.size(); }
  // Appends the command to the context's output buffer; hiredis' status (REDIS_OK...).
  int write(redisAsyncContext* ac, redisCallbackFn* fn, void* priv, const HistoryScripts& scripts,
            HistoryBounds bounds);
  // Calls the completion (if any) with Redis' reply; `ack` (if given) says where it left the
  // channel.
  Outcome complete(const redisReply* reply, Ack* ack = nullptr) const;
  // Calls the completion (if any) with an error: the request is abandoned.
  void fail(flowrelay_status status) const;

 private:
  int write_reply(redisAsyncContext* ac, redisCallbackFn* fn, void* priv,
                  const HistoryScripts& scripts, HistoryBounds bounds) const;
  Outcome complete_reply(const redisReply* reply, Ack* ack) const;
};

}  // namespace flowrelay::redis
