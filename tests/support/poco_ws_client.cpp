#include "support/poco_ws_client.h"

#include <Poco/Buffer.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/NetException.h>

#include "support/ws_frame.h"

namespace flowrelay::test {

namespace {

constexpr int kFinal = Poco::Net::WebSocket::FRAME_FLAG_FIN;

}  // namespace

WsClient::WsClient(uint16_t port, const std::string& id, const std::string& subprotocol) {
  Poco::Net::HTTPClientSession session("127.0.0.1", port);
  session.setTimeout(Poco::Timespan(5, 0));
  Poco::Net::HTTPRequest req(Poco::Net::HTTPRequest::HTTP_GET, "/ws/" + id,
                             Poco::Net::HTTPMessage::HTTP_1_1);
  if (!subprotocol.empty()) req.set("Sec-WebSocket-Protocol", subprotocol);
  Poco::Net::HTTPResponse resp;
  _ws = std::make_unique<Poco::Net::WebSocket>(session, req, resp);
  _ws->setMaxPayloadSize(64 * 1024 * 1024);
  _subprotocol = resp.get("Sec-WebSocket-Protocol", "");
}

void WsClient::send_text(std::string_view text) {
  _ws->sendFrame(text.data(), static_cast<int>(text.size()), Poco::Net::WebSocket::FRAME_TEXT);
}

void WsClient::send_ping(std::string_view payload) {
  _ws->sendFrame(payload.data(), static_cast<int>(payload.size()),
                 kFinal | int{Poco::Net::WebSocket::FRAME_OP_PING});
}

std::optional<WsMessage> WsClient::receive(Millis timeout) {
  // Wait for readability first so a timeout never interrupts a half-read frame.
  if (!_ws->poll(Poco::Timespan(static_cast<long>(timeout.count()) * 1000),
                 Poco::Net::Socket::SELECT_READ)) {
    return std::nullopt;
  }
  _ws->setReceiveTimeout(Poco::Timespan(5, 0));
  WsMessage m;
  Poco::Buffer<char> buf(0);
  try {
    const int n = _ws->receiveFrame(buf, m.flags);
    m.payload.assign(buf.begin(), buf.size());
    if (n == 0 && m.flags == 0) m.eof = true;
  } catch (const Poco::Net::ConnectionResetException&) {
    m.eof = true;
  } catch (const Poco::TimeoutException&) {
    return std::nullopt;
  }
  return m;
}

void WsClient::close(uint16_t code) {
  const std::string p = close_payload(code);
  _ws->sendFrame(p.data(), static_cast<int>(p.size()),
                 kFinal | int{Poco::Net::WebSocket::FRAME_OP_CLOSE});
}

}  // namespace flowrelay::test
