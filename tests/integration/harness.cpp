#include "harness.h"

#include <Poco/Base64Encoder.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/SHA1Engine.h>
#include <Poco/StreamCopier.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace flowrelay::itest {

namespace {

// A test process that writes to a socket the daemon already closed must not die of SIGPIPE.
[[maybe_unused]] const bool kSigpipeIgnored = [] {
  ::signal(SIGPIPE, SIG_IGN);
  return true;
}();

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r' || s[b] == '\n')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r' || s[e - 1] == '\n'))
    --e;
  return std::string(s.substr(b, e - b));
}

// Spawns FLOWRELAYD_BIN with args, stdout/stderr redirected to files, no inherited fds.
pid_t spawn_daemon(const std::vector<std::string>& args, const std::string& out_path,
                   const std::string& err_path) {
  std::vector<std::string> argv_s{daemon_binary()};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  // Thousands of client sockets may be open in this process: the daemon must not inherit them.
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  // The daemon starts with default signal dispositions (SIGPIPE is ignored here).
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t def;
  sigemptyset(&def);
  sigaddset(&def, SIGPIPE);
  sigaddset(&def, SIGTERM);
  sigaddset(&def, SIGINT);
  posix_spawnattr_setsigdefault(&attr, &def);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, argv[0], &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    throw std::runtime_error(std::string("posix_spawn ") + argv[0] + ": " + std::strerror(rc));
  }
  return pid;
}

}  // namespace

ExitStatus decode_wait_status(int status) {
  ExitStatus st;
  st.finished = true;
  if (WIFEXITED(status)) {
    st.exited = true;
    st.code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    st.signal = WTERMSIG(status);
  }
  return st;
}

// Waits (bounded) for `pid` to exit; the status, or finished=false on timeout.
ExitStatus wait_pid(pid_t pid, Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return decode_wait_status(status);
    if (r < 0 && errno != EINTR) {
      ExitStatus st;
      st.finished = true;  // not our child any more / already reaped
      return st;
    }
    if (Clock::now() >= deadline) return ExitStatus{};
    std::this_thread::sleep_for(5ms);
  }
}

// FLOWRELAY_TEST_DAEMON / FLOWRELAY_TEST_PLUGIN_DIR run the suites against another build (to
// show that a regression test fails on the build before the fix).
const char* daemon_binary() {
  const char* other = std::getenv("FLOWRELAY_TEST_DAEMON");
  return other && *other ? other : FLOWRELAYD_BIN;
}
const char* plugin_dir() {
  const char* other = std::getenv("FLOWRELAY_TEST_PLUGIN_DIR");
  return other && *other ? other : FLOWRELAY_PLUGIN_DIR;
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

namespace {

// Binds 127.0.0.1:<port> (0 = any) and returns the bound port, or 0 if the bind failed.
uint16_t try_bind(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  socklen_t len = sizeof addr;
  uint16_t bound = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    bound = ntohs(addr.sin_port);
  }
  ::close(fd);
  return bound;
}

}  // namespace

uint16_t free_port() {
  // Prefer a port below the ephemeral range: a port the kernel handed out for bind(0) can be
  // taken again by any outgoing connect() (thousands of them when scale tests run in parallel)
  // before the daemon binds it.
  unsigned low = 32768;
  {
    std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
    range >> low;
  }
  static thread_local std::mt19937 rng{std::random_device{}()};
  if (low > 11000) {
    std::uniform_int_distribution<unsigned> pick(10000, low - 1);
    for (int attempt = 0; attempt < 100; ++attempt) {
      const auto port = static_cast<uint16_t>(pick(rng));
      if (try_bind(port) == port) return port;
    }
  }
  const uint16_t any = try_bind(0);
  if (any == 0) throw std::runtime_error("cannot find a free TCP port");
  return any;
}

std::string ExitStatus::describe() const {
  if (!finished) return "still running";
  if (exited) return "exited with code " + std::to_string(code);
  if (signal)
    return std::string("killed by signal ") + std::to_string(signal) + " (" + strsignal(signal) +
           ")";
  return "gone (status unknown)";
}

