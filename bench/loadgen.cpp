// flowrelay-bench: an event-driven WebSocket load generator for loopback measurements of relays
// that fan text messages out to the clients of ws://host:port/<path>/<conversation> (every
// client of a conversation receives what any of them sends, the sender too).
// --transport sse: the clients are Server-Sent Events streams (GET http://host:port/<path>/
// <conversation>, Accept: text/event-stream) and each room's publisher POSTs its messages as
// text/plain to the same URL over a keep-alive connection of its own (flowrelay's transport-sse,
// nchan's eventsource subscriber with an http publisher on the same location).
//
// T threads, each with its own epoll loop and a share of the connections (connection i belongs
// to thread i % T, room i % R; the first connection of each room is its publisher). Own RFC 6455
// client framing (masked frames, one random key per connection), hand-written HTTP upgrade.
// Payload: "<CLOCK_MONOTONIC ns at send>|<room>|<seq>|xxxx..." padded to --payload bytes.
// See bench/README.md for the options and the meaning of every figure.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "latency_histogram.h"

namespace flowrelay::bench {
namespace {

constexpr int64_t kNsPerSec = 1'000'000'000;
constexpr int64_t kNsPerMs = 1'000'000;
constexpr size_t kReadSize = 64 * 1024;                  // one batch read per readiness event
constexpr int64_t kHandshakeTimeoutNs = 10 * kNsPerSec;  // per connection
constexpr size_t kMaxResponseHeader = 16 * 1024;
constexpr size_t kMaxPendingOut = 16u << 20;  // a publisher's unsent bytes before it skips sends
constexpr int64_t kAckTimeoutNs = 2 * kNsPerSec;    // --ack all: a message still not everywhere
constexpr int64_t kCloseTimeoutNs = 2 * kNsPerSec;  // closing handshakes at the end
constexpr uint32_t kConnsPerSource = 10000;         // connections per source address
constexpr int64_t kIdleWakeNs = 5 * kNsPerMs;       // loops look at the phase this often
constexpr size_t kSseEventSlack = 512;  // --transport sse: id:/event: lines around our data

int64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * kNsPerSec + ts.tv_nsec;
}

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "flowrelay-bench: %s\n", msg.c_str());
  std::exit(2);
}

void sleep_until_ns(int64_t t) {
  for (int64_t now = mono_ns(); now < t; now = mono_ns()) {
    const int64_t d = std::min<int64_t>(t - now, 10 * kNsPerMs);
    timespec ts{static_cast<time_t>(d / kNsPerSec), static_cast<long>(d % kNsPerSec)};
    nanosleep(&ts, nullptr);
  }
}

// ------------------------------------------------------------------------------- options

const char* const kUsage =
    "usage: flowrelay-bench [options]\n"
    "  --url URL              ws://HOST:PORT/PATH (repeatable; loopback hosts only); clients\n"
    "                         connect to URL/room<N>, round robin over the URLs\n"
    "                         (default ws://127.0.0.1:8080/ws; with --transport sse\n"
    "                         http://HOST:PORT/PATH, default http://127.0.0.1:8090/sse)\n"
    "  --transport ws|sse     ws (default): WebSocket clients that also publish; sse: SSE\n"
    "                         streams (GET, Accept: text/event-stream), each room's publisher\n"
    "                         POSTs text/plain to URL/room<N> on a keep-alive connection of its\n"
    "                         own, one request in flight (paced --rate only)\n"
    "  --conns N              connections (default 1000)\n"
    "  --rooms R              conversations; connection i joins room i % R and the first\n"
    "                         connection of each room publishes (default 10)\n"
    "  --rate P               publishes per second in total, spread over the rooms (default 100);\n"
    "                         0 = saturation: each publisher keeps at most --window messages\n"
    "                         unacknowledged\n"
    "  --window W             unacknowledged messages per publisher with --rate 0 (default 32)\n"
    "  --ack all|echo         --rate 0: a message is acknowledged once every connection of its\n"
    "                         room received it (all, default: bounds the server's queues) or once\n"
    "                         the publisher's own echo came back (echo)\n"
    "  --payload BYTES        message size, up to 65536 (default 64; at least the ts|room|seq|\n"
    "                         prefix)\n"
    "  --duration SECONDS     measured publishing time (default 5)\n"
    "  --warmup SECONDS       publishing before the measured window, not counted (default 0)\n"
    "  --drain SECONDS        wait after the last publish for stragglers (default 2; ends early\n"
    "                         once every expected delivery arrived)\n"
    "  --threads T            client threads / epoll loops (default 2)\n"
    "  --connect-batch N      handshakes in flight at once, over all threads (default 500)\n"
    "  --connect-timeout S    give up connecting after S seconds (default 60)\n"
    "  --publish-url-index I  publishers connect to the I-th --url (0-based; cluster runs)\n"
    "  --pid PID[,PID...]     server processes: CPU time and RSS from /proc (repeatable)\n"
    "  --json                 print only the JSON result line\n"
    "Prints a table on stderr and one JSON line on stdout; exits 1 when no connection opened,\n"
    "2 on bad arguments.\n";

struct Options {
  std::vector<std::string> urls;
  uint32_t conns = 1000;
  uint32_t rooms = 10;
  uint32_t threads = 2;
  uint32_t payload = 64;
  uint32_t connect_batch = 500;
  uint32_t window = 32;
  bool ack_echo = false;  // --ack echo: acknowledged = own echo back (else: every member has it)
  double rate = 100;
  double duration = 5;
  double warmup = 0;
  double drain = 2;
  double connect_timeout = 60;
  double settle = 0.5;  // pause between connecting and publishing, as bench.js does
  int publish_url_index = -1;
  std::vector<int> pids;
  bool json = false;
  bool sse = false;  // --transport sse
};

double parse_number(const std::string& opt, const std::string& v, double lo, double hi) {
  char* end = nullptr;
  errno = 0;
  const double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || errno != 0 || !std::isfinite(d) || d < lo || d > hi) {
    std::ostringstream m;
    m << opt << ": '" << v << "' is not a number in [" << lo << ", " << hi << "]";
    die(m.str());
  }
  return d;
}

uint32_t parse_count(const std::string& opt, const std::string& v, uint32_t lo, uint32_t hi) {
  const double d = parse_number(opt, v, lo, hi);
  if (d != std::floor(d)) die(opt + ": '" + v + "' is not a whole number");
  return static_cast<uint32_t>(d);
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::string v;
    bool has_value = false;
    if (auto eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
      v = a.substr(eq + 1);
      a.resize(eq);
      has_value = true;
    }
    auto value = [&]() -> std::string {
      if (has_value) return v;
      if (i + 1 >= argc) die(a + " needs a value");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (a == "--url") {
      o.urls.push_back(value());
    } else if (a == "--conns") {
      o.conns = parse_count(a, value(), 1, 1'000'000);
    } else if (a == "--rooms") {
      o.rooms = parse_count(a, value(), 1, 1'000'000);
    } else if (a == "--threads") {
      o.threads = parse_count(a, value(), 1, 256);
    } else if (a == "--payload") {
      o.payload = parse_count(a, value(), 1, 65536);
    } else if (a == "--connect-batch") {
      o.connect_batch = parse_count(a, value(), 1, 1'000'000);
    } else if (a == "--window") {
      o.window = parse_count(a, value(), 1, 1024);
    } else if (a == "--ack") {
      const std::string m = value();
      if (m != "all" && m != "echo") die("--ack: 'all' or 'echo', not '" + m + "'");
      o.ack_echo = m == "echo";
    } else if (a == "--rate") {
      o.rate = parse_number(a, value(), 0, 1e9);
    } else if (a == "--duration") {
      o.duration = parse_number(a, value(), 0.001, 3600);
    } else if (a == "--warmup") {
      o.warmup = parse_number(a, value(), 0, 3600);
    } else if (a == "--drain") {
      o.drain = parse_number(a, value(), 0, 600);
    } else if (a == "--connect-timeout") {
      o.connect_timeout = parse_number(a, value(), 0.1, 3600);
    } else if (a == "--publish-url-index") {
      o.publish_url_index = static_cast<int>(parse_count(a, value(), 0, 1000));
    } else if (a == "--pid") {
      std::stringstream ss(value());
      std::string p;
      while (std::getline(ss, p, ','))
        if (!p.empty()) o.pids.push_back(static_cast<int>(parse_count("--pid", p, 1, 1u << 30)));
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "--transport") {
      const std::string m = value();
      if (m != "ws" && m != "sse") die("--transport: 'ws' or 'sse', not '" + m + "'");
      o.sse = m == "sse";
    } else {
      die("unknown argument '" + a + "' (--help lists the options)");
    }
  }
  if (o.urls.empty()) o.urls.push_back(o.sse ? "http://127.0.0.1:8090/sse" : "ws://127.0.0.1:8080/ws");
  if (o.sse && o.rate == 0)
    die("--transport sse publishes with HTTP POST, one request in flight per room: --rate 0 "
        "(saturation) is for --transport ws");
  if (o.conns < o.rooms)
    die("--conns must be at least --rooms (each room needs its publisher connection)");
  if (o.publish_url_index >= static_cast<int>(o.urls.size()))
    die("--publish-url-index is past the last --url");
  o.threads = std::min(o.threads, o.conns);
  return o;
}

