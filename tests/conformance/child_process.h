// Runs a program (the daemon) as a child process for tests: captured stdout/stderr, waits with
// a timeout, and a child that is never left behind (killed with the test process too).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace flowrelay::test {

class ChildProcess {
 public:
  // Starts `program` with `args` (argv[1..]); throws std::runtime_error if it cannot.
  ChildProcess(const std::string& program, const std::vector<std::string>& args);
  // Kills (SIGKILL) and reaps the child if it still runs.
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return _pid; }
  void send_signal(int sig);
  // True once the child exited (or was killed) within `timeout`.
  bool wait_for_exit(std::chrono::milliseconds timeout);
  bool running();

  // Valid after wait_for_exit() returned true.
  bool exited_normally() const { return _exited; }
  int exit_code() const { return _exit_code; }
  int term_signal() const { return _signal; }
  // "exit code N" or "killed by signal N (NAME)".
  std::string describe_status() const;

  // What the child wrote so far (complete once it exited and its pipes closed).
  std::string out();
  std::string err();

 private:
  bool reap(bool block);
  void join_readers();

  pid_t _pid = -1;
  bool _reaped = false;
  bool _exited = false;
  int _exit_code = -1;
  int _signal = 0;
  std::mutex _mutex;
  std::string _out, _err;
  std::thread _out_reader, _err_reader;
};

struct RunResult {
  bool finished = false;  // false: killed after the timeout
  bool exited_normally = false;
  int exit_code = -1;
  int term_signal = 0;
  std::string status;  // ChildProcess::describe_status()
  std::string out, err;
};

// Runs a program to completion (killing it after `timeout`).
RunResult run_process(const std::string& program, const std::vector<std::string>& args,
                      std::chrono::milliseconds timeout);

// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, close).
int free_local_port();

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it when destroyed.
class TempDir {
 public:
  explicit TempDir(const std::string& tag);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return _path; }
  // Writes `content` into path()/name and returns the file's path.
  std::string write(const std::string& name, const std::string& content) const;

 private:
  std::string _path;
};

}  // namespace flowrelay::test