ProcessResult run_daemon_command(const std::vector<std::string>& args, Millis timeout) {
  TempDir dir;
  const std::string out_path = dir.path() + "/stdout";
  const std::string err_path = dir.path() + "/stderr";
  pid_t pid = spawn_daemon(args, out_path, err_path);
  ProcessResult r;
  r.status = wait_pid(pid, timeout);
  if (!r.status.finished) {
    ::kill(pid, SIGKILL);
    wait_pid(pid, 5s);
  }
  r.out = read_file(out_path);
  r.err = read_file(err_path);
  return r;
}

std::vector<std::string> non_empty_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!trim(line).empty()) lines.push_back(line);
  }
  return lines;
}

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/flowrelay-itest-XXXXXX";
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  _path = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(_path, ec);
}

std::string TempDir::write(const std::string& name, const std::string& content) const {
  std::string p = _path + "/" + name;
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << content;
  if (!out) throw std::runtime_error("cannot write " + p);
  return p;
}

// ---------------------------------------------------------------------------------------------

std::string make_config(const Ports& ports, const DaemonOptions& o) {
  std::ostringstream c;
  c << "plugin_dir: " << plugin_dir() << "\n"
    << "log: { level: " << o.log_level << " }\n"
    << "shutdown_timeout_ms: " << o.shutdown_timeout_ms << "\n"
    << "transports:\n"
    << "  - plugin: transport-ws\n"
    << "    listen: 127.0.0.1:" << ports.ws << "\n"
    << "    path: /ws/\n"
    << "    max_message_size: " << o.max_message_size << "\n"
    << o.transport_extra << "broker:\n"
    << "  plugin: broker-local\n"
    << o.broker_extra << "channels: { prefix: \"chat:\", echo: true }\n";
  // The flow form when nothing is added keeps the line numbers config_test relies on.
  if (o.api_key.empty() && o.http_extra.empty()) {
    c << "http: { listen: 127.0.0.1:" << ports.http << " }\n";
  } else {
    c << "http:\n"
      << "  listen: 127.0.0.1:" << ports.http << "\n";
    if (!o.api_key.empty()) c << "  api_key: \"" << o.api_key << "\"\n";
    c << o.http_extra;
  }
  c << o.extra;
  return c.str();
}

long proc_status_field(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  const std::string prefix = field + ":";
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) {
      try {
        return std::stol(line.substr(prefix.size()));
      } catch (...) {
        return -1;
      }
    }
  }
  return -1;
}

Daemon::Daemon(DaemonOptions options, Millis ready_timeout) {
  _stderr_path = _dir.path() + "/stderr";
  _stdout_path = _dir.path() + "/stdout";
  // A chosen port can still be taken by someone else before the daemon binds it: retry with new
  // ports (a few times) when the daemon reports exactly that.
  for (int attempt = 1;; ++attempt) {
    _ports.ws = free_port();
    do {
      _ports.http = free_port();
    } while (_ports.http == _ports.ws);
    _config_path = _dir.write("flowrelay.yaml", make_config(_ports, options));
    _exit.reset();
    _pid = spawn_daemon({"--config", _config_path}, _stdout_path, _stderr_path);

    const auto deadline = Clock::now() + ready_timeout;
    for (;;) {
      if (!running()) break;
      if (http_get(_ports.http, "/ready", 1s).status == 200) return;
      if (Clock::now() >= deadline) {
        ::kill(_pid, SIGKILL);  // the destructor does not run when the constructor throws
        wait_pid(_pid, 5s);
        throw std::runtime_error("flowrelayd not ready (GET /ready != 200) within " +
                                 std::to_string(ready_timeout.count()) + " ms; stderr:\n" +
                                 stderr_text());
      }
      std::this_thread::sleep_for(20ms);
    }
    const std::string err = stderr_text();
    if (attempt < 3 && err.find("already in use") != std::string::npos) continue;
    throw std::runtime_error("flowrelayd " + _exit->describe() + " before it was ready; stderr:\n" +
                             err);
  }
}

