#include "support/ws_client.h"

#include <Poco/Net/SocketAddress.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace flowrelay::test {

RawClient::RawClient(uint16_t port, int rcvbuf, const std::string& source_ip) {
  if (rcvbuf > 0 || !source_ip.empty()) {
    _sock = Poco::Net::StreamSocket(Poco::Net::SocketAddress::IPv4);
    if (rcvbuf > 0) _sock.setReceiveBufferSize(rcvbuf);
    if (!source_ip.empty()) _sock.impl()->bind(Poco::Net::SocketAddress(source_ip, 0));
  }
  _sock.connect(Poco::Net::SocketAddress("127.0.0.1", port), Poco::Timespan(5, 0));
  _sock.setNoDelay(true);
}

int RawClient::fd() const { return _sock.impl()->sockfd(); }

bool RawClient::fill(Clock::time_point deadline) {
  if (_closed) return false;
  pollfd p{fd(), POLLIN, 0};
  if (::poll(&p, 1, remaining_ms(deadline)) <= 0) return false;
  return pump();
}

bool RawClient::pump() {
  if (_closed) return false;
  char tmp[65536];
  for (;;) {
    const ssize_t n = ::recv(fd(), tmp, sizeof tmp, MSG_DONTWAIT);
    if (n > 0) {
      _buf.append(tmp, static_cast<size_t>(n));
      return true;
    }
    if (n == 0) {
      _closed = true;
      if (_close_on_eof) _sock.close();  // like a browser: the server's EOF ends the connection
      return false;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
    _closed = true;
    _reset = (errno == ECONNRESET);
    if (_close_on_eof) _sock.close();
    return false;
  }
}

ReadResult RawClient::read_frame(Frame& out, Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (auto f = pop_frame()) {
      out = std::move(*f);
      return ReadResult::Frame;
    }
    if (_closed) return _reset ? ReadResult::Reset : ReadResult::Eof;
    if (Clock::now() >= deadline) return ReadResult::Timeout;
    fill(deadline);
  }
}

std::optional<Frame> RawClient::read_until_close(Millis timeout, std::vector<Frame>* skipped) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    Frame f;
    if (read_frame(f, Millis(remaining_ms(deadline))) != ReadResult::Frame) return std::nullopt;
    if (f.opcode == kClose) return f;
    if (skipped) skipped->push_back(std::move(f));
  }
}

bool RawClient::wait_closed(Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!_closed) {
    _buf.clear();
    if (Clock::now() >= deadline) return false;
    fill(deadline);
  }
  return true;
}

bool RawClient::send_raw(std::string_view bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = ::send(fd(), bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        pollfd p{fd(), POLLOUT, 0};
        if (::poll(&p, 1, 10000) <= 0) return false;
        continue;
      }
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return true;
}

bool RawClient::send_text(std::string_view payload, bool fin) {
  FrameSpec s;
  s.opcode = kText;
  s.payload = std::string(payload);
  s.fin = fin;
  return send_frame(s);
}

bool RawClient::answer_ping(const Frame& ping) {
  FrameSpec pong;
  pong.opcode = kPong;
  pong.payload = ping.payload;
  return send_frame(pong);
}

HttpHead RawClient::read_head(Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (auto head = take_head(_buf)) return *head;
    if (_closed || Clock::now() >= deadline) return {};
    fill(deadline);
  }
}

HttpHead RawClient::request(std::string_view raw, Millis timeout) {
  send_raw(raw);
  return read_head(timeout);
}

HttpHead RawClient::handshake(const std::string& path, const std::string& extra_headers) {
  return request(handshake_request(path, make_ws_key(), extra_headers));
}

bool RawClient::upgrade(const std::string& path, const std::string& extra_headers) {
  const std::string key = make_ws_key();
  const HttpHead h = request(handshake_request(path, key, extra_headers));
  return h.status == 101 && h.header("Sec-WebSocket-Accept") == expected_accept(key);
}

void RawClient::reset_close() {
  _sock.setLinger(true, 0);
  _sock.close();
  _closed = true;
}

void RawClient::fin_close() {
  _sock.close();
  _closed = true;
}

bool pump_raw_clients(const std::vector<RawClient*>& clients,
                      const std::function<void(size_t)>& drain, const std::function<bool()>& done,
                      Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  std::vector<pollfd> fds(clients.size());
  for (;;) {
    for (size_t i = 0; i < clients.size(); ++i) drain(i);
    if (done()) return true;
    if (Clock::now() >= deadline) return false;
    for (size_t i = 0; i < clients.size(); ++i) {
      fds[i] = pollfd{clients[i]->closed() ? -1 : clients[i]->fd(), POLLIN, 0};
    }
    const int rc = ::poll(fds.data(), fds.size(), std::min(remaining_ms(deadline), 100));
    if (rc < 0 && errno != EINTR) return done();
    for (size_t i = 0; i < clients.size(); ++i) {
      if (fds[i].fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR))) clients[i]->pump();
    }
  }
}

bool pump_clients(const std::vector<RawClient*>& clients,
                  const std::function<void(size_t, Frame&&)>& on_frame,
                  const std::function<bool()>& done, Millis timeout) {
  return pump_raw_clients(
      clients,
      [&](size_t i) {
        while (auto f = clients[i]->pop_frame()) on_frame(i, std::move(*f));
      },
      done, timeout);
}

}  // namespace flowrelay::test
