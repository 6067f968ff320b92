// accept4() for a non-blocking listener, with the spare-descriptor trick: out of file
// descriptors (EMFILE), a pending connection would stay in the listen queue and wake the loop
// forever; one descriptor kept in reserve is released to accept it and close it at once, so
// the client is refused and the loop keeps serving the connections it has.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>

namespace flowrelay::net {

class Acceptor {
 public:
  explicit Acceptor(int listen_fd);
  ~Acceptor();
  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;

  // A new non-blocking, close-on-exec socket with TCP_NODELAY, or -1: nothing pending (EAGAIN,
  // another loop took it), an error for that one connection, or out of descriptors (then
  // `out_of_fds` is set and one pending connection was refused).
  int accept(sockaddr_storage& peer, bool& out_of_fds);

  int listen_fd() const { return _listen_fd; }

 private:
  int _listen_fd;
  int _spare_fd = -1;
};

// "ip:port" ("[ip]:port" for IPv6) of an accepted peer.
std::string peer_address(const sockaddr_storage& peer);

// A listening, non-blocking TCP socket on host:port (SO_REUSEADDR; host "" or "*": every
// address), or -1 with `err` naming the address and the reason.
int listen_tcp(const std::string& host, uint16_t port, int backlog, std::string& err);

// The epoll set of one event loop: its inbox's wake-up fd and the listening socket that every
// loop shares (EPOLLEXCLUSIVE wakes only one loop per connection), each with its tag as
// data.ptr. Throws std::runtime_error when epoll refuses.
int open_loop_epoll(int wake_fd, void* wake_tag, int listen_fd, void* listen_tag);

}  // namespace flowrelay::net
