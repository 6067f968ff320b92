// Envelope mode (subprotocol flowrelay.v1, docs/PROTOCOL.md) and the publish API, for tests:
// parsing the server's JSON frames, building client frames and API bodies, and the envelope
// client (a RawClient that reads envelopes).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "support/http.h"
#include "support/wait.h"
#include "support/ws_client.h"

namespace flowrelay::test {

inline constexpr const char* kSubprotocol = "flowrelay.v1";

// One server frame of envelope mode. Fields absent from the JSON object stay empty / nullopt.
struct Envelope {
  bool json_object = false;  // false: the frame is not a JSON object (then only `raw` is set)
  std::string raw;           // the frame's text as received
  std::string type;
  std::string lane;
  std::optional<uint64_t> offset;
  std::optional<std::string> epoch;
  std::optional<std::string> data;  // only when it is a JSON string
  std::optional<bool> recovered;
  std::optional<int> code;
  std::string reason;
  bool is_message() const { return type == "message"; }
  std::string describe() const { return raw.size() > 200 ? raw.substr(0, 200) + "..." : raw; }
};

Envelope parse_envelope(const std::string& text);

// {"type":"publish","lane":<lane>,"data":<data>}; lane omitted when empty.
std::string publish_envelope(std::string_view data, std::string_view lane = {});

// ---------------------------------------------------------------------------------------------
// Publish API

// {"conversation":..,"lane":..,"data":..} (lane omitted when empty).
std::string publish_body(std::string_view conversation, std::string_view data,
                         std::string_view lane = {});
struct BatchItem {
  std::string conversation;
  std::string data;
  std::string lane;  // empty: omitted
};
// {"messages":[...]}
std::string batch_body(const std::vector<BatchItem>& items);

struct Published {
  int status = 0;
  std::string body;
  std::optional<std::string> conversation;
  std::optional<uint64_t> offset;
  std::optional<std::string> epoch;
};
// One result object of a 200 answer ({"conversation","offset","epoch"}).
Published parse_published(int status, const std::string& body);
// The "results" of a batch answer, in order; nullopt when the body has no such array.
std::optional<std::vector<Published>> parse_batch_results(const std::string& body);
// The "error" string of an error answer ("" when absent or not JSON).
std::string error_of(const std::string& body);

HttpHeaders api_headers(const std::string& key);

// POSTs one message to /api/publish over `session`.
Published publish_via_api(HttpSession& session, const std::string& key,
                          std::string_view conversation, std::string_view data,
                          std::string_view lane = {});

// ---------------------------------------------------------------------------------------------
// An envelope-mode client: a RawClient that offers flowrelay.v1. Not Poco's WebSocket: its
// client drops bytes that arrive together with the 101 (read into the HTTP session's buffer),
// and the server may send a resumed frame right behind the 101.

class EnvelopeClient {
 public:
  // ws://127.0.0.1:<port>/ws/<id_and_query>, e.g. "42?since=17&epoch=x". Throws
  // std::runtime_error (with the status line) unless the answer is a valid 101.
  EnvelopeClient(uint16_t port, const std::string& id_and_query);
  // The Sec-WebSocket-Protocol of the 101 ("" when absent).
  const std::string& subprotocol() const { return _subprotocol; }
  void send_text(std::string_view text);
  void publish(std::string_view data, std::string_view lane = {}) {
    send_text(publish_envelope(data, lane));
  }
  // The next text frame, parsed; pings are answered and skipped. nullopt on timeout or when the
  // connection ended (closed() then says so, close_code() gives the server's code if any).
  std::optional<Envelope> next(Millis timeout = 5s);
  bool closed() const { return _closed; }
  std::optional<uint16_t> close_code() const { return _close_code; }
  // Sends a close frame (does not wait for the answer); the client is closed() after it.
  void close(uint16_t code = 1000);
  RawClient& raw() { return _raw; }

 private:
  RawClient _raw;
  std::string _subprotocol;
  bool _closed = false;
  std::optional<uint16_t> _close_code;
};

// Percent-encodes a query value (epochs are opaque strings).
std::string url_encode(std::string_view value);
// "<id>?since=<since>" plus "&epoch=<epoch>" when given.
std::string resume_path(const std::string& id, uint64_t since,
                        const std::optional<std::string>& epoch);

}  // namespace flowrelay::test