// ------------------------------------------------------------------------------- targets

struct Target {
  std::string url;
  std::string host_header;  // host[:port] as written in the URL
  std::string path;         // without a trailing '/'
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
};

Target parse_url(const std::string& url, bool sse) {
  const std::string scheme = sse ? "http://" : "ws://";
  if (url.rfind(scheme, 0) != 0)
    die("--url " + url + ": only " + scheme + " URLs with --transport " + (sse ? "sse" : "ws") +
        " (this tool measures servers on this machine)");
  const std::string rest = url.substr(scheme.size());
  const size_t slash = rest.find('/');
  const std::string hostport = rest.substr(0, slash);
  std::string path = slash == std::string::npos ? "" : rest.substr(slash);
  while (!path.empty() && path.back() == '/') path.pop_back();
  std::string host = hostport;
  std::string port = "80";
  if (!hostport.empty() && hostport[0] == '[') {
    const size_t rb = hostport.find(']');
    if (rb == std::string::npos) die("--url " + url + ": unterminated [IPv6] host");
    host = hostport.substr(1, rb - 1);
    if (rb + 1 < hostport.size()) {
      if (hostport[rb + 1] != ':') die("--url " + url + ": bad host:port");
      port = hostport.substr(rb + 2);
    }
  } else if (const size_t colon = hostport.rfind(':'); colon != std::string::npos) {
    host = hostport.substr(0, colon);
    port = hostport.substr(colon + 1);
  }
  const auto port_no = static_cast<uint16_t>(parse_count("--url port", port, 1, 65535));
  Target t;
  t.url = url;
  t.host_header = hostport;
  t.path = path;
  const std::string ip = host == "localhost" ? "127.0.0.1" : host;
  sockaddr_in v4{};
  sockaddr_in6 v6{};
  if (inet_pton(AF_INET, ip.c_str(), &v4.sin_addr) == 1) {
    if ((ntohl(v4.sin_addr.s_addr) >> 24) != 127)
      die("--url " + url + ": " + host +
          " is not a loopback address; flowrelay-bench only measures servers on this machine "
          "(127.0.0.0/8, ::1, localhost)");
    v4.sin_family = AF_INET;
    v4.sin_port = htons(port_no);
    std::memcpy(&t.addr, &v4, sizeof v4);
    t.addr_len = sizeof v4;
  } else if (inet_pton(AF_INET6, ip.c_str(), &v6.sin6_addr) == 1) {
    const bool mapped_loopback =
        IN6_IS_ADDR_V4MAPPED(&v6.sin6_addr) && v6.sin6_addr.s6_addr[12] == 127;
    if (!IN6_IS_ADDR_LOOPBACK(&v6.sin6_addr) && !mapped_loopback)
      die("--url " + url + ": " + host +
          " is not a loopback address; flowrelay-bench only measures servers on this machine "
          "(127.0.0.0/8, ::1, localhost)");
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons(port_no);
    std::memcpy(&t.addr, &v6, sizeof v6);
    t.addr_len = sizeof v6;
  } else {
    die("--url " + url + ": host '" + host +
        "' must be a literal loopback address or localhost (this tool measures servers on "
        "this machine only)");
  }
  return t;
}

// ------------------------------------------------------------------------------- /proc

struct ProcSample {
  bool ok = false;
  double cpu_ms = 0;  // utime + stime over all pids
  long rss_kb = 0;    // VmRSS over all pids
};

ProcSample sample_processes(const std::vector<int>& pids) {
  ProcSample s;
  if (pids.empty()) return s;
  s.ok = true;
  const double tick_ms = 1000.0 / static_cast<double>(sysconf(_SC_CLK_TCK));
  for (int pid : pids) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) {
      s.ok = false;
      continue;
    }
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
    s.cpu_ms += static_cast<double>(utime + stime) * tick_ms;
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    while (std::getline(status, line))
      if (line.rfind("VmRSS:", 0) == 0) s.rss_kb += std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return s;
}

double self_cpu_ms() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto ms = [](const timeval& tv) { return tv.tv_sec * 1000.0 + tv.tv_usec / 1000.0; };
  return ms(ru.ru_utime) + ms(ru.ru_stime);
}

// ------------------------------------------------------------------------------- shared state

enum Phase : int { kConnect = 0, kSettle = 1, kPublish = 2, kStop = 3 };

struct Shared {
  const Options* opts = nullptr;
  std::vector<Target> targets;
  std::atomic<int> phase{kConnect};
  // Written by main before phase becomes kPublish (release), read by the threads after.
  int64_t start_ns = 0;                                // first scheduled publish
  int64_t warm_end_ns = 0;                             // messages sent from here on are counted
  int64_t end_ns = 0;                                  // no publish at or after this
  std::unique_ptr<std::atomic<uint32_t>[]> room_open;  // open connections per room, now
  std::atomic<uint32_t> threads_connected{0};
  // --rate 0 --ack all: deliveries still missing per message, [room * ack_ring + seq % ack_ring]
  // (set by the publisher before it sends, decremented by every receiver).
  uint32_t ack_ring = 0;
  std::unique_ptr<std::atomic<int32_t>[]> ack_remaining;
  struct alignas(64) Wake {
    std::atomic<bool> sleeping{false};  // the thread is (about to be) in epoll_wait
    int fd = -1;                        // its eventfd
  };
  std::unique_ptr<Wake[]> wake;  // per thread: receivers wake a publisher's thread on an ack
};

// What a thread reports; the atomics are polled by main during the drain.
struct alignas(64) LiveCounters {
  std::atomic<uint64_t> received{0};
  std::atomic<uint64_t> expected{0};
  std::atomic<bool> publishing_done{false};
};

struct Stats {
  uint64_t open = 0, errors = 0, closed_early = 0;
  uint64_t sent = 0, expected = 0, received = 0;
  uint64_t window_deliveries = 0;  // any message received inside the measured window
  uint64_t duplicates = 0, out_of_order = 0, gaps = 0, foreign = 0, send_skipped = 0;
  uint64_t ack_timeouts = 0;
  uint64_t bytes_in = 0;
  uint64_t publish_open = 0;    // --transport sse: publishing connections open
  uint64_t publish_errors = 0;  // --transport sse: POSTs answered other than 2xx
  std::string first_error;
};

// ------------------------------------------------------------------------------- connection

enum class State : uint8_t { Idle, Connecting, Handshake, Open, Closing, Closed, Failed };

struct Conn {
  uint32_t index = 0;  // global connection number
  uint32_t room = 0;
  uint16_t target = 0;
  State state = State::Idle;
  bool want_out = false;
  bool post = false;  // --transport sse: a publisher's POST connection (not a room member)
  bool busy = false;  // post: a request is waiting for its response
  int32_t pub = -1;  // index into Worker::_pubs when this connection publishes
  int fd = -1;
  uint8_t mask[4] = {0, 0, 0, 0};
  uint32_t last_seq = 0;  // highest seq seen (the room has one publisher)
  uint32_t carry_len = 0;
  uint64_t skip = 0;  // bytes of an oversized (not ours) frame still to discard
  int64_t deadline_ns = 0;
  std::unique_ptr<uint8_t[]> carry;  // an incomplete frame kept between reads (allocated once)
  std::string handshake;             // the response so far (freed once open; post: responses)
  std::vector<uint8_t> out;          // unsent bytes (publishers, pongs)
  size_t out_off = 0;
};

