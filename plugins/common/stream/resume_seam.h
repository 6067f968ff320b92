// A session's resume (?since=N&epoch=E, Last-Event-ID) over shared frames, the same for every
// transport: live frames are held while the history read runs, then the replay goes out,
// then the "resumed" frame, then the held frames minus those the replay carried, and later live
// frames that still repeat it are dropped until a newer one closes the seam
// (plugins/common/seam_replay.h). A transport gives how it encodes a history entry and the
// "resumed" frame, and what it does with a frame (send).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string_view>

#include "connection.h"
#include "seam_replay.h"

namespace flowrelay::stream {

class ResumeSeam {
 public:
  enum class Replayed : uint8_t {
    Nothing,   // no resume is waiting for this answer
    Overflow,  // more live traffic arrived during the read than the session may hold: the
               // caller closes it as a slow consumer (it can resume again from its place)
    Done,
  };

  ~ResumeSeam() { clear(); }
  void begin(uint64_t since, std::string_view epoch) {
    _seam = std::make_unique<Seam>(SeamUnrecovered::JumpToTop);
    _seam->begin(since, epoch);  // live frames are held from now on
  }
  bool active() const { return _seam != nullptr; }

  // A live frame: true if the seam took it (held during the read, or dropped as a repeat of
  // the replay); then the session must not send it. Inline: the per-delivery path.
  bool intercept(SharedFrame* f, const std::atomic<uint64_t>& max_held) {
    if (!_seam) [[likely]]
      return false;
    if (_seam->holding()) {
      if (_overflow || _seam->held_bytes() + f->size() > max_held.load(std::memory_order_relaxed)) {
        _overflow = true;
        f->unref();
      } else {
        _seam->hold(f, f->size());
      }
      return true;
    }
    if (f->offset() != 0) {
      if (_seam->repeats({f->offset(), {}})) {
        f->unref();
        return true;
      }
      _seam.reset();  // a newer offset closed the seam for good
    }
    return false;
  }

  // The history read's answer. `entry_frame(entry, epoch)` and `resumed_frame(recovered,
  // offset, epoch)` make new frames; `send(frame)` takes each in order.
  template <class EntryFrame, class ResumedFrame, class Send>
  Replayed replay(const HistoryResult& h, bool open, LoopStats& stats, EntryFrame&& entry_frame,
                  ResumedFrame&& resumed_frame, Send&& send) {
    if (!_seam || !_seam->holding()) return Replayed::Nothing;
    if (!open || _overflow) {
      clear();
      return open ? Replayed::Overflow : Replayed::Nothing;
    }
    SeamAnswer answer;
    answer.ok = h.status == FLOWRELAY_OK;
    answer.epoch = h.epoch;
    answer.top = h.top;
    answer.trimmed_known = h.trimmed_known;
    answer.trimmed = h.trimmed;
    if (!h.entries.empty()) {
      answer.first = h.entries.front().offset;
      answer.last = h.entries.back().offset;
    }
    const auto verdict = _seam->settle(answer);
    (verdict.recovered() ? stats.resumes_recovered : stats.resumes_unrecovered).add();
    if (verdict.recovered()) {
      for (const auto& e : h.entries) {
        if (e.offset <= verdict.replay_after) continue;
        send(entry_frame(e, h.epoch));
        stats.deliveries.add();
      }
    }
    send(resumed_frame(verdict.recovered(), _seam->seam_offset(), h.epoch));
    _seam->release(
        [&](SharedFrame*&& f) {
          send(f);
          stats.deliveries.add();
        },
        [](SharedFrame*&& f) { f->unref(); });
    return Replayed::Done;
  }

  void clear() {
    if (!_seam) return;
    _seam->clear([](SharedFrame*&& f) { f->unref(); });
    _seam.reset();
  }

 private:
  struct FramePosition {
    SeamPosition operator()(SharedFrame* const& f) const { return {f->offset(), {}}; }
  };
  using Seam = SeamReplay<SharedFrame*, FramePosition>;

  std::unique_ptr<Seam> _seam;
  bool _overflow = false;  // more than max_outbound_bytes arrived during the read
};

}  // namespace flowrelay::stream
