// libFuzzer target: flowrelay::Config::parse on arbitrary YAML text. The contract
// (daemon/config.h) is that parse returns a Config or throws ConfigError: any other exception
// escaping it, or a crash, is a bug (flowrelayd --check-config would die with "terminate called
// after throwing ..." instead of a located error).
//
// Plugin names are checked for existence: LLVMFuzzerInitialize creates empty stand-ins for the
// three plugins in /tmp/flowrelay-fuzz-plugins so that seeds with
// `plugin_dir: /tmp/flowrelay-fuzz-plugins` reach the end of parse (anything else ends in a
// ConfigError "plugin ... not found", which is fine too).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <typeinfo>

#include <cxxabi.h>

#include "config.h"

namespace {

constexpr const char* kPluginDir = "/tmp/flowrelay-fuzz-plugins";

[[noreturn]] void bug(const char* what, const char* type) {
  std::fprintf(stderr, "fuzz_config: Config::parse let a non-ConfigError escape: %s: %s\n",
               type, what);
  std::abort();
}

#define FUZZ_CHECK(cond)                                                              \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "fuzz_config: invariant failed at %s:%d: %s\n", __FILE__, \
                   __LINE__, #cond);                                                  \
      std::abort();                                                                   \
    }                                                                                 \
  } while (0)

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  std::error_code ec;
  std::filesystem::create_directories(kPluginDir, ec);
  for (const char* name : {"transport-ws", "broker-local", "broker-redis"}) {
    const std::string path = std::string(kPluginDir) + "/flowrelay-" + name + ".so";
    if (!std::filesystem::exists(path, ec)) std::ofstream(path).flush();
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string yaml(reinterpret_cast<const char*>(data), size);
  try {
    const flowrelay::Config c = flowrelay::Config::parse(yaml, "/tmp/fuzz.yaml");
    // What a successful parse promises the daemon.
    FUZZ_CHECK(c.file == "/tmp/fuzz.yaml");
    FUZZ_CHECK(!c.transports.empty());
    FUZZ_CHECK(!c.broker.plugin.empty() && !c.broker.path.empty());
    for (const auto& t : c.transports) {
      FUZZ_CHECK(!t.plugin.empty() && !t.path.empty());
      FUZZ_CHECK(t.options.size() == t.option_marks.size());
      for (const auto& kv : t.options) (void)t.locate("'" + kv.first + "'");
    }
    FUZZ_CHECK(c.broker.options.size() == c.broker.option_marks.size());
    FUZZ_CHECK(c.log_format == "text" || c.log_format == "json");
    FUZZ_CHECK(c.shutdown_timeout_ms <= 600000);
    FUZZ_CHECK(c.http_listen != "off");
  } catch (const flowrelay::ConfigError& e) {
    FUZZ_CHECK(e.what() != nullptr && e.file() == "/tmp/fuzz.yaml");
    FUZZ_CHECK(e.line() >= 0 && e.column() >= 0);
  } catch (const std::exception& e) {
    int status = 0;
    char* type = abi::__cxa_demangle(typeid(e).name(), nullptr, nullptr, &status);
    bug(e.what(), type ? type : typeid(e).name());
  } catch (...) {
    bug("(not a std::exception)", "unknown type");
  }
  return 0;
}
