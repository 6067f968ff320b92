// The raw RFC 6455 client of the test support: a plain TCP socket that writes its own
// handshake and frames (valid or not) and parses the server's frames itself, for refused
// handshakes, protocol violations, slow readers and thousands of clients polled at once.
#pragma once

#include <Poco/Net/StreamSocket.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "support/wait.h"
#include "support/ws_frame.h"

namespace flowrelay::test {

enum class ReadResult { Frame, Timeout, Eof, Reset };

class RawClient {
 public:
  // TCP connect to 127.0.0.1:<port> only (throws on failure). rcvbuf > 0: SO_RCVBUF set before
  // connecting (a small receive window, so a client that does not read stalls the server's
  // writes sooner). source_ip: the local address to connect from (e.g. 127.0.0.2, another
  // loopback address), "" for any.
  explicit RawClient(uint16_t port, int rcvbuf = 0, const std::string& source_ip = "");
  RawClient(RawClient&&) = default;

  // Sends a valid handshake for `path` and reads the response head (keeps any bytes after it).
  HttpHead handshake(const std::string& path, const std::string& extra_headers = "");
  // Valid handshake expecting 101 with the right Sec-WebSocket-Accept; false otherwise.
  bool upgrade(const std::string& path, const std::string& extra_headers = "");
  // Sends raw bytes and reads a response head.
  HttpHead request(std::string_view raw, Millis timeout = 5s);
  // The next response head ({} with status 0 if none is complete within `timeout`).
  HttpHead read_head(Millis timeout = 5s);

  // false if the connection broke while sending (EPIPE/ECONNRESET).
  bool send_raw(std::string_view bytes);
  bool send_frame(const FrameSpec& spec) { return send_raw(encode_frame(spec)); }
  bool send_text(std::string_view payload, bool fin = true);
  // A pong with the ping's payload.
  bool answer_ping(const Frame& ping);

  // Reads the next server frame within `timeout`.
  ReadResult read_frame(Frame& out, Millis timeout = 5s);
  // Reads frames until a close frame (other frames are collected into `skipped` if given).
  std::optional<Frame> read_until_close(Millis timeout = 5s, std::vector<Frame>* skipped = nullptr);
  // Discards incoming bytes until the server closes the connection (FIN or RST) or `timeout`.
  bool wait_closed(Millis timeout = 5s);
  bool closed() const { return _closed; }

  // For many-client polling: the socket, one non-blocking read into the buffer (false once the
  // connection is closed), and the next complete buffered frame.
  int fd() const;
  bool pump();
  std::optional<Frame> pop_frame() { return take_frame(_buf); }
  // The received bytes not consumed yet (after a read_head(): the body so far), removed from
  // the buffer: for streams that are not WebSocket frames (SSE, NDJSON).
  std::string take_bytes() { return std::exchange(_buf, {}); }

  // By default the client closes its socket as soon as it sees the server's EOF (as browsers
  // do); false keeps its half open, like a peer that never notices.
  void set_close_on_eof(bool on) { _close_on_eof = on; }

  // Abrupt disconnects without a close frame: RST (SO_LINGER 0) or a plain FIN.
  void reset_close();
  void fin_close();

 private:
  bool fill(Clock::time_point deadline);  // waits for and reads more bytes
  Poco::Net::StreamSocket _sock;
  std::string _buf;
  bool _closed = false;
  bool _reset = false;
  bool _close_on_eof = true;
};

// Polls all clients (poll(2)), reading what arrives (pump()), and calls drain(index) for every
// client before each check of `done()`, until it is true or `timeout` passes. Returns done().
bool pump_raw_clients(const std::vector<RawClient*>& clients,
                      const std::function<void(size_t)>& drain, const std::function<bool()>& done,
                      Millis timeout);

// pump_raw_clients handing every complete frame to on_frame(index, frame).
bool pump_clients(const std::vector<RawClient*>& clients,
                  const std::function<void(size_t, Frame&&)>& on_frame,
                  const std::function<bool()>& done, Millis timeout);

}  // namespace flowrelay::test
