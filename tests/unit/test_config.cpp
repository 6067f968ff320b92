// Config loading: defaults, every key, and errors located at file:line:column.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "config.h"

using flowrelay::Config;
using flowrelay::ConfigError;

namespace {

const std::string kPlugins = FLOWRELAY_PLUGIN_DIR;

std::string minimal(const std::string& extra = "") {
  return "plugin_dir: " + kPlugins +
         "\n"
         "transports:\n"
         "  - plugin: transport-ws\n"
         "    listen: 127.0.0.1:8080\n"
         "broker:\n"
         "  plugin: broker-local\n" +
         extra;
}

ConfigError parse_error(const std::string& yaml) {
  try {
    Config::parse(yaml, "/etc/flowrelay/test.yaml");
  } catch (const ConfigError& e) {
    return e;
  }
  ADD_FAILURE() << "expected a ConfigError for:\n" << yaml;
  return ConfigError("", 0, 0, "");
}

}  // namespace

TEST(Config, MinimalFileGetsDefaults) {
  const Config c = Config::parse(minimal(), "/etc/flowrelay/test.yaml");
  EXPECT_EQ(c.file, "/etc/flowrelay/test.yaml");
  EXPECT_EQ(c.log_level, "information");
  EXPECT_EQ(c.channel_prefix, "chat:");
  EXPECT_TRUE(c.echo);
  EXPECT_EQ(c.http_listen, "127.0.0.1:9090");
  EXPECT_EQ(c.shutdown_timeout_ms, 5000u);
  ASSERT_EQ(c.transports.size(), 1u);
  EXPECT_EQ(c.transports[0].path, kPlugins + "/flowrelay-transport-ws.so");
  ASSERT_EQ(c.transports[0].options.size(), 1u);
  EXPECT_EQ(c.transports[0].options[0].first, "listen");
  EXPECT_EQ(c.transports[0].options[0].second, "127.0.0.1:8080");
  EXPECT_EQ(c.broker.path, kPlugins + "/flowrelay-broker-local.so");
}

TEST(Config, ReadsEveryKey) {
  const Config c = Config::parse(minimal("log: { level: debug, format: json }\n"
                                         "shutdown_timeout_ms: 250\n"
                                         "channels: { prefix: \"room/\", echo: false }\n"
                                         "http: { listen: \"[::1]:9999\" }\n"),
                                 "/x/y.yaml");
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_EQ(c.log_format, "json");
  EXPECT_EQ(c.shutdown_timeout_ms, 250u);
  EXPECT_EQ(c.channel_prefix, "room/");
  EXPECT_FALSE(c.echo);
  EXPECT_EQ(c.http_listen, "[::1]:9999");
}

TEST(Config, NestedPluginOptionsAreFlattened) {
  const Config c = Config::parse("plugin_dir: " + kPlugins +
                                     "\ntransports: [{plugin: transport-ws}]\n"
                                     "broker:\n  plugin: broker-local\n  timeouts:\n"
                                     "    connect_ms: 5\n",
                                 "/x/y.yaml");
  ASSERT_EQ(c.broker.options.size(), 1u);
  EXPECT_EQ(c.broker.options[0].first, "timeouts.connect_ms");
  EXPECT_EQ(c.broker.options[0].second, "5");
  EXPECT_EQ(c.broker.locate("unknown option 'timeouts.connect_ms'"),
            std::make_pair(6, 5));  // the connect_ms key
  EXPECT_EQ(c.broker.locate("something else"), std::make_pair(c.broker.line, c.broker.column));
}

TEST(Config, RelativePathsResolveAgainstTheConfigFolder) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "flowrelay-config-test";
  fs::create_directories(dir / "plugs");
  std::ofstream(dir / "plugs" / "flowrelay-transport-ws.so") << "x";
  std::ofstream(dir / "plugs" / "mine.so") << "x";
  const Config c = Config::parse(
      "plugin_dir: plugs\ntransports: [{plugin: transport-ws}]\nbroker: {plugin: plugs/mine.so}\n",
      (dir / "flowrelay.yaml").string());
  EXPECT_EQ(c.plugin_dir, (dir / "plugs").string());
  EXPECT_EQ(c.transports[0].path, (dir / "plugs" / "flowrelay-transport-ws.so").string());
  EXPECT_EQ(c.broker.path, (dir / "plugs" / "mine.so").string());
  fs::remove_all(dir);
}