struct Publisher {
  uint32_t conn = 0;  // local connection index
  uint32_t room = 0;
  uint64_t next_idx = 0;  // global schedule index of its next message (rate mode)
  uint32_t seq = 0;       // last sent
  uint32_t acked = 0;     // --ack all: every seq up to this one is acknowledged
  uint32_t inflight = 0;  // --rate 0: sent, not acknowledged
};

// ------------------------------------------------------------------------------- worker

class Worker {
 public:
  Worker(Shared& sh, LiveCounters& live, uint32_t id, std::vector<uint32_t> global_ids)
      : _sh(sh),
        _o(*sh.opts),
        _live(live),
        _id(id),
        _rng(std::random_device{}() ^ (uint64_t{id} << 32)) {
    _conns.resize(global_ids.size());
    for (size_t i = 0; i < global_ids.size(); ++i) {
      Conn& c = _conns[i];
      c.index = global_ids[i];
      c.room = c.index % _o.rooms;
      const bool publisher = c.index < _o.rooms;
      c.target = static_cast<uint16_t>(publisher && _o.publish_url_index >= 0
                                           ? _o.publish_url_index
                                           : c.index % _sh.targets.size());
      const uint32_t key = static_cast<uint32_t>(_rng());
      std::memcpy(c.mask, &key, 4);
      if (publisher && !_o.sse) {
        c.pub = static_cast<int32_t>(_pubs.size());
        _pubs.push_back(Publisher{static_cast<uint32_t>(i), c.room, c.room, 0, 0});
      }
    }
    // --transport sse: a publisher's stream only receives; it publishes on a POST connection of
    // its own, appended after the streams (connected in the same connect phase).
    if (_o.sse) {
      const size_t members = _conns.size();
      for (size_t i = 0; i < members; ++i) {
        if (_conns[i].index >= _o.rooms) continue;
        Conn p;
        p.index = _conns[i].index;
        p.room = _conns[i].room;
        p.target = _conns[i].target;
        p.post = true;
        p.pub = static_cast<int32_t>(_pubs.size());
        _pubs.push_back(Publisher{static_cast<uint32_t>(_conns.size()), p.room, p.room, 0, 0});
        _conns.push_back(std::move(p));
      }
    }
    // The longest frame (or SSE event) we accept whole: our own messages (or control frames).
    _carry_cap = std::max<size_t>(_o.payload + (_o.sse ? kSseEventSlack : 64), 256);
    _buf.reset(new uint8_t[_carry_cap + kReadSize]);
    _msg.assign(std::max<size_t>(_o.payload, 64), 'x');
    _batch = std::max<uint32_t>(1, (_o.connect_batch + _o.threads - 1) / _o.threads);
    _ep = epoll_create1(EPOLL_CLOEXEC);
    if (_ep < 0) die(std::string("epoll_create1: ") + std::strerror(errno));
    if (_o.rate > 0) _interval_ns = 1e9 / _o.rate;
    _ack_all = _o.rate == 0 && !_o.ack_echo;
    if (_ack_all) {
      _ack_mask = _sh.ack_ring - 1;
      _sent_at.assign(_pubs.size() * _sh.ack_ring, 0);
    }
    const int wfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wfd < 0) die(std::string("eventfd: ") + std::strerror(errno));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = kWakeTag;
    epoll_ctl(_ep, EPOLL_CTL_ADD, wfd, &ev);
    _sh.wake[id].fd = wfd;
  }
  ~Worker() {
    if (_ep >= 0) ::close(_ep);
    if (_sh.wake[_id].fd >= 0) ::close(_sh.wake[_id].fd);
  }

  void run();

  const Stats& stats() const { return _st; }
  const LatencyHistogram& histogram() const { return _hist; }

 private:
  // connect phase
  bool connect_step(int64_t now);
  void start(uint32_t i, int64_t now);
  void abort_pending();
  void on_connected(uint32_t i, int64_t now);
  void on_handshake_data(uint32_t i, int64_t now);
  // traffic
  void on_event(uint32_t i, uint32_t events, int64_t now);
  void on_readable(Conn& c, int64_t now);
  void parse(Conn& c, const uint8_t* data, size_t len, int64_t now);
  void parse_sse(Conn& c, const uint8_t* data, size_t len, int64_t now);
  void on_sse_event(Conn& c, const uint8_t* p, size_t n, int64_t now);
  void on_post_readable(Conn& c);
  void on_frame(Conn& c, uint8_t opcode, bool fin, const uint8_t* p, size_t n, int64_t now);
  void on_message(Conn& c, const uint8_t* p, size_t n, int64_t now);
  int64_t publish_scheduled(int64_t now);
  void publish_window(int64_t now);
  bool advance_acks(int64_t now);
  std::atomic<int32_t>& ack_slot(uint32_t room, uint32_t seq) {
    return _sh.ack_remaining[size_t{room} * _sh.ack_ring + (seq & _ack_mask)];
  }
  void send_message(Conn& c, Publisher& p, int64_t now);
  void append_frame(Conn& c, uint8_t opcode, const uint8_t* payload, size_t n);
  void flush(Conn& c);
  void set_want_out(Conn& c, bool on);
  void fail(Conn& c, const std::string& why);
  void close_all();
  void reset(Conn& c);
  void close_open(Conn& c, const std::string& why);
  void note_error(const std::string& why) {
    if (_st.first_error.empty()) _st.first_error = why;
  }
  void load_times() {  // the measurement window, once main published it (phase >= kPublish)
    if (_times_loaded) return;
    _start = _sh.start_ns;
    _warm_end = _sh.warm_end_ns;
    _end = _sh.end_ns;
    _times_loaded = true;
  }
  void drain_wake() {
    uint64_t v;
    [[maybe_unused]] const ssize_t r = ::read(_sh.wake[_id].fd, &v, sizeof v);
  }
  bool stopping() const { return _sh.phase.load(std::memory_order_relaxed) == kStop; }

  static constexpr uint32_t kWakeTag = UINT32_MAX;  // epoll data of the eventfd

  Shared& _sh;
  const Options& _o;
  LiveCounters& _live;
  uint32_t _id;
  std::mt19937_64 _rng;
  std::vector<Conn> _conns;
  std::vector<Publisher> _pubs;
  std::unique_ptr<uint8_t[]> _buf;  // _carry_cap bytes for a carried frame, then the read area
  size_t _carry_cap = 0;
  std::string _msg;  // payload scratch, pre-filled with padding
  int _ep = -1;
  uint32_t _batch = 0;
  uint32_t _next_start = 0;
  uint32_t _hs_inflight = 0;
  std::deque<uint32_t> _hs_queue;  // connections in handshake, in start order (deadline order)
  bool _pending_aborted = false;
  double _interval_ns = 0;
  bool _ack_all = false;
  uint32_t _ack_mask = 0;
  std::vector<int64_t> _sent_at;  // --ack all: send time per [publisher * ack_ring + seq % ring]
  // measurement window, loaded when the publish phase starts (nothing counts before)
  int64_t _start = 0;
  int64_t _warm_end = INT64_MAX;
  int64_t _end = INT64_MAX;
  bool _times_loaded = false;
  Stats _st;
  LatencyHistogram _hist;
};

