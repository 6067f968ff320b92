// broker-local's options (its section of the config file); every one applies on reload.
#pragma once

#include <unistd.h>
#include <flowrelay/plugin.hpp>

#include <cstdint>
#include <string_view>

namespace flowrelay::local {

struct Options {
  uint32_t history_size = 0;  // 0: no history
  uint32_t history_max_age_ms = 0;
  uint64_t history_max_bytes = 0;
  uint64_t history_memory_limit = 0;  // 0: none
};

// "auto": a quarter of the machine's physical memory.
inline uint64_t quarter_of_ram() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) / 4 : 0;
}

inline bool parse_memory_limit(std::string_view value, Options& out) {
  if (value == "auto") return out.history_memory_limit = quarter_of_ram(), true;
  return sdk::parse_number<uint64_t>(value, 0, UINT64_MAX, out.history_memory_limit);
}

inline const sdk::OptionTable<Options>& option_table() {
  static const sdk::OptionTable<Options> table(
      "broker-local",
      {{"history_size", &Options::history_size, "2000", 0, 1000000, sdk::Reload::Live, nullptr,
        "messages and replies kept per conversation (a reply is one, however many deltas); 0 = "
        "no history"},
       {"history_max_age_ms", &Options::history_max_age_ms, "600000", 1, 604800000,
        sdk::Reload::Live, nullptr,
        "older messages are trimmed; a conversation idle this long starts a new epoch"},
       {"history_max_bytes", &Options::history_max_bytes, "4194304", 1, 1099511627776.0,
        sdk::Reload::Live, nullptr,
        "bytes of data kept per conversation (messages, replies' text), oldest dropped first; "
        "a delta taking an open reply past it is refused (413)"},
       {"history_memory_limit", &parse_memory_limit, "auto", 0, 0, sdk::Reload::Live,
        "a number of bytes, 0 (no limit) or auto (25% of physical memory)",
        "bytes of all conversations' histories on this node; past it the least recently used "
        "conversations' histories are dropped whole (their resumes: recovered false, new epoch)"}});
  return table;
}

}  // namespace flowrelay::local
