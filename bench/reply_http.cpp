#include "reply_http.h"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace flowrelay::bench {

namespace {

constexpr int kIoTimeoutMs = 10000;

int connect_to(const sockaddr_in& addr) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval tv{kIoTimeoutMs / 1000, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

bool send_all(int fd, const std::string& s) {
  for (size_t off = 0; off < s.size();) {
    const ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

bool read_more(int fd, std::string& in) {
  char buf[16384];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    in.append(buf, static_cast<size_t>(n));
    return true;
  }
}

}  // namespace

int64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

void die(const std::string& msg) {
  std::fprintf(stderr, "flowrelay-reply-bench: %s\n", msg.c_str());
  std::exit(2);
}

Endpoint parse_endpoint(const std::string& host_port) {
  const size_t colon = host_port.rfind(':');
  if (colon == std::string::npos) die(host_port + ": expected HOST:PORT");
  std::string host = host_port.substr(0, colon);
  if (host == "localhost") host = "127.0.0.1";
  Endpoint ep;
  ep.host_port = host_port;
  ep.addr.sin_family = AF_INET;
  const long port = std::strtol(host_port.c_str() + colon + 1, nullptr, 10);
  if (port <= 0 || port > 65535) die(host_port + ": bad port");
  ep.addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &ep.addr.sin_addr) != 1 ||
      (ntohl(ep.addr.sin_addr.s_addr) >> 24) != 127)
    die(host_port + ": only loopback IPv4 addresses (this tool measures servers on this machine)");
  return ep;
}

// ---------------------------------------------------------------------------------------------

HttpClient::HttpClient(Endpoint ep, std::string api_key) : _ep(std::move(ep)) {
  _head = "POST /api/publish HTTP/1.1\r\nHost: " + _ep.host_port +
          "\r\nContent-Type: application/json\r\nX-API-Key: " + api_key + "\r\nContent-Length: ";
}

HttpClient::~HttpClient() {
  if (_fd >= 0) ::close(_fd);
}

bool HttpClient::open() {
  if (_fd >= 0) return true;
  _fd = connect_to(_ep.addr);
  _in.clear();
  return _fd >= 0;
}

int HttpClient::publish(const std::string& body, std::string& answer) {
  const std::string request = _head + std::to_string(body.size()) + "\r\n\r\n" + body;
  // A keep-alive connection the server closed meanwhile fails on first use: retry once on a
  // new one (a publish the server never read is not a duplicate).
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!open()) return 0;
    const int status = exchange(request, answer);
    if (status != 0) return status;
    ::close(_fd);
    _fd = -1;
  }
  return 0;
}

int HttpClient::exchange(const std::string& request, std::string& answer) {
  if (!send_all(_fd, request)) return 0;
  size_t head_end;
  while ((head_end = _in.find("\r\n\r\n")) == std::string::npos)
    if (!read_more(_fd, _in)) return 0;
  if (_in.compare(0, 9, "HTTP/1.1 ") != 0 && _in.compare(0, 9, "HTTP/1.0 ") != 0) return 0;
  const int status = std::atoi(_in.c_str() + 9);
  size_t length = 0;
  // Header names are case-insensitive; flowrelayd writes Content-Length.
  for (const char* name : {"\r\nContent-Length:", "\r\ncontent-length:"}) {
    const size_t at = _in.find(name);
    if (at != std::string::npos && at < head_end) {
      length = std::strtoul(_in.c_str() + at + std::strlen(name), nullptr, 10);
      break;
    }
  }
  const bool closing = _in.find("\r\nConnection: close", 0) < head_end;
  while (_in.size() < head_end + 4 + length)
    if (!read_more(_fd, _in)) return 0;
  answer.assign(_in, head_end + 4, length);
  _in.erase(0, head_end + 4 + length);
  if (closing) {
    ::close(_fd);
    _fd = -1;
  }
  return status;
}

// ---------------------------------------------------------------------------------------------

double redis_cpu_s(uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int fd = connect_to(addr);
  if (fd < 0) return -1;
  std::string in;
  double sum = -1;
  if (send_all(fd, "INFO CPU\r\nQUIT\r\n")) {
    while (in.find("used_cpu_user:") == std::string::npos ||
           in.find("\r\n", in.find("used_cpu_user:")) == std::string::npos)
      if (!read_more(fd, in)) break;
    const size_t sys = in.find("used_cpu_sys:"), user = in.find("used_cpu_user:");
    if (sys != std::string::npos && user != std::string::npos)
      sum = std::strtod(in.c_str() + sys + 13, nullptr) +
            std::strtod(in.c_str() + user + 14, nullptr);
  }
  ::close(fd);
  return sum;
}

double process_cpu_ms(const std::vector<int>& pids) {
  const double tick_ms = 1000.0 / static_cast<double>(sysconf(_SC_CLK_TCK));
  double ms = 0;
  for (int pid : pids) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    const size_t rp = line.rfind(')');
    std::istringstream fields(rp == std::string::npos ? "" : line.substr(rp + 2));
    std::string f;
    unsigned long long utime = 0, stime = 0;
    for (int k = 0; fields >> f; ++k) {  // k = 0 is the state (field 3 of proc(5))
      if (k == 11) utime = std::strtoull(f.c_str(), nullptr, 10);
      if (k == 12) {
        stime = std::strtoull(f.c_str(), nullptr, 10);
        break;
      }
    }
    ms += static_cast<double>(utime + stime) * tick_ms;
  }
  return ms;
}

void append_delta(std::string& out, const std::string& conv, const std::string& reply, uint64_t seq,
                  const std::string& data) {
  out += "{\"conversation\":\"" + conv + "\",\"reply\":\"" + reply +
         "\",\"seq\":" + std::to_string(seq) + ",\"delta\":\"" + data + "\"}";
}

void append_end(std::string& out, const std::string& conv, const std::string& reply) {
  out += "{\"conversation\":\"" + conv + "\",\"reply\":\"" + reply + "\",\"end\":true}";
}

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace flowrelay::bench
