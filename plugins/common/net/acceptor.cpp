#include "acceptor.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace flowrelay::net {

Acceptor::Acceptor(int listen_fd)
    : _listen_fd(listen_fd), _spare_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC)) {}

Acceptor::~Acceptor() {
  if (_spare_fd >= 0) ::close(_spare_fd);
}

int Acceptor::accept(sockaddr_storage& peer, bool& out_of_fds) {
  out_of_fds = false;
  socklen_t peer_len = sizeof peer;
  for (;;) {
    const int fd = accept4(_listen_fd, reinterpret_cast<sockaddr*>(&peer), &peer_len,
                           SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      const int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      return fd;
    }
    if (errno == EINTR) continue;
    if (errno == EMFILE || errno == ENFILE) {
      out_of_fds = true;
      if (_spare_fd >= 0) {
        ::close(_spare_fd);
        const int victim = accept4(_listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (victim >= 0) ::close(victim);
        _spare_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      }
    }
    return -1;
  }
}

std::string peer_address(const sockaddr_storage& peer) {
  char text[INET6_ADDRSTRLEN] = "?";
  if (peer.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(peer);
    inet_ntop(AF_INET6, &a.sin6_addr, text, sizeof text);
    return std::string("[") + text + "]:" + std::to_string(ntohs(a.sin6_port));
  }
  if (peer.ss_family == AF_INET) {
    const auto& a = reinterpret_cast<const sockaddr_in&>(peer);
    inet_ntop(AF_INET, &a.sin_addr, text, sizeof text);
    return std::string(text) + ":" + std::to_string(ntohs(a.sin_port));
  }
  return text;
}

int listen_tcp(const std::string& host, uint16_t port, int backlog, std::string& err) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  const int rc = getaddrinfo(host.empty() || host == "*" ? nullptr : host.c_str(), service.c_str(),
                             &hints, &res);
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
    ::close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  return fd;
}

int open_loop_epoll(int wake_fd, void* wake_tag, int listen_fd, void* listen_tag) {
  const int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) throw std::runtime_error(std::string("epoll: ") + std::strerror(errno));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = wake_tag;
  epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_fd, &ev);
  ev.events = EPOLLIN | EPOLLEXCLUSIVE;
  ev.data.ptr = listen_tag;
  if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listen_fd, &ev) != 0) {
    const std::string why = std::strerror(errno);
    ::close(epoll_fd);
    throw std::runtime_error("epoll_ctl(listen): " + why);
  }
  return epoll_fd;
}

}  // namespace flowrelay::net
