// Session: what the client's messages become. The checks every publish passes (the token's
// publish right, the rate), envelope frames and their publish ids (acks, resends answered
// without publishing twice: ack_window.h), and the host's verdict told to the client as an ack,
// an error frame or a close (docs/PROTOCOL.md). A producer's reply steps (open, delta, end,
// cancel) pass the same checks and get the same answers, plus 409/413 (envelope_reply.h).
#include "ack_window.h"
#include "envelope.h"
#include "session.h"

namespace flowrelay::ws {

namespace {

const char* default_reason(uint32_t code, bool reply = false) {
  if (reply) {
    if (code == 501) return "the broker keeps no reply streams";
    if (code == 409) return "the step does not fit the reply";
    if (code == 413) return "the reply would exceed the conversation's history_max_bytes";
    if (code == 400) return "bad reply step";
  }
  if (code == 501) return "the broker does not support this lane";
  if (code == 503) return "broker unavailable, message not published";
  if (code >= 400 && code < 500) return "the backend refused this message";
  return "message not published";
}

}  // namespace

void Session::on_message(std::string_view text) {
  if (!_envelope) {
    if (may_publish()) submit(text, FLOWRELAY_LANE_MESSAGE, {});
    return;
  }
  ClientPublish p;
  std::string error;
  if (!parse_client_frame(text, p, error)) {
    _config.stats.envelope_errors.add();
    return send_error(400, error, p.id);
  }
  if (!may_publish()) return;
  if (p.id.empty()) {
    if (p.is_reply)
      submit_reply(p.reply, p.data, {});
    else
      submit(p.data, p.lane, {});
    return;
  }
  if (!_acks) _acks = std::make_unique<AckWindow>();
  AckWindow::Ack ack;
  if (_acks->remembered(p.id, ack)) {  // published already: the same ack again
    _config.stats.publish_resends.add();
    return send_ack(p.id, ack.offset, ack.epoch, ack.relayed, ack.duplicate);
  }
  if (_acks->owe_again(p.id)) {  // still in flight: answered when it completes
    _config.stats.publish_resends.add();
    return;
  }
  if (p.is_reply ? submit_reply(p.reply, p.data, p.id) : submit(p.data, p.lane, p.id))
    _acks->start(p.id);
}

// The token's publish right and the publish rate. A client past either is closed 1008, with or
// without an id: it breaks the rules it connected under (an error frame would invite retries).
bool Session::may_publish() {
  if (!_can_publish) {
    _config.stats.forbidden_publishes.add();
    send_close(close_code::PolicyViolation, "not allowed to publish here");
    return false;
  }
  if (!take_token()) {
    _config.stats.rate_limited.add();
    send_close(close_code::PolicyViolation, "publish rate exceeded");
    return false;
  }
  return true;
}

bool Session::submit(std::string_view data, flowrelay_lane lane, std::string_view id) {
  (lane == FLOWRELAY_LANE_LOG ? _config.stats.log_messages_in : _config.stats.messages_in).add();
  _config.stats.bytes_in.add(data.size());
  const flowrelay_status s = _host.publish(*this, lane, data, id);
  if (s == FLOWRELAY_OK) return true;
  const uint32_t code = s == FLOWRELAY_EUNSUPPORTED                        ? 501
                        : s == FLOWRELAY_EAGAIN || s == FLOWRELAY_EUNAVAIL ? 503
                                                                           : 500;
  refuse(code, default_reason(code), id, 1);
  return false;
}

bool Session::submit_reply(const ClientReplyStep& step, std::string_view data,
                           std::string_view id) {
  _config.stats.messages_in.add();  // counted (and rate-limited) as publishes
  _config.stats.bytes_in.add(data.size());
  const flowrelay_status s = _host.publish_reply(*this, step, data, id);
  if (s == FLOWRELAY_OK) return true;
  const uint32_t code = s == FLOWRELAY_EUNSUPPORTED                        ? 501
                        : s == FLOWRELAY_EAGAIN || s == FLOWRELAY_EUNAVAIL ? 503
                        : s == FLOWRELAY_EINVAL                            ? 400
                        : s == FLOWRELAY_ETOOBIG                           ? 413
                                                                           : 500;
  refuse(code, default_reason(code, true), id, 1);
  return false;
}

void Session::published(const PublishOutcome& o) {
  if (_state != State::Open) return;  // closing: its close frame says all that is left to say
  if (o.ok) {
    if (o.id.empty()) return;  // no ack asked for (and a raw client's private accept is silent)
    const AckWindow::Ack ack{o.relayed ? o.offset : 0, o.relayed ? o.epoch : std::string_view(),
                             o.relayed, o.duplicate};
    const uint32_t owed = _acks ? _acks->finish(o.id, &ack) : 1;
    for (uint32_t i = 0; i < owed; ++i)
      send_ack(o.id, ack.offset, ack.epoch, ack.relayed, ack.duplicate);
    return;
  }
  // Not published: forgotten, so that a resend of the id is a new attempt.
  const uint32_t owed = _acks && !o.id.empty() ? _acks->finish(o.id, nullptr) : 1;
  const uint32_t code = o.code ? o.code : 500;
  std::string reason = o.reason.empty() ? default_reason(code, code == 409) : o.reason;
  std::string extra;  // a 409 tells what the reply expects
  if (code == 409 && !o.ended.empty()) {
    if (o.reason.empty()) reason = "the reply has ended (" + o.ended + ")";
    extra = ",\"ended\":\"";
    append_json_string(extra, o.ended);
    extra += '"';
  } else if (code == 409) {
    if (o.reason.empty())
      reason = "out of order: the reply expects seq " + std::to_string(o.expected_seq);
    extra = ",\"expected_seq\":" + std::to_string(o.expected_seq);
  }
  refuse(code, reason, o.id, owed, extra);
}

// Tells the client its message was not published (never silent loss). Envelope: an error frame
// when it gave an id, or for what it can act on without reconnecting (4xx, 501); otherwise, as
// before acks existed, a close: 1008 the backend refused it, 1013 try again later, 1011.
void Session::refuse(uint32_t code, std::string_view reason, std::string_view id, uint32_t answers,
                     std::string_view extra) {
  const bool refused = code >= 400 && code < 500;
  if (!refused) _config.stats.publish_errors.add();
  (refused       ? _config.stats.refused_4xx
   : code == 501 ? _config.stats.refused_501
   : code == 503 ? _config.stats.refused_503
                 : _config.stats.refused_500)
      .add();
  if (_envelope && (!id.empty() || refused || code == 501)) {
    for (uint32_t i = 0; i < answers; ++i)
      send(ws_frame({}, Opcode::Text, envelope_error(static_cast<int>(code), reason, id, extra)));
    return;
  }
  send_close(refused       ? close_code::PolicyViolation
             : code == 503 ? close_code::TryAgainLater
                           : close_code::InternalError,
             reason);
}

void Session::send_ack(std::string_view id, uint64_t offset, std::string_view epoch, bool relayed,
                       bool duplicate) {
  _config.stats.acks_sent.add();
  send(ws_frame({}, Opcode::Text, envelope_ack(id, offset, epoch, relayed, duplicate)));
}

}  // namespace flowrelay::ws
