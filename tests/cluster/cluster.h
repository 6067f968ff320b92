// Cluster test harness: a real redis-server, N flowrelayd replicas on broker-redis and nginx
// rendered from the shipped deploy/nginx.conf, all on free ports on 127.0.0.1.
//
// Built on the shared test support (tests/support/): every process is a support Process (own
// process group, PR_SET_PDEATHSIG, SIGKILLed and reaped with bounded waits when its owner is
// destroyed), in a TempDir that nginx workers can traverse. The support's Daemon always writes
// a broker-local config, so the replicas are launched here (same config shape as
// ./start.sh cluster).
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "support/process.h"
#include "support/temp_dir.h"
#include "support/wait.h"
#include "support/ws_client.h"

namespace flowrelay::ctest {

using namespace ::flowrelay::test;

// Source tree (compile definition): the test renders deploy/nginx.conf from it.
const char* source_dir();
const char* nginx_binary();  // /usr/sbin/nginx
const char* redis_binary();  // redis-server (from PATH)

// ---------------------------------------------------------------------------------------------
// Redis

// One RESP command over a fresh connection; the first reply in RESP form ("+PONG", ":2",
// "$5 hello", "-ERR ..."), or nullopt on connection failure / timeout.
std::optional<std::string> redis_command(uint16_t port, const std::vector<std::string>& args,
                                         Millis timeout = 1s);

class RedisServer {
 public:
  // Picks a free port, starts, waits for PONG. `extra_args` go after the defaults (e.g.
  // "--replicaof"); `name` prefixes the log files, so several servers can share one dir.
  explicit RedisServer(const TempDir& dir, std::vector<std::string> extra_args = {},
                       std::string name = "redis");
  // On `port`, chosen by the caller (a cluster node's config names its port, and its bus port,
  // port + 10000, must be free too): no other port is tried. Throws if it does not start.
  RedisServer(const TempDir& dir, uint16_t port, std::vector<std::string> extra_args,
              std::string name);
  uint16_t port() const { return _port; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(_port); }
  pid_t pid() const { return _proc.pid(); }

  // Starts redis-server on port() and waits (bounded) for PING to answer PONG; returns the
  // moment it first answered. Throws if it does not.
  Clock::time_point start(Millis timeout = 5s);
  void kill();    // SIGKILL and reap
  void pause();   // SIGSTOP: the socket stays open, nothing answers
  void resume();  // SIGCONT
  bool answers_ping(Millis timeout = 200ms) const;
  std::string log() const;

 private:
  const TempDir& _dir;
  std::vector<std::string> _extra_args;
  std::string _name;
  uint16_t _port = 0;
  int _generation = 0;
  Process _proc;
};

// ---------------------------------------------------------------------------------------------
// flowrelayd replicas

struct ReplicaOptions {
  // Extra options of the broker-redis section, one "key: value" per line (unindented).
  std::vector<std::string> broker_options;
  std::string log_level = "information";
  // Extra options of the transport-ws entry and of the http section, one "key: value" per line.
  std::vector<std::string> transport_options{};
  std::vector<std::string> http_options{};
  // http.api_key (the publish API); empty: none.
  std::string api_key{};
  bool echo = true;  // channels.echo
  // Top-level sections after the others (e.g. "backend:" and its indented keys), one line each.
  std::vector<std::string> sections{};
  // A second transport, transport-sse (path /sse/) on Replica::sse_port(), with these options
  // ("key: value", one per line).
  bool sse = false;
  std::vector<std::string> sse_options{};
};

class Replica {
 public:
  // Writes <name>.yaml (broker-redis at `redis_url`) and starts flowrelayd; call wait_ready().
  Replica(const TempDir& dir, std::string name, const std::string& redis_url,
          const ReplicaOptions& options = {});
  // Waits (bounded) for GET /ready == 200; throws with the log if it exits or times out.
  void wait_ready(Millis timeout = 10s);

