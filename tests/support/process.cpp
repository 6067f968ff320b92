#include "support/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <thread>

#include "support/text.h"

extern char** environ;

namespace flowrelay::test {

namespace {

std::runtime_error sys_error(const std::string& what, int err = errno) {
  return std::runtime_error(what + ": " + std::strerror(err));
}

// argv[0] as execve() wants it: unchanged when it has a '/', else the first executable of
// that name in $PATH (resolved here because the forked child may only make async-signal-safe
// calls).
std::string resolve_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::string dirs = path && *path ? path : "/usr/local/bin:/usr/bin:/bin";
  for (size_t begin = 0; begin <= dirs.size();) {
    size_t end = dirs.find(':', begin);
    if (end == std::string::npos) end = dirs.size();
    const std::string dir = end > begin ? dirs.substr(begin, end - begin) : ".";
    const std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    begin = end + 1;
  }
  throw std::runtime_error("cannot start " + name + ": not found in PATH");
}

std::vector<std::string> child_environment(const std::vector<std::string>& unset) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    bool keep = true;
    for (const auto& name : unset) {
      if (std::strncmp(*e, name.c_str(), name.size()) == 0 && (*e)[name.size()] == '=') {
        keep = false;
      }
    }
    if (keep) env.emplace_back(*e);
  }
  return env;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// A descriptor of the parent's, closed when start() returns or throws.
struct Fd {
  int fd;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

int open_or_throw(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
  if (fd < 0) throw sys_error("cannot open " + path);
  return fd;
}

constexpr int kOutputFlags = O_WRONLY | O_CREAT | O_TRUNC | O_APPEND;

// In the forked child: only async-signal-safe calls until execve. Reports a failure as its
// errno on `report` (close-on-exec: it closes unread when execve succeeds).
[[noreturn]] void exec_child(pid_t parent, int in, int out, int err, int report, const char* file,
                             char* const argv[], char* const envp[]) {
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(127);  // the parent died before the prctl
  ::dup2(in, STDIN_FILENO);
  ::dup2(out, STDOUT_FILENO);
  ::dup2(err, STDERR_FILENO);
  // Thousands of client sockets may be open in the test: none of them is inherited.
  ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
  for (int sig = 1; sig < NSIG; ++sig) ::signal(sig, SIG_DFL);  // SIGPIPE is ignored in tests
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execve(file, argv, envp);
  const int error = errno;
  ssize_t ignored = ::write(report, &error, sizeof error);
  (void)ignored;
  ::_exit(127);
}

}  // namespace

std::string ExitStatus::describe() const {
  if (!finished) return "still running";
  if (exited) return "exited with code " + std::to_string(code);
  if (signal) {
    return "killed by signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
  }
  return "gone (status unknown)";
}

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

ExitStatus wait_pid(pid_t pid, Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return decode_wait_status(status);
    if (r < 0 && errno != EINTR) {
      ExitStatus st;
      st.finished = true;  // not our child (any more): reaped elsewhere
      return st;
    }
    if (Clock::now() >= deadline) return ExitStatus{};
    std::this_thread::sleep_for(5ms);
  }
}

void Process::start(const std::vector<std::string>& argv, ProcessOptions options) {
  if (argv.empty()) throw std::invalid_argument("Process::start: empty argv");
  // The test talks to its children over sockets they may close at any time: a write to one
  // must fail with EPIPE instead of killing the test (children get the default back).
  [[maybe_unused]] static const bool sigpipe_ignored = ::signal(SIGPIPE, SIG_IGN) != SIG_ERR;
  kill_group();
  _exit.reset();
  if (options.log_path.empty()) {
    if (!_capture) _capture = std::make_unique<TempDir>("process");
    _out_path = _capture->file("stdout");
    _err_path = _capture->file("stderr");
  } else {
    _out_path = _err_path = options.log_path;
  }
  // Everything the child needs is prepared before fork().
  const std::string file = resolve_program(argv[0]);
  std::vector<std::string> args = argv;
  std::vector<std::string> env = child_environment(options.unset_env);
  const std::vector<char*> argp = pointers(args);
  const std::vector<char*> envp = pointers(env);
  const Fd in(open_or_throw("/dev/null", O_RDONLY));
  const Fd out(open_or_throw(_out_path, kOutputFlags));
  const Fd separate_err(_err_path == _out_path ? -1 : open_or_throw(_err_path, kOutputFlags));
  const int err = separate_err.fd >= 0 ? separate_err.fd : out.fd;
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw sys_error("pipe");
  const Fd report_read(pipe_fds[0]);
  std::optional<Fd> report_write(std::in_place, pipe_fds[1]);
  const pid_t parent = ::getpid();

  const pid_t pid = ::fork();
  if (pid == 0) {
    exec_child(parent, in.fd, out.fd, err, report_write->fd, file.c_str(), argp.data(),
               envp.data());
  }
  if (pid < 0) throw sys_error("fork");
  report_write.reset();  // the child's copy stays open until its execve
  ::setpgid(pid, pid);   // also here, so that the group exists before anyone signals it
  _pid = pid;
  int exec_error = 0;
  ssize_t n;
  do {
    n = ::read(report_read.fd, &exec_error, sizeof exec_error);
  } while (n < 0 && errno == EINTR);
  if (n == sizeof exec_error) {
    kill_group();
    throw sys_error("cannot execute " + file, exec_error);
  }
}

bool Process::running() {
  if (_pid <= 0 || _exit) return false;
  int status = 0;
  if (::waitpid(_pid, &status, WNOHANG) == _pid) {
    _exit = decode_wait_status(status);
    return false;
  }
  return true;
}

void Process::signal(int sig) {
  if (_pid > 0 && !_exit) ::kill(_pid, sig);
}

ExitStatus Process::wait_exit(Millis timeout) {
  if (_exit || _pid <= 0) return _exit.value_or(ExitStatus{});
  const ExitStatus st = wait_pid(_pid, timeout);
  if (st.finished) _exit = st;
  return st;
}

ExitStatus Process::stop(Millis timeout) {
  signal(SIGTERM);
  return wait_exit(timeout);
}

void Process::kill_group() {
  if (_pid <= 0) return;
  ::kill(-_pid, SIGKILL);
  if (!_exit) {
    const ExitStatus st = wait_pid(_pid, 5s);
    if (st.finished) _exit = st;
  }
  _pid = -1;
}

std::string Process::out_text() const { return read_text_file(_out_path); }
std::string Process::err_text() const { return read_text_file(_err_path); }

ProcessResult run_process(const std::vector<std::string>& argv, Millis timeout) {
  Process p(argv);
  ProcessResult r;
  r.status = p.wait_exit(timeout);
  p.kill_group();
  r.out = p.out_text();
  r.err = p.err_text();
  return r;
}

}  // namespace flowrelay::test