TEST(Config, SyntaxErrorNamesLineAndColumn) {
  const auto e = parse_error("transports:\n  - plugin: [transport-ws\nbroker: x\n");
  EXPECT_EQ(e.file(), "/etc/flowrelay/test.yaml");
  EXPECT_EQ(e.line(), 3);
  EXPECT_GT(e.column(), 0);
  EXPECT_NE(std::string(e.what()).find("/etc/flowrelay/test.yaml:3:"), std::string::npos);
}

TEST(Config, UnknownKeyIsAnErrorAtItsLine) {
  const auto e = parse_error(minimal("channels:\n  prefix: a\n  ecoh: true\n"));
  EXPECT_EQ(e.line(), 9);
  EXPECT_EQ(e.column(), 3);
  EXPECT_NE(std::string(e.what()).find("unknown key 'ecoh'"), std::string::npos);
}

TEST(Config, UnknownTopLevelKey) {
  const auto e = parse_error(minimal("brokers: {}\n"));
  EXPECT_EQ(e.line(), 7);
  EXPECT_NE(std::string(e.what()).find("'brokers'"), std::string::npos);
}

TEST(Config, WrongTypes) {
  EXPECT_NE(
      std::string(parse_error(minimal("shutdown_timeout_ms: abc\n")).what()).find("whole number"),
      std::string::npos);
  EXPECT_NE(
      std::string(parse_error(minimal("channels: { echo: maybe }\n")).what()).find("true or false"),
      std::string::npos);
  EXPECT_NE(std::string(parse_error(minimal("log: { level: loud }\n")).what()).find("log.level"),
            std::string::npos);
  EXPECT_NE(
      std::string(parse_error(minimal("http: { listen: nowhere }\n")).what()).find("http.listen"),
      std::string::npos);
  EXPECT_NE(std::string(parse_error(minimal("channels: [1, 2]\n")).what()).find("mapping"),
            std::string::npos);
  EXPECT_NE(std::string(parse_error("plugin_dir: " + kPlugins +
                                    "\ntransports: {plugin: transport-ws}\nbroker: "
                                    "{plugin: broker-local}\n")
                            .what())
                .find("non-empty list"),
            std::string::npos);
}

TEST(Config, ReplyTimers) {
  const Config d = Config::parse(minimal(), "/etc/flowrelay/test.yaml");
  EXPECT_EQ(d.reply_stall_ms, 10000u);
  EXPECT_EQ(d.reply_timeout_ms, 60000u);
  const Config c =
      Config::parse(minimal("channels: { reply_stall_ms: 300, reply_timeout_ms: 1200 }\n"),
                    "/etc/flowrelay/test.yaml");
  EXPECT_EQ(c.reply_stall_ms, 300u);
  EXPECT_EQ(c.reply_timeout_ms, 1200u);
  const Config off =
      Config::parse(minimal("channels: { reply_stall_ms: 0, reply_timeout_ms: 0 }\n"),
                    "/etc/flowrelay/test.yaml");
  EXPECT_EQ(off.reply_stall_ms, 0u);
  EXPECT_EQ(off.reply_timeout_ms, 0u);
  // A stall announced after the seal could never be seen; a stall alone is fine.
  EXPECT_NO_THROW(Config::parse(
      minimal("channels: { reply_stall_ms: 5000, reply_timeout_ms: 0 }\n"), "/x.yaml"));
  const auto late =
      parse_error(minimal("channels:\n  reply_stall_ms: 2000\n  reply_timeout_ms: 1000\n"));
  EXPECT_EQ(late.line(), 8);
  EXPECT_NE(std::string(late.what()).find("channels.reply_stall_ms (2000) must be less than"),
            std::string::npos)
      << late.what();
  const auto word = parse_error(minimal("channels: { reply_timeout_ms: soon }\n"));
  EXPECT_NE(std::string(word.what()).find("channels.reply_timeout_ms must be a whole number"),
            std::string::npos)
      << word.what();
  const auto big = parse_error(minimal("channels: { reply_stall_ms: 86400001 }\n"));
  EXPECT_NE(std::string(big.what()).find("between 0 and 86400000"), std::string::npos)
      << big.what();
}