Daemon::~Daemon() {
  if (_pid > 0 && !_exit) {
    ::kill(_pid, SIGKILL);
    wait_pid(_pid, 5s);
  }
}

std::string Daemon::stderr_text() const { return read_file(_stderr_path); }
std::string Daemon::stdout_text() const { return read_file(_stdout_path); }

bool Daemon::running() {
  if (_exit) return false;
  int status = 0;
  pid_t r = ::waitpid(_pid, &status, WNOHANG);
  if (r == _pid) {
    _exit = decode_wait_status(status);
    return false;
  }
  return true;
}

ExitStatus Daemon::wait_exit(Millis timeout) {
  if (_exit) return *_exit;
  ExitStatus st = wait_pid(_pid, timeout);
  if (st.finished) _exit = st;
  return st;
}

ExitStatus Daemon::stop(Millis timeout) {
  if (_exit) return *_exit;
  ::kill(_pid, SIGTERM);
  return wait_exit(timeout);
}

// ---------------------------------------------------------------------------------------------

HttpResult http_get(uint16_t port, const std::string& path, Millis timeout) {
  return http_request(port, Poco::Net::HTTPRequest::HTTP_GET, path, "", {}, timeout);
}

namespace {

// Sends one request on `session` and reads the whole answer; status 0 on any failure.
HttpResult exchange(Poco::Net::HTTPClientSession& session, const std::string& method,
                    const std::string& path, const std::string& body, const HttpHeaders& headers) {
  HttpResult r;
  try {
    Poco::Net::HTTPRequest req(method, path, Poco::Net::HTTPMessage::HTTP_1_1);
    req.setKeepAlive(session.getKeepAlive());
    for (const auto& [name, value] : headers) req.set(name, value);
    if (!body.empty() || method == Poco::Net::HTTPRequest::HTTP_POST) {
      if (!req.has("Content-Type")) req.setContentType("application/json");
      req.setContentLength(static_cast<std::streamsize>(body.size()));
    }
    std::ostream& out = session.sendRequest(req);
    out.write(body.data(), static_cast<std::streamsize>(body.size()));
    out.flush();
    Poco::Net::HTTPResponse resp;
    std::istream& in = session.receiveResponse(resp);
    r.status = static_cast<int>(resp.getStatus());
    r.content_type = resp.getContentType();
    std::ostringstream ss;
    Poco::StreamCopier::copyStream(in, ss);
    r.body = ss.str();
  } catch (const Poco::Exception& e) {
    r = HttpResult{};
    r.body = e.displayText();
    session.reset();
  } catch (const std::exception& e) {
    r = HttpResult{};
    r.body = e.what();
    session.reset();
  }
  return r;
}

}  // namespace

HttpResult http_request(uint16_t port, const std::string& method, const std::string& path,
                        const std::string& body, const HttpHeaders& headers, Millis timeout) {
  Poco::Net::HTTPClientSession session("127.0.0.1", port);
  session.setTimeout(Poco::Timespan(static_cast<long>(timeout.count()) * 1000));
  session.setKeepAlive(false);
  return exchange(session, method, path, body, headers);
}

HttpResult http_post(uint16_t port, const std::string& path, const std::string& body,
                     const HttpHeaders& headers, Millis timeout) {
  return http_request(port, Poco::Net::HTTPRequest::HTTP_POST, path, body, headers, timeout);
}

struct HttpSession::Impl {
  Poco::Net::HTTPClientSession session;
  Impl(uint16_t port, Millis timeout) : session("127.0.0.1", port) {
    session.setTimeout(Poco::Timespan(static_cast<long>(timeout.count()) * 1000));
    session.setKeepAlive(true);
  }
};

HttpSession::HttpSession(uint16_t port, Millis timeout)
    : _impl(std::make_unique<Impl>(port, timeout)) {}
HttpSession::~HttpSession() = default;

