// ChannelHistory: messages, bounds and reads (the reply rules are in reply_steps.cpp).
#include "channel_history.h"

#include <algorithm>

namespace flowrelay::local {

uint64_t ChannelHistory::append(const flowrelay_message& m, int64_t now_ms,
                                const HistoryBounds& bounds) {
  const uint64_t offset = next_offset(now_ms);
  _entries.push_back(
      {offset, m.lane, m.origin, now_ms, std::string(m.data.ptr, m.data.len), nullptr});
  _data_bytes += m.data.len;
  _overhead_bytes += kEntryOverhead;
  enforce(bounds);
  return offset;
}

void ChannelHistory::trim_older_than(int64_t oldest_ms) {
  while (!_entries.empty() && _entries.front().at_ms < oldest_ms) pop_oldest();
}

void ChannelHistory::enforce(const HistoryBounds& bounds) {
  while (!_entries.empty() && (entries() > bounds.max_entries || _data_bytes > bounds.max_bytes))
    pop_oldest();
}

// The front is the oldest entry, so its offset is the newest dropped so far. A REPLY entry takes
// its ended reply's state with it: a later delta for that id is one of an unknown reply.
void ChannelHistory::pop_oldest() {
  Entry& e = _entries.front();
  _trimmed = std::max(_trimmed, e.offset);
  _data_bytes -= e.data.size();
  _overhead_bytes -= kEntryOverhead;
  if (e.reply) {
    _overhead_bytes -= kReplyOverhead;
    _replies.erase(_replies.find(*e.reply->id));
  }
  _entries.pop_front();
}

void ChannelHistory::fill(const Reply& r, flowrelay_kind kind, flowrelay_reply& out) const {
  out = {sizeof(flowrelay_reply),
         kind,
         {r.id->data(), r.id->size()},
         r.seq,
         {r.reason.data(), r.reason.size()},
         {r.error.data(), r.error.size()},
         r.ttft_ms,
         r.duration_ms,
         r.open ? r.text.size() : r.bytes};
}

void ChannelHistory::read_after(uint64_t since, HistoryView& out) const {
  out.messages.clear();
  out.replies.clear();
  if (since >= _top) return;
  auto next = std::upper_bound(_entries.begin(), _entries.end(), since,
                               [](uint64_t s, const Entry& e) { return s < e.offset; });
  std::vector<const Reply*> open;
  for (const Reply* r : _open)
    if (r->place > since) open.push_back(r);
  std::sort(open.begin(), open.end(),
            [](const Reply* a, const Reply* b) { return a->place < b->place; });
  out.messages.reserve(static_cast<size_t>(_entries.end() - next) + open.size());
  const flowrelay_str epoch{_epoch.data(), _epoch.size()};
  auto entry = [&](const Entry& e) {
    out.messages.push_back({sizeof(flowrelay_message),
                            e.lane,
                            e.offset,
                            epoch,
                            e.origin,
                            {e.data.data(), e.data.size()},
                            nullptr});
    if (e.reply) {
      fill(*e.reply, FLOWRELAY_KIND_REPLY, out.replies.emplace_back());
      out.messages.back().reply = &out.replies.back();
    }
  };
  auto snapshot = [&](const Reply& r) {
    out.messages.push_back({sizeof(flowrelay_message),
                            FLOWRELAY_LANE_MESSAGE,
                            r.place,
                            epoch,
                            r.origin,
                            {r.text.data(), r.text.size()},
                            nullptr});
    fill(r, FLOWRELAY_KIND_SNAPSHOT, out.replies.emplace_back());
    out.messages.back().reply = &out.replies.back();
  };
  auto o = open.begin();
  for (; next != _entries.end(); ++next) {
    for (; o != open.end() && (*o)->place < next->offset; ++o) snapshot(**o);
    entry(*next);
  }
  for (; o != open.end(); ++o) snapshot(**o);
}

}  // namespace flowrelay::local
