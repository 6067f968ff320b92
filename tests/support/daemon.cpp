#include "support/daemon.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "support/http.h"
#include "support/ports.h"

namespace flowrelay::test {

const char* daemon_binary() {
  const char* other = std::getenv("FLOWRELAY_TEST_DAEMON");
  return other && *other ? other : FLOWRELAYD_BIN;
}

const char* plugin_dir() {
  const char* other = std::getenv("FLOWRELAY_TEST_PLUGIN_DIR");
  return other && *other ? other : FLOWRELAY_PLUGIN_DIR;
}

ProcessResult run_daemon_command(const std::vector<std::string>& args, Millis timeout) {
  std::vector<std::string> argv{daemon_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(argv, timeout);
}

long proc_status_field(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  const std::string prefix = field + ":";
  for (std::string line; std::getline(in, line);) {
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

Readiness await_ready(Process& daemon, uint16_t http_port, Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (!daemon.running()) return Readiness::Exited;
    if (http_get(http_port, "/ready", 1s).status == 200) return Readiness::Ready;
    if (Clock::now() >= deadline) return Readiness::TimedOut;
    std::this_thread::sleep_for(10ms);
  }
}

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
    << o.transport_extra;
  if (ports.sse != 0) {
    c << "  - plugin: transport-sse\n"
      << "    listen: 127.0.0.1:" << ports.sse << "\n"
      << "    path: /sse/\n"
      << "    max_message_size: " << o.max_message_size << "\n"
      << o.sse_extra;
  }
  c << "broker:\n"
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

Daemon::Daemon(DaemonOptions options, Millis ready_timeout) {
  // A chosen port can still be taken by someone else before the daemon binds it: retry with new
  // ports (a few times) when the daemon reports exactly that.
  for (int attempt = 1;; ++attempt) {
    _ports.ws = free_port();
    do {
      _ports.http = free_port();
    } while (_ports.http == _ports.ws);
    if (options.sse) {
      do {
        _ports.sse = free_port();
      } while (_ports.sse == _ports.ws || _ports.sse == _ports.http);
    }
    _config_path = _dir.write("flowrelay.yaml", make_config(_ports, options));
    _proc.start({daemon_binary(), "--config", _config_path});
    switch (await_ready(_proc, _ports.http, ready_timeout)) {
      case Readiness::Ready:
        return;
      case Readiness::TimedOut:
        throw std::runtime_error("flowrelayd not ready (GET /ready != 200) within " +
                                 std::to_string(ready_timeout.count()) + " ms; stderr:\n" +
                                 stderr_text());
      case Readiness::Exited:
        break;
    }
    const std::string err = stderr_text();
    if (attempt < 3 && err.find("already in use") != std::string::npos) continue;
    throw std::runtime_error("flowrelayd " + _proc.exit_status()->describe() +
                             " before it was ready; stderr:\n" + err);
  }
}

}  // namespace flowrelay::test
