#include "support/ports.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>

namespace flowrelay::test {

namespace {

sockaddr_in loopback(uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  return addr;
}

// Binds 127.0.0.1:<port> (0 = any) and returns the bound port, or 0 if the bind failed.
uint16_t try_bind(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr = loopback(port);
  socklen_t len = sizeof addr;
  uint16_t bound = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    bound = ntohs(addr.sin_port);
  }
  ::close(fd);
  return bound;
}

// The first port of the ephemeral range (outgoing connections take theirs from it).
unsigned ephemeral_low() {
  unsigned low = 32768;
  std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
  range >> low;
  return low;
}

std::mt19937& rng() {
  static thread_local std::mt19937 r{std::random_device{}()};
  return r;
}

}  // namespace

uint16_t free_port() {
  // A port the kernel handed out for bind(0) can be taken again by any outgoing connect()
  // (thousands of them when scale tests run in parallel) before the daemon binds it.
  const unsigned low = ephemeral_low();
  if (low > 11000) {
    std::uniform_int_distribution<unsigned> pick(10000, low - 1);
    for (int attempt = 0; attempt < 100; ++attempt) {
      const auto port = static_cast<uint16_t>(pick(rng()));
      if (try_bind(port) == port) return port;
    }
  }
  const uint16_t any = try_bind(0);
  if (any == 0) throw std::runtime_error("cannot find a free TCP port");
  return any;
}

uint16_t free_port_pair(uint16_t offset) {
  const unsigned low = ephemeral_low();
  auto pair_free = [&](unsigned port) {
    return port + offset <= 65535 && try_bind(static_cast<uint16_t>(port)) == port &&
           try_bind(static_cast<uint16_t>(port + offset)) == port + offset;
  };
  if (low > 11000u + offset) {
    std::uniform_int_distribution<unsigned> pick(10000, low - 1 - offset);
    for (int attempt = 0; attempt < 100; ++attempt) {
      const unsigned port = pick(rng());
      if (pair_free(port)) return static_cast<uint16_t>(port);
    }
  }
  for (int attempt = 0; attempt < 100; ++attempt) {
    const unsigned port = free_port();
    if (pair_free(port)) return static_cast<uint16_t>(port);
  }
  throw std::runtime_error("cannot find a free TCP port p with p + " + std::to_string(offset) +
                           " free too");
}

int connect_local(uint16_t port, Clock::time_point deadline) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  const sockaddr_in addr = loopback(port);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) return fd;
  int err = errno;
  if (err == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    err = ::poll(&p, 1, remaining_ms(deadline)) == 1 ? 0 : ETIMEDOUT;
    socklen_t len = sizeof err;
    if (err == 0) ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  }
  if (err != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

rlim_t raise_nofile_limit() {
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
    ::getrlimit(RLIMIT_NOFILE, &rl);
  }
  return rl.rlim_cur;
}

}  // namespace flowrelay::test
