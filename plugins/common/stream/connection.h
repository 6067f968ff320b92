// A connection as its event loop sees it: the protocol state machine's interface, which each
// transport implements (transport-ws' Session, transport-sse's), and the loop's bookkeeping
// (flush list, timer list, channel membership, connection caps). What a session asks of its
// loop is SessionHost. Kept small: an idle open connection is this struct and its session's
// few fields. The loop calls the protocol through virtual functions, except deliver() in a
// fan-out, which fan_out.h calls directly on the transport's own (final) session type.
#pragma once

#include <flowrelay/plugin.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "out_queue.h"
#include "session_limits.h"
#include "shared_frame.h"

namespace flowrelay::stream {

class AccessPolicy;
class AckWindow;
class Connection;
struct ClientReplyStep;
struct LoopChannel;
struct PublishLink;

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
  virtual flowrelay_status join(Connection& s, std::string_view conversation) = 0;
  // The session takes no more deliveries (it is closing): take it off its channel. May be done
  // later, e.g. after the fan-out that is iterating the channel.
  virtual void leave(Connection& s) = 0;
  // A client message that passed every check, with the client's publish id ("" if none).
  // FLOWRELAY_OK: Connection::published() follows with the outcome (on a later loop pass); an
  // error: it was not published and no answer follows.
  virtual flowrelay_status publish(Connection& s, flowrelay_lane lane, std::string_view data,
                                   std::string_view id) = 0;
  // The upgrade passed every local check: ask the backend's connect proxy. FLOWRELAY_OK:
  // Connection::authorized() follows; FLOWRELAY_EUNSUPPORTED: no connect proxy, go on; another
  // error: answer 503. The views are borrowed for the call only.
  virtual flowrelay_status authorize(Connection& s, std::string_view conversation,
                                     std::string_view cookie, std::string_view authorization) = 0;
  // A resuming session opened: read its channel's history after `since`; answer with replay().
  virtual void read_history(Connection& s, uint64_t since) = 0;
  // The outbound queue was empty and is not any more: write it out (by the end of the pass).
  virtual void wants_write(Connection& s) = 0;
  // (Re)arms the session's timer; on expiry the host calls on_timer().
  virtual void set_timer(Connection& s, SessionTimer timer) = 0;
  // Closed as a slow consumer with `queued` bytes waiting (for the log).
  virtual void slow_consumer(Connection& s, uint64_t queued) = 0;
  // The access policy for a handshake starting now (null: anyone may connect).
  virtual std::shared_ptr<const AccessPolicy> access_policy() = 0;
  // The session is open in its conversation (its 101 is queued): the backend may hear of it.
  virtual void opened(Connection& s) = 0;
  // A monotonic clock in milliseconds (the publish rate's token bucket).
  virtual int64_t now_ms() = 0;
  // A producer's reply step that passed every check (`data`: a delta's), as publish().
  // FLOWRELAY_OK: Connection::published() follows; an error: no answer follows. The default: the
  // host keeps no reply streams.
  virtual flowrelay_status publish_reply(Connection&, const ClientReplyStep&, std::string_view data,
                                         std::string_view id) {
    (void)data;
    (void)id;
    return FLOWRELAY_EUNSUPPORTED;
  }
  // publish_rate for a publisher that may reconnect at will (an HTTP POST): one bucket per
  // client address, shared by its connections. True if it may publish now.
  virtual bool take_address_token(Connection&) { return true; }
  // A publish into `conversation` by a session that is in no channel (transport-sse's POST),
  // as publish(), except that published() follows every outcome (a success without an id
  // too). The default: not supported.
  virtual flowrelay_status publish_to(Connection&, std::string_view conversation,
                                      flowrelay_lane lane, std::string_view data,
                                      std::string_view id) {
    (void)conversation;
    (void)lane;
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
  uint64_t session = 0;  // Connection::id()
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
  uint64_t session = 0;      // Connection::id()
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

class Connection {
 public:
  enum class State : uint8_t {
    Handshake,    // reading the HTTP request
    Authorizing,  // request accepted locally, waiting for the backend's connect proxy
    Joining,      // request accepted, waiting for the broker to confirm the channel
    Open,         // the stream flows
    Closing,      // our goodbye (close frame, close event, HTTP error) is queued: write it,
                  // then wait for the peer
    Closed,       // close the socket now, without a goodbye
  };

  Connection(SessionHost& host, const SessionConfig& config, uint64_t id)
      : _host(host), _config(config), _id(id) {}
  virtual ~Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  uint64_t id() const { return _id; }  // origin.session of what it publishes
  State state() const { return _state; }
  // Which of a delivery's two frames the session takes: false the plain one (raw WebSocket
  // text, SSE events), true the envelope JSON one (flowrelay.v1, NDJSON).
  bool envelope() const { return _envelope; }
  // Who the client is, for the backend: the token's claims or the connect proxy's user (a JSON
  // object), "" when anonymous.
  std::string_view user() const { return _user ? std::string_view(*_user) : std::string_view(); }
  OutQueue& out() { return _out; }  // the host writes from the head and consumes

  // A new connection: the handshake timer starts.
  virtual void start() = 0;
  // Refuses the connection with an HTTP error (before the stream opens): caps, broker refusal.
  virtual void reject(int status, std::string_view reason) = 0;
  // Bytes the client sent (the session may modify them in place).
  virtual void feed(char* data, size_t len) = 0;
  // Joining: the channel is live; the stream's head is queued. Then drain_held() runs what the
  // client sent meanwhile (separately, so that every session admitted together has joined
  // first).
  virtual void admit() = 0;
  virtual void drain_held() = 0;
  // Open: says goodbye with `code` (close_code.h) and leaves the channel.
  virtual void close(uint16_t code, std::string_view reason) = 0;
  // A frame of the channel (the kind envelope() picks); takes the reference. False if it was
  // held for a resume's replay or dropped as a repeat of it; true once offered to the queue.
  virtual bool deliver(SharedFrame* f) = 0;
  // The answer of the history read asked for by read_history().
  virtual void replay(const HistoryResult& h) = 0;
  // The outcome of a publish the host accepted (SessionHost::publish returned OK).
  virtual void published(const PublishOutcome& o) = 0;
  // The connect proxy's verdict (SessionHost::authorize returned OK).
  virtual void authorized(const ConnectAnswer& a) = 0;
  // The timer set by set_timer() expired.
  virtual void on_timer() = 0;

  // The loop's bookkeeping ([loop thread] only).
  int fd = -1;
  bool dead = false;          // fd closed; freed at the end of the loop pass
  bool dirty = false;         // on the loop's flush list
  bool read_pending = false;  // read budget exhausted; on the loop's read list
  bool write_shut = false;    // shutdown(SHUT_WR) done
  bool want_write = false;    // EPOLLOUT registered: the socket buffer was full
  bool capped = false;        // counted in ConnectionCaps: release() owed
  bool counted = false;       // subscribe() succeeded or is pending: unsubscribe() owed
  bool recovering = false;    // in the loop's map of sessions waiting for a history answer
  bool authorizing = false;   // in the loop's map of sessions waiting for the connect proxy
  bool joined_event = false;  // the backend was told it joined: a leave event is owed
  bool joined_count = false;  // in TransportContext's joined/envelope counts: a release is owed
  SessionTimer timer = SessionTimer::None;  // the timer list it is on
  uint32_t member_index = 0;                // position in channel->members or channel->waiting
  LoopChannel* channel = nullptr;
  int64_t deadline_ms = 0;
  uint16_t port = 0;             // peer port (remote_addr for the backend)
  std::array<uint8_t, 16> ip{};  // peer address (IPv4-mapped), for the per-IP cap
  PublishLink* link = nullptr;   // made on the first publish (publish_link.h)
  Connection* prev = nullptr;    // timer list links
  Connection* next = nullptr;

 protected:
  SessionHost& _host;
  const SessionConfig& _config;
  const uint64_t _id;
  State _state = State::Handshake;
  bool _envelope = false;
  OutQueue _out;
  std::unique_ptr<std::string> _user;  // see user(); null when anonymous
};

// Makes a transport's session for a new connection (TransportContext::make_connection).
using ConnectionFactory = Connection* (*)(SessionHost& host, const SessionConfig& config,
                                          uint64_t id);

}  // namespace flowrelay::stream
