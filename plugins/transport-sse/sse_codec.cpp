#include "sse_codec.h"

#include <Poco/Net/HTTPRequest.h>
#include <Poco/String.h>

#include "conversation_id.h"
#include "envelope.h"
#include "envelope_reply.h"
#include "history_entry.h"
#include "net/http_head.h"
#include "net/http_response.h"

namespace flowrelay::sse {

namespace {

constexpr std::string_view kAllow = "Allow: GET, POST, OPTIONS\r\n";

// Which form of the stream `accept` asks for: 0 SSE, 1 NDJSON, -1 neither (406).
int negotiate(const std::string& accept) {
  if (accept.empty()) return 0;
  const std::string a = Poco::toLower(accept);
  if (a.find("text/event-stream") != std::string::npos) return 0;
  if (a.find("application/x-ndjson") != std::string::npos) return 1;
  if (a.find("*/*") != std::string::npos || a.find("text/*") != std::string::npos) return 0;
  return -1;
}

std::string cors_headers(const std::string& origin) {
  return "Access-Control-Allow-Origin: " + origin +
         "\r\nAccess-Control-Allow-Credentials: true\r\nVary: Origin\r\n";
}

}  // namespace

SseRequest parse_request(std::string_view head, std::string_view path_prefix, size_t max_id_length,
                         uint64_t max_body, const AccessPolicy* policy) {
  SseRequest r;
  auto refuse = [&](int status, std::string_view reason, std::string_view extra = {}) {
    r.status = status;
    r.response = net::http_error(status, reason, std::string(extra) + r.cors);
    return r;
  };
  // Poco parses the request line and headers (with its own field count and size limits), as
  // transport-ws' handshake does; the access policy reads the same object.
  Poco::Net::HTTPRequest req;
  if (const std::string why = net::read_request(head, req); !why.empty()) return refuse(400, why);
  const std::string& version = req.getVersion();
  if (version != Poco::Net::HTTPMessage::HTTP_1_1 && version != Poco::Net::HTTPMessage::HTTP_1_0)
    return refuse(505, "HTTP/1.0 or HTTP/1.1 only");
  r.keep_alive = version == Poco::Net::HTTPMessage::HTTP_1_1
                     ? !net::has_token(req.get("Connection", ""), "close")
                     : net::has_token(req.get("Connection", ""), "keep-alive");
  const std::string origin = req.get("Origin", "");
  // CORS headers echo an Origin the policy allows (any, without a policy).
  if (!origin.empty() && (!policy || policy->origin_allowed(origin))) r.cors = cors_headers(origin);
  const std::string& uri = req.getURI();
  const std::string_view path = std::string_view(uri).substr(0, uri.find('?'));
  if (path.substr(0, path_prefix.size()) != path_prefix)
    return refuse(404, "no stream here; use " + std::string(path_prefix) + "{conversation_id}");
  const std::string_view id = path.substr(path_prefix.size());
  const std::string& method = req.getMethod();
  if (method == Poco::Net::HTTPRequest::HTTP_GET) {
    r.kind = RequestKind::Stream;
  } else if (method == Poco::Net::HTTPRequest::HTTP_POST) {
    r.kind = RequestKind::Publish;
  } else if (method == Poco::Net::HTTPRequest::HTTP_OPTIONS) {
    r.kind = RequestKind::Preflight;
  } else {
    return refuse(405, "GET streams, POST publishes, OPTIONS is the CORS preflight", kAllow);
  }
  if (!valid_conversation_id(id, max_id_length))
    return refuse(400, "invalid conversation id: 1-" + std::to_string(max_id_length) +
                           " characters of A-Z a-z 0-9 _ . : -");
  r.conversation.assign(id);

  if (r.kind == RequestKind::Preflight) {
    if (!origin.empty() && r.cors.empty()) return refuse(403, "origin not allowed: " + origin);
    if (!origin.empty())
      r.cors +=
          "Access-Control-Allow-Methods: GET, POST, OPTIONS\r\n"
          "Access-Control-Allow-Headers: Authorization, Content-Type, Last-Event-ID\r\n"
          "Access-Control-Max-Age: 600\r\n";
    return r;
  }
  if (r.kind == RequestKind::Publish) {
    if (net::has_token(req.get("Transfer-Encoding", ""), "chunked"))
      return refuse(411, "a chunked body is not accepted; send Content-Length");
    const std::string length = req.get("Content-Length", "");
    if (!length.empty() && !parse_offset(Poco::trim(length), r.content_length))
      return refuse(400, "invalid Content-Length");
    if (r.content_length > max_body)
      return refuse(
          413, "message larger than max_message_size (" + std::to_string(max_body) + " bytes)");
    const std::string type = Poco::toLower(req.get("Content-Type", ""));
    const std::string_view media = std::string_view(type).substr(0, type.find(';'));
    if (media == "application/json")
      r.body_type = BodyType::Json;
    else if (!media.empty() && media.substr(0, 5) != "text/")
      return refuse(415,
                    "send Content-Type: text/plain or application/json (curl -d sends a form type: "
                    "add -H 'Content-Type: text/plain')");
  } else {
    // ?format=sse|ndjson among the resume's parameters (the first mistake is the one told).
    bool format_given = false;
    const auto format = [&](const std::string& name, const std::string& value) -> std::string {
      if (name != "format") return {};
      if (value != "sse" && value != "ndjson") return "format must be sse or ndjson";
      r.ndjson = value == "ndjson";
      format_given = true;
      return {};
    };
    if (const std::string why = parse_resume_params(uri, r, format); !why.empty())
      return refuse(400, why);
    if (!format_given) {
      const int form = negotiate(req.get("Accept", ""));
      if (form < 0)
        return refuse(406, "this endpoint streams text/event-stream or application/x-ndjson");
      r.ndjson = form == 1;
    }
    const std::string last = Poco::trim(req.get("Last-Event-ID", ""));
    if (!r.resume && !last.empty()) {
      r.resume = true;
      // An id we never gave cannot be placed: resume from an epoch no history has, which is
      // answered recovered:false at the top (never a silent gap).
      if (!parse_event_id(last, r.epoch, r.since)) {
        r.epoch = "-";
        r.since = 0;
      }
    }
  }
  if (policy) {
    const AccessDecision d = policy->check(id, req);
    if (d.status != 0) return refuse(d.status, d.reason, d.refusal_headers());
    r.can_publish = d.can_publish;
    r.user = d.claims;
  }
  r.cookie = req.get("Cookie", "");
  r.authorization = req.get("Authorization", "");
  return r;
}

std::string response(int status, std::string_view content_type, std::string_view body,
                     bool keep_alive, std::string_view extra_headers) {
  net::ResponseParts p;
  p.status = status;
  p.content_type = content_type;
  p.body = body;
  p.keep_alive = keep_alive;
  std::string out = net::build_response(p);
  out.insert(out.find("\r\n\r\n") + 2, extra_headers);
  return out;
}

bool parse_event_id(std::string_view id, std::string& epoch, uint64_t& offset) {
  const size_t colon = id.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon > 64) return false;
  if (!parse_offset(id.substr(colon + 1), offset)) return false;
  epoch.assign(id.substr(0, colon));
  return true;
}

