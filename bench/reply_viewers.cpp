#include "reply_viewers.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>

#include "frame_codec.h"

namespace flowrelay::bench {

namespace {

constexpr size_t kReadSize = 64 * 1024;
enum Phase : int { kRun = 0, kStop = 1 };

std::string_view field_str(std::string_view p, std::string_view key) {
  const size_t at = p.find(key);
  if (at == std::string_view::npos) return {};
  const size_t from = at + key.size();
  const size_t end = p.find('"', from);  // our data and ids hold no escaped quotes
  return end == std::string_view::npos ? std::string_view{} : p.substr(from, end - from);
}

uint64_t field_num(std::string_view p, std::string_view key, uint64_t absent = 0) {
  const size_t at = p.find(key);
  if (at == std::string_view::npos) return absent;
  uint64_t v = 0;
  for (size_t i = at + key.size(); i < p.size() && p[i] >= '0' && p[i] <= '9'; ++i)
    v = v * 10 + static_cast<uint64_t>(p[i] - '0');
  return v;
}

}  // namespace

struct ViewerPool::Conn {
  int fd = -1;
  enum State { Idle, Connecting, Handshake, Open, Done } state = Idle;
  std::string in;
  std::string reply;
  uint64_t seq = 0, received = 0;
  bool ended = true;
  std::vector<FrameRecord> records;
};

struct ViewerPool::Loop {
  const std::vector<Endpoint>* endpoints = nullptr;
  const std::vector<ViewerSpec>* specs = nullptr;
  std::vector<uint32_t> mine;  // viewer indexes of this loop
  std::vector<Conn> conns;     // by position in `mine`
  int ep = -1;
  bool record = false;
  uint32_t max_connecting = 250;
  uint32_t connecting = 0, next_start = 0;
  ViewerTotals totals;
  std::atomic<int> phase{kRun};
  std::atomic<uint32_t> settled{0};
  std::atomic<uint64_t> deltas{0}, ends{0}, resumed{0};
  std::atomic<int64_t> win_from{INT64_MAX}, win_to{INT64_MAX};
  std::vector<uint8_t> buf = std::vector<uint8_t>(kReadSize);

  void error(Conn& c, const std::string& why) {
    if (totals.first_error.empty()) totals.first_error = why;
    if (c.state == Conn::Open)
      ++totals.closed_early;
    else
      ++totals.failed;
    if (c.state == Conn::Connecting || c.state == Conn::Handshake) {
      --connecting;
      settled.fetch_add(1, std::memory_order_relaxed);
    }
    if (c.fd >= 0) ::close(c.fd);
    c.fd = -1;
    c.state = Conn::Done;
  }

  void start(uint32_t k) {
    Conn& c = conns[k];
    const Endpoint& e = (*endpoints)[(*specs)[mine[k]].endpoint];
    c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    c.state = Conn::Connecting;
    ++connecting;
    if (c.fd < 0) return error(c, std::string("socket: ") + std::strerror(errno));
    const linger lg{1, 0};  // the end resets: no TIME_WAIT piles up between runs
    setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    if (::connect(c.fd, reinterpret_cast<const sockaddr*>(&e.addr), sizeof e.addr) != 0 &&
        errno != EINPROGRESS)
      return error(c, std::string("connect: ") + std::strerror(errno));
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.u32 = k;
    epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
  }

  void on_writable(uint32_t k) {
    Conn& c = conns[k];
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return error(c, std::string("connect: ") + std::strerror(err));
    const std::string req =
        "GET " + (*specs)[mine[k]].path +
        " HTTP/1.1\r\nHost: " + (*endpoints)[(*specs)[mine[k]].endpoint].host_port +
        "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: flowrelay.v1\r\n\r\n";
    if (::send(c.fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size()))
      return error(c, "handshake request not sent");
    c.state = Conn::Handshake;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = k;
    epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
  }

