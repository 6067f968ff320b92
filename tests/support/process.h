// The one launcher of the test support: every process a test starts (flowrelayd, redis-server,
// nginx) is a Process.
//
// A Process runs in its own process group (nginx forks workers) with PR_SET_PDEATHSIG, so a
// crashed or timed-out test leaves nothing behind, and its destructor SIGKILLs the group and
// reaps the child with a bounded wait. The death signal follows the thread that started the
// child: start processes from the test's main thread.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "support/temp_dir.h"
#include "support/wait.h"

namespace flowrelay::test {

struct ExitStatus {
  bool finished = false;  // false: still running when the bounded wait ended
  bool exited = false;    // exited normally (then `code` is valid)
  int code = -1;
  int signal = 0;  // terminating signal when !exited
  // "exited with code N", "killed by signal N (NAME)", "still running".
  std::string describe() const;
};

// The ExitStatus of a waitpid() status word.
ExitStatus decode_wait_status(int status);
// Waits (bounded) for child `pid` to exit; finished=false on timeout.
ExitStatus wait_pid(pid_t pid, Millis timeout);

struct ProcessOptions {
  // One file for stdout and stderr (created or truncated), in write order. Empty: stdout and
  // stderr go to two files in the process' own temp dir (out_text(), err_text()).
  std::string log_path;
  // Variables removed from the child's environment (REDIS_URL, for instance, would override a
  // broker's url option).
  std::vector<std::string> unset_env;
};

class Process {
 public:
  Process() = default;
  explicit Process(const std::vector<std::string>& argv, ProcessOptions options = {}) {
    start(argv, std::move(options));
  }
  ~Process() { kill_group(); }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  // Starts argv[0] (searched in PATH when it has no '/') with stdin from /dev/null, no
  // inherited descriptor above 2, default signal dispositions and an empty signal mask. A child
  // started before is killed first. Throws std::runtime_error if it cannot be executed.
  void start(const std::vector<std::string>& argv, ProcessOptions options = {});

  pid_t pid() const { return _pid; }
  bool started() const { return _pid > 0; }
  // True while it has not exited (reaps it if it has).
  bool running();
  std::optional<ExitStatus> exit_status() const { return _exit; }
  // To the process only (not its group).
  void signal(int sig);
  // Waits (bounded) for the exit.
  ExitStatus wait_exit(Millis timeout);
  // SIGTERM, then waits (bounded) for the exit.
  ExitStatus stop(Millis timeout = 10s);
  // SIGKILL to the whole group (workers included, stopped ones too), then reap (bounded).
  // Idempotent; pid() is -1 afterwards.
  void kill_group();

  // What the child wrote so far.
  std::string out_text() const;
  std::string err_text() const;

 private:
  pid_t _pid = -1;
  std::optional<ExitStatus> _exit;
  std::unique_ptr<TempDir> _capture;  // stdout/stderr files when no log_path was given
  std::string _out_path;
  std::string _err_path;
};

struct ProcessResult {
  ExitStatus status;  // finished=false: it was killed after the timeout
  std::string out;
  std::string err;
};

// Runs argv to completion (SIGKILLs its group after `timeout`).
ProcessResult run_process(const std::vector<std::string>& argv, Millis timeout);

}  // namespace flowrelay::test
