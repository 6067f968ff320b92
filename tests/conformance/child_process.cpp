// LEFTOVER (issue 11): see child_process.h.
#include "child_process.h"

namespace flowrelay::test {

namespace {

std::vector<std::string> command(const std::string& program, const std::vector<std::string>& args) {
  std::vector<std::string> argv{program};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

}  // namespace

ChildProcess::ChildProcess(const std::string& program, const std::vector<std::string>& args) {
  _proc.start(command(program, args));
}

RunResult run_process(const std::string& program, const std::vector<std::string>& args,
                      std::chrono::milliseconds timeout) {
  const ProcessResult p = run_process(command(program, args), timeout);
  RunResult r;
  r.finished = p.status.finished;
  r.exited_normally = p.status.exited;
  r.exit_code = p.status.code;
  r.term_signal = p.status.signal;
  r.status = r.finished ? p.status.describe()
                        : "timed out after " + std::to_string(timeout.count()) + " ms";
  r.out = p.out;
  r.err = p.err;
  return r;
}

}  // namespace flowrelay::test
