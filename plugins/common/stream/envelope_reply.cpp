#include "envelope_reply.h"

#include <Poco/JSON/Object.h>

#include "envelope.h"
#include "utf8_repair.h"

namespace flowrelay::stream {

namespace {

std::string_view view(flowrelay_str s) { return {s.ptr, s.len}; }

// What reaches a client must be valid UTF-8; brokers may hand anything (a PUBLISH into Redis).
void append_text(std::string& out, std::string_view s) {
  if (is_valid_utf8(s))
    append_json_string(out, s);
  else
    append_json_string(out, repair_utf8(s));
}

}  // namespace

const char* reply_type_name(flowrelay_kind kind) {
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

namespace {

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
  out += reply_type_name(kind);
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

}  // namespace flowrelay::stream
