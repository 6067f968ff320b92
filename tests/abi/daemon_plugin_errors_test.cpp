// The real daemon given a broken plugin by path, with --check-config and as a normal start:
// it must exit 78 (not crash, not hang) with one stderr line
// "flowrelayd: <config>:<line>:<col>: ..." naming the .so and the reason.
#include <flowrelay/plugin.h>
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "fixture_messages.h"
#include "support/ports.h"
#include "support/process.h"

namespace flowrelay::test {
namespace {

using namespace std::chrono_literals;

constexpr int kExitConfig = 78;  // EX_CONFIG
constexpr auto kRunTimeout = 20000ms;

std::vector<std::string> daemon_argv(std::vector<std::string> args) {
  args.insert(args.begin(), FLOWRELAYD_PATH);
  return args;
}

std::string fixture(const std::string& kind) {
  return std::string(FIXTURE_DIR) + "/flowrelay-fixture-" + kind + ".so";
}

// A complete config whose plugins are `broker` and `transport` (names or paths).
std::string config_yaml(const std::string& broker, const std::string& transport) {
  std::ostringstream yaml;
  yaml << "plugin_dir: " << FLOWRELAY_PLUGIN_DIR << "\n"
       << "log: { level: information }\n"
       << "transports:\n"
       << "  - plugin: " << transport << "\n"
       << "    listen: 127.0.0.1:" << free_port() << "\n"
       << "    path: /ws/\n"
       << "broker:\n"
       << "  plugin: " << broker << "\n"
       << "channels: { prefix: \"chat:\", echo: true }\n"
       << "http: { listen: 127.0.0.1:" << free_port() << " }\n";
  return yaml.str();
}

struct BrokenCase {
  const char* name;
  std::string broker;     // the broker section's plugin
  std::string transport;  // the transport's plugin
  std::string plugin;     // the .so the error must name
  // Each must appear in stderr; "a|b" accepts either wording.
  std::vector<std::string> reasons;
};

bool contains_any(const std::string& text, const std::string& alternatives) {
  size_t start = 0;
  for (;;) {
    size_t bar = alternatives.find('|', start);
    if (text.find(alternatives.substr(start, bar - start)) != std::string::npos) return true;
    if (bar == std::string::npos) return false;
    start = bar + 1;
  }
}

std::ostream& operator<<(std::ostream& os, const BrokenCase& c) { return os << c.name; }

std::vector<BrokenCase> broken_cases() {
  return {
      {"missing_file",
       fixture("missing"),
       "transport-ws",
       fixture("missing"),
       {"not found|no such file"}},
      {"not_elf", fixture("not-elf"), "transport-ws", fixture("not-elf"), {"cannot load"}},
      {"no_entry_symbol",
       fixture("no-entry"),
       "transport-ws",
       fixture("no-entry"),
       {FLOWRELAY_ENTRY_SYMBOL}},
      {"abi_major_3", fixture("abi-major-3"), "transport-ws", fixture("abi-major-3"), {"ABI 3."}},
      {"built_for_abi_1",
       fixture("abi1"),
       "transport-ws",
       fixture("abi1"),
       {"built for plugin ABI 1", "rebuild"}},
      {"entry_returns_null",
       fixture("entry-null"),
       "transport-ws",
       fixture("entry-null"),
       {"refused"}},
      {"undefined_symbol",
       fixture("undefined-symbol"),
       "transport-ws",
       fixture("undefined-symbol"),
       {UNDEFINED_SYMBOL_NAME}},
      {"no_tables",
       fixture("no-tables"),
       "transport-ws",
       fixture("no-tables"),
       {"neither a broker nor a transport"}},
      {"create_fails",
       fixture("create-fails"),
       "transport-ws",
       fixture("create-fails"),
       {CREATE_FAILS_MESSAGE}},
      {"broker_table_too_small",
       fixture("small-broker-table"),
       "transport-ws",
       fixture("small-broker-table"),
       {"too small for plugin ABI 2.0"}},
      {"broker_slot_missing",
       fixture("missing-slot"),
       "transport-ws",
       fixture("missing-slot"),
       {"lacks the required slot 'publish'"}},
      // A plugin that is no transport, named as one.
      {"broker_as_transport",
       "broker-local",
       fixture("create-fails"),
       fixture("create-fails"),
       {"provide a transport|no transport|not a transport"}},
  };
}

class DaemonPluginErrors : public ::testing::TestWithParam<BrokenCase> {
 protected:
  void expect_refused(const std::vector<std::string>& extra_args) {
    const BrokenCase& c = GetParam();
    std::string config = dir_.write("flowrelay.yaml", config_yaml(c.broker, c.transport));
    std::vector<std::string> args = {"--config", config};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    ProcessResult r = run_process(daemon_argv(args), kRunTimeout);
    ASSERT_TRUE(r.status.finished)
        << "flowrelayd did not exit: " << r.status.describe() << "\nstderr: " << r.err;
    ASSERT_TRUE(r.status.exited) << "flowrelayd crashed: " << r.status.describe()
                                 << "\nstderr: " << r.err;
    EXPECT_EQ(r.status.code, kExitConfig) << "stderr: " << r.err;
    EXPECT_NE(r.err.find("flowrelayd: " + config + ":"), std::string::npos)
        << "no 'flowrelayd: <config>:<line>:<col>:' line in stderr: " << r.err;
    EXPECT_NE(r.err.find(c.plugin), std::string::npos)
        << "stderr does not name " << c.plugin << ": " << r.err;
    for (const auto& reason : c.reasons)
      EXPECT_TRUE(contains_any(r.err, reason))
          << "stderr lacks the reason '" << reason << "': " << r.err;
    EXPECT_EQ(r.out.find(": OK"), std::string::npos) << "stdout claims OK: " << r.out;
  }