HttpResult HttpSession::post(const std::string& path, const std::string& body,
                             const HttpHeaders& headers) {
  return exchange(_impl->session, Poco::Net::HTTPRequest::HTTP_POST, path, body, headers);
}

double metric_value(uint16_t http_port, const std::string& name) {
  const HttpResult r = http_get(http_port, "/metrics");
  if (r.status != 200) return -1;
  std::istringstream in(r.body);
  bool found = false;
  double sum = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.size() <= name.size() || line.compare(0, name.size(), name) != 0) continue;
    const char next = line[name.size()];
    if (next != ' ' && next != '{') continue;
    const size_t sp = line.rfind(' ');
    try {
      sum += std::stod(line.substr(sp + 1));
      found = true;
    } catch (...) {
    }
  }
  return found ? sum : -1;
}

bool wait_for(const std::function<bool()>& condition, Millis timeout, Millis interval) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (condition()) return true;
    if (Clock::now() >= deadline) return condition();
    std::this_thread::sleep_for(interval);
  }
}

// ---------------------------------------------------------------------------------------------

WsClient::WsClient(uint16_t port, const std::string& id, const std::string& subprotocol) {
  Poco::Net::HTTPClientSession session("127.0.0.1", port);
  session.setTimeout(Poco::Timespan(5, 0));
  Poco::Net::HTTPRequest req(Poco::Net::HTTPRequest::HTTP_GET, "/ws/" + id,
                             Poco::Net::HTTPMessage::HTTP_1_1);
  if (!subprotocol.empty()) req.set("Sec-WebSocket-Protocol", subprotocol);
  Poco::Net::HTTPResponse resp;
  _ws = std::make_unique<Poco::Net::WebSocket>(session, req, resp);
  _ws->setMaxPayloadSize(64 * 1024 * 1024);
  _subprotocol = resp.get("Sec-WebSocket-Protocol", "");
}

void WsClient::send_text(std::string_view text) {
  _ws->sendFrame(text.data(), static_cast<int>(text.size()), Poco::Net::WebSocket::FRAME_TEXT);
}

void WsClient::send_ping(std::string_view payload) {
  _ws->sendFrame(
      payload.data(), static_cast<int>(payload.size()),
      int{Poco::Net::WebSocket::FRAME_FLAG_FIN} | int{Poco::Net::WebSocket::FRAME_OP_PING});
}

std::optional<WsMessage> WsClient::receive(Millis timeout) {
  // Wait for readability first so a timeout never interrupts a half-read frame.
  if (!_ws->poll(Poco::Timespan(static_cast<long>(timeout.count()) * 1000),
                 Poco::Net::Socket::SELECT_READ)) {
    return std::nullopt;
  }
  _ws->setReceiveTimeout(Poco::Timespan(5, 0));
  WsMessage m;
  Poco::Buffer<char> buf(0);
  try {
    int n = _ws->receiveFrame(buf, m.flags);
    m.payload.assign(buf.begin(), buf.size());
    if (n == 0 && m.flags == 0) m.eof = true;
  } catch (const Poco::Net::ConnectionResetException&) {
    m.eof = true;
  } catch (const Poco::TimeoutException&) {
    return std::nullopt;
  }
  return m;
}

void WsClient::close(uint16_t code) {
  std::string p = close_payload(code);
  _ws->sendFrame(
      p.data(), static_cast<int>(p.size()),
      int{Poco::Net::WebSocket::FRAME_FLAG_FIN} | int{Poco::Net::WebSocket::FRAME_OP_CLOSE});
}

// ---------------------------------------------------------------------------------------------

std::optional<std::string> HttpHead::header(std::string_view name) const {
  const std::string n = lower(name);
  for (const auto& [k, v] : headers) {
    if (lower(k) == n) return v;
  }
  return std::nullopt;
}

uint16_t Frame::close_code() const {
  if (payload.size() < 2) return 0;
  return static_cast<uint16_t>((static_cast<uint8_t>(payload[0]) << 8) |
                               static_cast<uint8_t>(payload[1]));
}

