// ChannelHistory: a producer's reply steps (OPEN, DELTA, END), by the rules of plugin.h's
// publish_reply and plugin_reply.h. The delivered message's views point into the producer's
// message (id, data, reason, error), never into the reply's state, which enforcing the bounds
// may drop before the broker delivers.
#include <algorithm>

#include "channel_history.h"

namespace flowrelay::local {
namespace {

bool valid_id(std::string_view id) {
  return !id.empty() && id.size() <= 64 &&
         std::all_of(id.begin(), id.end(), [](char c) { return c >= 0x21 && c <= 0x7E; });
}

bool valid_reason(std::string_view reason) {
  return reason == "done" || reason == "error" || reason == "cancelled" ||
         reason == "producer_lost";
}

}  // namespace

bool valid_reply_step(const flowrelay_reply& r) {
  if (!valid_id({r.id.ptr, r.id.len})) return false;
  switch (r.kind) {
    case FLOWRELAY_KIND_OPEN:
      return true;
    case FLOWRELAY_KIND_DELTA:
      return r.seq > 0;
    case FLOWRELAY_KIND_END:
      return valid_reason({r.reason.ptr, r.reason.len});
    default:  // SNAPSHOT, REPLY, STALLED are not a producer's
      return false;
  }
}

void ChannelHistory::apply_reply(const flowrelay_message& m, int64_t now_ms,
                                 const HistoryBounds& bounds, ReplyStep& out) {
  out = ReplyStep{};
  const flowrelay_reply& r = *m.reply;
  const std::string_view id(r.id.ptr, r.id.len);
  if (!valid_reply_step(r)) {
    out.status = FLOWRELAY_EINVAL;
    return;
  }
  auto it = _replies.find(id);
  Reply* known = it == _replies.end() ? nullptr : &it->second;
  switch (r.kind) {
    case FLOWRELAY_KIND_OPEN:
      open_step(known, id, m, now_ms, out);
      break;
    case FLOWRELAY_KIND_DELTA:
      delta_step(known, id, m, now_ms, bounds, out);
      break;
    case FLOWRELAY_KIND_END:
      end_step(known, id, m, now_ms, out);
      break;
  }
  if (!out.deliver) return;
  out.reply.struct_size = sizeof(flowrelay_reply);
  out.reply.id = r.id;
  out.message.struct_size = sizeof(flowrelay_message);
  out.message.lane = FLOWRELAY_LANE_MESSAGE;  // replies are on the message lane
  out.message.offset = out.offset;
  out.message.epoch = {_epoch.data(), _epoch.size()};
  out.message.origin = m.origin;
  out.message.reply = &out.reply;
  enforce(bounds);
}

ChannelHistory::Reply& ChannelHistory::open_reply(std::string_view id, const flowrelay_message& m,
                                                  int64_t now) {
  auto [it, added] = _replies.try_emplace(std::string(id));
  Reply& rep = it->second;
  rep.id = &it->first;
  rep.origin = m.origin;
  rep.opened_ms = now;
  _open.push_back(&rep);
  _overhead_bytes += kEntryOverhead + kReplyOverhead;
  return rep;
}

void ChannelHistory::open_step(Reply* known, std::string_view id, const flowrelay_message& m,
                               int64_t now, ReplyStep& out) {
  if (known) {  // open or ended: the OPEN was (or need not be) stored
    out.duplicate = true;
    out.offset = known->open_offset;
    return;
  }
  Reply& rep = open_reply(id, m, now);
  rep.opened_by_open = true;
  rep.open_offset = rep.place = out.offset = next_offset(now);
  rep.last_at_ms = now;
  out.deliver = true;
  out.reply.kind = FLOWRELAY_KIND_OPEN;
  out.reply.ttft_ms = out.reply.duration_ms = -1;
}

void ChannelHistory::delta_step(Reply* known, std::string_view id, const flowrelay_message& m,
                                int64_t now, const HistoryBounds& bounds, ReplyStep& out) {
  const uint64_t seq = m.reply->seq;
  if (known && !known->open) {
    out.status = FLOWRELAY_ECONFLICT;
    out.ended = known->reason;
    return;
  }
  const uint64_t last = known ? known->seq : 0;
  if (seq <= last) {
    out.duplicate = true;
    out.offset = known->delta_offsets[seq - 1];
    return;
  }
  if (seq > last + 1) {
    out.status = FLOWRELAY_ECONFLICT;
    out.expected_seq = last + 1;
    return;
  }
  if ((known ? known->text.size() : 0) + m.data.len > bounds.max_bytes) {
    out.status = FLOWRELAY_ETOOBIG;
    return;
  }
  Reply& rep = known ? *known : open_reply(id, m, now);
  rep.seq = seq;
  rep.text.append(m.data.ptr, m.data.len);
  rep.place = out.offset = next_offset(now);
  rep.delta_offsets.push_back(out.offset);
  if (rep.first_delta_ms < 0) rep.first_delta_ms = now;
  rep.last_at_ms = now;
  _data_bytes += m.data.len;
  _overhead_bytes += kDeltaOverhead;
  if (_open.back() != &rep) {  // the newest place goes last: reads sort few, usually none
    _open.erase(std::find(_open.begin(), _open.end(), &rep));
    _open.push_back(&rep);
  }
  out.deliver = true;
  out.reply.kind = FLOWRELAY_KIND_DELTA;
  out.reply.seq = seq;
  out.reply.ttft_ms = out.reply.duration_ms = -1;
  out.message.data = m.data;
}

// Seals the reply: its text moves into one REPLY entry at the END's own offset, atomically (the
// caller holds the channel's lock across this and the delivery).
void ChannelHistory::end_step(Reply* known, std::string_view id, const flowrelay_message& m,
                              int64_t now, ReplyStep& out) {
  const std::string_view reason(m.reply->reason.ptr, m.reply->reason.len);
  if (known && !known->open) {
    if (reason == known->reason) {
      out.duplicate = true;
      out.offset = known->place;
    } else {
      out.status = FLOWRELAY_ECONFLICT;
      out.ended = known->reason;
    }
    return;
  }
  Reply& rep = known ? *known : open_reply(id, m, now);  // an unknown reply: empty, ended now
  rep.place = out.offset = next_offset(now);
  rep.open = false;
  rep.reason.assign(reason);
  if (reason == "error") rep.error.assign(m.reply->error.ptr, m.reply->error.len);
  rep.ttft_ms = rep.first_delta_ms < 0 ? -1
                : rep.opened_by_open   ? rep.first_delta_ms - rep.opened_ms
                                       : 0;
  rep.duration_ms = now - rep.opened_ms;
  rep.bytes = rep.text.size();
  rep.last_at_ms = now;
  _overhead_bytes -= rep.delta_offsets.size() * kDeltaOverhead;
  std::vector<uint64_t>().swap(rep.delta_offsets);  // an ended reply answers no delta
  _open.erase(std::find(_open.begin(), _open.end(), &rep));
  // The open reply's slot becomes the entry's: kEntryOverhead and kReplyOverhead stay counted.
  _entries.push_back(
      {out.offset, FLOWRELAY_LANE_MESSAGE, rep.origin, now, std::move(rep.text), &rep});
  rep.text = std::string();
  out.deliver = true;
  out.reply.kind = FLOWRELAY_KIND_END;
  out.reply.seq = rep.seq;
  out.reply.reason = m.reply->reason;
  if (reason == "error") out.reply.error = m.reply->error;
  out.reply.ttft_ms = rep.ttft_ms;
  out.reply.duration_ms = rep.duration_ms;
  out.reply.bytes = rep.bytes;
}

}  // namespace flowrelay::local
