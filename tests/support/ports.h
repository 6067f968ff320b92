// Local TCP ports and sockets of the test support.
#pragma once

#include <sys/resource.h>

#include <cstdint>

#include "support/wait.h"

namespace flowrelay::test {

// A TCP port on 127.0.0.1 that was free a moment ago (bound and released); preferably below
// the ephemeral range, so that no outgoing connection takes it before the daemon binds it.
uint16_t free_port();

// A port p on 127.0.0.1 such that p and p + offset were both free a moment ago, both below the
// ephemeral range when it leaves room (a Redis Cluster node also listens on port + 10000, its
// cluster bus).
uint16_t free_port_pair(uint16_t offset);

// A TCP connection to 127.0.0.1:<port> established before `deadline`: its descriptor
// (non-blocking, close-on-exec; the caller closes it), or -1.
int connect_local(uint16_t port, Clock::time_point deadline);

// Raises this process' soft RLIMIT_NOFILE to the hard limit (children started later inherit
// it) for tests that open thousands of sockets. Returns the resulting soft limit.
rlim_t raise_nofile_limit();

}  // namespace flowrelay::test
