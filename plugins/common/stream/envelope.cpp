#include "envelope.h"

#include <Poco/Exception.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

namespace flowrelay::stream {

void append_json_string(std::string& out, std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  size_t plain = 0;  // start of the run of bytes copied as they are
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + plain, i - plain);
    plain = i + 1;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 0xf];
    }
  }
  out.append(s.data() + plain, s.size() - plain);
}

namespace {

const char* lane_name(flowrelay_lane lane) {
  return lane == FLOWRELAY_LANE_LOG ? "log" : "message";
}

}  // namespace

std::string envelope_message(flowrelay_lane lane, uint64_t offset, std::string_view epoch,
                             std::string_view data) {
  std::string out;
  out.reserve(data.size() + epoch.size() + 80);
  out += "{\"type\":\"message\",\"lane\":\"";
  out += lane_name(lane);
  out += '"';
  if (offset) {
    out += ",\"offset\":";
    out += std::to_string(offset);
    out += ",\"epoch\":\"";
    append_json_string(out, epoch);
    out += '"';
  }
  out += ",\"data\":\"";
  append_json_string(out, data);
  out += "\"}";
  return out;
}

std::string envelope_resumed(bool recovered, uint64_t offset, std::string_view epoch) {
  std::string out = "{\"type\":\"resumed\",\"recovered\":";
  out += recovered ? "true" : "false";
  if (offset || !epoch.empty()) {
    out += ",\"offset\":" + std::to_string(offset) + ",\"epoch\":\"";
    append_json_string(out, epoch);
    out += '"';
  }
  out += '}';
  return out;
}

std::string envelope_error(int code, std::string_view reason, std::string_view id,
                           std::string_view extra) {
  std::string out = "{\"type\":\"error\"";
  if (!id.empty()) {
    out += ",\"id\":\"";
    append_json_string(out, id);
    out += '"';
  }
  out += ",\"code\":" + std::to_string(code) + ",\"reason\":\"";
  append_json_string(out, reason);
  out += '"';
  out.append(extra);
  out += '}';
  return out;
}

std::string envelope_ack(std::string_view id, uint64_t offset, std::string_view epoch, bool relayed,
                         bool duplicate) {
  std::string out = "{\"type\":\"ack\"";
  if (!id.empty()) {  // transport-sse answers a POST without an id with an ack too
    out += ",\"id\":\"";
    append_json_string(out, id);
    out += '"';
  }
  if (offset) out += ",\"offset\":" + std::to_string(offset);
  if (!epoch.empty()) {
    out += ",\"epoch\":\"";
    append_json_string(out, epoch);
    out += '"';
  }
  if (!relayed) out += ",\"relayed\":false";
  if (duplicate) out += ",\"duplicate\":true";
  out += '}';
  return out;
}

namespace {

bool valid_publish_id(const std::string& id) {
  if (id.empty() || id.size() > kMaxPublishIdLength) return false;
  for (char c : id)
    if (c < 0x20 || c > 0x7e) return false;
  return true;
}

}  // namespace

bool parse_client_frame(std::string_view text, ClientPublish& out, std::string& error) {
  Poco::JSON::Object::Ptr obj;
  try {
    const Poco::Dynamic::Var v = Poco::JSON::Parser().parse(std::string(text));
    if (v.type() != typeid(Poco::JSON::Object::Ptr)) {
      error = "not a JSON object";
      return false;
    }
    obj = v.extract<Poco::JSON::Object::Ptr>();
  } catch (const Poco::Exception& e) {
    // Poco quotes the offending byte raw; the error goes out in a text frame, which must be
    // valid UTF-8, so anything not ASCII is shown as '?'.
    error = "not valid JSON: " + e.displayText();
    for (char& ch : error)
      if (static_cast<unsigned char>(ch) >= 0x80) ch = '?';
    return false;
  }
  // The id first: an error about the rest of the frame can then name it.
  if (obj->has("id") && !obj->isNull("id")) {
    const Poco::Dynamic::Var id = obj->get("id");
    std::string value = id.isString() ? id.extract<std::string>() : std::string();
    if (!valid_publish_id(value)) {
      error = "id must be a string of 1 to " + std::to_string(kMaxPublishIdLength) +
              " printable ASCII characters";
      return false;
    }
    out.id = std::move(value);
  }
  const Poco::Dynamic::Var type = obj->get("type");
  const std::string name = type.isString() ? type.extract<std::string>() : std::string();
  if (is_reply_type(name)) {
    out.is_reply = true;
    return parse_reply_step(*obj, name, out.reply, out.data, error);
  }
  if (name != "publish") {
    error =
        "unknown type: expected {\"type\":\"publish\",\"lane\":\"message\",\"data\":\"...\"} "
        "or a reply step (open, delta, end, cancel)";
    return false;
  }
  if (obj->has("lane") && !obj->isNull("lane")) {
    const Poco::Dynamic::Var lane = obj->get("lane");
    const std::string lane_text = lane.isString() ? lane.extract<std::string>() : std::string();
    if (lane_text == "log") {
      out.lane = FLOWRELAY_LANE_LOG;
    } else if (lane_text == "message") {
      out.lane = FLOWRELAY_LANE_MESSAGE;
    } else {
      error = "unknown lane (message or log)";
      return false;
    }
  }
  const Poco::Dynamic::Var data = obj->get("data");
  if (!data.isString()) {
    error = "data must be a string";
    return false;
  }
  out.data = data.extract<std::string>();
  return true;
}

}  // namespace flowrelay::stream
