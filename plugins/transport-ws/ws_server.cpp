#include "ws_server.h"

#include "delta_merge.h"
#include "envelope.h"
#include "session.h"

namespace flowrelay::ws {

namespace {

Connection* make_session(SessionHost& host, const SessionConfig& config, uint64_t id) {
  return new Session(host, config, id);
}

constexpr TransportIdentity kIdentity{"transport-ws", "ws",          "ws",
                                      "flowrelay_",   &make_session, &fan_out_to<Session>};

}  // namespace

WsServer::WsServer(sdk::TransportHost host, const flowrelay_option* options, size_t n)
    : StreamServer(host, parse_ws_options(options, n, host.config_dir()), kIdentity, options, n) {}

void WsServer::deliver(std::string_view channel, const flowrelay_message& m) {
  if (!running()) return;
  std::string repaired;
  const std::string_view data = client_data(m, repaired);
  if (!_ctx.wants_plain() && !_ctx.wants_envelope()) return;  // nobody here reads it
  const bool envelopes = _ctx.wants_envelope();
  SharedFrame* raw = nullptr;  // raw clients get the message lane only
  SharedFrame* env = nullptr;
  flowrelay_lane lane = m.lane;
  const flowrelay_reply* reply = sdk::reply_of(m);
  if (reply && reply->kind != FLOWRELAY_KIND_MESSAGE) [[unlikely]] {
    // A reply's step (on the message lane): raw clients get a delta's text, nothing else.
    lane = FLOWRELAY_LANE_MESSAGE;
    const bool delta = reply->kind == FLOWRELAY_KIND_DELTA;
    if (delta) raw = ws_frame(channel, Opcode::Text, data);
    if (envelopes)
      env = delta ? delta_frame(channel, *reply, m.offset, sdk::view(m.epoch), data)
                  : ws_frame(channel, Opcode::Text,
                             envelope_reply(*reply, m.offset, sdk::view(m.epoch), data));
  } else {
    if (lane == FLOWRELAY_LANE_MESSAGE) raw = ws_frame(channel, Opcode::Text, data);
    if (envelopes)
      env = ws_frame(channel, Opcode::Text,
                     envelope_message(lane, m.offset, sdk::view(m.epoch), data));
  }
  for (SharedFrame* f : {raw, env})
    if (f) f->set_position(lane, m.offset);
  post_frames(raw, env, m);
}

std::string WsServer::reconfigure(const flowrelay_option* options, size_t n) {
  apply_live(parse_ws_options(options, n, _ctx.host.config_dir()));
  // Against the options as started: a restart-only change stays pending until a restart.
  return ws_option_table().restart_changes(_given, options, n);
}

}  // namespace flowrelay::ws
