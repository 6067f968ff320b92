// One transport-sse connection's protocol state, without a socket (as transport-ws' Session):
// the event loop (plugins/common/stream) feeds it what the client sent and does what it asks
// through SessionHost. A connection is either one stream (GET: the 200 head, then events until
// either side closes) or a series of requests (POST publishes, OPTIONS preflights), kept alive
// between them. It decides the answers, the resume seam, heartbeats, the slow-consumer and
// log-shedding policy, the publish rate and size limits. docs/PROTOCOL.md "SSE and NDJSON".
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "connection.h"
#include "resume_seam.h"
#include "sse_codec.h"

namespace flowrelay::sse {

class SseSession final : public Connection {
 public:
  SseSession(SessionHost& host, const SessionConfig& config, uint64_t id);
  ~SseSession() override;

  void start() override;
  void reject(int status, std::string_view reason) override;
  void feed(char* data, size_t len) override;
  void admit() override;
  void drain_held() override;
  void close(uint16_t code, std::string_view reason) override;
  bool deliver(SharedFrame* f) override;
  void replay(const HistoryResult& h) override;
  void published(const PublishOutcome& o) override;
  void authorized(const ConnectAnswer& a) override;
  void on_timer() override;

 private:
  void on_input();                  // parse what `_in` holds: a request head, a body
  void on_request(SseRequest&& r);  // a parsed head: answer it, or wait for its body
  void on_body();                   // a POST's whole body is in `_in`
  void join();
  void open();
  void publish();                     // the admitted POST's message goes to the host
  void answer(std::string response);  // a request's answer; then the next one, or close
  void send(SharedFrame* f);          // takes the reference
  void send_bytes(std::string_view bytes);
  void send_http(std::string_view response);  // an HTTP error: then close
  void begin_closing();
  void drop_slow(uint64_t queued);
  bool take_token();

  std::string* _in = nullptr;            // received, not yet used
  std::unique_ptr<SseRequest> _request;  // the request being served
  std::string _body;                     // its body, once complete (POST): the message
  std::string _publish_id;               // a JSON body's "id" ("" if none)
  flowrelay_lane _lane = FLOWRELAY_LANE_MESSAGE;
  bool _can_publish = true;
  bool _publishing = false;  // a POST's publish is with the host
  bool _waited = false;      // ...and its timer expired once already
  bool _wrote = false;       // something was written since the last heartbeat timer
  bool _slow = false;        // dropped as a slow consumer: takes no more frames
  PublishBucket _bucket;     // publish_rate, per connection as in transport-ws
  ResumeSeam _seam;          // a resume: from the request until the seam closes
};

}  // namespace flowrelay::sse
