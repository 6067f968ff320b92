#include "http_listener_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cerrno>
#include <chrono>

namespace flowrelay::itest {

int http_connect(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::optional<RawResponse> take_response(std::string& buf, bool head_only) {
  const size_t end = buf.find("\r\n\r\n");
  if (end == std::string::npos) return std::nullopt;
  std::string head_text = buf.substr(0, end + 4);
  std::optional<HttpHead> head = take_head(head_text);
  if (!head) return std::nullopt;
  size_t length = 0;
  if (auto cl = head->header("Content-Length"); cl && !head_only) length = std::stoul(*cl);
  if (buf.size() < end + 4 + length) return std::nullopt;
  RawResponse r{*head, buf.substr(end + 4, length)};
  buf.erase(0, end + 4 + length);
  return r;
}

std::optional<RawResponse> read_response(int fd, std::string& buf, Millis timeout, bool head_only) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (auto r = take_response(buf, head_only)) return r;
    pollfd p{fd, POLLIN, 0};
    const int left = static_cast<int>(
        std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now()).count());
    if (left <= 0 || ::poll(&p, 1, left) <= 0) return std::nullopt;
    char chunk[65536];
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return take_response(buf, head_only);
    buf.append(chunk, static_cast<size_t>(n));
  }
}

bool wait_eof(int fd, std::string& buf, Millis timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    const int left = static_cast<int>(
        std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now()).count());
    if (left <= 0 || ::poll(&p, 1, left) <= 0) return false;
    char chunk[65536];
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) return true;
    if (n > 0) buf.append(chunk, static_cast<size_t>(n));
  }
}

bool send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace flowrelay::itest
