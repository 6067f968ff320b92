// The seam between a history read and live delivery, shared by the transport's resume
// (?since=N&epoch=E) and broker-redis' gap fill after a resubscribe. Both join a channel's live
// stream first, so nothing can slip past them, then read its history after N; live items that
// arrive meanwhile are held. Once the read answers, the history goes out first, then the held
// items minus those the history already carried, and afterwards live items that still repeat
// the replay (history and live deliveries travel separately) are dropped until the first newer
// one closes the seam.
//
// No sockets, no threads, no locks: its owner's thread drives it, and does the sending.
//
//   SeamReplay<Item, PositionOf> seam(SeamUnrecovered::JumpToTop);
//   seam.begin(since, epoch);                  // from now on, live items are held:
//   if (seam.holding()) seam.hold(item, bytes);
//   auto verdict = seam.settle(answer);        // the read answered (or failed: ok = false)
//   if (verdict.recovered())                   // replay the answer's messages past
//     for (m : answer) if (m.offset > verdict.replay_after) send(m);   // ...replay_after
//   seam.release(send, drop);                  // held items, those the replay covers dropped
//   later, per live item: if (seam.repeats(position)) drop(item); else send(item);
//
// Item is whatever the owner holds (a frame reference, a payload); PositionOf is a stateless
// functor `SeamPosition operator()(const Item&) const`. Items are moved in and out; those never
// released are handed to clear()'s callback (or destroyed with the replay).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace flowrelay {

// Where an item stands in its channel's history. Offset 0: not in history (never dropped at the
// seam and never closes it). An empty epoch with an offset means "the epoch of the answer", for
// owners whose items do not carry it.
struct SeamPosition {
  uint64_t offset = 0;
  std::string_view epoch;
};

// A history read's answer, as far as the seam needs it (flowrelay_history: epoch, top, and the
// offsets of its first and last message).
struct SeamAnswer {
  bool ok = false;         // false: the read failed or was given up; the rest is ignored
  std::string_view epoch;  // "": the channel has no history
  uint64_t top = 0;        // newest offset of the epoch
  uint64_t first = 0;      // oldest offset in the answer, 0 if it holds none
  uint64_t last = 0;       // newest offset in the answer, 0 if it holds none
  // ABI 2.2 brokers (flowrelay_history.trimmed): every offset above `trimmed` is in the answer
  // or covered by one of its reply entries (a reply's deltas have no entries of their own, so
  // offsets have holes and `first` proves nothing).
  bool trimmed_known = false;
  uint64_t trimmed = 0;
};

enum class SeamResult : uint8_t {
  Recovered,  // the answer holds everything after the reader's place: replay it
  Trimmed,    // same epoch, but the oldest of what the reader misses was trimmed away
  Reset,      // another epoch: the history was reset since the reader's place
  Gone,       // no history any more (expired, lost), and the reader had a place in one
  Ahead,      // the reader's place is past the epoch's top (an offset it never reached)
  Failed,     // the read failed
};

// What the held items are measured against when the gap could not be replayed.
enum class SeamUnrecovered : uint8_t {
  JumpToTop,  // the reader is told it now stands at the answer's top (resume: "recovered":false
              // with that offset): held items up to it are dropped
  KeepPlace,  // the reader keeps its place (gap fill: live sessions cannot be told): every held
              // item newer than the place is delivered
};

template <class Item, class PositionOf>
class SeamReplay {
 public:
  struct Verdict {
    SeamResult result = SeamResult::Failed;
    uint64_t replay_after = 0;  // Recovered: replay the answer's messages with offset > this
    uint64_t lost = 0;          // otherwise: offsets known missed (those before the first held one)
    bool recovered() const { return result == SeamResult::Recovered; }
  };

  explicit SeamReplay(SeamUnrecovered unrecovered = SeamUnrecovered::JumpToTop)
      : _unrecovered(unrecovered) {}

  // The reader stands at offset `since` of `epoch` ("": it knows no epoch, so any answer's
  // epoch is new to it, from `since` on). Holds live items from now on; called again while
  // holding (the read was superseded), keeps what is held: the new read covers it too.
  void begin(uint64_t since, std::string_view epoch) {
    _since = since;
    _epoch.assign(epoch);
    _holding = true;
    _seam_open = false;
  }
  bool holding() const { return _holding; }

  // A live item that arrived while holding; `bytes` counts against held_bytes().
  void hold(Item item, uint64_t bytes) {
    _held.push_back(std::move(item));
    _held_bytes += bytes;
  }
  uint64_t held_bytes() const { return _held_bytes; }
  size_t held_count() const { return _held.size(); }

