// A broker plugin inside the real daemon: flowrelayd with transport-ws and the broker given by
// FLOWRELAY_BROKER_PLUGIN (path of its .so; options from FLOWRELAY_BROKER_OPTIONS "k=v;..."
// become keys of the broker section), two WebSocket clients of one conversation exchanging
// messages, a third one of another conversation hearing nothing, then SIGTERM.
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/WebSocket.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdlib>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include "broker_test_host.h"
#include "child_process.h"

namespace flowrelay::test {
namespace {

using namespace std::chrono_literals;
using Poco::Net::WebSocket;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// A received frame: payload and the frame flags (opcode, FIN).
struct Frame {
  std::string payload;
  int flags = 0;
  int opcode() const { return flags & WebSocket::FRAME_OP_BITMASK; }
};

class DaemonWithBroker : public ::testing::Test {
 protected:
  void SetUp() override {
    broker_ = env("FLOWRELAY_BROKER_PLUGIN");
    ASSERT_FALSE(broker_.empty()) << "FLOWRELAY_BROKER_PLUGIN is not set";
    ws_port_ = free_local_port();
    http_port_ = free_local_port();
    std::ostringstream yaml;
    yaml << "plugin_dir: " << FLOWRELAY_PLUGIN_DIR << "\n"
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
      yaml << "  " << std::string(o.key.ptr, o.key.len) << ": \""
           << std::string(o.value.ptr, o.value.len) << "\"\n";
    }
    yaml << "channels: { prefix: \"chat:\", echo: true }\n"
         << "http: { listen: 127.0.0.1:" << http_port_ << " }\n";
    config_ = dir_.write("flowrelay.yaml", yaml.str());
  }

  void TearDown() override {
    clients_.clear();
    if (daemon_ && daemon_->running()) {
      daemon_->send_signal(SIGKILL);
      daemon_->wait_for_exit(5000ms);
    }
    if (HasFailure() && daemon_) std::cerr << "flowrelayd stderr:\n" << daemon_->err() << "\n";
  }

  void start_daemon() {
    daemon_ = std::make_unique<ChildProcess>(FLOWRELAYD_PATH,
                                             std::vector<std::string>{"--config", config_});
    auto deadline = std::chrono::steady_clock::now() + 10s;
    for (;;) {
      ASSERT_TRUE(daemon_->running())
          << "flowrelayd stopped during start-up (" << daemon_->describe_status() << ")";
      if (ready()) return;
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "GET /ready not 200 within 10 s";
      std::this_thread::sleep_for(50ms);
    }
  }

  bool ready() {
    try {
      Poco::Net::HTTPClientSession session("127.0.0.1", static_cast<Poco::UInt16>(http_port_));
      session.setTimeout(Poco::Timespan(1, 0));
      Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_GET, "/ready",
                                     Poco::Net::HTTPRequest::HTTP_1_1);
      session.sendRequest(request);
      Poco::Net::HTTPResponse response;
      session.receiveResponse(response);
      return response.getStatus() == Poco::Net::HTTPResponse::HTTP_OK;
    } catch (const Poco::Exception&) {
      return false;
    }
  }

  WebSocket& connect(const std::string& id) {
    Poco::Net::HTTPClientSession session("127.0.0.1", static_cast<Poco::UInt16>(ws_port_));
    Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_GET, "/ws/" + id,
                                   Poco::Net::HTTPRequest::HTTP_1_1);
    Poco::Net::HTTPResponse response;
    auto ws = std::make_unique<WebSocket>(session, request, response);
    ws->setReceiveTimeout(Poco::Timespan(5, 0));
    clients_.push_back(std::move(ws));
    return *clients_.back();
  }

  static void send_text(WebSocket& ws, const std::string& text) {
    int sent = ws.sendFrame(text.data(), static_cast<int>(text.size()), WebSocket::FRAME_TEXT);
    ASSERT_GE(sent, static_cast<int>(text.size())) << "short write";
  }

  // The next data or close frame (pings are skipped); fails the test after 5 s.
  static Frame receive(WebSocket& ws) {
    Frame f;
    Poco::Buffer<char> buf(0);
    for (;;) {
      buf.resize(0);
      int flags = 0;
      try {
        ws.receiveFrame(buf, flags);
      } catch (const Poco::TimeoutException&) {
        ADD_FAILURE() << "no frame within 5 s";
        return f;
      } catch (const Poco::Exception& e) {
        ADD_FAILURE() << "receiveFrame: " << e.displayText();
        return f;
      }
      f.flags = flags;
      f.payload.assign(buf.begin(), buf.size());
      if (f.opcode() != WebSocket::FRAME_OP_PING && f.opcode() != WebSocket::FRAME_OP_PONG)
        return f;
    }
  }

  static void expect_text(WebSocket& ws, const std::string& text, const char* who) {
    Frame f = receive(ws);
    EXPECT_EQ(f.opcode(), WebSocket::FRAME_OP_TEXT) << who;
    EXPECT_EQ(f.payload.size(), text.size()) << who;
    EXPECT_TRUE(f.payload == text) << who << " received another message";
  }

  TempDir dir_{"in-daemon"};
  std::string broker_, config_;
  int ws_port_ = 0, http_port_ = 0;
  std::unique_ptr<ChildProcess> daemon_;
  std::vector<std::unique_ptr<WebSocket>> clients_;
};

TEST_F(DaemonWithBroker, CheckConfigAcceptsTheBroker) {
  RunResult r = run_process(FLOWRELAYD_PATH, {"--config", config_, "--check-config"}, 20000ms);
  ASSERT_TRUE(r.finished) << r.status;
  EXPECT_TRUE(r.exited_normally && r.exit_code == 0) << r.status << "\nstderr: " << r.err;
  EXPECT_NE(r.out.find(config_ + ": OK"), std::string::npos) << "stdout: " << r.out;
}

TEST_F(DaemonWithBroker, TwoClientsOfAConversationExchangeMessages) {
  ASSERT_NO_FATAL_FAILURE(start_daemon());
  const std::string room = "room-" + std::to_string(ws_port_);
  WebSocket& a = connect(room);
  WebSocket& b = connect(room);
  WebSocket& other = connect("other-" + std::to_string(ws_port_));

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
  daemon_->send_signal(SIGTERM);
  for (WebSocket* ws : {&a, &b, &other}) {
    Frame f = receive(*ws);
    EXPECT_EQ(f.opcode(), WebSocket::FRAME_OP_CLOSE);
    ASSERT_GE(f.payload.size(), 2u) << "close frame without a status code";
    int code =
        (static_cast<unsigned char>(f.payload[0]) << 8) | static_cast<unsigned char>(f.payload[1]);
    EXPECT_EQ(code, 1001);
    try {
      ws->shutdown(WebSocket::WS_NORMAL_CLOSE);
    } catch (const Poco::Exception&) {
      // the daemon may have closed the connection already
    }
  }
  ASSERT_TRUE(daemon_->wait_for_exit(10000ms)) << "flowrelayd did not exit within 10 s of SIGTERM";
  EXPECT_TRUE(daemon_->exited_normally() && daemon_->exit_code() == 0)
      << daemon_->describe_status() << "\nstderr: " << daemon_->err();
}

}  // namespace
}  // namespace flowrelay::test
