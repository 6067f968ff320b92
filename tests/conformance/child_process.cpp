#include "child_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace flowrelay::test {

namespace {

std::runtime_error sys_error(const std::string& what) {
  return std::runtime_error(what + ": " + std::strerror(errno));
}

std::thread read_all(int fd, std::string& sink, std::mutex& mutex) {
  return std::thread([fd, &sink, &mutex] {
    char buf[4096];
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      std::lock_guard lock(mutex);
      sink.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
  });
}

}  // namespace

ChildProcess::ChildProcess(const std::string& program, const std::vector<std::string>& args) {
  // Everything exec needs is prepared before fork(): the child only calls async-signal-safe
  // functions.
  std::vector<std::string> argv_storage;
  argv_storage.push_back(program);
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);

  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) throw sys_error("pipe");
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    throw sys_error("pipe");
  }
  pid_t parent = ::getpid();
  _pid = ::fork();
  if (_pid < 0) {
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) ::close(fd);
    throw sys_error("fork");
  }
  if (_pid == 0) {
    // If the test process dies (crash, ctest timeout), the child goes with it.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    ::dup2(out_pipe[1], STDOUT_FILENO);
    ::dup2(err_pipe[1], STDERR_FILENO);
    ::execv(argv[0], argv.data());
    const char msg[] = "exec failed\n";
    ssize_t ignored = ::write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)ignored;
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  _out_reader = read_all(out_pipe[0], _out, _mutex);
  _err_reader = read_all(err_pipe[0], _err, _mutex);
}

ChildProcess::~ChildProcess() {
  if (!_reaped) {
    ::kill(_pid, SIGKILL);
    reap(true);
  }
  join_readers();
}

void ChildProcess::join_readers() {
  if (_out_reader.joinable()) _out_reader.join();
  if (_err_reader.joinable()) _err_reader.join();
}

void ChildProcess::send_signal(int sig) {
  if (!_reaped) ::kill(_pid, sig);
}

bool ChildProcess::reap(bool block) {
  if (_reaped) return true;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(_pid, &status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r != _pid) return false;
  _reaped = true;
  _exited = WIFEXITED(status);
  _exit_code = _exited ? WEXITSTATUS(status) : -1;
  _signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  return true;
}

bool ChildProcess::running() { return !reap(false); }

bool ChildProcess::wait_for_exit(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!reap(false)) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // The pipes close when the child (and anything it forked) is gone; a grandchild that kept
  // them open would block here, so it is bounded by the same kind of wait.
  join_readers();
  return true;
}

std::string ChildProcess::describe_status() const {
  if (!_reaped) return "still running";
  if (_exited) return "exit code " + std::to_string(_exit_code);
  return "killed by signal " + std::to_string(_signal) + " (" + strsignal(_signal) + ")";
}

std::string ChildProcess::out() {
  std::lock_guard lock(_mutex);
  return _out;
}

std::string ChildProcess::err() {
  std::lock_guard lock(_mutex);
  return _err;
}

RunResult run_process(const std::string& program, const std::vector<std::string>& args,
                      std::chrono::milliseconds timeout) {
  ChildProcess child(program, args);
  RunResult result;
  result.finished = child.wait_for_exit(timeout);
  if (!result.finished) {
    child.send_signal(SIGKILL);
    child.wait_for_exit(std::chrono::seconds(5));
  }
  result.exited_normally = child.exited_normally();
  result.exit_code = child.exit_code();
  result.term_signal = child.term_signal();
  result.status = result.finished ? child.describe_status()
                                  : "timed out after " + std::to_string(timeout.count()) + " ms";
  result.out = child.out();
  result.err = child.err();
  return result;
}

int free_local_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw sys_error("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw sys_error("bind 127.0.0.1:0");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

TempDir::TempDir(const std::string& tag) {
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string(base && *base ? base : "/tmp") + "/flowrelay-" + tag + ".XXXXXX";
  if (!::mkdtemp(templ.data())) throw sys_error("mkdtemp " + templ);
  _path = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(_path, ec);
}

std::string TempDir::write(const std::string& name, const std::string& content) const {
  std::string file = _path + "/" + name;
  std::ofstream os(file, std::ios::binary);
  os << content;
  if (!os.flush()) throw std::runtime_error("cannot write " + file);
  return file;
}

}  // namespace flowrelay::test