TEST(Config, MissingSectionsAndPlugins) {
  EXPECT_NE(std::string(parse_error("broker: {plugin: broker-local}\n").what())
                .find("missing key 'transports'"),
            std::string::npos);
  const auto e = parse_error("plugin_dir: " + kPlugins +
                             "\ntransports: [{plugin: transport-ws}]\nbroker: {plugin: nope}\n");
  EXPECT_EQ(e.line(), 3);
  EXPECT_NE(std::string(e.what()).find("plugin 'nope' not found"), std::string::npos);
  EXPECT_NE(std::string(e.what()).find("flowrelay-nope.so"), std::string::npos);
  EXPECT_NE(std::string(parse_error("plugin_dir: " + kPlugins +
                                    "\ntransports: [{listen: x}]\nbroker: {plugin: broker-local}\n")
                            .what())
                .find("missing key 'plugin'"),
            std::string::npos);
}

TEST(Config, MissingFileIsAnError) {
  try {
    Config::load("/nonexistent/flowrelay.yaml");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot open"), std::string::npos);
  }
}

TEST(Config, HostPortSplitting) {
  std::string host;
  uint16_t port = 0;
  EXPECT_TRUE(flowrelay::split_host_port("127.0.0.1:80", host, port));
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 80);
  EXPECT_TRUE(flowrelay::split_host_port("[::1]:65535", host, port));
  EXPECT_EQ(host, "::1");
  EXPECT_FALSE(flowrelay::split_host_port("::1:80", host, port));
  EXPECT_FALSE(flowrelay::split_host_port("host:0", host, port));
  EXPECT_FALSE(flowrelay::split_host_port("host:65536", host, port));
  EXPECT_FALSE(flowrelay::split_host_port("host:", host, port));
  EXPECT_FALSE(flowrelay::split_host_port(":80", host, port));
  EXPECT_FALSE(flowrelay::split_host_port("host:8x", host, port));
}

TEST(ConfigHttp, PublishApiDefaults) {
  const Config c = Config::parse(minimal(), "/etc/flowrelay/test.yaml");
  EXPECT_EQ(c.api_key, "") << "no key: the publish API is off";
  EXPECT_EQ(c.http_max_body_bytes, 8u * 1024 * 1024);
  EXPECT_EQ(c.publish_timeout_ms, 5000u);
}

TEST(ConfigHttp, ReadsThePublishApiKeys) {
  const Config c = Config::parse(minimal("http:\n"
                                         "  api_key: dev-key-1\n"
                                         "  max_body_bytes: 1024\n"
                                         "  publish_timeout_ms: 600000\n"),
                                 "/x/y.yaml");
  EXPECT_EQ(c.api_key, "dev-key-1");
  EXPECT_EQ(c.http_max_body_bytes, 1024u);
  EXPECT_EQ(c.publish_timeout_ms, 600000u);
  EXPECT_EQ(Config::parse(minimal("http: { api_key: \"12345678\" }\n"), "/x/y.yaml").api_key,
            "12345678")
      << "8 characters are enough";
}

TEST(ConfigHttp, ApiKeyTooShortIsAnErrorAtItsLine) {
  const auto e = parse_error(minimal("http:\n  listen: 127.0.0.1:9090\n  api_key: 1234567\n"));
  EXPECT_EQ(e.line(), 9) << e.what();
  EXPECT_NE(std::string(e.what()).find("http.api_key must be at least 8 characters"),
            std::string::npos)
      << e.what();
}