  void on_readable(uint32_t k, int64_t now) {
    Conn& c = conns[k];
    for (;;) {
      const ssize_t n = ::recv(c.fd, buf.data(), buf.size(), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      if (n <= 0) return error(c, "the server closed a viewer");
      c.in.append(reinterpret_cast<const char*>(buf.data()), static_cast<size_t>(n));
      if (c.state == Conn::Handshake) {
        const size_t end = c.in.find("\r\n\r\n");
        if (end == std::string::npos) continue;
        if (c.in.compare(0, 12, "HTTP/1.1 101") != 0)
          return error(c, "handshake refused: " + c.in.substr(0, c.in.find('\r')));
        c.in.erase(0, end + 4);
        c.state = Conn::Open;
        ++totals.open;
        --connecting;
        settled.fetch_add(1, std::memory_order_relaxed);
      }
      parse(c, now);
      if (c.state != Conn::Open) return;
      if (static_cast<size_t>(n) < buf.size()) return;
    }
  }

  void parse(Conn& c, int64_t now) {
    size_t off = 0;
    while (c.state == Conn::Open) {
      ws::FrameHeader h;
      const auto* p = reinterpret_cast<const uint8_t*>(c.in.data()) + off;
      const size_t avail = c.in.size() - off;
      if (ws::parse_header(p, avail, h) != ws::ParseResult::Ok) break;
      if (avail < h.header_len + h.payload_len) break;
      const std::string_view payload(reinterpret_cast<const char*>(p) + h.header_len,
                                     static_cast<size_t>(h.payload_len));
      if (h.opcode == 0x1 && h.fin) {
        on_text(c, payload, h.header_len + payload.size(), now);
      } else if (h.opcode == 0x9 && payload.size() <= 125) {
        std::string pong = {char(0x8A), char(0x80 | payload.size()), 0, 0, 0, 0};
        pong.append(payload);  // masked with a zero key: the payload stays as it is
        ::send(c.fd, pong.data(), pong.size(), MSG_NOSIGNAL);
      } else if (h.opcode == 0x8) {
        if (phase.load(std::memory_order_relaxed) != kStop) {
          error(c, "the server closed a viewer (close frame)");
          return;
        }
      } else {
        ++totals.foreign;
      }
      off += h.header_len + payload.size();
    }
    c.in.erase(0, off);
  }

  void on_text(Conn& c, std::string_view p, size_t wire, int64_t now) {
    ++totals.frames;
    const std::string_view type = field_str(p, "\"type\":\"");
    if (record) {
      c.records.push_back({std::string(type), field_num(p, "\"seq\":"), field_num(p, "\"offset\":"),
                           wire, field_str(p, "\"data\":\"").size(),
                           std::string(field_str(p, "\"epoch\":\"")), now});
    }
    if (type == "delta" || type == "open") {
      const std::string_view reply = field_str(p, "\"reply\":\"");
      if (reply != c.reply) {
        if (!c.ended) {
          ++totals.bad_ends;
          if (totals.first_error.empty()) totals.first_error = "a reply began without an end";
        }
        c.reply.assign(reply);
        c.seq = 0;
        c.ended = false;
      }
      if (type == "open") return;
      const uint64_t seq = field_num(p, "\"seq\":");
      const uint64_t from = field_num(p, "\"from\":", seq);
      if (from != seq) ++totals.merged_frames;
      if (seq <= c.seq) {
        totals.duplicates += seq - from + 1;
        return;
      }
      if (from > c.seq + 1) totals.gaps += from - c.seq - 1;
      const uint64_t units = seq - std::max(from, c.seq + 1) + 1;
      totals.duplicates += seq - from + 1 - units;
      c.seq = seq;
      c.received += units;
      totals.deltas += units;
      deltas.fetch_add(units, std::memory_order_relaxed);
      const int64_t lo = win_from.load(std::memory_order_relaxed);
      const int64_t hi = win_to.load(std::memory_order_relaxed);
      std::string_view data = field_str(p, "\"data\":\"");
      for (size_t semi; (semi = data.find(';')) != std::string_view::npos;
           data.remove_prefix(semi + 1)) {
        const int64_t sent = static_cast<int64_t>(field_num(data.substr(0, semi), ""));
        if (sent >= lo && sent < hi) {
          ++totals.in_window;
          totals.latency.record_ns(now - sent);
        }
      }
    } else if (type == "end") {
      const uint64_t tokens = field_num(p, "\"tokens\":", UINT64_MAX);
      if (field_str(p, "\"reply\":\"") != c.reply || c.ended || tokens != c.seq) {
        ++totals.bad_ends;
        if (totals.first_error.empty())
          totals.first_error = "end does not match: " + std::string(p);
      }
      c.ended = true;
      ++totals.ends;
      ends.fetch_add(1, std::memory_order_relaxed);
    } else if (type == "resumed") {
      resumed.fetch_add(1, std::memory_order_relaxed);
    } else if (type != "snapshot" && type != "reply") {
      ++totals.foreign;
    }
  }

  void run() {
    epoll_event events[256];
    while (phase.load(std::memory_order_relaxed) != kStop) {
      while (next_start < conns.size() && connecting < max_connecting) start(next_start++);
      const int n = epoll_wait(ep, events, 256, 5);
      const int64_t now = mono_ns();
      for (int i = 0; i < n; ++i) {
        const uint32_t k = events[i].data.u32;
        Conn& c = conns[k];
        if (c.state == Conn::Done) continue;
        if (c.state == Conn::Connecting) {
          if (events[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_writable(k);
        } else {
          on_readable(k, now);
        }
      }
    }
    for (Conn& c : conns)
      if (c.fd >= 0) ::close(c.fd);
  }
};

ViewerPool::ViewerPool(std::vector<Endpoint> endpoints, std::vector<ViewerSpec> viewers,
                       uint32_t threads, bool record)
    : _endpoints(std::move(endpoints)), _specs(std::move(viewers)) {
  if (threads == 0) threads = 1;
  for (uint32_t t = 0; t < threads; ++t) {
    auto loop = std::make_unique<Loop>();
    loop->endpoints = &_endpoints;
    loop->specs = &_specs;
    loop->record = record;
    loop->ep = epoll_create1(EPOLL_CLOEXEC);
    for (uint32_t v = t; v < _specs.size(); v += threads) loop->mine.push_back(v);
    loop->conns.resize(loop->mine.size());
    _loops.push_back(std::move(loop));
  }
}

ViewerPool::~ViewerPool() { stop(); }

void ViewerPool::connect(double timeout_s, uint32_t batch) {
  for (auto& l : _loops) l->max_connecting = std::max<uint32_t>(1, batch / _loops.size());
  for (auto& l : _loops) _threads.emplace_back([loop = l.get()] { loop->run(); });
  const int64_t deadline = mono_ns() + static_cast<int64_t>(timeout_s * 1e9);
  for (;;) {
    uint64_t settled = 0;
    for (auto& l : _loops) settled += l->settled.load();
    if (settled >= _specs.size() || mono_ns() > deadline) return;
    usleep(10000);
  }
}

void ViewerPool::set_window(int64_t from_ns, int64_t to_ns) {
  for (auto& l : _loops) {
    l->win_from = from_ns;
    l->win_to = to_ns;
  }
}

uint64_t ViewerPool::deltas() const {
  uint64_t n = 0;
  for (auto& l : _loops) n += l->deltas.load(std::memory_order_relaxed);
  return n;
}
uint64_t ViewerPool::ends() const {
  uint64_t n = 0;
  for (auto& l : _loops) n += l->ends.load(std::memory_order_relaxed);
  return n;
}
uint64_t ViewerPool::resumed() const {
  uint64_t n = 0;
  for (auto& l : _loops) n += l->resumed.load(std::memory_order_relaxed);
  return n;
}

std::vector<uint64_t> ViewerPool::received_per_viewer() const {
  std::vector<uint64_t> out(_specs.size());
  for (auto& l : _loops)
    for (size_t k = 0; k < l->mine.size(); ++k) out[l->mine[k]] = l->conns[k].received;
  return out;
}

void ViewerPool::stop() {
  if (_stopped) return;
  _stopped = true;
  for (auto& l : _loops) l->phase = kStop;
  for (auto& t : _threads)
    if (t.joinable()) t.join();
  for (auto& l : _loops) ::close(l->ep);
}

ViewerTotals ViewerPool::totals() const {
  ViewerTotals t;
  for (auto& l : _loops) {
    const ViewerTotals& o = l->totals;
    t.open += o.open, t.failed += o.failed, t.closed_early += o.closed_early;
    t.frames += o.frames, t.deltas += o.deltas, t.merged_frames += o.merged_frames;
    t.ends += o.ends, t.bad_ends += o.bad_ends, t.duplicates += o.duplicates;
    t.gaps += o.gaps, t.foreign += o.foreign, t.in_window += o.in_window;
    t.latency.merge(o.latency);
    if (t.first_error.empty()) t.first_error = o.first_error;
  }
  return t;
}

const std::vector<FrameRecord>& ViewerPool::records(size_t viewer) const {
  const auto& l = _loops[viewer % _loops.size()];
  return l->conns[viewer / _loops.size()].records;
}

}  // namespace flowrelay::bench