std::string event_id(std::string_view epoch, uint64_t offset) {
  if (offset == 0) return {};
  std::string out(epoch);
  out += ':';
  out += std::to_string(offset);
  return out;
}

void append_event(std::string& out, std::string_view id, std::string_view type,
                  std::string_view data) {
  // Ids and types are ours (an epoch, an offset, a word): no line breaks to split.
  if (!id.empty()) out.append("id: ").append(id).append("\n");
  if (!type.empty()) out.append("event: ").append(type).append("\n");
  size_t start = 0;
  for (;;) {
    const size_t end = data.find_first_of("\r\n", start);
    // "data: " then the line: a reader strips exactly one space after the colon, so a line
    // that starts with a space keeps it.
    out.append("data: ").append(data.substr(start, end - start)).append("\n");
    if (end == std::string_view::npos) break;
    start = end + (data[end] == '\r' && end + 1 < data.size() && data[end + 1] == '\n' ? 2 : 1);
  }
  out += '\n';
}

std::string live_event(flowrelay_lane lane, const flowrelay_reply* reply, uint64_t offset,
                       std::string_view epoch, std::string_view data) {
  std::string out;
  if (reply && reply->kind != FLOWRELAY_KIND_MESSAGE)
    append_event(out, event_id(epoch, offset), reply_type_name(reply->kind),
                 envelope_reply(*reply, offset, epoch, data));
  else
    append_event(out, event_id(epoch, offset), lane == FLOWRELAY_LANE_LOG ? "log" : "", data);
  return out;
}

std::string history_event(const HistoryResult::Entry& e, std::string_view epoch, bool ndjson) {
  if (ndjson) return history_envelope(e, epoch) + "\n";
  if (e.reply.kind == FLOWRELAY_KIND_MESSAGE)
    return live_event(e.lane, nullptr, e.offset, epoch, e.data);
  std::string out;
  append_event(out, event_id(epoch, e.offset), reply_type_name(e.reply.kind),
               history_envelope(e, epoch));
  return out;
}

std::string stream_head(bool ndjson, std::string_view cors, uint32_t retry_ms) {
  std::string out = "HTTP/1.1 200 OK\r\nContent-Type: ";
  out += ndjson ? "application/x-ndjson" : "text/event-stream";
  // The body ends with the connection (no chunked framing: every event is one write as it is
  // encoded, shared by all readers). X-Accel-Buffering tells nginx not to buffer the stream.
  out += "\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\nConnection: close\r\n";
  out += cors;
  out += "\r\n";
  if (!ndjson) out += "retry: " + std::to_string(retry_ms) + "\n\n";
  return out;
}

std::string close_event(bool ndjson, uint16_t code, std::string_view reason) {
  std::string json = "{\"type\":\"close\",\"code\":" + std::to_string(code) + ",\"reason\":\"";
  append_json_string(json, reason);
  json += "\"}";
  if (ndjson) return json + "\n";
  std::string out;
  append_event(out, {}, "close", json);
  return out;
}

std::string resumed_event(bool ndjson, bool recovered, uint64_t offset, std::string_view epoch) {
  const std::string json = envelope_resumed(recovered, offset, epoch);
  if (ndjson) return json + "\n";
  std::string out;
  append_event(out, event_id(epoch, offset), "resumed", json);
  return out;
}

std::string_view heartbeat(bool ndjson) {
  return ndjson ? std::string_view("{\"type\":\"heartbeat\"}\n") : std::string_view(": hb\n\n");
}

}  // namespace flowrelay::sse
