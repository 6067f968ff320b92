// Command line, config errors (--check-config and a normal start), /health and /ready.
#include <gtest/gtest.h>

#include <cctype>
#include <optional>
#include <sstream>

#include "support/itest.h"

namespace flowrelay::itest {
namespace {

constexpr int kExConfig = 78;  // EX_CONFIG

// Line numbers of make_config() output (1-based), used to place errors.
constexpr int kLineShutdownTimeout = 3;
constexpr int kLineMaxMessageSize = 8;
constexpr int kLineBrokerPlugin = 10;
constexpr int kLinesInConfig = 12;

std::string replace_line(const std::string& text, int line_no, const std::string& line) {
  std::istringstream in(text);
  std::ostringstream out;
  std::string l;
  int n = 0;
  while (std::getline(in, l)) {
    ++n;
    out << (n == line_no ? line : l) << "\n";
  }
  return out.str();
}

struct Diagnostic {
  int line = 0;
  int col = 0;
  std::string message;
};

// Parses "flowrelayd: <file>:<line>:<col>: <message>" (no std::regex: GCC 12 warns inside
// <regex> in sanitizer builds).
std::optional<Diagnostic> parse_diagnostic(const std::string& s, const std::string& file) {
  const std::string prefix = "flowrelayd: " + file + ":";
  if (s.rfind(prefix, 0) != 0) return std::nullopt;
  size_t pos = prefix.size();
  auto number = [&](int& out) {
    size_t start = pos;
    while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) ++pos;
    if (pos == start || pos - start > 9) return false;
    out = std::stoi(s.substr(start, pos - start));
    return true;
  };
  Diagnostic d;
  if (!number(d.line) || s.compare(pos, 1, ":") != 0) return std::nullopt;
  ++pos;
  if (!number(d.col) || s.compare(pos, 2, ": ") != 0) return std::nullopt;
  d.message = s.substr(pos + 2);
  if (d.message.empty()) return std::nullopt;
  return d;
}

struct ConfigErrorExpectation {
  int line = 0;                          // expected 1-based line
  std::vector<std::string> message_has;  // substrings the message must contain
};

// Runs the daemon on `config` both with --check-config and as a normal start and checks the
// contract: exit 78 and exactly one stderr line "flowrelayd: <file>:<line>:<col>: <message>".
void expect_config_error(const std::string& config_path, const ConfigErrorExpectation& want) {
  const std::vector<std::vector<std::string>> modes = {
      {"--config", config_path, "--check-config"},
      {"--config", config_path},
  };
  for (const auto& args : modes) {
    SCOPED_TRACE("flowrelayd " + args[0] + " " + args[1] + (args.size() > 2 ? " " + args[2] : ""));
    ProcessResult r = run_daemon_command(args, 10s);
    ASSERT_TRUE(r.status.finished) << "daemon did not exit within 10 s on a bad config";
    EXPECT_TRUE(r.status.exited && r.status.code == kExConfig)
        << "expected exit 78, got: " << r.status.describe() << "\nstderr:\n"
        << r.err;
    std::vector<std::string> lines = non_empty_lines(r.err);
    EXPECT_EQ(lines.size(), 1u) << "expected exactly one stderr line, got:\n" << r.err;
    if (lines.empty()) continue;
    auto d = parse_diagnostic(lines[0], config_path);
    if (!d) {
      ADD_FAILURE() << "stderr line does not match 'flowrelayd: <file>:<line>:<col>: <message>':\n"
                    << lines[0];
      continue;
    }
    EXPECT_EQ(d->line, want.line) << lines[0];
    EXPECT_GE(d->col, 1) << "column is 1-based: " << lines[0];
    for (const auto& sub : want.message_has) {
      EXPECT_NE(d->message.find(sub), std::string::npos)
          << "message should mention '" << sub << "': " << lines[0];
    }
  }
}

class ConfigTest : public ::testing::Test {
 protected:
  TempDir dir;
  Ports ports{free_port(), free_port()};
  std::string good = make_config(ports);
};

TEST_F(ConfigTest, CheckConfigAcceptsGoodFile) {
  const std::string path = dir.write("good.yaml", good);
  ProcessResult r = run_daemon_command({"--config", path, "--check-config"}, 10s);
  ASSERT_TRUE(r.status.finished) << "--check-config did not exit within 10 s";
  EXPECT_TRUE(r.status.exited && r.status.code == 0) << r.status.describe() << "\nstderr:\n"
                                                     << r.err;
  EXPECT_EQ(non_empty_lines(r.out), std::vector<std::string>{path + ": OK"})
      << "stdout:\n"
      << r.out << "\nstderr:\n"
      << r.err;
}

TEST_F(ConfigTest, YamlSyntaxErrorReportsItsLine) {
  ASSERT_EQ(non_empty_lines(good).size(), static_cast<size_t>(kLinesInConfig));
  const std::string path = dir.write(
      "syntax.yaml", replace_line(good, kLineShutdownTimeout, "shutdown_timeout_ms: 3000: 1"));
  expect_config_error(path, {kLineShutdownTimeout, {}});
}

TEST_F(ConfigTest, UnknownNestedKeyReportsItsLineAndName) {
  DaemonOptions o;
  o.transport_extra = "    max_mesage_size: 10\n";  // line 9, inside the transport entry
  const std::string path = dir.write("unknown.yaml", make_config(ports, o));
  expect_config_error(path, {kLineMaxMessageSize + 1, {"max_mesage_size"}});
}

TEST_F(ConfigTest, UnknownTopLevelKeyReportsItsLineAndName) {
  DaemonOptions o;
  o.extra = "bogus_setting: 1\n";  // appended after the 12 lines
  const std::string path = dir.write("unknown-top.yaml", make_config(ports, o));
  expect_config_error(path, {kLinesInConfig + 1, {"bogus_setting"}});
}

TEST_F(ConfigTest, WrongTypeReportsItsLine) {
  const std::string path = dir.write(
      "type.yaml", replace_line(good, kLineMaxMessageSize, "    max_message_size: \"abc\""));
  expect_config_error(path, {kLineMaxMessageSize, {}});
}

TEST_F(ConfigTest, MissingPluginNamesTheFile) {
  const std::string path = dir.write(
      "plugin.yaml", replace_line(good, kLineBrokerPlugin, "  plugin: broker-nonexistent"));
  expect_config_error(path, {kLineBrokerPlugin, {"flowrelay-broker-nonexistent.so"}});
}

TEST_F(ConfigTest, NonexistentConfigFile) {
  const std::string path = dir.path() + "/does-not-exist.yaml";
  for (bool check : {true, false}) {
    SCOPED_TRACE(check ? "--check-config" : "normal start");
    std::vector<std::string> args{"--config", path};
    if (check) args.push_back("--check-config");
    ProcessResult r = run_daemon_command(args, 10s);
    ASSERT_TRUE(r.status.finished);
    EXPECT_TRUE(r.status.exited && r.status.code == kExConfig)
        << r.status.describe() << "\nstderr:\n"
        << r.err;
    std::vector<std::string> lines = non_empty_lines(r.err);
    ASSERT_EQ(lines.size(), 1u) << r.err;
    EXPECT_EQ(lines[0].rfind("flowrelayd: " + path + ":", 0), 0u)
        << "expected 'flowrelayd: <file>:...', got: " << lines[0];
  }
}

TEST(DaemonHttp, HealthAndReadyAnswerJson) {
  Daemon d;
  for (const char* path : {"/health", "/ready"}) {
    SCOPED_TRACE(path);
    HttpResult r = http_get(d.http_port(), path);
    EXPECT_EQ(r.status, 200);
    EXPECT_NE(r.content_type.find("application/json"), std::string::npos) << r.content_type;
    ASSERT_FALSE(r.body.empty());
    const auto first = r.body.find_first_not_of(" \t\r\n");
    const auto last = r.body.find_last_not_of(" \t\r\n");
    EXPECT_EQ(r.body[first], '{') << r.body;
    EXPECT_EQ(r.body[last], '}') << r.body;
  }
  EXPECT_TRUE(d.running());
  ExitStatus st = d.stop();
  EXPECT_TRUE(st.exited && st.code == 0) << st.describe() << "\n" << d.stderr_text();
}

}  // namespace
}  // namespace flowrelay::itest
