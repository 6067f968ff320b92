#include "cluster.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace flowrelay::ctest {

namespace {

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

// A blocking-with-deadline TCP connection to 127.0.0.1:port; -1 on failure.
int connect_local(uint16_t port, Clock::time_point deadline) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return fd;
  if (errno != EINPROGRESS) {
    ::close(fd);
    return -1;
  }
  pollfd p{fd, POLLOUT, 0};
  if (::poll(&p, 1, remaining_ms(deadline)) != 1) {
    ::close(fd);
    return -1;
  }
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Parses one complete RESP reply at the start of `buf` (simple types, bulk strings; arrays are
// returned as "*<n>"). nullopt while incomplete.
std::optional<std::string> parse_reply(const std::string& buf) {
  const size_t eol = buf.find("\r\n");
  if (eol == std::string::npos || buf.empty()) return std::nullopt;
  const char type = buf[0];
  const std::string line = buf.substr(1, eol - 1);
  if (type == '$') {
    const long len = std::stol(line);
    if (len < 0) return std::string("$-1");
    if (buf.size() < eol + 2 + static_cast<size_t>(len) + 2) return std::nullopt;
    return "$" + line + " " + buf.substr(eol + 2, static_cast<size_t>(len));
  }
  return std::string(1, type) + line;
}

}  // namespace

const char* source_dir() { return FLOWRELAY_SOURCE_DIR; }
const char* nginx_binary() { return "/usr/sbin/nginx"; }
const char* redis_binary() { return "redis-server"; }

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string tail_lines(const std::string& text, size_t n) {
  size_t pos = text.size();
  if (pos > 0 && text[pos - 1] == '\n') --pos;
  for (size_t lines = 0; pos > 0; --pos) {
    if (text[pos - 1] == '\n' && ++lines == n) break;
  }
  return text.substr(pos);
}

// ---------------------------------------------------------------------------------------------

RunDir::RunDir() {
  std::string tmpl = "/tmp/flowrelay-cluster-XXXXXX";
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  ::chmod(tmpl.c_str(), 0755);
  _path = tmpl;
}

RunDir::~RunDir() {
  std::error_code ec;
  std::filesystem::remove_all(_path, ec);
}

std::string RunDir::write(const std::string& name, const std::string& content) const {
  const std::string p = _path + "/" + name;
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << content;
  if (!out) throw std::runtime_error("cannot write " + p);
  return p;
}

std::string RunDir::read(const std::string& name) const {
  return read_text_file(_path + "/" + name);
}

// ---------------------------------------------------------------------------------------------

void Process::start(const std::vector<std::string>& args, const std::string& log_path) {
  kill_group();
  _exit.reset();
  _pid = -1;
  // Everything the child needs is prepared before fork().
  std::vector<std::string> argv_s = args;
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s;
  for (char** e = environ; e && *e; ++e) {
    if (std::strncmp(*e, "REDIS_URL=", 10) != 0) env_s.emplace_back(*e);
  }
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (log_fd < 0 || null_fd < 0) throw std::runtime_error("cannot open " + log_path);
  const pid_t parent = ::getpid();

  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // a crashed test leaves nothing behind
    if (::getppid() != parent) ::_exit(127);
    ::dup2(null_fd, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    ::close_range(3, ~0U, 0);
    for (int sig = 1; sig < NSIG; ++sig) ::signal(sig, SIG_DFL);  // SIGPIPE is ignored here
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execvpe(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(log_fd);
  ::close(null_fd);
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  ::setpgid(pid, pid);  // also here, so the group exists before anyone signals it
  _pid = pid;
}

bool Process::running() {
  if (_pid <= 0 || _exit) return false;
  int status = 0;
  const pid_t r = ::waitpid(_pid, &status, WNOHANG);
  if (r == _pid) {
    _exit = itest::decode_wait_status(status);
    return false;
  }
  return true;
}

void Process::signal(int sig) {
  if (_pid > 0 && !_exit) ::kill(_pid, sig);
}

void Process::kill_group() {
  if (_pid <= 0) return;
  ::kill(-_pid, SIGKILL);  // the group: nginx workers too (a stopped process dies as well)
  if (!_exit) {
    ExitStatus st = itest::wait_pid(_pid, 5s);
    if (st.finished) _exit = st;
  }
  _pid = -1;
}

// ---------------------------------------------------------------------------------------------

std::optional<std::string> redis_command(uint16_t port, const std::vector<std::string>& args,
                                         Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  const int fd = connect_local(port, deadline);
  if (fd < 0) return std::nullopt;
  std::string req = "*" + std::to_string(args.size()) + "\r\n";
  for (const auto& a : args) req += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  size_t off = 0;
  std::optional<std::string> reply;
  while (off < req.size()) {
    const ssize_t n = ::send(fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, remaining_ms(deadline)) == 1) continue;
    }
    ::close(fd);
    return std::nullopt;
  }
  std::string buf;
  for (;;) {
    if ((reply = parse_reply(buf))) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, remaining_ms(deadline)) != 1) break;
    char tmp[4096];
    const ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n <= 0 && !(n < 0 && errno == EINTR)) break;
    if (n > 0) buf.append(tmp, static_cast<size_t>(n));
  }
  ::close(fd);
  return reply;
}

