#include "sse_server.h"

#include "envelope.h"
#include "envelope_reply.h"
#include "sse_codec.h"
#include "sse_session.h"

namespace flowrelay::sse {

namespace {

Connection* make_session(SessionHost& host, const SessionConfig& config, uint64_t id) {
  return new SseSession(host, config, id);
}

constexpr TransportIdentity kIdentity{"transport-sse",  "sse",         "http",
                                      "flowrelay_sse_", &make_session, &fan_out_to<SseSession>};

}  // namespace

SseServer::SseServer(sdk::TransportHost host, const flowrelay_option* options, size_t n)
    : StreamServer(host, parse_sse_options(options, n, host.config_dir()), kIdentity, options, n) {}

void SseServer::deliver(std::string_view channel, const flowrelay_message& m) {
  if (!running()) return;
  std::string repaired;
  const std::string_view data = client_data(m, repaired);
  const std::string_view epoch = sdk::view(m.epoch);
  const flowrelay_reply* reply = sdk::reply_of(m);
  const bool step = reply && reply->kind != FLOWRELAY_KIND_MESSAGE;
  const flowrelay_lane lane = step ? FLOWRELAY_LANE_MESSAGE : m.lane;
  SharedFrame* event = nullptr;
  if (_ctx.wants_plain())
    event = SharedFrame::make(channel, {}, live_event(lane, reply, m.offset, epoch, data));
  SharedFrame* line = nullptr;
  if (_ctx.wants_envelope())
    line = SharedFrame::make(channel, {},
                             (step ? envelope_reply(*reply, m.offset, epoch, data)
                                   : envelope_message(lane, m.offset, epoch, data)) +
                                 "\n");
  for (SharedFrame* f : {event, line})
    if (f) f->set_position(lane, m.offset);
  post_frames(event, line, m);
}

std::string SseServer::reconfigure(const flowrelay_option* options, size_t n) {
  apply_live(parse_sse_options(options, n, _ctx.host.config_dir()));
  return sse_option_table().restart_changes(_given, options, n);
}

}  // namespace flowrelay::sse
