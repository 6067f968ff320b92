// A broker plugin inside the real daemon: flowrelayd with transport-ws and the broker given by
// FLOWRELAY_BROKER_PLUGIN (path of its .so; options from FLOWRELAY_BROKER_OPTIONS "k=v;..."
// become keys of the broker section), two WebSocket clients of one conversation exchanging
// messages, a third one of another conversation hearing nothing, then SIGTERM; and with
// channels.echo: false, a sender that never hears itself (the broker carries each message's
// origin session back to the daemon).
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdlib>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "broker_test_host.h"
#include "support/daemon.h"
#include "support/poco_ws_client.h"
#include "support/ports.h"

namespace flowrelay::test {
namespace {

using Poco::Net::WebSocket;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

class DaemonWithBroker : public ::testing::Test {
 protected:
  void SetUp() override {
    broker_ = env("FLOWRELAY_BROKER_PLUGIN");
    ASSERT_FALSE(broker_.empty()) << "FLOWRELAY_BROKER_PLUGIN is not set";
    ws_port_ = free_port();
    http_port_ = free_port();
    write_config(true);
  }

  void write_config(bool echo) {
    std::ostringstream yaml;
    yaml << "plugin_dir: " << plugin_dir() << "\n"
         << "log: { level: information }\n"
         << "transports:\n"
         << "  - plugin: transport-ws\n"
         << "    listen: 127.0.0.1:" << ws_port_ << "\n"
         << "    path: /ws/\n"
         << "broker:\n"
         << "  plugin: " << broker_ << "\n";
    OptionList options = OptionList::parse(env("FLOWRELAY_BROKER_OPTIONS"));
    for (size_t i = 0; i < options.size(); ++i) {
      const auto& o = options.data()[i];
      yaml << "  " << str(o.key) << ": \"" << str(o.value) << "\"\n";
    }
    yaml << "channels: { prefix: \"chat:\", echo: " << (echo ? "true" : "false") << " }\n"
         << "http: { listen: 127.0.0.1:" << http_port_ << " }\n";
    config_ = dir_.write("flowrelay.yaml", yaml.str());
  }

  void TearDown() override {
    clients_.clear();
    if (HasFailure() && daemon_.started())
      std::cerr << "flowrelayd stderr:\n" << daemon_.err_text() << "\n";
  }

  void start_daemon() {
    daemon_.start({daemon_binary(), "--config", config_});
    const Readiness r = await_ready(daemon_, http_port_, 10s);
    ASSERT_EQ(r, Readiness::Ready) << (r == Readiness::Exited ? "flowrelayd stopped during start-up"
                                                              : "GET /ready not 200 within 10 s");
  }

  WsClient& connect(const std::string& id) {
    clients_.push_back(std::make_unique<WsClient>(ws_port_, id));
    return *clients_.back();
  }

  static void send_text(WsClient& ws, const std::string& text) {
    ASSERT_NO_THROW(ws.send_text(text)) << "send of " << text.size() << " bytes";
  }

  // The next data or close frame (pings and pongs are skipped); fails the test after 5 s.
  static WsMessage receive(WsClient& ws) {
    for (;;) {
      std::optional<WsMessage> m = ws.receive(5s);
      if (!m) {
        ADD_FAILURE() << "no frame within 5 s";
        return {};
      }
      if (m->opcode() != WebSocket::FRAME_OP_PING && m->opcode() != WebSocket::FRAME_OP_PONG)
        return *m;
    }
  }

  static void expect_text(WsClient& ws, const std::string& text, const char* who) {
    WsMessage f = receive(ws);
    EXPECT_EQ(f.opcode(), WebSocket::FRAME_OP_TEXT) << who;
    EXPECT_EQ(f.payload.size(), text.size()) << who;
    EXPECT_TRUE(f.payload == text) << who << " received another message";
  }

