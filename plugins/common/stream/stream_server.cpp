#include "stream_server.h"

#include <unistd.h>

#include <stdexcept>

#include "loop_metrics.h"
#include "net/acceptor.h"
#include "utf8_repair.h"

namespace flowrelay::stream {

StreamServer::StreamServer(sdk::TransportHost host, StreamOptions options,
                           const TransportIdentity& who, const flowrelay_option* given, size_t n)
    : _ctx(host, std::move(options), who), _given(sdk::capture(given, n)) {}

StreamServer::~StreamServer() {
  stop(0);
  _loops.clear();
}

void StreamServer::start() {
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
  _ctx.log(FLOWRELAY_LOG_INFO,
           "listening on " + std::string(_ctx.scheme) + "://" + _ctx.options.listen_host + ":" +
               std::to_string(_ctx.options.listen_port) + _ctx.options.path +
               "{conversation_id} with " + std::to_string(_loops.size()) + " I/O threads");
}

void StreamServer::stop(uint32_t timeout_ms) {
  if (!_running.exchange(false)) return;
  for (auto& loop : _loops) loop->post_stop(timeout_ms);
  for (auto& loop : _loops) loop->join_thread();
  // The loops stay allocated until the destructor: the broker may still call deliver() (and
  // post into them) until the daemon destroys it, which happens after this stop().
  if (_listen_fd >= 0) close(_listen_fd);
  _listen_fd = -1;
}

std::string_view StreamServer::client_data(const flowrelay_message& m, std::string& repaired) {
  std::string_view data(m.data.ptr, m.data.len);
  if (is_valid_utf8(data)) return data;
  // e.g. a backend's PUBLISH straight into Redis
  repaired = repair_utf8(data);
  _utf8_repaired.fetch_add(1, std::memory_order_relaxed);
  return repaired;
}

void StreamServer::post_frames(SharedFrame* plain, SharedFrame* envelope,
                               const flowrelay_message& m) {
  if (!plain && !envelope) return;
  for (SharedFrame* f : {plain, envelope})
    if (f && _loops.size() > 1) f->ref(static_cast<uint32_t>(_loops.size() - 1));
  const uint64_t skip = echo_skip(m, _ctx.host.node_id(), _ctx.host.echo());
  for (auto& loop : _loops) loop->post_deliver(plain, envelope, skip);
}

void StreamServer::subscribed(std::string_view channel, flowrelay_status status) {
  if (!running()) return;
  for (auto& loop : _loops) loop->post_subscribed(channel, status);
}

void StreamServer::metrics(sdk::PrometheusText& out) const {
  write_loop_metrics(out, _loops, _ctx.metric_prefix,
                     _utf8_repaired.load(std::memory_order_relaxed));
}

void StreamServer::apply_live(const StreamOptions& fresh) {
  // New keys or origins apply to the next request; connected clients keep their grant.
  try {
    auto policy = load_access_policy(fresh.access, _ctx.plugin);
    _ctx.limits.apply(fresh);
    _ctx.set_policy(std::move(policy));
  } catch (const sdk::OptionError& e) {
    throw sdk::OptionError(std::string(e.what()) + " (nothing applied)");
  }
}

}  // namespace flowrelay::stream