  // The read answered: decides whether its messages close the gap, and where the seam lies.
  // Stops holding; the held items wait for release().
  Verdict settle(const SeamAnswer& a) {
    Verdict v;
    v.result = decide(a);
    _holding = false;
    _seam_open = true;
    if (v.recovered()) {
      v.replay_after = _since;
      // An exact answer covers everything up to its top (a reply's deltas are in its
      // snapshot, whose offset is its newest delta's); otherwise its newest message.
      const uint64_t covered = a.trimmed_known ? a.top : a.last;
      seam_at(a.epoch.empty() ? std::string_view(_epoch) : a.epoch,
              covered > _since ? covered : _since);
      return v;
    }
    switch (v.result) {
      case SeamResult::Trimmed:
        v.lost = missed(a.epoch, _since, a.top + 1);
        break;
      case SeamResult::Reset:
        v.lost = missed(a.epoch, 0, a.top + 1);
        break;
      case SeamResult::Failed:  // no top known: only what arrived live tells
        if (!_epoch.empty()) v.lost = missed(_epoch, _since, 0);
        break;
      default:
        break;
    }
    // Past the top, the reader's place names offsets this epoch has not reached (yet): the
    // top is the last real one, whatever the policy.
    if (_unrecovered == SeamUnrecovered::JumpToTop || v.result == SeamResult::Ahead)
      seam_at(a.ok ? a.epoch : std::string_view(), a.ok ? a.top : 0);
    else
      seam_at(_epoch, _since);
    return v;
  }

  // After settle(): the held items in arrival order, each to `keep(Item&&)` or, when the
  // replay (or the top the reader was told) already covers it, to `drop(Item&&)`.
  template <class Keep, class Drop>
  void release(Keep&& keep, Drop&& drop) {
    std::vector<Item> held;
    held.swap(_held);
    _held_bytes = 0;
    for (Item& item : held) {
      if (repeats(PositionOf{}(item)))
        drop(std::move(item));
      else
        keep(std::move(item));
    }
  }

  // True if a live item at `p` repeats what the seam covers: drop it. Offsets of a channel
  // arrive in order, so the first newer one closes the seam for good (cheap from then on).
  bool repeats(SeamPosition p) {
    if (!_seam_open || p.offset == 0) return false;
    if ((p.epoch.empty() || p.epoch == _seam_epoch) && p.offset <= _seam_offset) return true;
    _seam_open = false;
    return false;
  }

  // Where the seam lies after settle(): the last offset the reader has (or was told it has).
  uint64_t seam_offset() const { return _seam_offset; }
  std::string_view seam_epoch() const { return _seam_epoch; }

  // Gives every held item to `dispose(Item&&)` and forgets the read (e.g. the reader left).
  template <class Dispose>
  void clear(Dispose&& dispose) {
    for (Item& item : _held) dispose(std::move(item));
    _held.clear();
    _held_bytes = 0;
    _holding = _seam_open = false;
  }

 private:
  SeamResult decide(const SeamAnswer& a) const {
    if (!a.ok) return SeamResult::Failed;
    if (a.epoch.empty())
      return _epoch.empty() && _since == 0 ? SeamResult::Recovered : SeamResult::Gone;
    if (!_epoch.empty() && a.epoch != _epoch) return SeamResult::Reset;
    if (_since > a.top) return SeamResult::Ahead;
    if (a.trimmed_known) return _since >= a.trimmed ? SeamResult::Recovered : SeamResult::Trimmed;
    const uint64_t first = a.first ? a.first : a.top + 1;
    return first > _since + 1 ? SeamResult::Trimmed : SeamResult::Recovered;
  }

  // Offsets of `epoch` after `base` that neither the answer nor the live items hold: those
  // before the first held one past `base` of that epoch, and before `bound` (the answer's
  // top + 1; 0: unknown, then only a held one tells).
  uint64_t missed(std::string_view epoch, uint64_t base, uint64_t bound) const {
    uint64_t first_held = bound;
    for (const Item& item : _held) {
      const SeamPosition p = PositionOf{}(item);
      if (p.offset > base && (p.epoch.empty() || p.epoch == epoch)) {
        first_held = bound ? std::min(bound, p.offset) : p.offset;
        break;
      }
    }
    return first_held > base + 1 ? first_held - base - 1 : 0;
  }

  void seam_at(std::string_view epoch, uint64_t offset) {
    _seam_epoch.assign(epoch);
    _seam_offset = offset;
  }

  SeamUnrecovered _unrecovered;
  uint64_t _since = 0;
  std::string _epoch;  // the reader's
  bool _holding = false;
  bool _seam_open = false;
  std::vector<Item> _held;
  uint64_t _held_bytes = 0;
  std::string _seam_epoch;
  uint64_t _seam_offset = 0;
};

}  // namespace flowrelay
