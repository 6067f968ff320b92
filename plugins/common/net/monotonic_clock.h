// Milliseconds of CLOCK_MONOTONIC: the time base of every event loop's deadlines.
#pragma once

#include <time.h>

#include <cstdint>

namespace flowrelay::net {

inline int64_t monotonic_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace flowrelay::net