RedisServer::RedisServer(const RunDir& dir) : _dir(dir) {
  for (int attempt = 1;; ++attempt) {
    _port = itest::free_port();
    try {
      start();
      return;
    } catch (const std::exception&) {
      // The port may have been taken between free_port() and redis' bind: try another one.
      if (attempt == 3) throw;
    }
  }
}

Clock::time_point RedisServer::start(Millis timeout) {
  const std::string log_path = _dir.path() + "/redis-" + std::to_string(++_generation) + ".log";
  _proc.start({redis_binary(), "--port", std::to_string(_port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", _dir.path(), "--logfile", ""},
              log_path);
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (answers_ping(100ms)) return Clock::now();
    if (!_proc.running() || Clock::now() >= deadline) {
      _proc.kill_group();
      throw std::runtime_error("redis-server did not answer PING on port " + std::to_string(_port) +
                               "; log:\n" + read_text_file(log_path));
    }
    std::this_thread::sleep_for(2ms);
  }
}

bool RedisServer::answers_ping(Millis timeout) const {
  const auto r = redis_command(_port, {"PING"}, timeout);
  return r && *r == "+PONG";
}

void RedisServer::kill() { _proc.kill_group(); }
void RedisServer::pause() { _proc.signal(SIGSTOP); }
void RedisServer::resume() { _proc.signal(SIGCONT); }

std::string RedisServer::log() const {
  return _dir.read("redis-" + std::to_string(_generation) + ".log");
}

// ---------------------------------------------------------------------------------------------

namespace {

std::string replica_config(uint16_t ws_port, uint16_t http_port, const std::string& redis_url,
                           const ReplicaOptions& o) {
  std::ostringstream c;
  c << "plugin_dir: " << itest::plugin_dir() << "\n"
    << "log: { level: " << o.log_level << " }\n"
    << "shutdown_timeout_ms: 1000\n"
    << "transports:\n"
    << "  - plugin: transport-ws\n"
    << "    listen: 127.0.0.1:" << ws_port << "\n"
    << "    path: /ws/\n";
  for (const auto& line : o.transport_options) c << "    " << line << "\n";
  c << "broker:\n"
    << "  plugin: broker-redis\n"
    << "  url: " << redis_url << "\n";
  for (const auto& line : o.broker_options) c << "  " << line << "\n";
  c << "channels: { prefix: \"chat:\", echo: " << (o.echo ? "true" : "false") << " }\n"
    << "http:\n"
    << "  listen: 127.0.0.1:" << http_port << "\n";
  if (!o.api_key.empty()) c << "  api_key: \"" << o.api_key << "\"\n";
  for (const auto& line : o.http_options) c << "  " << line << "\n";
  return c.str();
}

}  // namespace

Replica::Replica(const RunDir& dir, std::string name, const std::string& redis_url,
                 const ReplicaOptions& options)
    : _dir(dir), _name(std::move(name)), _log_path(dir.path() + "/" + _name + ".log") {
  _ws_port = itest::free_port();
  do {
    _http_port = itest::free_port();
  } while (_http_port == _ws_port);
  const std::string config =
      _dir.write(_name + ".yaml", replica_config(_ws_port, _http_port, redis_url, options));
  _proc.start({itest::daemon_binary(), "--config", config}, _log_path);
}

void Replica::wait_ready(Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (!_proc.running()) {
      throw std::runtime_error("replica " + _name + " " +
                               (_proc.exit_status() ? _proc.exit_status()->describe() : "gone") +
                               " before it was ready; log:\n" + log());
    }
    if (ready_status() == 200) return;
    if (Clock::now() >= deadline) {
      throw std::runtime_error("replica " + _name + " not ready within " +
                               std::to_string(timeout.count()) + " ms; log:\n" + log());
    }
    std::this_thread::sleep_for(10ms);
  }
}

int Replica::ready_status(Millis timeout) const {
  return itest::http_get(_http_port, "/ready", timeout).status;
}

bool Replica::wait_ready_status(int status, Millis timeout) {
  return itest::wait_for([&] { return ready_status(500ms) == status; }, timeout, 5ms);
}

std::string Replica::log() const { return read_text_file(_log_path); }

// ---------------------------------------------------------------------------------------------