std::string Frame::close_reason() const { return payload.size() > 2 ? payload.substr(2) : ""; }

std::string Frame::describe() const {
  std::ostringstream s;
  s << "frame{fin=" << fin << " rsv=" << int(rsv) << " opcode=" << int(opcode)
    << " masked=" << masked << " len=" << payload.size();
  if (opcode == kClose && has_close_code()) s << " code=" << close_code();
  if (opcode == kText || opcode == kClose || opcode == kPong) {
    s << " payload=\"" << payload.substr(0, 80) << (payload.size() > 80 ? "..." : "") << "\"";
  }
  s << "}";
  return s.str();
}

std::string encode_frame(const FrameSpec& spec) {
  std::string out;
  const uint64_t len = spec.declared_len.value_or(spec.payload.size());
  out.push_back(
      static_cast<char>((spec.fin ? 0x80 : 0) | ((spec.rsv & 7) << 4) | (spec.opcode & 0x0f)));
  const uint8_t mask_bit = spec.masked ? 0x80 : 0;
  int bits = spec.len_bits;
  if (bits == 0) bits = len < 126 ? 7 : (len <= 0xffff ? 16 : 64);
  if (bits == 7) {
    out.push_back(static_cast<char>(mask_bit | len));
  } else if (bits == 16) {
    out.push_back(static_cast<char>(mask_bit | 126));
    out.push_back(static_cast<char>((len >> 8) & 0xff));
    out.push_back(static_cast<char>(len & 0xff));
  } else {
    out.push_back(static_cast<char>(mask_bit | 127));
    for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((len >> (8 * i)) & 0xff));
  }
  if (spec.masked) {
    for (uint8_t b : spec.mask) out.push_back(static_cast<char>(b));
  }
  for (size_t i = 0; i < spec.payload.size(); ++i) {
    uint8_t b = static_cast<uint8_t>(spec.payload[i]);
    if (spec.masked) b ^= spec.mask[i % 4];
    out.push_back(static_cast<char>(b));
  }
  return out;
}

std::string close_payload(uint16_t code, std::string_view reason) {
  std::string p;
  p.push_back(static_cast<char>(code >> 8));
  p.push_back(static_cast<char>(code & 0xff));
  p.append(reason);
  return p;
}

std::string make_ws_key() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string raw(16, '\0');
  for (auto& c : raw) c = static_cast<char>(rng() & 0xff);
  std::ostringstream s;
  Poco::Base64Encoder enc(s);
  enc << raw;
  enc.close();
  return s.str();
}

std::string expected_accept(const std::string& key) {
  Poco::SHA1Engine sha1;
  sha1.update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
  const Poco::DigestEngine::Digest& d = sha1.digest();
  std::ostringstream s;
  Poco::Base64Encoder enc(s);
  enc.write(reinterpret_cast<const char*>(d.data()), static_cast<std::streamsize>(d.size()));
  enc.close();
  return s.str();
}

std::string handshake_request(const std::string& path, const std::string& key,
                              const std::string& extra_headers) {
  return "GET " + path +
         " HTTP/1.1\r\n"
         "Host: 127.0.0.1\r\n"
         "Upgrade: websocket\r\n"
         "Connection: Upgrade\r\n"
         "Sec-WebSocket-Key: " +
         key +
         "\r\n"
         "Sec-WebSocket-Version: 13\r\n" +
         extra_headers + "\r\n";
}

RawClient::RawClient(uint16_t port, int rcvbuf) {
  if (rcvbuf > 0) {
    _sock = Poco::Net::StreamSocket(Poco::Net::SocketAddress::IPv4);
    _sock.setReceiveBufferSize(rcvbuf);
  }
  _sock.connect(Poco::Net::SocketAddress("127.0.0.1", port), Poco::Timespan(5, 0));
  _sock.setNoDelay(true);
}

int RawClient::fd() const { return _sock.impl()->sockfd(); }

