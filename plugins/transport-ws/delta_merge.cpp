// Merging a slow envelope client's queued reply deltas (docs/PROTOCOL.md "Backpressure"): the
// WebSocket DELTA frames that can be spliced without parsing (shared_frame.h DeltaLayout).
#include "delta_merge.h"

namespace flowrelay::ws {

SharedFrame* delta_frame(std::string_view channel, const flowrelay_reply& r, uint64_t offset,
                         std::string_view epoch, std::string_view data) {
  DeltaLayout l;
  const std::string text = envelope_reply(r, offset, epoch, data, &l);
  SharedFrame* f = ws_frame(channel, Opcode::Text, text);
  f->set_position(FLOWRELAY_LANE_MESSAGE, offset);
  f->set_delta(r.seq, r.seq, l);
  return f;
}

bool can_merge(const SharedFrame& tail, const SharedFrame& next) {
  return tail.is_delta() && next.is_delta() && next.from() == next.seq() &&
         next.seq() == tail.seq() + 1 && next.reply_json() == tail.reply_json() &&
         next.epoch_json() == tail.epoch_json() &&
         uint64_t(tail.layout().data_len) + next.layout().data_len <= kMaxMergedData;
}

// The merged payload is next's with `"from":a,` before its seq and tail's data in front of its
// own: escaping works per character, so escaped pieces concatenate to the escaped whole.
SharedFrame* merge_deltas(const SharedFrame& tail, const SharedFrame& next) {
  const std::string_view p = next.payload();
  const DeltaLayout& l = next.layout();
  const size_t seq_pos = l.reply_pos + l.reply_len + 2;  // past the id's `",`
  const std::string from = "\"from\":" + std::to_string(tail.from()) + ",";
  const std::string_view head_data = tail.data_json();
  std::string out;
  out.reserve(p.size() + from.size() + head_data.size());
  out.append(p.substr(0, seq_pos));
  out += from;
  out.append(p.substr(seq_pos, l.data_pos - seq_pos));
  out.append(head_data);
  out.append(p.substr(l.data_pos));  // next's data and the frame's end
  DeltaLayout m = l;
  const auto shift = static_cast<uint32_t>(from.size());
  if (m.epoch_len) m.epoch_pos += shift;
  m.data_pos += shift;
  m.data_len += static_cast<uint32_t>(head_data.size());
  SharedFrame* f = ws_frame({}, Opcode::Text, out);
  f->set_position(FLOWRELAY_LANE_MESSAGE, next.offset());
  f->set_delta(tail.from(), next.seq(), m);
  f->set_created_ns(tail.created_ns());
  return f;
}

}  // namespace flowrelay::ws