void Worker::run() {
  epoll_event events[512];
  bool connect_done = false;
  bool pub_done = false;
  bool pwait2 = true;
  for (;;) {
    bool saturating = false;  // --ack all: receivers of other threads may wake this one
    const int phase = _sh.phase.load(std::memory_order_acquire);
    if (phase == kStop) break;
    int64_t now = mono_ns();
    int64_t wake = now + kIdleWakeNs;
    if (phase == kConnect) {
      if (!connect_done && connect_step(now)) {
        connect_done = true;
        _sh.threads_connected.fetch_add(1);
      }
    } else if (!_pending_aborted) {
      abort_pending();
    }
    if (phase == kPublish) {
      load_times();
      if (now < _end) {
        if (_o.rate > 0)
          wake = std::min(wake, publish_scheduled(now));
        else
          publish_window(now);
        wake = std::min(wake, _end);
        saturating = _o.rate == 0 && _ack_all;
      } else if (!pub_done) {
        pub_done = true;
        _live.expected.store(_st.expected, std::memory_order_relaxed);
        _live.publishing_done.store(true, std::memory_order_release);
      }
    }
    now = mono_ns();
    if (saturating) {
      // Announce the sleep, then look once more (an ack completed in between is either seen
      // here or its receiver sees `sleeping` and writes the eventfd).
      _sh.wake[_id].sleeping.store(true, std::memory_order_seq_cst);
      if (advance_acks(now)) wake = now;
    }
    const int64_t wait = std::max<int64_t>(0, wake - now);
    int n;
    if (pwait2) {
      timespec ts{static_cast<time_t>(wait / kNsPerSec), static_cast<long>(wait % kNsPerSec)};
      n = epoll_pwait2(_ep, events, 512, &ts, nullptr);
      if (n < 0 && errno == ENOSYS) {
        pwait2 = false;
        continue;
      }
    } else {
      n = epoll_wait(_ep, events, 512, static_cast<int>((wait + kNsPerMs - 1) / kNsPerMs));
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      die(std::string("epoll_wait: ") + std::strerror(errno));
    }
    if (saturating) _sh.wake[_id].sleeping.store(false, std::memory_order_relaxed);
    // Another thread's publisher may have started while this one slept: its messages count.
    if (!_times_loaded && _sh.phase.load(std::memory_order_acquire) >= kPublish) load_times();
    now = mono_ns();  // one clock read per batch: every frame of it arrived by now
    for (int k = 0; k < n; ++k) {
      if (events[k].data.u32 == kWakeTag) {
        drain_wake();
        continue;
      }
      on_event(events[k].data.u32, events[k].events, now);
    }
    _live.received.store(_st.received, std::memory_order_relaxed);
    if (!pub_done) _live.expected.store(_st.expected, std::memory_order_relaxed);
  }
  close_all();
}

// The end of a run: a close frame (1000) to every open connection, then wait (bounded) for the
// server to close first, so TIME_WAIT stays on the server side and back-to-back runs do not
// run out of local ports; whatever is left is reset. --transport sse has no closing handshake
// (the client would close first and keep a TIME_WAIT per stream): its connections are reset, as
// a browser's EventSource vanishing would be.
void Worker::close_all() {
  static const uint8_t kNormal[2] = {0x03, 0xE8};
  size_t closing = 0;
  for (Conn& c : _conns) {
    if (c.fd >= 0 && _o.sse) {
      reset(c);
    } else if (c.state == State::Open) {
      append_frame(c, 0x8, kNormal, 2);
      c.state = State::Closing;
      flush(c);
      if (c.state == State::Closing) ++closing;
    } else if (c.fd >= 0) {
      reset(c);
    }
  }
  epoll_event events[512];
  const int64_t deadline = mono_ns() + kCloseTimeoutNs;
  while (closing > 0 && mono_ns() < deadline) {
    const int n = epoll_wait(_ep, events, 512, 10);
    for (int k = 0; k < n; ++k) {
      if (events[k].data.u32 == kWakeTag) {  // a late wake-up
        drain_wake();
        continue;
      }
      Conn& c = _conns[events[k].data.u32];
      if (c.state != State::Closing) continue;
      if (events[k].events & EPOLLOUT) flush(c);
      if (c.state != State::Closing) {
        --closing;
        continue;
      }
      const ssize_t r = ::read(c.fd, _buf.get(), kReadSize);  // the server's close frame: ignored
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
        ::close(c.fd);
        c.fd = -1;
        c.state = State::Closed;
        --closing;
      }
    }
  }
  for (Conn& c : _conns)
    if (c.fd >= 0) reset(c);
}

void Worker::reset(Conn& c) {
  const linger lg{1, 0};
  setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  ::close(c.fd);
  c.fd = -1;
  c.state = State::Closed;
}

// ------------------------------------------------------------------------------- connecting

bool Worker::connect_step(int64_t now) {
  while (_hs_inflight < _batch && _next_start < _conns.size()) start(_next_start++, now);
  while (!_hs_queue.empty()) {
    Conn& c = _conns[_hs_queue.front()];
    if (c.state != State::Connecting && c.state != State::Handshake) {
      _hs_queue.pop_front();
    } else if (c.deadline_ns <= now) {
      _hs_queue.pop_front();
      fail(c, c.state == State::Connecting ? "connect timeout" : "handshake timeout");
    } else {
      break;
    }
  }
  return _next_start == _conns.size() && _hs_inflight == 0;
}

void Worker::start(uint32_t i, int64_t now) {
  Conn& c = _conns[i];
  const Target& t = _sh.targets[c.target];
  c.state = State::Connecting;
  ++_hs_inflight;
  c.fd = ::socket(t.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c.fd < 0) return fail(c, std::string("socket: ") + std::strerror(errno));
  const int one = 1;
  setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  // Past ~14,000 connections to one address the kernel's connect() port search turns quadratic
  // (it scans the full half of the port range it prefers first): connections past each 10,000
  // come from another loopback source address (127.0.0.2, .3, ...), a port space of their own.
  if (t.addr.ss_family == AF_INET && c.index >= kConnsPerSource) {
    setsockopt(c.fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    sockaddr_in src{};
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl((127u << 24) + 1 + c.index / kConnsPerSource);
    if (::bind(c.fd, reinterpret_cast<const sockaddr*>(&src), sizeof src) < 0)
      return fail(c, std::string("bind source address: ") + std::strerror(errno));
  }
  if (::connect(c.fd, reinterpret_cast<const sockaddr*>(&t.addr), t.addr_len) < 0 &&
      errno != EINPROGRESS)
    return fail(c, std::string("connect ") + t.url + ": " + std::strerror(errno));
  epoll_event ev{};
  ev.events = EPOLLOUT;
  ev.data.u32 = i;
  if (epoll_ctl(_ep, EPOLL_CTL_ADD, c.fd, &ev) < 0)
    return fail(c, std::string("epoll_ctl: ") + std::strerror(errno));
  c.want_out = true;
  c.deadline_ns = now + kHandshakeTimeoutNs;
  _hs_queue.push_back(i);
}

void Worker::abort_pending() {
  _pending_aborted = true;
  for (Conn& c : _conns) {
    if (c.state == State::Connecting || c.state == State::Handshake)
      fail(c, "not connected within --connect-timeout");
    else if (c.state == State::Idle)
      ++_st.errors;  // never tried
  }
  _hs_queue.clear();
}

void Worker::on_connected(uint32_t i, int64_t /*now*/) {
  Conn& c = _conns[i];
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  if (err != 0) return fail(c, "connect " + _sh.targets[c.target].url + ": " + std::strerror(err));
  const Target& t = _sh.targets[c.target];
  if (c.post) {  // --transport sse publisher: requests go out as messages are due
    c.state = State::Open;
    --_hs_inflight;
    ++_st.publish_open;
    set_want_out(c, false);
    return;
  }
  if (_o.sse) {
    const std::string req = "GET " + t.path + "/room" + std::to_string(c.room) +
                            " HTTP/1.1\r\nHost: " + t.host_header +
                            "\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n";
    c.out.assign(req.begin(), req.end());
    c.out_off = 0;
    c.state = State::Handshake;
    c.handshake.reserve(256);
    set_want_out(c, false);
    flush(c);
    return;
  }
  uint8_t key[16];
  for (auto& b : key) b = static_cast<uint8_t>(_rng());
  static const char* b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string k;
  for (int j = 0; j < 16; j += 3) {
    const uint32_t v = (uint32_t{key[j]} << 16) | (j + 1 < 16 ? uint32_t{key[j + 1]} << 8 : 0) |
                       (j + 2 < 16 ? uint32_t{key[j + 2]} : 0);
    k += b64[(v >> 18) & 63];
    k += b64[(v >> 12) & 63];
    k += j + 1 < 16 ? b64[(v >> 6) & 63] : '=';
    k += j + 2 < 16 ? b64[v & 63] : '=';
  }
  const std::string req =
      "GET " + t.path + "/room" + std::to_string(c.room) + " HTTP/1.1\r\nHost: " + t.host_header +
      "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + k +
      "\r\nSec-WebSocket-Version: 13\r\n\r\n";
  c.out.assign(req.begin(), req.end());
  c.out_off = 0;
  c.state = State::Handshake;
  c.handshake.reserve(256);
  set_want_out(c, false);  // EPOLLIN from now on; flush re-arms EPOLLOUT if the write is short
  flush(c);
}

void Worker::on_handshake_data(uint32_t i, int64_t now) {
  Conn& c = _conns[i];
  const ssize_t n = ::read(c.fd, _buf.get(), kReadSize);
  if (n == 0) return fail(c, "server closed the connection during the handshake");
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return;
    return fail(c, std::string("handshake read: ") + std::strerror(errno));
  }
  c.handshake.append(reinterpret_cast<const char*>(_buf.get()), static_cast<size_t>(n));
  const size_t end = c.handshake.find("\r\n\r\n");
  if (end == std::string::npos) {
    if (c.handshake.size() > kMaxResponseHeader) fail(c, "handshake response too long");
    return;
  }
  const char* want = _o.sse ? "200" : "101";  // SSE: the stream's head; ws: the upgrade
  if (c.handshake.compare(0, 9, "HTTP/1.1 ") != 0 || c.handshake.compare(9, 3, want) != 0 ||
      (c.handshake[12] != ' ' && c.handshake[12] != '\r'))
    return fail(c, "handshake refused: " + c.handshake.substr(0, c.handshake.find("\r\n")));
  c.state = State::Open;
  --_hs_inflight;
  ++_st.open;
  _sh.room_open[c.room].fetch_add(1, std::memory_order_relaxed);
  // Frames that came with the response (none expected before we publish).
  std::string rest = c.handshake.substr(end + 4);
  std::string().swap(c.handshake);
  if (!rest.empty()) {
    std::memcpy(_buf.get(), rest.data(), rest.size());
    if (_o.sse)
      parse_sse(c, _buf.get(), rest.size(), now);
    else
      parse(c, _buf.get(), rest.size(), now);
  }
}

