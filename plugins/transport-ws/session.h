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

#include "frame_codec.h"
#include "out_queue.h"
#include "seam_replay.h"
#include "session_limits.h"
#include "shared_frame.h"

namespace flowrelay::ws {

class AccessPolicy;
class AckWindow;
class Session;
struct ClientReplyStep;

// The one timer a session has at a time; which one depends on its state.
enum class SessionTimer : uint8_t {
  None,
  Handshake,  // handshake_timeout_ms: the request, then the broker's confirmation
  Idle,       // idle_timeout_ms: no frame from the client
  Closing,    // close_timeout_ms: the peer's close or EOF after our goodbye
};

// What a session asks of whoever runs it. Called from inside the session's own calls; none of
// them may call back into that session.
class SessionHost {
 public:
  // The upgrade asked for `conversation`: count the session in its channel. FLOWRELAY_OK: the
  // channel is live (the session opens now); FLOWRELAY_PENDING: admit() or reject() follows;
  // an error: the session answers 503.
  virtual flowrelay_status join(Session& s, std::string_view conversation) = 0;
  // The session takes no more deliveries (it is closing): take it off its channel. May be done
  // later, e.g. after the fan-out that is iterating the channel.
  virtual void leave(Session& s) = 0;
  // A client message that passed every check, with the client's publish id ("" if none).
  // FLOWRELAY_OK: Session::published() follows with the outcome (on a later loop pass); an
  // error: it was not published and no answer follows.
  virtual flowrelay_status publish(Session& s, flowrelay_lane lane, std::string_view data,
                                   std::string_view id) = 0;
  // The upgrade passed every local check: ask the backend's connect proxy. FLOWRELAY_OK:
  // Session::authorized() follows; FLOWRELAY_EUNSUPPORTED: no connect proxy, go on; another
  // error: answer 503. The views are borrowed for the call only.
  virtual flowrelay_status authorize(Session& s, std::string_view conversation,
                                     std::string_view cookie, std::string_view authorization) = 0;
  // A resuming session opened: read its channel's history after `since`; answer with replay().
  virtual void read_history(Session& s, uint64_t since) = 0;
  // The outbound queue was empty and is not any more: write it out (by the end of the pass).
  virtual void wants_write(Session& s) = 0;
  // (Re)arms the session's timer; on expiry the host calls on_timer().
  virtual void set_timer(Session& s, SessionTimer timer) = 0;
  // Closed as a slow consumer with `queued` bytes waiting (for the log).
  virtual void slow_consumer(Session& s, uint64_t queued) = 0;
  // The access policy for a handshake starting now (null: anyone may connect).
  virtual std::shared_ptr<const AccessPolicy> access_policy() = 0;
  // The session is open in its conversation (its 101 is queued): the backend may hear of it.
  virtual void opened(Session& s) = 0;
  // A monotonic clock in milliseconds (the publish rate's token bucket).
  virtual int64_t now_ms() = 0;
  // A producer's reply step that passed every check (`data`: a delta's), as publish().
  // FLOWRELAY_OK: Session::published() follows; an error: no answer follows. The default: the
  // host keeps no reply streams.
  virtual flowrelay_status publish_reply(Session&, const ClientReplyStep&, std::string_view data,
                                         std::string_view id) {
    (void)data;
    (void)id;
    return FLOWRELAY_EUNSUPPORTED;
  }

 protected:
  ~SessionHost() = default;
};

// What the sessions of one loop share: the limits a reload may change, the path, the counters.
struct SessionConfig {
  const LiveLimits& limits;
  std::string path;  // e.g. "/ws/": the conversation id follows it
  LoopStats& stats;
};

// A history read's answer, copied for the session's thread (the broker's views die with its
// call).
struct HistoryResult {
  // A reply entry's info (flowrelay_reply); kind MESSAGE for a plain message.
  struct Reply {
    flowrelay_kind kind = FLOWRELAY_KIND_MESSAGE;
    std::string id, reason, error;
    uint64_t seq = 0;
    int64_t ttft_ms = -1, duration_ms = -1;
    uint64_t bytes = 0;
  };
  struct Entry {
    uint64_t offset;
    flowrelay_lane lane;
    std::string data;
    Reply reply{};
  };
  uint64_t session = 0;  // Session::id()
  flowrelay_status status = FLOWRELAY_OK;
  std::string epoch;
  uint64_t top = 0;
  std::vector<Entry> entries;  // ascending offsets
  bool trimmed_known = false;  // the broker said `trimmed` (ABI 2.2, sdk::history_trimmed)
  uint64_t trimmed = 0;
};

// The outcome of a client publish (publish_client() or publish()), copied for the session's
// thread. `id` is the client's publish id ("" if none).
struct PublishOutcome {
  std::string id;
  bool ok = false;      // published, or accepted without being relayed
  bool relayed = true;  // ok: published on the channel (offset and epoch as the broker gave)
  uint32_t code = 0;    // !ok: 4xx the backend refused it, 503 unavailable, 501 lane, 500
  uint64_t offset = 0;
  std::string epoch;
  std::string reason;  // !ok: valid UTF-8, for the client
  // Reply steps: ok, stored before (nothing stored again); !ok with 409: the seq the reply
  // expects next (0: it ended), how it ended ("" when it did not).
  bool duplicate = false;
  uint64_t expected_seq = 0;
  std::string ended;
};

// The connect proxy's verdict on a parked handshake, copied for the session's thread.
struct ConnectAnswer {
  uint64_t session = 0;      // Session::id()
  std::string conversation;  // what the handshake asked for (the session joins it on 200)
  uint32_t code = 503;       // 200 admit; 401/403 refuse with it; anything else: 503
  bool can_publish = false;
  std::string user;  // the backend's user (JSON object), "" if none
  std::string reason;
};

// echo == false: the id of the session that must not get `m` back (its own publish), else 0.
inline uint64_t echo_skip(const flowrelay_message& m, uint64_t node_id, bool echo) {
  return !echo && m.origin.node == node_id ? m.origin.session : 0;
}

class Session {
 public:
  enum class State : uint8_t {
    Handshake,    // reading the HTTP upgrade request
    Authorizing,  // request accepted locally, waiting for the backend's connect proxy
    Joining,      // request accepted, waiting for the broker to confirm the channel
    Open,         // WebSocket frames flow
    Closing,      // our close frame (or HTTP error) is queued: write it, then wait for the peer
    Closed,       // close the socket now, without a goodbye
  };

