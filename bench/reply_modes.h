// The modes of flowrelay-reply-bench (reply_bench.cpp parses the options and picks one).
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "reply_http.h"

namespace flowrelay::bench {

struct Options {  // see kUsage in reply_bench.cpp
  std::string mode;
  std::vector<Endpoint> apis, ws;
  std::string path = "/ws/", key = "bench-key";
  uint32_t replies = 1000, viewers = 5, reply_deltas = 0, producers = 0, batch = 0, threads = 2;
  double rate = 50, warmup = 2, duration = 0;
  std::vector<int> pids;
  uint16_t redis = 0;
};

int fanout_mode(const Options& o);    // reply_fanout.cpp
int resume_mode(const Options& o);    // reply_resume.cpp
int producer_mode(const Options& o);  // reply_resume.cpp

// Conversation ids unique to this run: earlier runs' histories do not interfere.
inline std::string run_prefix(const char* what) {
  return std::string(what) + std::to_string(mono_ns() % 100000000) + "-";
}

inline std::string ms(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.3f", v);
  return b;
}

// A message for a JSON string: quotes and backslashes become ', control characters spaces, at
// most 120 characters.
inline std::string json_safe(std::string s) {
  if (s.size() > 120) s.resize(120);
  for (char& c : s) {
    if (c == '"' || c == '\\') c = '\'';
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  return s;
}

struct CpuWindow {
  double server_ms = 0, redis_s = 0, self_ms = 0;
};
inline CpuWindow cpu_now(const Options& o) {
  return {process_cpu_ms(o.pids), o.redis ? redis_cpu_s(o.redis) : -1,
          process_cpu_ms({static_cast<int>(getpid())})};
}

}  // namespace flowrelay::bench
