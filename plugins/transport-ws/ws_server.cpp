#include "ws_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "delta_merge.h"
#include "envelope.h"
#include "loop_metrics.h"
#include "net/acceptor.h"
#include "session.h"
#include "utf8_repair.h"

namespace flowrelay::ws {

namespace {

Connection* make_session(SessionHost& host, const SessionConfig& config, uint64_t id) {
  return new Session(host, config, id);
}

constexpr TransportIdentity kIdentity{"transport-ws", "ws", "flowrelay_", &make_session};

}  // namespace

WsServer::WsServer(sdk::TransportHost host, const flowrelay_option* options, size_t n)
    : _ctx(host, parse_ws_options(options, n, host.config_dir()), kIdentity),
      _given(sdk::capture(options, n)) {}

WsServer::~WsServer() {
  stop(0);
  _loops.clear();
}

void WsServer::start() {
  std::string err;
  _listen_fd = net::listen_tcp(_ctx.options.listen_host, _ctx.options.listen_port,
                               _ctx.options.backlog, err);
  if (_listen_fd < 0) throw std::runtime_error(err);
  try {
    for (unsigned i = 0; i < _ctx.options.io_threads; ++i)
      _loops.push_back(std::make_unique<EventLoop>(_ctx, _listen_fd, unsigned(_loops.size())));
    for (auto& loop : _loops) loop->start();
  } catch (const std::exception& e) {
    // The loops already running exit on their stop item; the others never started.
    for (auto& loop : _loops) loop->post_stop(0);
    _loops.clear();
    close(_listen_fd);
    _listen_fd = -1;
    throw std::runtime_error(std::string("cannot start I/O threads: ") + e.what());
  }
  _running = true;
  _ctx.log(FLOWRELAY_LOG_INFO, "listening on ws://" + _ctx.options.listen_host + ":" +
                                   std::to_string(_ctx.options.listen_port) + _ctx.options.path +
                                   "{conversation_id} with " + std::to_string(_loops.size()) +
                                   " I/O threads");
}

void WsServer::stop(uint32_t timeout_ms) {
  if (!_running.exchange(false)) return;
  for (auto& loop : _loops) loop->post_stop(timeout_ms);
  for (auto& loop : _loops) loop->join_thread();
  // The loops stay allocated until the destructor: the broker may still call deliver() (and
  // post into them) until the daemon destroys it, which happens after this stop().
  if (_listen_fd >= 0) close(_listen_fd);
  _listen_fd = -1;
}

void WsServer::deliver(std::string_view channel, const flowrelay_message& m) {
  if (!_running.load(std::memory_order_relaxed)) return;
  std::string_view data(m.data.ptr, m.data.len);
  std::string repaired;
  if (!is_valid_utf8(data)) {  // e.g. a backend's PUBLISH straight into Redis
    repaired = repair_utf8(data);
    data = repaired;
    _utf8_repaired.fetch_add(1, std::memory_order_relaxed);
  }
  const bool envelopes = _ctx.envelope_clients.load(std::memory_order_acquire) > 0;
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
  for (SharedFrame* f : {raw, env}) {
    if (!f) continue;
    f->set_position(lane, m.offset);
    if (_loops.size() > 1) f->ref(static_cast<uint32_t>(_loops.size() - 1));
  }
  if (!raw && !env) return;
  const uint64_t skip = echo_skip(m, _ctx.host.node_id(), _ctx.host.echo());
  for (auto& loop : _loops) loop->post_deliver(raw, env, skip);
}

void WsServer::subscribed(std::string_view channel, flowrelay_status status) {
  if (!_running.load(std::memory_order_relaxed)) return;
  for (auto& loop : _loops) loop->post_subscribed(channel, status);
}

void WsServer::metrics(sdk::PrometheusText& out) const {
  write_loop_metrics(out, _loops, _ctx.metric_prefix,
                     _utf8_repaired.load(std::memory_order_relaxed));
}

std::string WsServer::reconfigure(const flowrelay_option* options, size_t n) {
  const WsOptions fresh = parse_ws_options(options, n, _ctx.host.config_dir());
  // New keys or origins apply to the next handshake; connected clients keep their grant.
  try {
    auto policy = load_access_policy(fresh.access, _ctx.plugin);
    _ctx.limits.apply(fresh);
    _ctx.set_policy(std::move(policy));
  } catch (const sdk::OptionError& e) {
    throw sdk::OptionError(std::string(e.what()) + " (nothing applied)");
  }
  // Against the options as started: a restart-only change stays pending until a restart.
  return ws_option_table().restart_changes(_given, options, n);
}

}  // namespace flowrelay::ws