  Session(SessionHost& host, const SessionConfig& config, uint64_t id);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  uint64_t id() const { return _id; }  // origin.session of what it publishes
  State state() const { return _state; }
  bool envelope() const { return _envelope; }  // subprotocol flowrelay.v1: JSON frames
  // Who the client is, for the backend: the token's claims or the connect proxy's user (a JSON
  // object), "" when anonymous.
  std::string_view user() const { return _user ? std::string_view(*_user) : std::string_view(); }
  OutQueue& out() { return _out; }  // the host writes from the head and consumes

  // A new connection: the handshake timer starts.
  void start();
  // Refuses the connection with an HTTP error (before the 101): caps, broker refusal.
  void reject(int status, std::string_view reason);
  // Bytes the client sent; frames are unmasked in place.
  void feed(char* data, size_t len);
  // Joining: the channel is live; the 101 is queued. Then drain_held() runs what the client
  // sent meanwhile (separately, so that every session admitted together has joined first).
  void admit();
  void drain_held();
  // Open: sends a close frame with `code` and leaves the channel.
  void close(uint16_t code, std::string_view reason);
  // A frame of the channel; takes the reference. False if it was held for a resume's replay or
  // dropped as a repeat of it; true once offered to the queue (which may still shed a log-lane
  // frame or refuse a slow consumer's, as send() decides).
  bool deliver(SharedFrame* f);
  // The answer of the history read asked for by read_history().
  void replay(const HistoryResult& h);
  // The outcome of a publish the host accepted (SessionHost::publish returned OK): the ack or
  // error frame (envelope), the close (raw refusals), or nothing (session_publish.cpp).
  void published(const PublishOutcome& o);
  // The connect proxy's verdict (SessionHost::authorize returned OK).
  void authorized(const ConnectAnswer& a);
  // The timer set by set_timer() expired.
  void on_timer();

 private:
  struct FramePosition {
    SeamPosition operator()(SharedFrame* const& f) const { return {f->offset(), {}}; }
  };
  using Seam = SeamReplay<SharedFrame*, FramePosition>;

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
  void hold(SharedFrame* f);

  SessionHost& _host;
  const SessionConfig& _config;
  uint64_t _id;
  State _state = State::Handshake;
  bool _can_publish = true;  // granted by the token (always, without auth)
  bool _envelope = false;
  bool _ping_sent = false;      // idle: we pinged and wait for any frame
  bool _slow = false;           // dropped as a slow consumer: takes no more frames
  bool _held_overflow = false;  // more than max_outbound_bytes arrived during a resume's read
  uint8_t _frag_opcode = 0;     // opcode of the fragmented message being received, 0 if none
  Utf8Validator _utf8;          // over `_message`
  float _tokens = 0;            // publish token bucket
  uint32_t _tokens_at_ms = 0;   // last refill (wraps after 49 days: harmless)
  OutQueue _out;
  std::string* _in = nullptr;          // unparsed input carried over between reads
  std::string* _message = nullptr;     // payload of a fragmented message so far
  SharedFrame* _accept_101 = nullptr;  // the 101, held back while Joining
  // A resume (?since=N): from the handshake until the seam closes. Holds live frames during the
  // history read, then drops those that repeat the replay.
  std::unique_ptr<Seam> _seam;
  uint64_t _resume_since = 0;
  std::unique_ptr<std::string> _user;  // see user(); null when anonymous
  // The publish ids of envelope mode: made on the first publish that carries one.
  std::unique_ptr<AckWindow> _acks;
};

inline bool Session::deliver(SharedFrame* f) {
  if (_seam) [[unlikely]] {
    if (_seam->holding()) {
      hold(f);
      return false;
    }
    if (f->offset() != 0) {
      if (_seam->repeats({f->offset(), {}})) {
        f->unref();
        return false;
      }
      _seam.reset();  // a newer offset closed the seam for good
    }
  }
  send(f);
  return true;
}

}  // namespace flowrelay::ws
