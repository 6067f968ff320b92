// libFuzzer target: transport-ws option parsing (its sdk::OptionTable, parse_ws_options), i.e.
// what the daemon hands the plugin from its YAML section (and again on SIGHUP), through the
// same exception-to-status boundary as the plugin's create() (sdk::guard).
//
// Input: lines separated by '\n', each "key=value" (split at the first '='; a line without '='
// is a key with an empty value). Keys and values may hold any other byte, NUL included. Every
// key and value is copied into a heap block of exactly its length (no terminator), so a read
// past a flowrelay_str is a heap-buffer-overflow.
//
// Invariants: parse answers OK or EINVAL, the same with a large and a tiny error buffer; a
// refusal writes a NUL-terminated message within the buffer that names a key in quotes; an
// accepted set of options is within the documented ranges, its key files are absolute, and a
// reload with the same options needs no restart.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ws_options.h"

using flowrelay::ws::WsOptions;
namespace sdk = flowrelay::sdk;

#define FUZZ_CHECK(cond)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      std::fprintf(stderr, "fuzz_ws_options: invariant failed at %s:%d: %s\n", __FILE__, __LINE__, \
                   #cond);                                                                         \
      std::abort();                                                                                \
    }                                                                                              \
  } while (0)

namespace {

struct Owned {
  std::unique_ptr<char[]> bytes;
  size_t len;
  explicit Owned(std::string_view s) : bytes(new char[s.size() ? s.size() : 1]), len(s.size()) {
    if (len) std::memcpy(bytes.get(), s.data(), len);
  }
  flowrelay_str str() const { return {bytes.get(), len}; }
};

bool parse(const std::vector<flowrelay_option>& options, size_t err_cap, WsOptions& out,
           std::string& message) {
  std::unique_ptr<char[]> err(new char[err_cap]);
  std::memset(err.get(), 'x', err_cap);
  const flowrelay_status status = sdk::guard(
      [&] {
        out = flowrelay::ws::parse_ws_options(options.data(), options.size(), "/etc/flowrelay");
        return FLOWRELAY_OK;
      },
      err.get(), err_cap);
  FUZZ_CHECK(status == FLOWRELAY_OK || status == FLOWRELAY_EINVAL);  // only option errors
  if (status != FLOWRELAY_OK) {
    const void* nul = std::memchr(err.get(), '\0', err_cap);
    FUZZ_CHECK(nul != nullptr);  // terminated within the buffer
    message.assign(err.get());
    FUZZ_CHECK(!message.empty());
  }
  return status == FLOWRELAY_OK;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<Owned> storage;
  std::vector<std::pair<size_t, size_t>> pairs;  // indexes into storage
  size_t pos = 0;
  while (pos < input.size() && pairs.size() < 64) {
    size_t nl = input.find('\n', pos);
    if (nl == std::string_view::npos) nl = input.size();
    const std::string_view line = input.substr(pos, nl - pos);
    const size_t eq = line.find('=');
    storage.emplace_back(line.substr(0, eq));
    storage.emplace_back(eq == std::string_view::npos ? std::string_view() : line.substr(eq + 1));
    pairs.emplace_back(storage.size() - 2, storage.size() - 1);
    pos = nl + 1;
  }
  std::vector<flowrelay_option> options;
  for (const auto& [k, v] : pairs) options.push_back({storage[k].str(), storage[v].str()});

  WsOptions big, tiny;
  std::string big_msg, tiny_msg;
  const bool ok = parse(options, 512, big, big_msg);
  FUZZ_CHECK(parse(options, 9, tiny, tiny_msg) == ok);
  if (!ok) {
    FUZZ_CHECK(big_msg.size() < 512);
    FUZZ_CHECK(tiny_msg.size() <= 8 && big_msg.compare(0, tiny_msg.size(), tiny_msg) == 0);
    FUZZ_CHECK(big_msg.rfind("transport-ws: ", 0) == 0);
    // The daemon points at the quoted key's line; what is quoted may be cut off by the buffer
    // (511 characters) or end the C string early (a NUL).
    const size_t quote = big_msg.find('\'');
    if (input.find('\0') == std::string_view::npos) {
      FUZZ_CHECK(quote != std::string::npos);
      FUZZ_CHECK(big_msg.find('\'', quote + 1) != std::string::npos || big_msg.size() == 511);
    }
    return 0;
  }
  const auto& table = flowrelay::ws::ws_option_table();
  FUZZ_CHECK(table
                 .restart_changes(sdk::capture(options.data(), options.size()), options.data(),
                                  options.size())
                 .empty());
  const WsOptions& o = big;
  FUZZ_CHECK(o.listen_port >= 1);
  FUZZ_CHECK(o.path.size() >= 2 && o.path.front() == '/' && o.path.back() == '/');
  FUZZ_CHECK(o.max_message_size >= 1 && o.max_message_size <= (uint64_t{1} << 30));
  FUZZ_CHECK(o.io_threads >= 1 && o.io_threads <= 256);
  FUZZ_CHECK(o.max_outbound_bytes >= 1024);
  FUZZ_CHECK(o.max_header_size >= 256 && o.max_header_size <= (1u << 20));
  FUZZ_CHECK(o.handshake_timeout_ms >= 1 && o.close_timeout_ms >= 1);
  FUZZ_CHECK(o.backlog >= 1);
  FUZZ_CHECK(o.max_conversation_id_length >= 1 && o.max_conversation_id_length <= 1024);
  FUZZ_CHECK(o.publish_rate >= 0 && o.publish_rate <= 1e9);  // also false for NaN
  FUZZ_CHECK(o.publish_burst >= 1 && o.publish_burst <= 1e9);
  FUZZ_CHECK(o.access.auth == "none" || o.access.auth == "jwt");
  if (o.access.auth == "jwt")
    FUZZ_CHECK(!o.access.hs256_secret_file.empty() || !o.access.rs256_public_key_file.empty());
  for (const std::string* f : {&o.access.hs256_secret_file, &o.access.rs256_public_key_file})
    FUZZ_CHECK(f->empty() || f->front() == '/');
  for (const auto& origin : o.access.allowed_origins)
    FUZZ_CHECK(!origin.empty() && origin.front() != ' ' && origin.back() != ' ');
  return 0;
}
