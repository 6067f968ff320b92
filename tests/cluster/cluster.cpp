#include "cluster.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "support/daemon.h"
#include "support/http.h"
#include "support/ports.h"
#include "support/text.h"

namespace flowrelay::ctest {

namespace {

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

// stdout and stderr into `log_path`. REDIS_URL in the test's environment would override the
// broker's url option.
ProcessOptions logged_to(const std::string& log_path) { return {log_path, {"REDIS_URL"}}; }

}  // namespace

const char* source_dir() { return FLOWRELAY_SOURCE_DIR; }
const char* nginx_binary() { return "/usr/sbin/nginx"; }
const char* redis_binary() { return "redis-server"; }

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

RedisServer::RedisServer(const TempDir& dir, std::vector<std::string> extra_args, std::string name)
    : _dir(dir), _extra_args(std::move(extra_args)), _name(std::move(name)) {
  for (int attempt = 1;; ++attempt) {
    _port = free_port();
    try {
      start();
      return;
    } catch (const std::exception&) {
      // The port may have been taken between free_port() and redis' bind: try another one.
      if (attempt == 3) throw;
    }
  }
}

RedisServer::RedisServer(const TempDir& dir, uint16_t port, std::vector<std::string> extra_args,
                         std::string name)
    : _dir(dir), _extra_args(std::move(extra_args)), _name(std::move(name)), _port(port) {
  start();
}

Clock::time_point RedisServer::start(Millis timeout) {
  const std::string log_path =
      _dir.path() + "/" + _name + "-" + std::to_string(++_generation) + ".log";
  std::vector<std::string> argv = {redis_binary(),
                                   "--port",
                                   std::to_string(_port),
                                   "--bind",
                                   "127.0.0.1",
                                   "--save",
                                   "",
                                   "--appendonly",
                                   "no",
                                   "--dir",
                                   _dir.path(),
                                   "--logfile",
                                   ""};
  argv.insert(argv.end(), _extra_args.begin(), _extra_args.end());
  _proc.start(argv, logged_to(log_path));
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
  return _dir.read(_name + "-" + std::to_string(_generation) + ".log");
}

// ---------------------------------------------------------------------------------------------

namespace {

std::string replica_config(uint16_t ws_port, uint16_t http_port, uint16_t sse_port,
                           const std::string& redis_url, const ReplicaOptions& o) {
  std::ostringstream c;
  c << "plugin_dir: " << plugin_dir() << "\n"
    << "log: { level: " << o.log_level << " }\n"
    << "shutdown_timeout_ms: 1000\n"
    << "transports:\n"
    << "  - plugin: transport-ws\n"
    << "    listen: 127.0.0.1:" << ws_port << "\n"
    << "    path: /ws/\n";
  for (const auto& line : o.transport_options) c << "    " << line << "\n";
  if (sse_port != 0) {
    c << "  - plugin: transport-sse\n"
      << "    listen: 127.0.0.1:" << sse_port << "\n"
      << "    path: /sse/\n";
    for (const auto& line : o.sse_options) c << "    " << line << "\n";
  }
  c << "broker:\n"
    << "  plugin: broker-redis\n"
    << "  url: " << redis_url << "\n";
  for (const auto& line : o.broker_options) c << "  " << line << "\n";
  c << "channels: { prefix: \"chat:\", echo: " << (o.echo ? "true" : "false") << " }\n"
    << "http:\n"
    << "  listen: 127.0.0.1:" << http_port << "\n";
  if (!o.api_key.empty()) c << "  api_key: \"" << o.api_key << "\"\n";
  for (const auto& line : o.http_options) c << "  " << line << "\n";
  for (const auto& line : o.sections) c << line << "\n";
  return c.str();
}

}  // namespace

Replica::Replica(const TempDir& dir, std::string name, const std::string& redis_url,
                 const ReplicaOptions& options)
    : _dir(dir), _name(std::move(name)), _log_path(dir.path() + "/" + _name + ".log") {
  _ws_port = free_port();
  do {
    _http_port = free_port();
  } while (_http_port == _ws_port);
  if (options.sse) {
    do {
      _sse_port = free_port();
    } while (_sse_port == _ws_port || _sse_port == _http_port);
  }
  const std::string config = _dir.write(
      _name + ".yaml", replica_config(_ws_port, _http_port, _sse_port, redis_url, options));
  _proc.start({daemon_binary(), "--config", config}, logged_to(_log_path));
}

void Replica::wait_ready(Millis timeout) {
  switch (await_ready(_proc, _http_port, timeout)) {
    case Readiness::Ready:
      return;
    case Readiness::Exited:
      throw std::runtime_error("replica " + _name + " " + _proc.exit_status()->describe() +
                               " before it was ready; log:\n" + log());
    case Readiness::TimedOut:
      throw std::runtime_error("replica " + _name + " not ready within " +
                               std::to_string(timeout.count()) + " ms; log:\n" + log());
  }
}

int Replica::ready_status(Millis timeout) const {
  return http_get(_http_port, "/ready", timeout).status;
}

bool Replica::wait_ready_status(int status, Millis timeout) {
  return wait_for([&] { return ready_status(500ms) == status; }, timeout, 5ms);
}

std::string Replica::log() const { return read_text_file(_log_path); }

// ---------------------------------------------------------------------------------------------

std::string render_nginx_conf(const std::string& listen, const std::array<std::string, 3>& replicas,
                              const std::string& run_dir,
                              const std::vector<std::string>& sse_replicas) {
  // Without SSE listeners the /sse/ upstream names the WebSocket ones: nginx only needs
  // addresses, and no test sends /sse/ there.
  auto sse = [&](size_t i) {
    return sse_replicas.empty() ? replicas[i] : sse_replicas[std::min(i, sse_replicas.size() - 1)];
  };
  const std::string path = std::string(source_dir()) + "/deploy/nginx.conf";
  std::string text = read_text_file(path);
  if (text.empty()) throw std::runtime_error("cannot read " + path);
  const std::vector<std::pair<std::string, std::string>> values = {
      {"${LISTEN}", listen},         {"${REPLICA_1}", replicas[0]}, {"${REPLICA_2}", replicas[1]},
      {"${REPLICA_3}", replicas[2]}, {"${SSE_1}", sse(0)},          {"${SSE_2}", sse(1)},
      {"${SSE_3}", sse(2)},          {"${RUN_DIR}", run_dir}};
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

Nginx::Nginx(const TempDir& dir, const std::array<std::string, 3>& replicas, Millis timeout,
             const std::vector<std::string>& sse_replicas)
    : _dir(dir) {
  for (int attempt = 1;; ++attempt) {
    _port = free_port();
    const std::string listen = "127.0.0.1:" + std::to_string(_port);
    const std::string text = render_nginx_conf(listen, replicas, dir.path(), sse_replicas);
    const std::string conf = _dir.write("nginx.conf", text);
    _proc.start({nginx_binary(), "-p", dir.path() + "/", "-c", conf, "-e",
                 dir.path() + "/nginx-error.log", "-g", "daemon off;"},
                logged_to(dir.path() + "/nginx.out"));
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
  FrameSpec ping;
  ping.opcode = kPing;
  ping.payload = "sync";
  if (!_clients[i]->send_frame(ping)) return false;
  return pump_until([&] { return _inboxes[i].pongs > before; }, timeout);
}

bool Clients::pump_until(const std::function<bool()>& done, Millis timeout) {
  std::vector<RawClient*> raw;
  raw.reserve(_clients.size());
  for (auto& c : _clients) raw.push_back(c.get());
  return pump_clients(
      raw,
      [&](size_t i, Frame&& f) {
        switch (f.opcode) {
          case kText:
            _inboxes[i].texts.push_back(std::move(f.payload));
            break;
          case kClose:
            if (!_inboxes[i].close) _inboxes[i].close = std::move(f);
            break;
          case kPong:
            ++_inboxes[i].pongs;
            break;
          case kPing:
            _clients[i]->answer_ping(f);
            break;
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
