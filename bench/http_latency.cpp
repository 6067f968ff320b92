// flowrelay-http-bench: GET /health latency (p50/p99/max) of the daemon's HTTP listener with no
// other connections, then with N idle connections held open (connected, nothing sent) and
// optionally N slow ones (half a request head sent). Answers "N idle or slow connections delay
// /health by X ms". The daemon must run already (its header_timeout_ms longer than the run).
//   flowrelay-http-bench --port 9090 --idle 10000 --requests 2000 [--slow] [--fresh]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

int connect_to(uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// One GET /health on `fd`; false if no complete 200 came back.
bool health(int fd) {
  static const char req[] = "GET /health HTTP/1.1\r\nHost: bench\r\n\r\n";
  if (send(fd, req, sizeof req - 1, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof req - 1))
    return false;
  std::string buf;
  char chunk[4096];
  for (;;) {
    const ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buf.append(chunk, static_cast<size_t>(n));
    const size_t end = buf.find("\r\n\r\n");
    if (end == std::string::npos) continue;
    const size_t cl = buf.find("Content-Length: ");
    if (cl == std::string::npos || cl > end) return false;
    if (buf.size() >= end + 4 + std::strtoul(buf.c_str() + cl + 16, nullptr, 10))
      return buf.compare(0, 12, "HTTP/1.1 200") == 0;
  }
}

struct Figures {
  double p50 = 0, p99 = 0, max = 0;
  size_t failed = 0;
};

Figures measure(uint16_t port, int requests, bool fresh) {
  std::vector<double> ms;
  Figures f;
  int fd = fresh ? -1 : connect_to(port);
  for (int i = 0; i < requests; ++i) {
    const auto start = Clock::now();
    if (fresh) fd = connect_to(port);
    const bool ok = fd >= 0 && health(fd);
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    if (!ok) {
      ++f.failed;
      if (fd >= 0) close(fd);
      fd = fresh ? -1 : connect_to(port);
    } else if (fresh) {
      close(fd);
    }
  }
  if (fd >= 0) close(fd);
  std::sort(ms.begin(), ms.end());
  f.p50 = ms[ms.size() / 2];
  f.p99 = ms[std::min(ms.size() - 1, ms.size() * 99 / 100)];
  f.max = ms.back();
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  uint16_t port = 9090;
  int idle = 10000, requests = 2000;
  bool slow = false, fresh = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--port" && i + 1 < argc)
      port = static_cast<uint16_t>(std::atoi(argv[++i]));
    else if (a == "--idle" && i + 1 < argc)
      idle = std::atoi(argv[++i]);
    else if (a == "--requests" && i + 1 < argc)
      requests = std::max(1, std::atoi(argv[++i]));
    else if (a == "--slow")
      slow = true;  // the held connections send half a head
    else if (a == "--fresh")
      fresh = true;  // a new connection per request (else keep-alive)
    else {
      std::fprintf(stderr, "usage: %s [--port P] [--idle N] [--requests R] [--slow] [--fresh]\n",
                   argv[0]);
      return 2;
    }
  }
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);

  const Figures base = measure(port, requests, fresh);
  std::vector<int> held;
  for (int i = 0; i < idle; ++i) {
    const int fd = connect_to(port);
    if (fd < 0) break;
    if (slow) send(fd, "POST /api/publish HTTP/1.1\r\nHost: x\r\n", 37, MSG_NOSIGNAL);
    held.push_back(fd);
  }
  usleep(500 * 1000);  // let the daemon accept them all
  const Figures loaded = measure(port, requests, fresh);
  std::printf(
      "{\"requests\":%d,\"fresh\":%s,\"held\":%zu,\"slow\":%s,"
      "\"p50_ms_0\":%.3f,\"p99_ms_0\":%.3f,\"max_ms_0\":%.3f,\"failed_0\":%zu,"
      "\"p50_ms_held\":%.3f,\"p99_ms_held\":%.3f,\"max_ms_held\":%.3f,\"failed_held\":%zu}\n",
      requests, fresh ? "true" : "false", held.size(), slow ? "true" : "false", base.p50, base.p99,
      base.max, base.failed, loaded.p50, loaded.p99, loaded.max, loaded.failed);
  for (int fd : held) close(fd);
  return base.failed || loaded.failed ? 1 : 0;
}