  TempDir dir_{"in-daemon"};
  std::string broker_, config_;
  uint16_t ws_port_ = 0, http_port_ = 0;
  Process daemon_;  // SIGKILLed on destruction if it still runs
  std::vector<std::unique_ptr<WsClient>> clients_;
};

TEST_F(DaemonWithBroker, CheckConfigAcceptsTheBroker) {
  ProcessResult r = run_daemon_command({"--config", config_, "--check-config"}, 20s);
  ASSERT_TRUE(r.status.finished) << r.status.describe();
  EXPECT_TRUE(r.status.exited && r.status.code == 0)
      << r.status.describe() << "\nstderr: " << r.err;
  EXPECT_NE(r.out.find(config_ + ": OK"), std::string::npos) << "stdout: " << r.out;
}

TEST_F(DaemonWithBroker, TwoClientsOfAConversationExchangeMessages) {
  ASSERT_NO_FATAL_FAILURE(start_daemon());
  const std::string room = "room-" + std::to_string(ws_port_);
  WsClient& a = connect(room);
  WsClient& b = connect(room);
  WsClient& other = connect("other-" + std::to_string(ws_port_));

  const std::string from_a = "hello from a";
  ASSERT_NO_FATAL_FAILURE(send_text(a, from_a));
  expect_text(a, from_a, "a (echo)");
  expect_text(b, from_a, "b");

  const std::string from_b = "from b: " + std::string(10000, 'x') + " end";
  ASSERT_NO_FATAL_FAILURE(send_text(b, from_b));
  expect_text(a, from_b, "a");
  expect_text(b, from_b, "b (echo)");

  for (int i = 0; i < 50; ++i) ASSERT_NO_FATAL_FAILURE(send_text(a, "seq " + std::to_string(i)));
  for (int i = 0; i < 50; ++i) {
    expect_text(b, "seq " + std::to_string(i), "b, in order");
    expect_text(a, "seq " + std::to_string(i), "a, in order");
  }

  // The other conversation heard none of it: its first frame is its own echo.
  ASSERT_NO_FATAL_FAILURE(send_text(other, "other marker"));
  expect_text(other, "other marker", "other");

  // SIGTERM: every client gets close 1001 (going away) and the daemon exits 0.
  daemon_.signal(SIGTERM);
  for (WsClient* ws : {&a, &b, &other}) {
    WsMessage f = receive(*ws);
    EXPECT_EQ(f.opcode(), WebSocket::FRAME_OP_CLOSE);
    ASSERT_GE(f.payload.size(), 2u) << "close frame without a status code";
    int code =
        (static_cast<unsigned char>(f.payload[0]) << 8) | static_cast<unsigned char>(f.payload[1]);
    EXPECT_EQ(code, 1001);
    try {
      ws->close(1000);
    } catch (const Poco::Exception&) {
      // the daemon may have closed the connection already
    }
  }
  const ExitStatus exit = daemon_.wait_exit(10s);
  ASSERT_TRUE(exit.finished) << "flowrelayd did not exit within 10 s of SIGTERM";
  EXPECT_TRUE(exit.exited && exit.code == 0)
      << exit.describe() << "\nstderr: " << daemon_.err_text();
}

TEST_F(DaemonWithBroker, WithoutEchoASenderHearsOnlyTheOthers) {
  write_config(false);
  ASSERT_NO_FATAL_FAILURE(start_daemon());
  const std::string room = "quiet-" + std::to_string(ws_port_);
  WsClient& a = connect(room);
  WsClient& b = connect(room);
  for (int i = 0; i < 5; ++i) ASSERT_NO_FATAL_FAILURE(send_text(a, "a" + std::to_string(i)));
  for (int i = 0; i < 5; ++i) expect_text(b, "a" + std::to_string(i), "b");
  ASSERT_NO_FATAL_FAILURE(send_text(b, "from b"));
  // a's first frame is b's message: none of its own five came back to it.
  expect_text(a, "from b", "a");
  ASSERT_NO_FATAL_FAILURE(send_text(a, "a again"));
  expect_text(b, "a again", "b (nor did b hear itself)");
}

}  // namespace
}  // namespace flowrelay::test
