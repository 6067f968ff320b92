#include "handshake.h"

#include "access_policy.h"
#include "net/http_head.h"

#include <Poco/Base64Decoder.h>
#include <Poco/Base64Encoder.h>
#include <Poco/Exception.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/SHA1Engine.h>
#include <Poco/String.h>

#include <sstream>

namespace flowrelay::ws {

namespace {

using net::has_token;

// The header may appear on several lines (RFC 6455 11.3.4), each a comma-separated list.
bool offers_subprotocol(const Poco::Net::HTTPRequest& req, std::string_view name) {
  const std::string wanted(name);
  for (auto it = req.find("Sec-WebSocket-Protocol");
       it != req.end() && Poco::icompare(it->first, "Sec-WebSocket-Protocol") == 0; ++it)
    if (has_token(it->second, wanted.c_str())) return true;
  return false;
}

bool valid_key(const std::string& key) {
  if (key.size() != 24) return false;  // base64 of 16 bytes
  try {
    std::istringstream in(key);
    Poco::Base64Decoder decoder(in);
    std::string raw((std::istreambuf_iterator<char>(decoder)), std::istreambuf_iterator<char>());
    return raw.size() == 16;
  } catch (const Poco::Exception&) {
    return false;
  }
}

}  // namespace

std::string websocket_accept(std::string_view key) {
  Poco::SHA1Engine sha1;
  sha1.update(key.data(), static_cast<unsigned>(key.size()));
  sha1.update("258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
  const auto& digest = sha1.digest();
  std::ostringstream out;
  Poco::Base64Encoder encoder(out);
  encoder.write(reinterpret_cast<const char*>(digest.data()),
                static_cast<std::streamsize>(digest.size()));
  encoder.close();
  return out.str();
}

HandshakeResult accept_handshake(std::string_view request, std::string_view path_prefix,
                                 size_t max_id_length, const AccessPolicy* policy) {
  HandshakeResult r;
  auto refuse = [&](int status, std::string_view reason, std::string_view extra = {}) {
    r.status = status;
    r.response = http_error(status, reason, extra);
    return r;
  };
  // Poco parses the request line and headers (net/http_head.h).
  Poco::Net::HTTPRequest req;
  if (const std::string why = net::read_request(request, req); !why.empty())
    return refuse(400, why);
  if (req.getVersion() != Poco::Net::HTTPMessage::HTTP_1_1)
    return refuse(400, "WebSocket needs HTTP/1.1");
  const std::string& uri = req.getURI();
  const std::string_view path = std::string_view(uri).substr(0, uri.find('?'));
  if (path.substr(0, path_prefix.size()) != path_prefix)
    return refuse(404, "no WebSocket endpoint here; connect to " + std::string(path_prefix) +
                           "{conversation_id}");
  const std::string_view id = path.substr(path_prefix.size());
  if (req.getMethod() != Poco::Net::HTTPRequest::HTTP_GET)
    return refuse(405, "the WebSocket handshake is a GET", "Allow: GET\r\n");
  if (!valid_conversation_id(id, max_id_length))
    return refuse(400, "invalid conversation id: 1-" + std::to_string(max_id_length) +
                           " characters of A-Z a-z 0-9 _ . : -");
  if (!has_token(req.get("Upgrade", ""), "websocket"))
    return refuse(426, "this endpoint needs a WebSocket upgrade",
                  "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n");
  if (!has_token(req.get("Connection", ""), "upgrade"))
    return refuse(400, "the Connection header must contain Upgrade");
  if (req.get("Sec-WebSocket-Version", "") != "13")
    return refuse(426, "unsupported WebSocket version; this server speaks 13",
                  "Sec-WebSocket-Version: 13\r\n");
  const std::string key = Poco::trim(req.get("Sec-WebSocket-Key", ""));
  if (!valid_key(key)) return refuse(400, "missing or invalid Sec-WebSocket-Key");
  r.envelope = offers_subprotocol(req, kEnvelopeSubprotocol);
  if (const std::string why = stream::parse_resume_params(uri, r); !why.empty())
    return refuse(400, why);
  // transport-ws' own condition: only envelope frames carry the offsets a resume stands on.
  if (r.resume && !r.envelope)
    return refuse(400,
                  "since (resume) needs the flowrelay.v1 subprotocol: raw clients have no offsets");
  if (policy) {
    const AccessDecision d = policy->check(id, req);
    if (d.status != 0) return refuse(d.status, d.reason, d.refusal_headers());
    r.can_publish = d.can_publish;
    r.user = std::move(d.claims);
  }
  r.cookie = req.get("Cookie", "");
  r.authorization = req.get("Authorization", "");

  r.status = 101;
  r.conversation.assign(id);
  r.response =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: " +
      websocket_accept(key) + "\r\n";
  if (r.envelope) r.response += "Sec-WebSocket-Protocol: flowrelay.v1\r\n";
  r.response += "\r\n";
  return r;
}

}  // namespace flowrelay::ws