bool RawClient::fill(Clock::time_point deadline) {
  if (_closed) return false;
  pollfd p{fd(), POLLIN, 0};
  int rc = ::poll(&p, 1, remaining_ms(deadline));
  if (rc <= 0) return false;
  return pump();
}

bool RawClient::pump() {
  if (_closed) return false;
  char tmp[65536];
  for (;;) {
    ssize_t n = ::recv(fd(), tmp, sizeof tmp, MSG_DONTWAIT);
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

std::optional<Frame> RawClient::pop_frame() {
  const auto* d = reinterpret_cast<const uint8_t*>(_buf.data());
  const size_t n = _buf.size();
  if (n < 2) return std::nullopt;
  Frame f;
  f.fin = (d[0] & 0x80) != 0;
  f.rsv = (d[0] >> 4) & 7;
  f.opcode = d[0] & 0x0f;
  f.masked = (d[1] & 0x80) != 0;
  uint64_t len = d[1] & 0x7f;
  size_t pos = 2;
  if (len == 126) {
    if (n < 4) return std::nullopt;
    len = (uint64_t{d[2]} << 8) | d[3];
    pos = 4;
  } else if (len == 127) {
    if (n < 10) return std::nullopt;
    len = 0;
    for (int i = 0; i < 8; ++i) len = (len << 8) | d[2 + i];
    pos = 10;
  }
  uint8_t mask[4] = {0, 0, 0, 0};
  if (f.masked) {
    if (n < pos + 4) return std::nullopt;
    std::memcpy(mask, d + pos, 4);
    pos += 4;
  }
  if (n - pos < len) return std::nullopt;
  f.payload.assign(_buf, pos, len);
  if (f.masked) {
    for (size_t i = 0; i < f.payload.size(); ++i) f.payload[i] ^= static_cast<char>(mask[i % 4]);
  }
  _buf.erase(0, pos + len);
  return f;
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
    auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
    if (left < 0ms) left = 0ms;
    if (read_frame(f, left) != ReadResult::Frame) return std::nullopt;
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
    ssize_t n = ::send(fd(), bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
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

HttpHead RawClient::read_head(Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  HttpHead head;
  size_t end;
  while ((end = _buf.find("\r\n\r\n")) == std::string::npos) {
    if (_closed || Clock::now() >= deadline) return head;
    fill(deadline);
  }
  std::string text = _buf.substr(0, end);
  _buf.erase(0, end + 4);
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);
  head.status_line = trim(line);
  // "HTTP/1.1 101 Switching Protocols"
  auto sp = head.status_line.find(' ');
  if (sp != std::string::npos) {
    try {
      head.status = std::stoi(head.status_line.substr(sp + 1, 3));
    } catch (...) {
      head.status = 0;
    }
  }
  while (std::getline(in, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    head.headers.emplace_back(trim(line.substr(0, colon)), trim(line.substr(colon + 1)));
  }
  return head;
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
  HttpHead h = request(handshake_request(path, key, extra_headers));
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

bool pump_clients(const std::vector<RawClient*>& clients,
                  const std::function<void(size_t, Frame&&)>& on_frame,
                  const std::function<bool()>& done, Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  std::vector<pollfd> fds(clients.size());
  for (;;) {
    for (size_t i = 0; i < clients.size(); ++i) {
      while (auto f = clients[i]->pop_frame()) on_frame(i, std::move(*f));
    }
    if (done()) return true;
    if (Clock::now() >= deadline) return false;
    for (size_t i = 0; i < clients.size(); ++i) {
      fds[i] = pollfd{clients[i]->closed() ? -1 : clients[i]->fd(), POLLIN, 0};
    }
    int rc = ::poll(fds.data(), fds.size(), std::min(remaining_ms(deadline), 100));
    if (rc < 0 && errno != EINTR) return done();
    for (size_t i = 0; i < clients.size(); ++i) {
      if (fds[i].fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR))) clients[i]->pump();
    }
  }
}

}  // namespace flowrelay::itest
