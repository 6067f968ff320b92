// The HTTP/1.1 upgrade request of RFC 6455 section 4.2: checks it and builds the response.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "access_policy.h"
#include "conversation_id.h"
#include "frame_codec.h"
#include "net/http_response.h"
#include "resume_query.h"

namespace flowrelay::ws {

// The resume fields (resume, since, epoch) are the stream library's, read by its parser.
struct HandshakeResult : stream::ResumeParams {
  int status = 0;            // 101 on success, else the HTTP error to answer with
  std::string response;      // the complete response to send
  std::string conversation;  // the id after the path prefix (on success)
  bool can_publish = true;   // what the access policy granted
  bool envelope = false;     // the client chose the flowrelay.v1 subprotocol (JSON frames)
  // For the backend (connect proxy, publish proxy): the verified token's claims (a JSON
  // object, "" without a token) and the request's Cookie and Authorization headers.
  std::string user;
  std::string cookie;
  std::string authorization;
};

// The subprotocol of envelope mode (docs/PROTOCOL.md).
inline constexpr std::string_view kEnvelopeSubprotocol = "flowrelay.v1";

// `request` holds the request line and headers up to and including the blank line.
// `path_prefix` is e.g. "/ws/"; the id after it must be 1..max_id_length chars of
// [A-Za-z0-9_.:-]. `policy` (may be null) checks Origin and the token: 401/403.
HandshakeResult accept_handshake(std::string_view request, std::string_view path_prefix,
                                 size_t max_id_length = 128, const AccessPolicy* policy = nullptr);

// A complete error response with a short plain-text body (plugins/common/net).
using flowrelay::net::http_error;

// Sec-WebSocket-Accept for a client key.
std::string websocket_accept(std::string_view key);

using flowrelay::valid_conversation_id;  // plugins/common/conversation_id.h

}  // namespace flowrelay::ws
