#include "support/envelope_client.h"

#include <Poco/Dynamic/Var.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <cctype>
#include <sstream>
#include <stdexcept>

namespace flowrelay::test {

namespace {

Poco::JSON::Object::Ptr parse_object(const std::string& text) {
  try {
    Poco::JSON::Parser parser;
    Poco::Dynamic::Var v = parser.parse(text);
    if (v.type() == typeid(Poco::JSON::Object::Ptr)) return v.extract<Poco::JSON::Object::Ptr>();
  } catch (const Poco::Exception&) {
  } catch (const std::exception&) {
  }
  return nullptr;
}

std::optional<std::string> string_field(const Poco::JSON::Object::Ptr& o, const std::string& k) {
  if (!o->has(k)) return std::nullopt;
  const Poco::Dynamic::Var v = o->get(k);
  if (!v.isString()) return std::nullopt;
  return v.convert<std::string>();
}

std::optional<int64_t> integer_field(const Poco::JSON::Object::Ptr& o, const std::string& k) {
  if (!o->has(k)) return std::nullopt;
  const Poco::Dynamic::Var v = o->get(k);
  if (!v.isInteger()) return std::nullopt;
  return v.convert<Poco::Int64>();
}

std::string stringify(const Poco::JSON::Object& o) {
  std::ostringstream s;
  o.stringify(s);
  return s.str();
}

Poco::JSON::Object message_object(std::string_view conversation, std::string_view data,
                                  std::string_view lane) {
  Poco::JSON::Object o;
  o.set("conversation", std::string(conversation));
  if (!lane.empty()) o.set("lane", std::string(lane));
  o.set("data", std::string(data));
  return o;
}

Published published_from(int status, const std::string& body, const Poco::JSON::Object::Ptr& o) {
  Published p;
  p.status = status;
  p.body = body;
  if (!o) return p;
  p.conversation = string_field(o, "conversation");
  if (auto off = integer_field(o, "offset"); off && *off >= 0)
    p.offset = static_cast<uint64_t>(*off);
  p.epoch = string_field(o, "epoch");
  return p;
}

}  // namespace

Envelope parse_envelope(const std::string& text) {
  Envelope e;
  e.raw = text;
  const auto o = parse_object(text);
  if (!o) return e;
  e.json_object = true;
  e.type = string_field(o, "type").value_or("");
  e.lane = string_field(o, "lane").value_or("");
  if (auto off = integer_field(o, "offset"); off && *off >= 0)
    e.offset = static_cast<uint64_t>(*off);
  e.epoch = string_field(o, "epoch");
  e.data = string_field(o, "data");
  if (o->has("recovered") && o->get("recovered").isBoolean()) {
    e.recovered = o->get("recovered").convert<bool>();
  }
  if (auto code = integer_field(o, "code")) e.code = static_cast<int>(*code);
  e.reason = string_field(o, "reason").value_or("");
  return e;
}

std::string publish_envelope(std::string_view data, std::string_view lane) {
  Poco::JSON::Object o;
  o.set("type", std::string("publish"));
  if (!lane.empty()) o.set("lane", std::string(lane));
  o.set("data", std::string(data));
  return stringify(o);
}

std::string publish_body(std::string_view conversation, std::string_view data,
                         std::string_view lane) {
  return stringify(message_object(conversation, data, lane));
}

std::string batch_body(const std::vector<BatchItem>& items) {
  Poco::JSON::Array::Ptr messages = new Poco::JSON::Array;
  for (const auto& i : items) {
    messages->add(Poco::JSON::Object::Ptr(
        new Poco::JSON::Object(message_object(i.conversation, i.data, i.lane))));
  }
  Poco::JSON::Object o;
  o.set("messages", messages);
  return stringify(o);
}

Published parse_published(int status, const std::string& body) {
  return published_from(status, body, parse_object(body));
}

std::optional<std::vector<Published>> parse_batch_results(const std::string& body) {
  const auto o = parse_object(body);
  if (!o || !o->has("results")) return std::nullopt;
  const auto arr = o->getArray("results");
  if (!arr) return std::nullopt;
  std::vector<Published> out;
  for (size_t i = 0; i < arr->size(); ++i) {
    out.push_back(published_from(200, "", arr->getObject(static_cast<unsigned>(i))));
  }
  return out;
}

std::string error_of(const std::string& body) {
  const auto o = parse_object(body);
  if (!o) return "";
  return string_field(o, "error").value_or("");
}

HttpHeaders api_headers(const std::string& key) { return {{"X-API-Key", key}}; }

Published publish_via_api(HttpSession& session, const std::string& key,
                          std::string_view conversation, std::string_view data,
                          std::string_view lane) {
  const HttpResult r =
      session.post("/api/publish", publish_body(conversation, data, lane), api_headers(key));
  return parse_published(r.status, r.body);
}

// ---------------------------------------------------------------------------------------------

EnvelopeClient::EnvelopeClient(uint16_t port, const std::string& id_and_query) : _raw(port) {
  const std::string key = make_ws_key();
  const HttpHead h = _raw.request(handshake_request(
      "/ws/" + id_and_query, key, std::string("Sec-WebSocket-Protocol: ") + kSubprotocol + "\r\n"));
  if (h.status != 101 || h.header("Sec-WebSocket-Accept") != expected_accept(key)) {
    throw std::runtime_error("envelope handshake for /ws/" + id_and_query + " on port " +
                             std::to_string(port) +
                             " failed: " + (h.status ? h.status_line : std::string("no answer")));
  }
  _subprotocol = h.header("Sec-WebSocket-Protocol").value_or("");
}

void EnvelopeClient::send_text(std::string_view text) {
  if (!_raw.send_text(text)) throw std::runtime_error("envelope client: send failed");
}

std::optional<Envelope> EnvelopeClient::next(Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  std::string message;  // a fragmented text message, reassembled
  bool in_message = false;
  while (!_closed) {
    Frame f;
    switch (_raw.read_frame(f, Millis(remaining_ms(deadline)))) {
      case ReadResult::Timeout:
        return std::nullopt;
      case ReadResult::Eof:
      case ReadResult::Reset:
        _closed = true;
        return std::nullopt;
      case ReadResult::Frame:
        break;
    }
    switch (f.opcode) {
      case kText:
      case kCont:
        if (f.opcode == kText && in_message) return parse_envelope("<text frame inside a message>");
        if (f.opcode == kCont && !in_message) return parse_envelope("<stray continuation frame>");
        message += f.payload;
        in_message = !f.fin;
        if (f.fin) return parse_envelope(message);
        break;
      case kPing:
        _raw.answer_ping(f);
        break;
      case kClose:
        _closed = true;
        if (f.has_close_code()) _close_code = f.close_code();
        return std::nullopt;
      case kPong:
        break;
      default:
        // Anything else in envelope mode is a mistake: surface it as a frame that is not JSON.
        return parse_envelope("<" + f.describe() + ">");
    }
  }
  return std::nullopt;
}

void EnvelopeClient::close(uint16_t code) {
  if (_closed) return;
  FrameSpec close;
  close.opcode = kClose;
  close.payload = close_payload(code);
  _raw.send_frame(close);
  _closed = true;
}

std::string url_encode(std::string_view value) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

std::string resume_path(const std::string& id, uint64_t since,
                        const std::optional<std::string>& epoch) {
  std::string p = id + "?since=" + std::to_string(since);
  if (epoch) p += "&epoch=" + url_encode(*epoch);
  return p;
}

}  // namespace flowrelay::test