std::string render_nginx_conf(const std::string& listen, const std::array<std::string, 3>& replicas,
                              const std::string& run_dir) {
  const std::string path = std::string(source_dir()) + "/deploy/nginx.conf";
  std::string text = read_text_file(path);
  if (text.empty()) throw std::runtime_error("cannot read " + path);
  const std::vector<std::pair<std::string, std::string>> values = {{"${LISTEN}", listen},
                                                                   {"${REPLICA_1}", replicas[0]},
                                                                   {"${REPLICA_2}", replicas[1]},
                                                                   {"${REPLICA_3}", replicas[2]},
                                                                   {"${RUN_DIR}", run_dir}};
  for (const auto& [key, value] : values) {
    size_t pos = 0;
    bool found = false;
    while ((pos = text.find(key, pos)) != std::string::npos) {
      text.replace(pos, key.size(), value);
      pos += value.size();
      found = true;
    }
    if (!found) throw std::runtime_error(path + " has no " + key + " placeholder");
  }
  // A placeholder nginx would see (outside comments) that was not filled in.
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    const std::string code = line.substr(0, line.find('#'));
    if (code.find("${") != std::string::npos) {
      throw std::runtime_error(path + ": placeholder left after rendering: " + line);
    }
  }
  return text;
}

Nginx::Nginx(const RunDir& dir, const std::array<std::string, 3>& replicas, Millis timeout)
    : _dir(dir) {
  for (int attempt = 1;; ++attempt) {
    _port = itest::free_port();
    const std::string listen = "127.0.0.1:" + std::to_string(_port);
    const std::string conf =
        _dir.write("nginx.conf", render_nginx_conf(listen, replicas, dir.path()));
    _proc.start({nginx_binary(), "-p", dir.path() + "/", "-c", conf, "-e",
                 dir.path() + "/nginx-error.log", "-g", "daemon off;"},
                dir.path() + "/nginx.out");
    const auto deadline = Clock::now() + timeout;
    bool up = false;
    for (;;) {
      const int fd = connect_local(_port, Clock::now() + 100ms);
      if (fd >= 0) {
        ::close(fd);
        up = true;
        break;
      }
      if (!_proc.running() || Clock::now() >= deadline) break;
      std::this_thread::sleep_for(5ms);
    }
    if (up) return;
    const std::string log = error_log() + _dir.read("nginx.out");
    _proc.kill_group();
    if (attempt < 3 && log.find("Address already in use") != std::string::npos) continue;
    throw std::runtime_error("nginx did not come up on " + listen + "; log:\n" + log);
  }
}

std::string Nginx::error_log() const { return _dir.read("nginx-error.log"); }

// ---------------------------------------------------------------------------------------------

int established_on_local_port(uint16_t port) {
  int count = 0;
  for (const char* file : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(file);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      // "  0: 0100007F:1F90 0100007F:C350 01 ..."
      std::istringstream fields(line);
      std::string slot, local, remote, state;
      fields >> slot >> local >> remote >> state;
      const size_t colon = local.rfind(':');
      if (colon == std::string::npos || state != "01") continue;
      if (std::stoul(local.substr(colon + 1), nullptr, 16) == port) ++count;
    }
  }
  return count;
}

// ---------------------------------------------------------------------------------------------

size_t Clients::join(uint16_t port, const std::string& conversation) {
  auto c = std::make_unique<RawClient>(port);
  if (!c->upgrade("/ws/" + conversation)) {
    throw std::runtime_error("WebSocket handshake for /ws/" + conversation + " on port " +
                             std::to_string(port) + " failed");
  }
  _clients.push_back(std::move(c));
  _inboxes.emplace_back();
  _conversations.push_back(conversation);
  return _clients.size() - 1;
}

void Clients::send(size_t i, const std::string& text) {
  if (!_clients[i]->send_text(text)) {
    throw std::runtime_error("client " + std::to_string(i) + " could not send \"" + text + "\"");
  }
}

bool Clients::sync(size_t i, Millis timeout) {
  const int before = _inboxes[i].pongs;
  itest::FrameSpec ping;
  ping.opcode = itest::kPing;
  ping.payload = "sync";
  if (!_clients[i]->send_frame(ping)) return false;
  return pump_until([&] { return _inboxes[i].pongs > before; }, timeout);
}

bool Clients::pump_until(const std::function<bool()>& done, Millis timeout) {
  std::vector<RawClient*> raw;
  raw.reserve(_clients.size());
  for (auto& c : _clients) raw.push_back(c.get());
  return itest::pump_clients(
      raw,
      [&](size_t i, Frame&& f) {
        switch (f.opcode) {
          case itest::kText:
            _inboxes[i].texts.push_back(std::move(f.payload));
            break;
          case itest::kClose:
            if (!_inboxes[i].close) _inboxes[i].close = std::move(f);
            break;
          case itest::kPong:
            ++_inboxes[i].pongs;
            break;
          case itest::kPing: {
            itest::FrameSpec pong;
            pong.opcode = itest::kPong;
            pong.payload = f.payload;
            _clients[i]->send_frame(pong);
            break;
          }
          default:
            break;
        }
      },
      done, timeout);
}

bool Clients::wait_texts(size_t i, size_t n, Millis timeout) {
  return pump_until([&] { return _inboxes[i].texts.size() >= n; }, timeout);
}

bool Clients::wait_all_texts(const std::vector<size_t>& which, size_t n, Millis timeout) {
  return pump_until(
      [&] {
        for (size_t i : which)
          if (_inboxes[i].texts.size() < n) return false;
        return true;
      },
      timeout);
}

}  // namespace flowrelay::ctest
