#include "ws_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace flowrelay::ws {

namespace {

int bind_listener(const std::string& host, uint16_t port, int backlog, std::string& err) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  const int rc = getaddrinfo(host.empty() || host == "*" ? nullptr : host.c_str(),
                             service.c_str(), &hints, &res);
  if (rc != 0) {
    err = "cannot resolve listen address '" + host + "': " + gai_strerror(rc);
    return -1;
  }
  int fd = -1;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, backlog) == 0) break;
    err = "cannot listen on " + host + ":" + service + ": " + std::strerror(errno);
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  return fd;
}

}  // namespace

WsServer::~WsServer() {
  stop(0);
}

bool WsServer::start(std::string& err) {
  _listen_fd = bind_listener(_ctx.options.listen_host, _ctx.options.listen_port,
                             _ctx.options.backlog, err);
  if (_listen_fd < 0) return false;
  try {
    for (unsigned i = 0; i < _ctx.options.io_threads; ++i)
      _loops.push_back(std::make_unique<EventLoop>(_ctx, _listen_fd));
    for (auto& loop : _loops) loop->start();
  } catch (const std::exception& e) {
    err = std::string("cannot start I/O threads: ") + e.what();
    _loops.clear();
    close(_listen_fd);
    _listen_fd = -1;
    return false;
  }
  _running = true;
  _ctx.log(FLOWRELAY_LOG_INFO, "listening on ws://" + _ctx.options.listen_host + ":" +
                                   std::to_string(_ctx.options.listen_port) +
                                   _ctx.options.path + "{conversation_id} with " +
                                   std::to_string(_loops.size()) + " I/O threads");
  return true;
}

void WsServer::stop(uint32_t timeout_ms) {
  if (!_running.exchange(false)) return;
  for (auto& loop : _loops) loop->post_stop(timeout_ms);
  for (auto& loop : _loops) loop->join();
  _loops.clear();
  if (_listen_fd >= 0) close(_listen_fd);
  _listen_fd = -1;
}

void WsServer::deliver(std::string_view channel, std::string_view payload) {
  if (!_running.load(std::memory_order_relaxed)) return;
  SharedFrame* frame = SharedFrame::message(channel, Opcode::Text, payload);
  for (size_t i = 1; i < _loops.size(); ++i) frame->ref();
  for (auto& loop : _loops) loop->post_deliver(frame);
}

void WsServer::subscribed(std::string_view channel, flowrelay_status status) {
  if (!_running.load(std::memory_order_relaxed)) return;
  for (auto& loop : _loops) loop->post_subscribed(channel, status);
}

}  // namespace flowrelay::ws
