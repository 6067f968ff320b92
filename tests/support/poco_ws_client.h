// A well-behaved WebSocket client (Poco::Net::WebSocket: masked frames, its own framing).
//
// Poco loses frames that arrive in the same read as the 101 (they stay in its HTTP session's
// buffer): where the server may speak first (a resume), use RawClient (ws_client.h) or
// EnvelopeClient (envelope_client.h).
#pragma once

#include <Poco/Net/WebSocket.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "support/wait.h"

namespace flowrelay::test {

struct WsMessage {
  int flags = 0;  // Poco::Net::WebSocket flags: FIN/RSV bits | opcode
  std::string payload;
  bool eof = false;  // the server closed the TCP connection
  int opcode() const { return flags & Poco::Net::WebSocket::FRAME_OP_BITMASK; }
  bool fin() const { return (flags & Poco::Net::WebSocket::FRAME_FLAG_FIN) != 0; }
};

class WsClient {
 public:
  // Connects to ws://127.0.0.1:<port>/ws/<id> (id may carry a query string), offering
  // `subprotocol` (Sec-WebSocket-Protocol) if not empty. Throws on failure.
  WsClient(uint16_t port, const std::string& id, const std::string& subprotocol = "");
  // The Sec-WebSocket-Protocol of the server's 101 ("" when absent).
  const std::string& subprotocol() const { return _subprotocol; }
  void send_text(std::string_view text);
  void send_ping(std::string_view payload);
  // The next frame, or nullopt if none arrives within `timeout`.
  std::optional<WsMessage> receive(Millis timeout = 5s);
  // Sends a close frame with `code` (does not wait for the answer).
  void close(uint16_t code = 1000);
  Poco::Net::WebSocket& socket() { return *_ws; }

 private:
  std::unique_ptr<Poco::Net::WebSocket> _ws;
  std::string _subprotocol;
};

}  // namespace flowrelay::test
