// One WebSocket connection's protocol state, without a socket (in the style of nghttp2 and
// llhttp): the event loop feeds it the bytes it read and performs what it asks for through
// SessionHost (join a channel, publish, read history, write the queue out, arm its timer, close
// the socket). It decides everything RFC 6455 and the product say about a connection: the
// upgrade's answer, frame parsing, fragmentation, UTF-8, control frames, the close handshake,
// the message size and publish rate limits, the outbound queue and the slow-consumer and
// log-shedding policy, and the seam of a resume. No fd, no syscall, no thread: a test or a fuzzer
// drives it exactly as the loop does.
#pragma once

#include <flowrelay/plugin.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "connection.h"
#include "resume_seam.h"
#include "ws_frame.h"

namespace flowrelay::ws {

class Session final : public Connection {
 public:
  Session(SessionHost& host, const SessionConfig& config, uint64_t id);
  ~Session() override;

  void start() override;
  void reject(int status, std::string_view reason) override;
  // Frames are unmasked in place.
  void feed(char* data, size_t len) override;
  // Joining: the channel is live; the 101 is queued.
  void admit() override;
  void drain_held() override;
  // Open: sends a close frame with `code` and leaves the channel.
  void close(uint16_t code, std::string_view reason) override;
  // See Connection::deliver; the queue may still shed a log-lane frame or refuse a slow
  // consumer's, as send() decides.
  bool deliver(SharedFrame* f) override;
  void replay(const HistoryResult& h) override;
  // The ack or error frame (envelope), the close (raw refusals), or nothing
  // (session_publish.cpp).
  void published(const PublishOutcome& o) override;
  void authorized(const ConnectAnswer& a) override;
  void on_timer() override;

 private:
  size_t on_handshake(char* data, size_t len);
  void open();
  size_t on_frames(char* data, size_t len);
  void on_frame(const FrameHeader& h, char* payload);
  void on_close_frame(const char* payload, size_t len);
  void on_message(std::string_view text);
  bool may_publish();
  bool submit(std::string_view data, flowrelay_lane lane, std::string_view id);
  bool submit_reply(const ClientReplyStep& step, std::string_view data, std::string_view id);
  void refuse(uint32_t code, std::string_view reason, std::string_view id, uint32_t answers,
              std::string_view extra = {});
  void send_ack(std::string_view id, uint64_t offset, std::string_view epoch, bool relayed,
                bool duplicate = false);
  void join(std::string_view conversation);
  bool take_token();
  void touch();

  void send(SharedFrame* f);  // takes the reference
  bool merge_into_tail(SharedFrame* f);
  void send_error(int code, std::string_view reason, std::string_view id = {});
  void send_close(uint16_t code, std::string_view reason);
  void send_http(std::string_view response);
  void begin_closing(SharedFrame* goodbye);
  void drop_slow(uint64_t queued);

  bool _can_publish = true;            // granted by the token (always, without auth)
  bool _ping_sent = false;             // idle: we pinged and wait for any frame
  bool _slow = false;                  // dropped as a slow consumer: takes no more frames
  uint8_t _frag_opcode = 0;            // opcode of the fragmented message being received, 0 if none
  Utf8Validator _utf8;                 // over `_message`
  PublishBucket _bucket;               // publish_rate
  std::string* _in = nullptr;          // unparsed input carried over between reads
  std::string* _message = nullptr;     // payload of a fragmented message so far
  SharedFrame* _accept_101 = nullptr;  // the 101, held back while Joining
  // A resume (?since=N): from the handshake until the seam closes. Holds live frames during the
  // history read, then drops those that repeat the replay.
  ResumeSeam _seam;
  uint64_t _resume_since = 0;
  // The publish ids of envelope mode: made on the first publish that carries one.
  std::unique_ptr<AckWindow> _acks;
};

inline bool Session::deliver(SharedFrame* f) {
  if (_seam.intercept(f, _config.limits.max_outbound_bytes)) [[unlikely]]
    return false;
  send(f);
  return true;
}

}  // namespace flowrelay::ws