  TempDir dir_{"abi"};
};

TEST_P(DaemonPluginErrors, CheckConfigRefusesIt) { expect_refused({"--check-config"}); }

TEST_P(DaemonPluginErrors, StartRefusesIt) { expect_refused({}); }

INSTANTIATE_TEST_SUITE_P(Broken, DaemonPluginErrors, ::testing::ValuesIn(broken_cases()),
                         [](const auto& info) { return std::string(info.param.name); });

// An ABI 1 plugin gets exactly one line: where it is configured, the file, and what to rebuild
// it against.
TEST(DaemonAbi1Plugin, CheckConfigSaysWhichFileToRebuildInOneLine) {
  TempDir dir("abi1");
  const std::string plugin = fixture("abi1");
  std::string config = dir.write("flowrelay.yaml", config_yaml(plugin, "transport-ws"));
  ProcessResult r = run_process(daemon_argv({"--config", config, "--check-config"}), kRunTimeout);
  ASSERT_TRUE(r.status.finished && r.status.exited) << r.status.describe() << "\nstderr: " << r.err;
  EXPECT_EQ(r.status.code, kExitConfig);
  // The broker section is the map on line 8 of config_yaml(), at column 3.
  EXPECT_EQ(r.err,
            "flowrelayd: " + config + ":8:3: broker: " + plugin + ": " ABI1_REFUSAL_MESSAGE "\n");
  EXPECT_EQ(r.out, "");
}

// The control: the same config with working plugins passes, so the failures above come from
// the broken plugin and not from the rest of the config.
TEST(DaemonPluginErrorsControl, CheckConfigAcceptsWorkingPlugins) {
  TempDir dir("abi-control");
  std::string config = dir.write("flowrelay.yaml", config_yaml("broker-local", "transport-ws"));
  ProcessResult r = run_process(daemon_argv({"--config", config, "--check-config"}), kRunTimeout);
  ASSERT_TRUE(r.status.finished) << r.status.describe();
  EXPECT_TRUE(r.status.exited && r.status.code == 0)
      << r.status.describe() << "\nstderr: " << r.err;
  EXPECT_NE(r.out.find(config + ": OK"), std::string::npos) << "stdout: " << r.out;
}

}  // namespace
}  // namespace flowrelay::test