TEST(ConfigHttp, ApiKeyAndApiKeyFileTogetherIsAnError) {
  const auto e = parse_error(minimal("http:\n  api_key: dev-key-1\n  api_key_file: key.txt\n"));
  EXPECT_EQ(e.line(), 9) << e.what();
  EXPECT_NE(std::string(e.what()).find("not both"), std::string::npos) << e.what();
}

TEST(ConfigHttp, ApiKeyFileIsRelativeToTheConfigFolderAndTrimmed) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "flowrelay-config-api-key-test";
  fs::create_directories(dir / "secrets");
  std::ofstream(dir / "secrets" / "api.key") << "file-key-0123\n";
  std::ofstream(dir / "crlf.key") << "crlf-key-0123\r\n";
  const std::string path = (dir / "flowrelay.yaml").string();
  EXPECT_EQ(Config::parse(minimal("http: { api_key_file: secrets/api.key }\n"), path).api_key,
            "file-key-0123");
  EXPECT_EQ(Config::parse(minimal("http: { api_key_file: crlf.key }\n"), path).api_key,
            "crlf-key-0123");
  EXPECT_EQ(Config::parse(minimal("http: { api_key_file: " + (dir / "crlf.key").string() + " }\n"),
                          "/elsewhere/flowrelay.yaml")
                .api_key,
            "crlf-key-0123")
      << "an absolute path is used as it is";
  fs::remove_all(dir);
}

TEST(ConfigHttp, ApiKeyFileMissingOrEmptyIsAnError) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "flowrelay-config-api-key-file-test";
  fs::create_directories(dir);
  std::ofstream(dir / "empty.key") << "";
  std::ofstream(dir / "newline.key") << "\n";
  const std::string path = (dir / "flowrelay.yaml").string();
  auto error = [&](const std::string& extra) -> std::string {
    try {
      Config::parse(minimal(extra), path);
    } catch (const ConfigError& e) {
      EXPECT_EQ(e.line(), 8) << e.what();
      return e.what();
    }
    ADD_FAILURE() << "expected a ConfigError for " << extra;
    return "";
  };
  const std::string missing = error("http:\n  api_key_file: missing.key\n");
  EXPECT_NE(missing.find("http.api_key_file: cannot read " + (dir / "missing.key").string()),
            std::string::npos)
      << missing;
  EXPECT_NE(error("http:\n  api_key_file: empty.key\n").find("is empty"), std::string::npos);
  EXPECT_NE(error("http:\n  api_key_file: newline.key\n").find("is empty"), std::string::npos)
      << "a file holding only a newline is empty";
  fs::remove_all(dir);
}

TEST(ConfigHttp, LimitsOutOfRange) {
  for (const std::string bad :
       {"max_body_bytes: 0", "max_body_bytes: 1073741825", "max_body_bytes: -1",
        "max_body_bytes: 1MiB", "publish_timeout_ms: 0", "publish_timeout_ms: 600001",
        "publish_timeout_ms: 4294967296"}) {
    const auto e = parse_error(minimal("http:\n  " + bad + "\n"));
    EXPECT_EQ(e.line(), 8) << bad << ": " << e.what();
    const std::string key = "http." + bad.substr(0, bad.find(':'));
    EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << bad << ": " << e.what();
  }
  EXPECT_EQ(Config::parse(minimal("http: { max_body_bytes: 1073741824, publish_timeout_ms: 1 }\n"),
                          "/x/y.yaml")
                .http_max_body_bytes,
            1073741824u);
}

TEST(ConfigHttp, UnknownHttpKeyIsAnErrorAtItsLine) {
  const auto e = parse_error(minimal("http:\n  listen: off\n  api-key: dev-key-1\n"));
  EXPECT_EQ(e.line(), 9);
  EXPECT_EQ(e.column(), 3);
  EXPECT_NE(std::string(e.what()).find("unknown key 'api-key' in http"), std::string::npos)
      << e.what();
}
