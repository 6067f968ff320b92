#include "envelope_reply.h"

#include <Poco/JSON/Object.h>

#include "envelope.h"
#include "utf8_repair.h"

namespace flowrelay::ws {

namespace {

std::string_view view(flowrelay_str s) { return {s.ptr, s.len}; }

// What reaches a client must be valid UTF-8; brokers may hand anything (a PUBLISH into Redis).
void append_text(std::string& out, std::string_view s) {
  if (is_valid_utf8(s))
    append_json_string(out, s);
  else
    append_json_string(out, repair_utf8(s));
}

const char* type_name(flowrelay_kind kind) {
  switch (kind) {
    case FLOWRELAY_KIND_OPEN:
      return "open";
    case FLOWRELAY_KIND_DELTA:
      return "delta";
    case FLOWRELAY_KIND_END:
      return "end";
    case FLOWRELAY_KIND_SNAPSHOT:
      return "snapshot";
    case FLOWRELAY_KIND_REPLY:
      return "reply";
    case FLOWRELAY_KIND_STALLED:
      return "stalled";
    default:
      return "message";
  }
}

void append_stats(std::string& out, const flowrelay_reply& r) {
  out += ",\"stats\":{\"tokens\":";
  out += std::to_string(r.seq);
  if (r.ttft_ms >= 0) out += ",\"ttft_ms\":" + std::to_string(r.ttft_ms);
  if (r.duration_ms >= 0) out += ",\"duration_ms\":" + std::to_string(r.duration_ms);
  out += ",\"bytes\":" + std::to_string(r.bytes);
  out += '}';
}

bool valid_reply_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id)
    if (c < 0x21 || c > 0x7e) return false;
  return true;
}

}  // namespace

std::string envelope_reply(const flowrelay_reply& r, uint64_t offset, std::string_view epoch,
                           std::string_view data, DeltaLayout* layout) {
  const flowrelay_kind kind = r.kind;
  const bool has_seq = kind == FLOWRELAY_KIND_DELTA || kind == FLOWRELAY_KIND_SNAPSHOT ||
                       kind == FLOWRELAY_KIND_REPLY;
  const bool has_end = kind == FLOWRELAY_KIND_END || kind == FLOWRELAY_KIND_REPLY;
  DeltaLayout l;
  std::string out;
  out.reserve(data.size() + epoch.size() + r.id.len + 128);
  out += "{\"type\":\"";
  out += type_name(kind);
  out += "\",\"reply\":\"";
  l.reply_pos = static_cast<uint32_t>(out.size());
  append_text(out, view(r.id));
  l.reply_len = static_cast<uint32_t>(out.size() - l.reply_pos);
  out += '"';
  if (has_seq) out += ",\"seq\":" + std::to_string(r.seq);
  if (offset) {
    out += ",\"offset\":" + std::to_string(offset);
    if (!epoch.empty()) {
      out += ",\"epoch\":\"";
      l.epoch_pos = static_cast<uint32_t>(out.size());
      append_json_string(out, epoch);
      l.epoch_len = static_cast<uint32_t>(out.size() - l.epoch_pos);
      out += '"';
    }
  }
  if (has_seq) {  // the kinds with text
    out += ",\"data\":\"";
    l.data_pos = static_cast<uint32_t>(out.size());
    append_json_string(out, data);
    l.data_len = static_cast<uint32_t>(out.size() - l.data_pos);
    out += '"';
  }
  if (has_end) {
    const std::string_view reason = view(r.reason);
    out += ",\"reason\":\"";
    append_text(out, reason.empty() ? std::string_view("done") : reason);
    out += '"';
    if (reason == "error" && r.error.len) {
      out += ",\"error\":\"";
      append_text(out, view(r.error));
      out += '"';
    }
    append_stats(out, r);
  }
  out += '}';
  if (layout) *layout = l;
  return out;
}

SharedFrame* delta_frame(std::string_view channel, const flowrelay_reply& r, uint64_t offset,
                         std::string_view epoch, std::string_view data) {
  DeltaLayout l;
  const std::string text = envelope_reply(r, offset, epoch, data, &l);
  SharedFrame* f = SharedFrame::message(channel, Opcode::Text, text);
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
  SharedFrame* f = SharedFrame::message({}, Opcode::Text, out);
  f->set_position(FLOWRELAY_LANE_MESSAGE, next.offset());
  f->set_delta(tail.from(), next.seq(), m);
  f->set_created_ns(tail.created_ns());
  return f;
}

bool is_reply_type(std::string_view type) {
  return type == "open" || type == "delta" || type == "end" || type == "cancel";
}

bool parse_reply_step(const Poco::JSON::Object& obj, const std::string& type, ClientReplyStep& out,
                      std::string& data, std::string& error) {
  const Poco::Dynamic::Var reply = obj.get("reply");
  out.reply = reply.isString() ? reply.extract<std::string>() : std::string();
  if (!valid_reply_id(out.reply)) {
    error = "reply must be a string of 1 to 64 printable ASCII characters without spaces";
    return false;
  }
  if (type == "open") {
    out.kind = FLOWRELAY_KIND_OPEN;
    return true;
  }
  if (type == "cancel") {
    out.kind = FLOWRELAY_KIND_END;
    out.cancel = true;
    return true;
  }
  if (type == "end") {
    out.kind = FLOWRELAY_KIND_END;
    if (obj.has("error") && !obj.isNull("error")) {
      const Poco::Dynamic::Var e = obj.get("error");
      if (!e.isString()) {
        error = "error must be a string";
        return false;
      }
      out.has_error = true;
      out.error = e.extract<std::string>();
    }
    return true;
  }
  out.kind = FLOWRELAY_KIND_DELTA;
  const Poco::Dynamic::Var seq = obj.get("seq");
  bool positive = false;
  if (seq.isInteger() && !seq.isBoolean()) {
    if (seq.isSigned()) {
      const Poco::Int64 n = seq.convert<Poco::Int64>();
      positive = n > 0;
      out.seq = positive ? static_cast<uint64_t>(n) : 0;
    } else {
      out.seq = seq.convert<Poco::UInt64>();
      positive = out.seq > 0;
    }
  }
  if (!positive) {
    error = "seq must be a positive integer";
    return false;
  }
  const Poco::Dynamic::Var d = obj.get("data");
  if (!d.isString()) {
    error = "data must be a string";
    return false;
  }
  data = d.extract<std::string>();
  return true;
}

}  // namespace flowrelay::ws
