// The flowrelayd launcher of the test support: the daemon under test (FLOWRELAYD_BIN) with the
// build-tree plugins (FLOWRELAY_PLUGIN_DIR), both overridable from the environment.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "support/process.h"
#include "support/temp_dir.h"
#include "support/wait.h"

namespace flowrelay::test {

// The daemon binary and the plugin folder of this build. FLOWRELAY_TEST_DAEMON and
// FLOWRELAY_TEST_PLUGIN_DIR run the suites against another build (to show that a regression
// test fails on the build before the fix).
const char* daemon_binary();
const char* plugin_dir();

// Runs daemon_binary() with `args` to completion (killed after `timeout`).
ProcessResult run_daemon_command(const std::vector<std::string>& args, Millis timeout = 10s);

// The daemon's /proc/<pid>/status field (Threads, VmRSS) as a number; -1 when unreadable.
long proc_status_field(pid_t pid, const std::string& field);

enum class Readiness { Ready, Exited, TimedOut };
// Polls GET /ready on `http_port` until it answers 200, the process exits or `timeout` passes.
Readiness await_ready(Process& daemon, uint16_t http_port, Millis timeout);

struct DaemonOptions {
  uint64_t max_message_size = 1048576;
  int shutdown_timeout_ms = 3000;
  std::string log_level = "information";
  // YAML lines merged into the transport entry (each line indented by 4 spaces, e.g.
  // "    idle_timeout_ms: 1000\n").
  std::string transport_extra;
  // YAML merged at the top level (appended at the end of the file, unindented).
  std::string extra;
  // YAML lines merged into the broker section (each indented by 2 spaces, e.g.
  // "  history_size: 50\n").
  std::string broker_extra;
  // The publish API key (http.api_key); empty: none configured.
  std::string api_key;
  // YAML lines merged into the http section (each indented by 2 spaces, e.g.
  // "  max_body_bytes: 1024\n").
  std::string http_extra;
  // A second transport entry, transport-sse on Daemon::sse_port() at path /sse/, with
  // `sse_extra` merged into it (lines indented by 4 spaces, e.g. "    heartbeat_ms: 200\n").
  bool sse = false;
  std::string sse_extra;
};

struct Ports {
  uint16_t ws = 0;
  uint16_t http = 0;
  uint16_t sse = 0;  // 0: no transport-sse entry
};

// The config file of the contract (transport-ws, broker-local, the HTTP listener; transport-sse
// too when ports.sse is set), with the given ports and options.
std::string make_config(const Ports& ports, const DaemonOptions& options = {});

// One flowrelayd on broker-local, on free ports of 127.0.0.1.
class Daemon {
 public:
  // Writes the config into a fresh temp dir, starts flowrelayd --config <file> and waits (up to
  // `ready_timeout`) for GET /ready to answer 200. Throws std::runtime_error (with the daemon's
  // stderr) if it exits or does not become ready.
  explicit Daemon(DaemonOptions options = {}, Millis ready_timeout = 10s);
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  uint16_t ws_port() const { return _ports.ws; }
  uint16_t http_port() const { return _ports.http; }
  uint16_t sse_port() const { return _ports.sse; }  // 0 unless options.sse
  pid_t pid() const { return _proc.pid(); }
  const std::string& config_path() const { return _config_path; }
  std::string stderr_text() const { return _proc.err_text(); }
  std::string stdout_text() const { return _proc.out_text(); }

  // True while the process has not exited (reaps it if it has).
  bool running() { return _proc.running(); }
  long thread_count() const { return proc_status_field(pid(), "Threads"); }
  long vm_rss_kb() const { return proc_status_field(pid(), "VmRSS"); }

  // Sends SIGTERM and waits (bounded) for the exit.
  ExitStatus stop(Millis timeout = 10s) { return _proc.stop(timeout); }
  // Waits (bounded) for the process to exit by itself.
  ExitStatus wait_exit(Millis timeout) { return _proc.wait_exit(timeout); }

 private:
  TempDir _dir{"daemon"};
  Ports _ports;
  std::string _config_path;
  Process _proc;  // SIGKILLed on destruction if it still runs
};

}  // namespace flowrelay::test
