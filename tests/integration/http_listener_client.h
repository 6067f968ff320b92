// Raw HTTP/1.1 over plain sockets for the HTTP listener tests: what Poco's client cannot do
// (pipelining, half-sent heads, thousands of connections from one thread).
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <vector>

#include "support/itest.h"

namespace flowrelay::itest {

struct RawResponse {
  HttpHead head;
  std::string body;
};

// A connected, blocking TCP socket to 127.0.0.1:<port>; -1 on failure.
int http_connect(uint16_t port);

// One complete response taken from the front of `buf` (head + Content-Length body, none when
// `head_only`: the answer to a HEAD), or nullopt while incomplete.
std::optional<RawResponse> take_response(std::string& buf, bool head_only = false);

// Reads from `fd` until `buf` holds a complete response or `timeout` passes.
std::optional<RawResponse> read_response(int fd, std::string& buf, Millis timeout = 5s,
                                         bool head_only = false);

// True once the server closed the connection (EOF or reset) within `timeout`; data before it
// is appended to `buf`.
bool wait_eof(int fd, std::string& buf, Millis timeout);

bool send_all(int fd, std::string_view bytes);

// Closes every fd when it goes out of scope.
struct FdSet {
  std::vector<int> fds;
  ~FdSet() {
    for (int fd : fds) ::close(fd);
  }
};

}  // namespace flowrelay::itest
