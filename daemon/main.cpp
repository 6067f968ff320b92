#include <signal.h>

#include <iostream>

#include "daemon.h"

int main(int argc, char** argv) {
  // Block the termination signals before any thread starts, so that every thread inherits the
  // mask and only ServerApplication::waitForTerminationRequest() (sigwait) receives them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGQUIT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  try {
    flowrelay::Daemon daemon;
    return daemon.run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "flowrelayd: " << e.what() << "\n";
    return 70;
  }
}
