// Closes the hole Redis Pub/Sub leaves while this node's subscriber link is down: Pub/Sub keeps
// nothing, and the node's live sessions are not disconnected, so they would never resume. With
// history in Redis the broker closes it itself: per subscribed channel it remembers the place
// (epoch, offset) of the last message it delivered; after a resubscribe it reads history past
// that place and delivers it before the live messages that arrived meanwhile (held until then),
// skipping live duplicates across the seam (seam_replay.h, shared with the transport's resume).
//
// No Redis I/O here (redis_broker.cpp issues the reads) and no locking: the broker thread's own.
#pragma once

#include <flowrelay/plugin.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "seam_replay.h"
#include "wire_format.h"

namespace flowrelay::redis {

// One channel's delivery state: its place in history, the seam of a fill in progress (live
// messages held back meanwhile), and, for messages outside history, the last seq delivered per
// publishing node (a resend of a plain PUBLISH arrives again with the same origin).
class ChannelGap {
 public:
  using Sink = std::function<void(const WireMessage&)>;  // hands one message to the host

  // What a fill did; `unrecovered` with `lost`: offsets known to be missed. With `reset` the
  // history was reset meanwhile: messages of the old epoch after our place may be lost too.
  struct Outcome {
    uint64_t filled = 0;   // messages delivered from history
    uint64_t skipped = 0;  // held live messages already delivered (duplicates)
    bool unrecovered = false;
    bool reset = false;
    bool behind = false;  // Redis' history ends before the place (it lost writes)
    uint64_t lost = 0;
    uint64_t from = 0;  // the place's offset before the fill
  };

  enum class Live { Deliver, Duplicate, Held };
  // A live message (`wire` decoded from `payload`): Deliver (the place moved past it), Duplicate
  // (sequenced at or before the last delivered one of its epoch, or outside history with a
  // (node, seq) already delivered: skip it) or Held (a fill is in progress; `payload` was
  // copied).
  Live live(std::string_view payload, const WireMessage& wire);

  // The channel's epoch ("" if it has no history) and newest offset read right after the first
  // subscribe: where a fill starts if the link drops before any sequenced message arrived. A
  // lower bound only (messages up to `top` may still be on their way): never used to skip.
  void set_floor(std::string_view epoch, uint64_t top);
  bool placed() const { return _place != Place::None; }
  const std::string& epoch() const { return _epoch; }

  // After a resubscribe: holds live messages from now on and returns the `since` of the history
  // read to issue; nullopt (nothing held) when the place is unknown. Again while filling: keeps
  // what is held (the new read covers it) and returns the same `since`.
  std::optional<uint64_t> begin_fill();
  bool filling() const { return _seam.holding(); }
  uint64_t held_bytes() const { return _seam.held_bytes(); }

  // The read answered: delivers history past the place if it reaches back to it, then what was
  // held (duplicates skipped). If the gap cannot be closed (epoch changed, history trimmed past
  // the place) nothing of history is delivered: live delivery simply resumes.
  Outcome finish_fill(const flowrelay_history& history, const Sink& sink);
  // Gives the fill up (read failed, too much held, too late): delivers what was held.
  Outcome abandon_fill(const Sink& sink);

 private:
  enum class Place { None, Floor, Delivered };
  struct PayloadPosition {
    SeamPosition operator()(const std::string& payload) const {
      const WireMessage w = decode_wire(payload);
      return {w.offset, w.epoch};
    }
  };
  // False if `w` was delivered already; else moves the place (or the node's seq) past it.
  bool accept(const WireMessage& w);
  Outcome settled(SeamAnswer answer, const flowrelay_history* history, const Sink& sink);

  Place _place = Place::None;
  std::string _epoch;  // of the place; "" with Floor: the channel had no history then
  uint64_t _offset = 0;
  // The place moves on with every message delivered (the seam's own check closes at the first
  // newer one; the place's lasts).
  SeamReplay<std::string, PayloadPosition> _seam{SeamUnrecovered::KeepPlace};
  std::unordered_map<uint64_t, uint64_t> _last_seq;  // origin node -> seq, offset 0 only
};

// Every subscribed channel's ChannelGap, and around them what the broker needs: which history
// reads to issue, which answers are stale, when to give up, counters and log lines.
class GapFill {
 public:
  struct Hooks {
    std::function<void(std::string_view channel, const WireMessage&)> deliver;
    std::function<void(flowrelay_log_level, const std::string&)> log;
  };
  // A history read to issue for `channel`; its answer goes to answered() with `id`.
  // A fill's read carries its place as the floor of the read script's regression fence
  // (history_scripts.h): a history of that epoch ending before `since` lost writes this node
  // delivered, and starts a new epoch even if this node never publishes.
  struct Read {
    std::string channel;
    uint64_t since = 0;
    uint64_t id = 0;
    std::string floor_epoch;  // "": no fence (a floor read)
  };
  // `since` of a read that only wants the epoch and top (the floor).
  static constexpr uint64_t kFloorSince = UINT64_MAX;

  explicit GapFill(Hooks hooks) : _hooks(std::move(hooks)) {}

  void add(std::string_view channel);  // this node subscribes the channel
  void remove(std::string_view channel);
  // Redis confirmed the SUBSCRIBE of `channel` (`resubscribed`: after a reconnect). Returns the
  // read to issue, if any: the fill's, or the floor's when the place is still unknown. A fill
  // not answered by `deadline_ms` is given up.
  std::optional<Read> confirmed(std::string_view channel, bool resubscribed, int64_t deadline_ms);
  // A message Redis delivered on `channel`: to the host, skipped, or held. A fill holding more
  // than `max_held_bytes` is given up.
  void live(std::string_view channel, std::string_view payload, uint64_t max_held_bytes);
  // The read `id` of `channel` completed. Stale answers (superseded, unsubscribed) are ignored.
  void answered(std::string_view channel, uint64_t id, flowrelay_status status,
                const flowrelay_history* history);
  // Gives up every fill whose deadline passed (`history_off`: all of them, history was just
  // switched off); returns the earliest deadline left, or INT64_MAX.
  int64_t expire(int64_t now_ms, bool history_off = false);

  // [any thread] For metrics.
  uint64_t filled() const { return _filled.load(std::memory_order_relaxed); }
  uint64_t unrecovered() const { return _unrecovered.load(std::memory_order_relaxed); }
  uint64_t duplicates() const { return _duplicates.load(std::memory_order_relaxed); }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Channel {
    ChannelGap gap;
    uint64_t read_id = 0;  // the answer still awaited (0: none)
    bool floor_read = false;
  };
  using Map = std::unordered_map<std::string, Channel, Hash, std::equal_to<>>;
  Channel* find(std::string_view channel);
  void give_up(Map::value_type& entry, const std::string& why);
  void account(std::string_view channel, const ChannelGap::Outcome& outcome);

  Hooks _hooks;
  Map _channels;
  // Channels filling, with their deadline: few at a time, so expire() can scan them all.
  std::unordered_map<std::string, int64_t, Hash, std::equal_to<>> _filling;
  uint64_t _next_id = 0;
  std::atomic<uint64_t> _filled{0}, _unrecovered{0}, _duplicates{0};
};

}  // namespace flowrelay::redis