  const std::string& name() const { return _name; }
  uint16_t ws_port() const { return _ws_port; }
  uint16_t http_port() const { return _http_port; }
  std::string ws_address() const { return "127.0.0.1:" + std::to_string(_ws_port); }
  uint16_t sse_port() const { return _sse_port; }  // 0 unless ReplicaOptions::sse
  std::string sse_address() const { return "127.0.0.1:" + std::to_string(_sse_port); }
  pid_t pid() const { return _proc.pid(); }
  bool running() { return _proc.running(); }
  int ready_status(Millis timeout = 1s) const;  // GET /ready: 200, 503, or 0 (no answer)
  // Polls /ready until it answers `status` (bounded); returns whether it did.
  bool wait_ready_status(int status, Millis timeout);
  void kill() { _proc.kill_group(); }
  void pause() { _proc.signal(SIGSTOP); }
  void resume() { _proc.signal(SIGCONT); }
  std::string log() const;

 private:
  const TempDir& _dir;
  std::string _name;
  uint16_t _ws_port = 0;
  uint16_t _http_port = 0;
  uint16_t _sse_port = 0;
  std::string _log_path;
  Process _proc;
};

// ---------------------------------------------------------------------------------------------
// nginx

// deploy/nginx.conf from the source tree with its placeholders filled in (throws if the file is
// missing or a ${...} placeholder is left over). `sse_replicas`: the transport-sse listeners of
// its /sse/ upstream (fewer than three repeat the last).
std::string render_nginx_conf(const std::string& listen, const std::array<std::string, 3>& replicas,
                              const std::string& run_dir,
                              const std::vector<std::string>& sse_replicas = {});

class Nginx {
 public:
  // Renders the shipped template into <dir>/nginx.conf (its /sse/ upstream: `sse_replicas`),
  // starts nginx in the foreground and waits (bounded) until its
  // port accepts connections.
  Nginx(const TempDir& dir, const std::array<std::string, 3>& replicas, Millis timeout = 10s,
        const std::vector<std::string>& sse_replicas = {});
  uint16_t port() const { return _port; }
  std::string error_log() const;

 private:
  const TempDir& _dir;
  uint16_t _port = 0;
  Process _proc;
};

// ---------------------------------------------------------------------------------------------
// Sockets

// ESTABLISHED TCP sockets (IPv4 and IPv6, this network namespace) whose local port is `port`:
// on a replica's WebSocket port, the connections it accepted.
int established_on_local_port(uint16_t port);

// ---------------------------------------------------------------------------------------------
// WebSocket clients with inboxes

struct Inbox {
  std::vector<std::string> texts;  // text messages, in arrival order
  std::optional<Frame> close;      // the server's close frame, if one came
  int pongs = 0;
};

class Clients {
 public:
  // Connects to ws://127.0.0.1:<port>/ws/<conversation> and completes the handshake (101 with
  // the right accept key); throws otherwise. Returns the client's index.
  size_t join(uint16_t port, const std::string& conversation);
  size_t size() const { return _clients.size(); }
  RawClient& client(size_t i) { return *_clients[i]; }
  Inbox& inbox(size_t i) { return _inboxes[i]; }
  const std::string& conversation(size_t i) const { return _conversations[i]; }

  void send(size_t i, const std::string& text);
  // Sends a ping and waits (bounded) for its pong: every frame the client sent before has then
  // been processed by the daemon (frames of one connection are handled in order).
  bool sync(size_t i, Millis timeout = 5s);

  // Reads every client's frames into the inboxes until `done()` or `timeout`; returns done().
  bool pump_until(const std::function<bool()>& done, Millis timeout);
  // Until client i's inbox holds at least n texts.
  bool wait_texts(size_t i, size_t n, Millis timeout = 5s);
  // Until every listed client's inbox holds at least n texts.
  bool wait_all_texts(const std::vector<size_t>& which, size_t n, Millis timeout = 5s);

 private:
  std::vector<std::unique_ptr<RawClient>> _clients;
  std::vector<Inbox> _inboxes;
  std::vector<std::string> _conversations;
};

}  // namespace flowrelay::ctest
