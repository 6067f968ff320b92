#include "gap_fill.h"

#include <flowrelay/plugin.hpp>

#include <algorithm>
#include <vector>

namespace flowrelay::redis {

using sdk::view;

// ------------------------------------------------------------------------------- ChannelGap

bool ChannelGap::accept(const WireMessage& w) {
  if (w.offset == 0) {
    // Outside history (history_size 0, or a raw PUBLISH): a node's publishes to a channel run
    // in seq order, resends included (history_scripts.h), so a seq not above the last one
    // delivered from that node is a resend.
    if (w.origin.node == 0 || w.origin.seq == 0) return true;
    uint64_t& last = _last_seq[w.origin.node];
    if (w.origin.seq <= last) return false;
    last = w.origin.seq;
    return true;
  }
  // Redis delivers one connection's messages in the order the scripts ran, so an offset at or
  // before the place in the same epoch can only be one delivered already.
  if (_place == Place::Delivered && w.epoch == _epoch && w.offset <= _offset) return false;
  _place = Place::Delivered;
  if (w.epoch != _epoch) _epoch.assign(w.epoch);
  _offset = w.offset;
  return true;
}

ChannelGap::Live ChannelGap::live(std::string_view payload, const WireMessage& wire) {
  if (_seam.holding()) {
    // Even raw messages (offset 0) wait: they keep their order among the others.
    _seam.hold(std::string(payload), payload.size());
    return Live::Held;
  }
  return accept(wire) ? Live::Deliver : Live::Duplicate;
}

void ChannelGap::set_floor(std::string_view epoch, uint64_t top) {
  if (_place != Place::None) return;  // a delivered message is the better place
  _place = Place::Floor;
  _epoch.assign(epoch);
  _offset = top;
}

std::optional<uint64_t> ChannelGap::begin_fill() {
  if (_place == Place::None) return std::nullopt;
  _seam.begin(_offset, _epoch);
  return _offset;
}

ChannelGap::Outcome ChannelGap::finish_fill(const flowrelay_history& history, const Sink& sink) {
  const size_t n = history.count;
  SeamAnswer answer{true, view(history.epoch), history.top, n ? history.messages[0].offset : 0,
                    n ? history.messages[n - 1].offset : 0};
  // Our history script always says how far back it is whole (replies leave holes in the
  // offsets, so the first offset proves nothing).
  answer.trimmed_known = sdk::history_trimmed(history, answer.trimmed);
  return settled(answer, &history, sink);
}

ChannelGap::Outcome ChannelGap::abandon_fill(const Sink& sink) {
  return settled({}, nullptr, sink);
}

ChannelGap::Outcome ChannelGap::settled(SeamAnswer answer, const flowrelay_history* history,
                                        const Sink& sink) {
  Outcome outcome;
  outcome.from = _offset;
  const auto verdict = _seam.settle(answer);
  switch (verdict.result) {
    case SeamResult::Recovered:
      for (size_t i = 0; history && i < history->count; ++i) {
        const flowrelay_message& m = history->messages[i];
        if (m.offset <= verdict.replay_after) continue;
        WireMessage w;
        w.lane = m.lane;
        w.offset = m.offset;
        w.epoch = answer.epoch;
        w.origin = m.origin;
        w.data = view(m.data);
        // SNAPSHOT and REPLY entries keep their kind (live sessions replace a reply's text
        // with a snapshot's): the reply's strings view the history answer, like the data.
        if (const flowrelay_reply* reply = sdk::reply_of(m)) {
          w.has_reply = true;
          w.reply = *reply;
        }
        accept(w);
        ++outcome.filled;
        sink(w);
      }
      break;
    case SeamResult::Gone:
      // No history at all: nothing was published since it expired (or Redis lost it). Whether
      // messages of the old epoch went with it cannot be told; idle channels look just like
      // this after any blip, so it is not reported.
      break;
    case SeamResult::Ahead:
      // Redis' history is behind the place (a failover to a replica that lagged) and was not
      // fenced (our fill reads carry the place as their floor, so the script answers a new
      // epoch instead: Reset): offsets from its top on are new, whatever this node delivered.
      _offset = answer.top;
      outcome.unrecovered = outcome.behind = true;
      break;
    case SeamResult::Reset:
      // The history was reset while we were away (FLUSHALL, a Redis restart without
      // persistence, expiry): offsets of the new epoch do not continue ours.
      outcome.reset = true;
      [[fallthrough]];
    case SeamResult::Trimmed:  // a partial replay would still leave a hole, so none
    case SeamResult::Failed:
      outcome.unrecovered = true;
      outcome.lost = verdict.lost;
      break;
  }
  _seam.release(
      [&](std::string&& payload) {
        const WireMessage w = decode_wire(payload);
        if (!accept(w)) {
          ++outcome.skipped;
          return;
        }
        sink(w);
      },
      [&](std::string&&) { ++outcome.skipped; });
  return outcome;
}

// ---------------------------------------------------------------------------------- GapFill

void GapFill::add(std::string_view channel) { _channels.try_emplace(std::string(channel)); }

void GapFill::remove(std::string_view channel) {
  if (auto it = _channels.find(channel); it != _channels.end()) _channels.erase(it);
  if (auto it = _filling.find(channel); it != _filling.end()) _filling.erase(it);
}

std::optional<GapFill::Read> GapFill::confirmed(std::string_view channel, bool resubscribed,
                                                int64_t deadline_ms) {
  auto it = _channels.find(channel);
  if (it == _channels.end()) return std::nullopt;
  Channel& c = it->second;
  if (resubscribed) {
    if (auto since = c.gap.begin_fill()) {
      // A newer read supersedes one still awaited (the link dropped again meanwhile).
      c.read_id = ++_next_id;
      c.floor_read = false;
      _filling.insert_or_assign(it->first, deadline_ms);
      return Read{it->first, *since, c.read_id, c.gap.epoch()};
    }
  }
  // No place yet: learn where history stands now, so that a drop before the first message
  // still has somewhere to fill from (quiet channels are the common case).
  if (c.gap.placed() || c.read_id != 0) return std::nullopt;
  c.read_id = ++_next_id;
  c.floor_read = true;
  return Read{it->first, kFloorSince, c.read_id, {}};
}

void GapFill::live(std::string_view channel, std::string_view payload, uint64_t max_held_bytes) {
  const WireMessage wire = decode_wire(payload);
  auto it = _channels.find(channel);
  if (it == _channels.end()) {
    _hooks.deliver(channel, wire);  // just unsubscribed: the host drops it
    return;
  }
  switch (it->second.gap.live(payload, wire)) {
    case ChannelGap::Live::Deliver:
      _hooks.deliver(channel, wire);
      break;
    case ChannelGap::Live::Duplicate:
      _duplicates.fetch_add(1, std::memory_order_relaxed);
      break;
    case ChannelGap::Live::Held:
      if (it->second.gap.held_bytes() > max_held_bytes)
        give_up(*it, "more than " + std::to_string(max_held_bytes) +
                         " bytes of live messages held (buffer_max_bytes) while reading history");
      break;
  }
}

void GapFill::answered(std::string_view channel, uint64_t id, flowrelay_status status,
                       const flowrelay_history* history) {
  auto it = _channels.find(channel);
  if (it == _channels.end() || id == 0 || it->second.read_id != id) return;  // stale
  Channel& c = it->second;
  c.read_id = 0;
  if (c.floor_read) {
    c.floor_read = false;
    if (status == FLOWRELAY_OK && history) c.gap.set_floor(view(history->epoch), history->top);
    return;
  }
  if (!c.gap.filling()) return;
  if (status != FLOWRELAY_OK || !history) {
    give_up(*it, "the history read failed (status " + std::to_string(status) + ")");
    return;
  }
  _filling.erase(it->first);
  const std::string& name = it->first;
  const auto outcome =
      c.gap.finish_fill(*history, [&](const WireMessage& w) { _hooks.deliver(name, w); });
  account(name, outcome);
  if (!outcome.unrecovered) return;
  if (outcome.behind)
    _hooks.log(FLOWRELAY_LOG_WARNING,
               "history of " + name + " ends at offset " + std::to_string(history->top) +
                   ", before offset " + std::to_string(outcome.from) +
                   " this node delivered (Redis lost writes: a failover?); live delivery "
                   "resumes from its top");
  else if (outcome.reset)
    _hooks.log(FLOWRELAY_LOG_WARNING,
               "history of " + name +
                   " was reset while the subscriber link was down (new epoch): " +
                   std::to_string(outcome.lost) +
                   " message(s) of the new epoch missed, and any of the old one after offset " +
                   std::to_string(outcome.from) + "; live delivery resumes");
  else
    _hooks.log(FLOWRELAY_LOG_WARNING, "history of " + name + " no longer reaches back to offset " +
                                          std::to_string(outcome.from + 1) +
                                          " (trimmed): " + std::to_string(outcome.lost) +
                                          " message(s) missed; live delivery resumes");
}

int64_t GapFill::expire(int64_t now_ms, bool history_off) {
  std::vector<std::string> late;
  int64_t next = INT64_MAX;
  for (const auto& [channel, deadline] : _filling) {
    if (history_off || now_ms >= deadline)
      late.push_back(channel);
    else
      next = std::min(next, deadline);
  }
  for (const auto& channel : late) {
    auto it = _channels.find(channel);
    if (it != _channels.end())
      give_up(*it, history_off ? "history was switched off" : "no history read in time");
  }
  return next;
}

void GapFill::give_up(Map::value_type& entry, const std::string& why) {
  Channel& c = entry.second;
  c.read_id = 0;  // its answer, if it still comes, is stale
  _filling.erase(entry.first);
  const std::string& name = entry.first;
  const auto outcome = c.gap.abandon_fill([&](const WireMessage& w) { _hooks.deliver(name, w); });
  account(name, outcome);
  _hooks.log(FLOWRELAY_LOG_WARNING,
             "gap of " + name + " after the resubscribe not filled: " + why + "; " +
                 (outcome.lost ? "at least " + std::to_string(outcome.lost) + " message(s) missed; "
                               : std::string()) +
                 "live delivery resumes");
}

void GapFill::account(std::string_view channel, const ChannelGap::Outcome& outcome) {
  _filled.fetch_add(outcome.filled, std::memory_order_relaxed);
  _duplicates.fetch_add(outcome.skipped, std::memory_order_relaxed);
  if (outcome.unrecovered) _unrecovered.fetch_add(1, std::memory_order_relaxed);
  if (outcome.filled)
    _hooks.log(FLOWRELAY_LOG_INFO, "filled the gap of " + std::string(channel) + " with " +
                                       std::to_string(outcome.filled) +
                                       " message(s) from history after the resubscribe");
}

}  // namespace flowrelay::redis
