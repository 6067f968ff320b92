// LEFTOVER (issue 11): the old child-process API of tests/abi and broker_in_daemon_test, kept
// only until those tests use tests/support/process.h directly; each call forwards to it.
// Remove this file, child_process.cpp and the flowrelay_test_process target then.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "support/ports.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace flowrelay::test {

// A started support Process with the old accessors.
class ChildProcess {
 public:
  ChildProcess(const std::string& program, const std::vector<std::string>& args);
  pid_t pid() const { return _proc.pid(); }
  void send_signal(int sig) { _proc.signal(sig); }
  bool wait_for_exit(std::chrono::milliseconds timeout) {
    return _proc.wait_exit(timeout).finished;
  }
  bool running() { return _proc.running(); }
  bool exited_normally() const { return status().exited; }
  int exit_code() const { return status().code; }
  int term_signal() const { return status().signal; }
  std::string describe_status() const { return status().describe(); }
  std::string out() { return _proc.out_text(); }
  std::string err() { return _proc.err_text(); }

 private:
  ExitStatus status() const { return _proc.exit_status().value_or(ExitStatus{}); }
  Process _proc;
};

struct RunResult {
  bool finished = false;  // false: killed after the timeout
  bool exited_normally = false;
  int exit_code = -1;
  int term_signal = 0;
  std::string status;
  std::string out, err;
};

RunResult run_process(const std::string& program, const std::vector<std::string>& args,
                      std::chrono::milliseconds timeout);

inline int free_local_port() { return free_port(); }

}  // namespace flowrelay::test