void Worker::fail(Conn& c, const std::string& why) {
  if (c.fd >= 0) ::close(c.fd);
  c.fd = -1;
  if (c.state == State::Connecting || c.state == State::Handshake) --_hs_inflight;
  c.state = State::Failed;
  ++_st.errors;
  note_error(why);
}

void Worker::close_open(Conn& c, const std::string& why) {
  if (c.fd >= 0) ::close(c.fd);
  c.fd = -1;
  c.state = State::Closed;
  if (!c.post) _sh.room_open[c.room].fetch_sub(1, std::memory_order_relaxed);
  if (!stopping()) {
    ++_st.closed_early;
    note_error(why);
  }
}

// ------------------------------------------------------------------------------- traffic

void Worker::on_event(uint32_t i, uint32_t events, int64_t now) {
  Conn& c = _conns[i];
  switch (c.state) {
    case State::Connecting:
      on_connected(i, now);
      return;
    case State::Handshake:
      if (events & EPOLLOUT) flush(c);
      if (c.state == State::Handshake && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        on_handshake_data(i, now);
      return;
    case State::Open:
      if (events & EPOLLOUT) flush(c);
      if (c.state == State::Open && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
        if (c.post)
          on_post_readable(c);
        else
          on_readable(c, now);
      }
      return;
    default:
      return;
  }
}

void Worker::on_readable(Conn& c, int64_t now) {
  uint8_t* base = _buf.get();
  const size_t pre = c.carry_len;
  if (pre) std::memcpy(base, c.carry.get(), pre);
  const ssize_t n = ::read(c.fd, base + pre, kReadSize);
  if (n > 0) {
    _st.bytes_in += static_cast<uint64_t>(n);
    if (_o.sse)
      parse_sse(c, base, pre + static_cast<size_t>(n), now);
    else
      parse(c, base, pre + static_cast<size_t>(n), now);
  } else if (n == 0) {
    close_open(c, "server closed a connection (EOF)");
  } else if (errno != EAGAIN && errno != EINTR) {
    close_open(c, std::string("read: ") + std::strerror(errno));
  }
}

// Every complete frame of data[0..len); an incomplete one is carried to the next read.
void Worker::parse(Conn& c, const uint8_t* data, size_t len, int64_t now) {
  size_t pos = 0;
  if (c.skip) {
    const size_t k = static_cast<size_t>(std::min<uint64_t>(c.skip, len));
    c.skip -= k;
    pos = k;
  }
  while (len - pos >= 2) {
    const uint8_t* f = data + pos;
    const size_t avail = len - pos;
    const uint8_t opcode = f[0] & 0x0F;
    const bool fin = (f[0] & 0x80) != 0;
    if (f[1] & 0x80) return close_open(c, "protocol error: masked frame from the server");
    uint64_t plen = f[1] & 0x7F;
    size_t hl = 2;
    if (plen == 126) {
      if (avail < 4) break;
      plen = (uint64_t{f[2]} << 8) | f[3];
      hl = 4;
    } else if (plen == 127) {
      if (avail < 10) break;
      plen = 0;
      for (int b = 2; b < 10; ++b) plen = (plen << 8) | f[b];
      hl = 10;
    }
    if (plen > avail - hl) {
      if (hl + plen <= _carry_cap) break;  // ours, just not complete yet
      ++_st.foreign;                       // too long to be one of ours: discard it
      c.skip = hl + plen - avail;
      pos = len;
      break;
    }
    on_frame(c, opcode, fin, f + hl, static_cast<size_t>(plen), now);
    if (c.state != State::Open) return;
    pos += hl + static_cast<size_t>(plen);
  }
  const size_t rest = len - pos;
  if (rest) {
    if (!c.carry) c.carry.reset(new uint8_t[_carry_cap]);
    std::memmove(c.carry.get(), data + pos, rest);
  }
  c.carry_len = static_cast<uint32_t>(rest);
}

void Worker::on_frame(Conn& c, uint8_t opcode, bool fin, const uint8_t* p, size_t n, int64_t now) {
  switch (opcode) {
    case 0x1:  // text
      if (fin)
        on_message(c, p, n, now);
      else
        ++_st.foreign;  // a relay of our small messages never fragments them
      return;
    case 0x9:  // ping
      append_frame(c, 0xA, p, n);
      flush(c);
      return;
    case 0xA:  // pong
      return;
    case 0x8: {  // close
      std::string why = "server sent close";
      if (n >= 2) {
        why += ' ';
        why += std::to_string((p[0] << 8) | p[1]);
      }
      if (n > 2) {
        why += ' ';
        why.append(reinterpret_cast<const char*>(p + 2), n - 2);
      }
      return close_open(c, why);
    }
    default:  // continuation, binary
      ++_st.foreign;
      return;
  }
}

// --transport sse: every complete event of data[0..len) (ended by a blank line, "\n\n"; the
// relays measured here end lines with LF only); an incomplete one is carried to the next read.
// c.skip != 0: inside an event too long to be ours, discarded up to its blank line.
void Worker::parse_sse(Conn& c, const uint8_t* data, size_t len, int64_t now) {
  size_t pos = 0;
  for (;;) {
    const void* e = memmem(data + pos, len - pos, "\n\n", 2);
    if (e == nullptr) break;
    const size_t end = static_cast<size_t>(static_cast<const uint8_t*>(e) - data);
    if (c.skip)
      c.skip = 0;
    else
      on_sse_event(c, data + pos, end + 1 - pos, now);  // with its last line's LF
    if (c.state != State::Open) return;
    pos = end + 2;
  }
  size_t rest = len - pos;
  if (!c.skip && rest > _carry_cap) {
    ++_st.foreign;  // too long to be one of ours: discard it
    c.skip = 1;
  }
  if (c.skip) {  // keep a trailing LF: it may be the first half of the blank line
    pos = len - (rest && data[len - 1] == '\n' ? 1 : 0);
    rest = len - pos;
  }
  if (rest) {
    if (!c.carry) c.carry.reset(new uint8_t[_carry_cap]);
    std::memmove(c.carry.get(), data + pos, rest);
  }
  c.carry_len = static_cast<uint32_t>(rest);
}

// One event's lines, each ending with LF: its data line goes to on_message; retry:, id: and
// comments (": hb", nchan's ": hi") are ignored; an "event: close" ends the connection.
void Worker::on_sse_event(Conn& c, const uint8_t* p, size_t n, int64_t now) {
  const uint8_t* end = p + n;
  const uint8_t* data = nullptr;
  size_t data_len = 0;
  int data_lines = 0;
  std::string_view type;
  auto field = [](const uint8_t* line, const uint8_t* eol, std::string_view name,
                  const uint8_t*& value) {
    if (static_cast<size_t>(eol - line) < name.size() ||
        std::memcmp(line, name.data(), name.size()) != 0)
      return false;
    value = line + name.size();
    if (value < eol && *value == ' ') ++value;
    return true;
  };
  while (p < end) {
    const auto* eol = static_cast<const uint8_t*>(std::memchr(p, '\n', end - p));
    if (eol == nullptr) eol = end;
    const uint8_t* v = nullptr;
    if (field(p, eol, "data:", v)) {
      if (data_lines++ == 0) {
        data = v;
        data_len = static_cast<size_t>(eol - v);
      }
    } else if (field(p, eol, "event:", v)) {
      type = std::string_view(reinterpret_cast<const char*>(v), static_cast<size_t>(eol - v));
    }
    p = eol + 1;
  }
  if (type == "close")
    return close_open(c, "server sent an SSE close event: " +
                             std::string(reinterpret_cast<const char*>(data), data_len));
  if (data_lines == 0) return;  // retry:, a heartbeat or a comment
  if (data_lines > 1 || !(type.empty() || type == "message")) {
    ++_st.foreign;  // not one of our one-line messages
    return;
  }
  on_message(c, data, data_len, now);
}

// --transport sse: the answers to a publisher's POSTs (status, headers, Content-Length body).
void Worker::on_post_readable(Conn& c) {
  const ssize_t n = ::read(c.fd, _buf.get(), kReadSize);
  if (n == 0) return close_open(c, "server closed a publishing connection (EOF)");
  if (n < 0) {
    if (errno != EAGAIN && errno != EINTR)
      close_open(c, std::string("publishing connection read: ") + std::strerror(errno));
    return;
  }
  c.handshake.append(reinterpret_cast<const char*>(_buf.get()), static_cast<size_t>(n));
  for (;;) {
    const size_t head = c.handshake.find("\r\n\r\n");
    if (head == std::string::npos) {
      if (c.handshake.size() > kMaxResponseHeader)
        close_open(c, "publish response head too long");
      return;
    }
    size_t body = 0;
    bool have_length = false;
    for (size_t at = c.handshake.find("\r\n"); at < head; at = c.handshake.find("\r\n", at + 2)) {
      static constexpr std::string_view kName = "content-length:";
      if (head - at - 2 < kName.size()) continue;
      bool match = true;
      for (size_t k = 0; k < kName.size() && match; ++k)
        match = std::tolower(static_cast<unsigned char>(c.handshake[at + 2 + k])) == kName[k];
      if (!match) continue;
      body = std::strtoull(c.handshake.c_str() + at + 2 + kName.size(), nullptr, 10);
      have_length = true;
      break;
    }
    if (!have_length)
      return close_open(c, "publish response without Content-Length: " +
                               c.handshake.substr(0, c.handshake.find("\r\n")));
    if (c.handshake.size() < head + 4 + body) return;  // the rest of the body is still coming
    if (c.handshake.compare(0, 9, "HTTP/1.1 ") != 0 || c.handshake.size() < 12 ||
        c.handshake[9] != '2') {
      ++_st.publish_errors;
      note_error("publish refused: " + c.handshake.substr(0, c.handshake.find("\r\n")));
    }
    c.handshake.erase(0, head + 4 + body);
    c.busy = false;
  }
}

bool parse_field(const uint8_t*& p, const uint8_t* end, uint64_t& out) {
  const uint8_t* start = p;
  uint64_t v = 0;
  while (p < end && *p >= '0' && *p <= '9') v = v * 10 + (*p++ - '0');
  if (p == start || p == end || *p != '|') return false;
  ++p;
  out = v;
  return true;
}

void Worker::on_message(Conn& c, const uint8_t* p, size_t n, int64_t now) {
  const uint8_t* end = p + n;
  uint64_t ts, room, seq;
  if (!parse_field(p, end, ts) || !parse_field(p, end, room) || !parse_field(p, end, seq) ||
      room != c.room) {
    ++_st.foreign;
    return;
  }
  const auto s = static_cast<uint32_t>(seq);
  if (s == c.last_seq + 1) {
    c.last_seq = s;
  } else if (s > c.last_seq) {
    _st.gaps += s - c.last_seq - 1;
    c.last_seq = s;
  } else if (s == c.last_seq) {
    ++_st.duplicates;
  } else {
    ++_st.out_of_order;
  }
  if (_ack_all) {
    if (ack_slot(c.room, s).fetch_sub(1, std::memory_order_seq_cst) == 1) {
      // This delivery completed the message: wake its publisher's thread if it sleeps.
      Shared::Wake& w = _sh.wake[c.room % _o.threads];
      if (&w != &_sh.wake[_id] && w.sleeping.load(std::memory_order_seq_cst) &&
          w.sleeping.exchange(false)) {
        const uint64_t one = 1;
        [[maybe_unused]] const ssize_t r = ::write(w.fd, &one, sizeof one);
      }
    }
  } else if (c.pub >= 0 && _o.rate == 0) {
    Publisher& pb = _pubs[static_cast<size_t>(c.pub)];
    if (pb.inflight) --pb.inflight;
  }
  const auto sent_at = static_cast<int64_t>(ts);
  if (sent_at >= _warm_end && sent_at < _end) {
    ++_st.received;
    _hist.record_ns(now - sent_at);
  }
  if (now >= _warm_end && now < _end) ++_st.window_deliveries;
}

// ------------------------------------------------------------------------------- publishing

// --rate P: message k of the global schedule goes to room k % R at start + k / P (bench.js
// order), so room r publishes at start + (r + j * R) / P. Returns when the next one is due.
int64_t Worker::publish_scheduled(int64_t now) {
  int64_t next = INT64_MAX;
  for (Publisher& p : _pubs) {
    Conn& c = _conns[p.conn];
    if (c.state != State::Open) continue;
    bool wrote = false;
    for (;;) {
      const int64_t due =
          _start + static_cast<int64_t>(static_cast<double>(p.next_idx) * _interval_ns);
      if (due >= _end) break;
      if (due > now) {
        next = std::min(next, due);
        break;
      }
      if (c.busy) break;  // sse: the previous POST's answer wakes this thread
      const int64_t t = mono_ns();
      if (t >= _end) break;
      send_message(c, p, t);
      p.next_idx += _o.rooms;
      wrote = true;
    }
    if (wrote) flush(c);
  }
  return next;
}

// --rate 0: keep --window messages of each publisher unacknowledged.
void Worker::publish_window(int64_t now) {
  if (_ack_all) advance_acks(now);
  for (Publisher& p : _pubs) {
    Conn& c = _conns[p.conn];
    if (c.state != State::Open || p.inflight >= _o.window) continue;
    while (p.inflight < _o.window) {
      const int64_t t = mono_ns();
      if (t >= _end) break;
      if (_ack_all) {
        const uint32_t s = p.seq + 1;
        ack_slot(p.room, s).store(
            static_cast<int32_t>(_sh.room_open[p.room].load(std::memory_order_relaxed)),
            std::memory_order_relaxed);
        _sent_at[(&p - _pubs.data()) * _sh.ack_ring + (s & _ack_mask)] = t;
      }
      send_message(c, p, t);
      ++p.inflight;
    }
    flush(c);
  }
}

// --ack all: moves each publisher past the messages every member received (or that waited past
// kAckTimeoutNs: a member closed). Returns whether some publisher may send.
bool Worker::advance_acks(int64_t now) {
  bool can_send = false;
  for (Publisher& p : _pubs) {
    if (_conns[p.conn].state != State::Open) continue;
    while (p.acked != p.seq) {
      const uint32_t s = p.acked + 1;
      if (ack_slot(p.room, s).load(std::memory_order_seq_cst) > 0) {
        if (now - _sent_at[(&p - _pubs.data()) * _sh.ack_ring + (s & _ack_mask)] <= kAckTimeoutNs)
          break;
        ++_st.ack_timeouts;
      }
      p.acked = s;
    }
    p.inflight = p.seq - p.acked;
    const Conn& c = _conns[p.conn];
    // (with bytes still unsent, EPOLLOUT wakes the thread instead)
    can_send = can_send || (p.inflight < _o.window && c.out_off == c.out.size());
  }
  return can_send;
}

void Worker::send_message(Conn& c, Publisher& p, int64_t now) {
  if (c.out.size() - c.out_off > kMaxPendingOut) {  // the server stopped reading
    ++_st.send_skipped;
    return;
  }
  ++p.seq;
  char* b = _msg.data();
  char* e = b + _msg.size();
  char* q = std::to_chars(b, e, now).ptr;
  *q++ = '|';
  q = std::to_chars(q, e, p.room).ptr;
  *q++ = '|';
  q = std::to_chars(q, e, p.seq).ptr;
  *q++ = '|';
  const size_t n = std::max<size_t>(static_cast<size_t>(q - b), _o.payload);  // rest is padding
  if (c.post) {
    const Target& t = _sh.targets[c.target];
    if (c.out_off == c.out.size()) {
      c.out.clear();
      c.out_off = 0;
    }
    char head[512];
    const int hl = std::snprintf(head, sizeof head,
                                 "POST %s/room%u HTTP/1.1\r\nHost: %s\r\nContent-Type: "
                                 "text/plain\r\nContent-Length: %zu\r\n\r\n",
                                 t.path.c_str(), p.room, t.host_header.c_str(), n);
    c.out.insert(c.out.end(), head, head + std::min<size_t>(hl, sizeof head - 1));
    c.out.insert(c.out.end(), b, b + n);
    c.busy = true;
  } else {
    append_frame(c, 0x1, reinterpret_cast<const uint8_t*>(b), n);
  }
  if (now >= _warm_end) {
    ++_st.sent;
    _st.expected += _sh.room_open[p.room].load(std::memory_order_relaxed);
  }
}

// A masked client frame (RFC 6455 5.3), FIN set.
void Worker::append_frame(Conn& c, uint8_t opcode, const uint8_t* payload, size_t n) {
  uint8_t h[14];
  size_t hl = 0;
  h[hl++] = static_cast<uint8_t>(0x80 | opcode);
  if (n < 126) {
    h[hl++] = static_cast<uint8_t>(0x80 | n);
  } else if (n <= 0xFFFF) {
    h[hl++] = 0x80 | 126;
    h[hl++] = static_cast<uint8_t>(n >> 8);
    h[hl++] = static_cast<uint8_t>(n);
  } else {
    h[hl++] = 0x80 | 127;
    for (int s = 56; s >= 0; s -= 8) h[hl++] = static_cast<uint8_t>(uint64_t{n} >> s);
  }
  std::memcpy(h + hl, c.mask, 4);
  hl += 4;
  if (c.out_off == c.out.size()) {
    c.out.clear();
    c.out_off = 0;
  }
  const size_t at = c.out.size();
  c.out.resize(at + hl + n);
  uint8_t* o = c.out.data() + at;
  std::memcpy(o, h, hl);
  o += hl;
  for (size_t k = 0; k < n; ++k) o[k] = payload[k] ^ c.mask[k & 3];
}

void Worker::flush(Conn& c) {
  while (c.out_off < c.out.size()) {
    const ssize_t w =
        ::send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
    if (w > 0) {
      c.out_off += static_cast<size_t>(w);
    } else if (w < 0 && errno == EINTR) {
      continue;
    } else if (w < 0 && errno == EAGAIN) {
      set_want_out(c, true);
      return;
    } else {
      const std::string why = std::string("write: ") + std::strerror(errno);
      if (c.state == State::Open)
        close_open(c, why);
      else if (c.state == State::Closing)
        reset(c);
      else
        fail(c, why);
      return;
    }
  }
  c.out.clear();
  c.out_off = 0;
  set_want_out(c, false);
}

void Worker::set_want_out(Conn& c, bool on) {
  if (c.want_out == on || c.fd < 0) return;
  epoll_event ev{};
  ev.events = on ? (EPOLLIN | EPOLLOUT) : EPOLLIN;
  ev.data.u32 = static_cast<uint32_t>(&c - _conns.data());
  epoll_ctl(_ep, EPOLL_CTL_MOD, c.fd, &ev);
  c.want_out = on;
}

// ------------------------------------------------------------------------------- report

struct Report {
  const Options* o = nullptr;
  Stats st;
  LatencyHistogram hist;
  double connect_ms = 0;
  double window_s = 0;      // the measured window (publishing after the warmup)
  double cpu_window_s = 0;  // where CPU is counted: the measured window and the drain
  double client_cpu_ms = 0;
  ProcSample s0, s1;
};

std::string fixed(double v, int digits) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", digits, v);
  return b;
}

std::string shortest(double v) {
  char b[64];
  return std::string(b, std::to_chars(b, b + sizeof b, v).ptr);
}

std::string json_num(double v, int digits, bool valid = true) {
  return valid && std::isfinite(v) ? fixed(v, digits) : "null";
}

std::string json_escape(const std::string& s) {
  std::string r;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') {
      r += '\\';
      r += ch;
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      r += ' ';
    } else {
      r += ch;
    }
  }
  return r;
}

void print_report(const Report& r) {
  const Options& o = *r.o;
  const Stats& st = r.st;
  const bool have_lat = r.hist.count() > 0;
  const double loss =
      st.expected
          ? 100.0 * (1.0 - static_cast<double>(st.received) / static_cast<double>(st.expected))
          : NAN;
  const double server_cpu = r.s1.cpu_ms - r.s0.cpu_ms;
  const bool have_server = r.s0.ok && r.s1.ok;
  const double per_delivery =
      st.received ? 1000.0 * server_cpu / static_cast<double>(st.received) : NAN;
  const double client_per_delivery =
      st.received ? 1000.0 * r.client_cpu_ms / static_cast<double>(st.received) : NAN;
  const double dps = static_cast<double>(st.window_deliveries) / r.window_s;
  auto q = [&](double p) { return have_lat ? r.hist.quantile_ms(p) : NAN; };

  if (!o.json) {
    std::string urls;
    for (const auto& u : o.urls) urls += (urls.empty() ? "" : ", ") + u;
    std::fprintf(stderr,
                 "flowrelay-bench  %s\n"
                 "  connections  %u requested, %llu open, %llu errors, %llu closed early; "
                 "connect %.0f ms (%u threads)\n",
                 urls.c_str(), o.conns, (unsigned long long)st.open, (unsigned long long)st.errors,
                 (unsigned long long)st.closed_early, r.connect_ms, o.threads);
    if (o.sse)
      std::fprintf(stderr, "  transport    sse: %llu POST connections open, %llu POSTs refused\n",
                   (unsigned long long)st.publish_open, (unsigned long long)st.publish_errors);
    if (!st.first_error.empty())
      std::fprintf(stderr, "  first error  %s\n", st.first_error.c_str());
    std::fprintf(stderr,
                 "  publishing   %u rooms, %s, payload %u B, %.1f s measured after %.1f s warmup\n",
                 o.rooms,
                 o.rate > 0 ? (shortest(o.rate) + " msg/s").c_str()
                            : ("saturation, window " + std::to_string(o.window)).c_str(),
                 o.payload, o.duration, o.warmup);
    std::fprintf(stderr,
                 "  messages     sent %llu  expected %llu  received %llu  loss %s %%\n"
                 "               duplicates %llu  out-of-order %llu  gaps %llu  foreign %llu  "
                 "send-skipped %llu\n",
                 (unsigned long long)st.sent, (unsigned long long)st.expected,
                 (unsigned long long)st.received, json_num(loss, 3, st.expected > 0).c_str(),
                 (unsigned long long)st.duplicates, (unsigned long long)st.out_of_order,
                 (unsigned long long)st.gaps, (unsigned long long)st.foreign,
                 (unsigned long long)st.send_skipped);
    std::fprintf(stderr, "  deliveries/s %.0f (received inside the measured window)\n", dps);
    std::fprintf(stderr, "  latency ms   p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
                 json_num(q(0.5), 3, have_lat).c_str(), json_num(q(0.9), 3, have_lat).c_str(),
                 json_num(q(0.99), 3, have_lat).c_str(), json_num(q(0.999), 3, have_lat).c_str(),
                 json_num(r.hist.max_ms(), 3, have_lat).c_str());
    if (have_server)
      std::fprintf(stderr, "  server       cpu %.0f ms (%s us/delivery), rss %ld kB -> %ld kB\n",
                   server_cpu, json_num(per_delivery, 2, st.received > 0).c_str(), r.s0.rss_kb,
                   r.s1.rss_kb);
    else if (!o.pids.empty())
      std::fprintf(stderr, "  server       (a --pid could not be read)\n");
    std::fprintf(stderr, "  client       cpu %.0f ms (%s us/delivery, %.0f %% of one core)\n",
                 r.client_cpu_ms, json_num(client_per_delivery, 2, st.received > 0).c_str(),
                 100.0 * r.client_cpu_ms / (r.cpu_window_s * 1000.0));
  }

  std::string j = "{";
  auto field = [&](const char* k, const std::string& v) {
    if (j.size() > 1) j += ',';
    j += '"';
    j += k;
    j += "\":";
    j += v;
  };
  auto u = [](uint64_t v) { return std::to_string(v); };
  field("conns", u(o.conns));
  field("open", u(st.open));
  field("errors", u(st.errors));
  field("closedEarly", u(st.closed_early));
  field("connectMs", fixed(r.connect_ms, 0));
  field("sent", u(st.sent));
  field("expected", u(st.expected));
  field("received", u(st.received));
  field("lossPct", json_num(loss, 3, st.expected > 0));
  field("p50", json_num(q(0.5), 3, have_lat));
  field("p90", json_num(q(0.9), 3, have_lat));
  field("p99", json_num(q(0.99), 3, have_lat));
  field("p999", json_num(q(0.999), 3, have_lat));
  field("max", json_num(r.hist.max_ms(), 3, have_lat));
  field("serverRssKb", have_server ? std::to_string(r.s0.rss_kb) : "null");
  field("serverRssKbEnd", have_server ? std::to_string(r.s1.rss_kb) : "null");
  field("serverCpuMs", json_num(server_cpu, 0, have_server));
  field("serverCpuUsPerDelivery", json_num(per_delivery, 2, have_server && st.received > 0));
  field("deliveriesPerSec", fixed(dps, 0));
  field("duplicates", u(st.duplicates));
  field("outOfOrder", u(st.out_of_order));
  field("gaps", u(st.gaps));
  field("foreign", u(st.foreign));
  field("sendSkipped", u(st.send_skipped));
  field("ackTimeouts", u(st.ack_timeouts));
  field("clientCpuMs", fixed(r.client_cpu_ms, 0));
  field("clientCpuUsPerDelivery", json_num(client_per_delivery, 2, st.received > 0));
  field("rooms", u(o.rooms));
  field("rate", shortest(o.rate));
  field("window", o.rate > 0 ? "null" : u(o.window));
  field("ack", o.rate > 0 ? "null" : o.ack_echo ? "\"echo\"" : "\"all\"");
  field("payload", u(o.payload));
  field("durationS", fixed(o.duration, 3));
  field("warmupS", fixed(o.warmup, 3));
  field("threads", u(o.threads));
  field("transport", o.sse ? "\"sse\"" : "\"ws\"");
  field("publishConns", o.sse ? u(st.publish_open) : "null");
  field("publishErrors", o.sse ? u(st.publish_errors) : "null");
  field("firstError", st.first_error.empty() ? "null" : '"' + json_escape(st.first_error) + '"');
  j += '}';
  std::printf("%s\n", j.c_str());
  std::fflush(stdout);
}

int run(int argc, char** argv) {
  const Options o = parse_args(argc, argv);
  ::signal(SIGPIPE, SIG_IGN);

  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  getrlimit(RLIMIT_NOFILE, &rl);
  if (static_cast<uint64_t>(o.conns) + (o.sse ? o.rooms : 0) + 32 + 2 * o.threads > rl.rlim_cur)
    die("--conns " + std::to_string(o.conns) + " needs more file descriptors than RLIMIT_NOFILE " +
        std::to_string(rl.rlim_cur) + " allows (raise the hard limit: ulimit -Hn)");

  Shared sh;
  sh.opts = &o;
  for (const auto& u : o.urls) sh.targets.push_back(parse_url(u, o.sse));
  sh.room_open.reset(new std::atomic<uint32_t>[o.rooms]);
  for (uint32_t r = 0; r < o.rooms; ++r) sh.room_open[r].store(0);
  sh.wake.reset(new Shared::Wake[o.threads]);
  if (o.rate == 0 && !o.ack_echo) {
    sh.ack_ring = 2;
    while (sh.ack_ring <= o.window) sh.ack_ring *= 2;  // more slots than unacknowledged messages
    const size_t slots = size_t{o.rooms} * sh.ack_ring;
    sh.ack_remaining.reset(new std::atomic<int32_t>[slots]);
    for (size_t k = 0; k < slots; ++k) sh.ack_remaining[k].store(0);
  }

  std::vector<std::vector<uint32_t>> share(o.threads);
  for (uint32_t i = 0; i < o.conns; ++i) share[i % o.threads].push_back(i);
  std::unique_ptr<LiveCounters[]> live(new LiveCounters[o.threads]);
  std::vector<std::unique_ptr<Worker>> workers;
  for (uint32_t t = 0; t < o.threads; ++t)
    workers.push_back(std::make_unique<Worker>(sh, live[t], t, std::move(share[t])));

  Report rep;
  rep.o = &o;
  const int64_t t_connect = mono_ns();
  std::vector<std::thread> threads;
  for (auto& w : workers) threads.emplace_back([&w] { w->run(); });

  const int64_t connect_deadline = t_connect + static_cast<int64_t>(o.connect_timeout * 1e9);
  while (sh.threads_connected.load() < o.threads && mono_ns() < connect_deadline)
    sleep_until_ns(mono_ns() + kNsPerMs);
  rep.connect_ms = static_cast<double>(mono_ns() - t_connect) / 1e6;
  sh.phase.store(kSettle, std::memory_order_release);
  sleep_until_ns(mono_ns() + static_cast<int64_t>(o.settle * 1e9));

  sh.start_ns = mono_ns() + kNsPerMs;
  sh.warm_end_ns = sh.start_ns + static_cast<int64_t>(o.warmup * 1e9);
  sh.end_ns = sh.warm_end_ns + static_cast<int64_t>(o.duration * 1e9);
  sh.phase.store(kPublish, std::memory_order_release);

  sleep_until_ns(sh.warm_end_ns);
  rep.s0 = sample_processes(o.pids);
  const double cpu0 = self_cpu_ms();
  sleep_until_ns(sh.end_ns);
  // Drain: until every expected delivery arrived, at most --drain seconds.
  const int64_t drain_deadline = sh.end_ns + static_cast<int64_t>(o.drain * 1e9);
  for (;;) {
    bool done = true;
    uint64_t got = 0, want = 0;
    for (uint32_t t = 0; t < o.threads; ++t) {
      done = done && live[t].publishing_done.load(std::memory_order_acquire);
      got += live[t].received.load(std::memory_order_relaxed);
      want += live[t].expected.load(std::memory_order_relaxed);
    }
    if ((done && got >= want) || mono_ns() >= drain_deadline) break;
    sleep_until_ns(mono_ns() + 2 * kNsPerMs);
  }
  rep.s1 = sample_processes(o.pids);
  rep.client_cpu_ms = self_cpu_ms() - cpu0;
  rep.window_s = static_cast<double>(sh.end_ns - sh.warm_end_ns) / 1e9;
  rep.cpu_window_s = static_cast<double>(mono_ns() - sh.warm_end_ns) / 1e9;
  sh.phase.store(kStop, std::memory_order_release);
  for (auto& t : threads) t.join();

  for (auto& w : workers) {
    const Stats& s = w->stats();
    Stats& a = rep.st;
    a.open += s.open;
    a.errors += s.errors;
    a.closed_early += s.closed_early;
    a.sent += s.sent;
    a.expected += s.expected;
    a.received += s.received;
    a.window_deliveries += s.window_deliveries;
    a.duplicates += s.duplicates;
    a.out_of_order += s.out_of_order;
    a.gaps += s.gaps;
    a.foreign += s.foreign;
    a.send_skipped += s.send_skipped;
    a.ack_timeouts += s.ack_timeouts;
    a.bytes_in += s.bytes_in;
    a.publish_open += s.publish_open;
    a.publish_errors += s.publish_errors;
    if (a.first_error.empty()) a.first_error = s.first_error;
    rep.hist.merge(w->histogram());
  }
  print_report(rep);
  return rep.st.open > 0 ? 0 : 1;  // nothing measured when no connection opened
}

}  // namespace
}  // namespace flowrelay::bench

int main(int argc, char** argv) { return flowrelay::bench::run(argc, argv); }
