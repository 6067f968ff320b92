// Protocol violations: each must be answered by a close frame with the right code, after which
// the server closes the TCP connection. Frames are hand-built and sent over raw TCP.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>

#include "support/itest.h"

namespace flowrelay::itest {
namespace {

FrameSpec frame(uint8_t opcode, std::string payload, bool fin = true) {
  FrameSpec s;
  s.opcode = opcode;
  s.payload = std::move(payload);
  s.fin = fin;
  return s;
}

FrameSpec with_rsv(FrameSpec s, uint8_t rsv) {
  s.rsv = rsv;
  return s;
}

FrameSpec unmasked(FrameSpec s) {
  s.masked = false;
  return s;
}

struct ErrorCase {
  std::string name;
  std::vector<FrameSpec> frames;  // sent back to back in one write
  uint16_t code;
  // A complete message the frames contain before the violation (relayed as usual), or "".
  std::string relayed = "";
};
void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.name; }

// Reads the server's answer: optional pongs, then a close frame with `code`, then EOF/RST.
// No message may have been relayed back to the offender.
void expect_closed_with(RawClient& c, uint16_t code, const std::string& relayed = "") {
  std::vector<Frame> before;
  auto f = c.read_until_close(5s, &before);
  ASSERT_TRUE(f.has_value()) << "expected a close frame with " << code << "; got none ("
                             << (c.closed() ? "connection closed" : "timeout") << ")";
  EXPECT_EQ(f->close_code(), code) << f->describe();
  EXPECT_TRUE(f->fin);
  EXPECT_FALSE(f->masked);
  for (const Frame& b : before) {
    if (b.opcode == kText && !relayed.empty() && b.payload == relayed) continue;
    EXPECT_NE(b.opcode, kText) << "unexpected relayed message before the close: " << b.describe();
  }
  EXPECT_TRUE(c.wait_closed(5s)) << "server did not close the TCP connection after close " << code;
}

std::atomic<int> g_conn{0};

class ProtocolErrorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { daemon = std::make_unique<Daemon>(); }
  static void TearDownTestSuite() { daemon.reset(); }
  void TearDown() override {
    ASSERT_TRUE(daemon->running()) << "daemon died; stderr:\n" << daemon->stderr_text();
  }
  static std::unique_ptr<Daemon> daemon;

  // Connects an offender and a well-behaved observer on the same conversation, sends the case's
  // frames, checks the close, then checks the observer got nothing of it and still works.
  static void run_case(Daemon& d, const std::vector<FrameSpec>& frames, uint16_t code,
                       const std::string& relayed = "") {
    const std::string id = "perr" + std::to_string(g_conn++);
    RawClient offender(d.ws_port());
    ASSERT_TRUE(offender.upgrade("/ws/" + id));
    RawClient observer(d.ws_port());
    ASSERT_TRUE(observer.upgrade("/ws/" + id));
    std::string wire;
    for (const auto& f : frames) wire += encode_frame(f);
    offender.send_raw(wire);  // may fail half-way if the server already gave up: that is fine
    expect_closed_with(offender, code, relayed);

    ASSERT_TRUE(observer.send_text("observer ok"));
    Frame f;
    if (!relayed.empty()) {
      ASSERT_EQ(observer.read_frame(f, 5s), ReadResult::Frame);
      EXPECT_EQ(f.payload, relayed) << f.describe();
    }
    ASSERT_EQ(observer.read_frame(f, 5s), ReadResult::Frame);
    EXPECT_EQ(f.opcode, kText) << f.describe();
    EXPECT_EQ(f.payload, "observer ok") << "observer received something of the bad message";
  }
};
std::unique_ptr<Daemon> ProtocolErrorTest::daemon;

class ProtocolError : public ProtocolErrorTest, public ::testing::WithParamInterface<ErrorCase> {};

TEST_P(ProtocolError, ClosesWithCode) {
  run_case(*daemon, GetParam().frames, GetParam().code, GetParam().relayed);
}

std::vector<ErrorCase> framing_cases() {
  std::vector<ErrorCase> v;
  v.push_back({"UnmaskedText", {unmasked(frame(kText, "hi"))}, 1002});
  v.push_back({"UnmaskedPing", {unmasked(frame(kPing, "hi"))}, 1002});
  v.push_back({"UnmaskedClose", {unmasked(frame(kClose, close_payload(1000)))}, 1002});
  v.push_back({"Rsv1", {with_rsv(frame(kText, "hi"), 4)}, 1002});
  v.push_back({"Rsv2", {with_rsv(frame(kText, "hi"), 2)}, 1002});
  v.push_back({"Rsv3", {with_rsv(frame(kText, "hi"), 1)}, 1002});
  v.push_back({"AllRsv", {with_rsv(frame(kText, "hi"), 7)}, 1002});
  v.push_back({"RsvOnPing", {with_rsv(frame(kPing, "hi"), 4)}, 1002});
  v.push_back(
      {"RsvOnContinuation", {frame(kText, "a", false), with_rsv(frame(kCont, "b"), 4)}, 1002});
  for (uint8_t op : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
    v.push_back({"Opcode" + std::to_string(op), {frame(op, "x")}, 1002});
  }
  v.push_back({"PingPayload126", {frame(kPing, std::string(126, 'p'))}, 1002});
  v.push_back({"PongPayload126", {frame(kPong, std::string(126, 'p'))}, 1002});
  v.push_back(
      {"ClosePayload126", {frame(kClose, close_payload(1000, std::string(124, 'r')))}, 1002});
  v.push_back({"FragmentedPing", {frame(kPing, "a", false), frame(kCont, "b")}, 1002});
  v.push_back({"FragmentedClose", {frame(kClose, close_payload(1000), false)}, 1002});
  v.push_back(
      {"FragmentedPingInsideMessage", {frame(kText, "a", false), frame(kPing, "p", false)}, 1002});
  v.push_back({"ContinuationWithoutStart", {frame(kCont, "x")}, 1002});
  v.push_back({"ContinuationWithoutStartNoFin", {frame(kCont, "x", false)}, 1002});
  v.push_back(
      {"ContinuationAfterFinishedMessage", {frame(kText, "a"), frame(kCont, "b")}, 1002, "a"});
  v.push_back({"TextWhileFragmentOpen", {frame(kText, "a", false), frame(kText, "b")}, 1002});
  v.push_back(
      {"TextNoFinWhileFragmentOpen", {frame(kText, "a", false), frame(kText, "b", false)}, 1002});
  return v;
}

std::vector<ErrorCase> utf8_cases() {
  std::vector<ErrorCase> v;
  v.push_back({"InvalidByteFF", {frame(kText, "ab\xFF")}, 1007});
  v.push_back({"LoneContinuationByte", {frame(kText, "abc\x80")}, 1007});
  v.push_back({"OverlongSlash", {frame(kText, "\xC0\xAF")}, 1007});
  v.push_back({"Surrogate", {frame(kText, "\xED\xA0\x80")}, 1007});
  v.push_back({"AboveU10FFFF", {frame(kText, "\xF4\x90\x80\x80")}, 1007});
  v.push_back({"TruncatedSingleFrame", {frame(kText, "ok\xE2\x82")}, 1007});
  v.push_back({"InvalidInFirstFragment", {frame(kText, "\xFF", false), frame(kCont, "ok")}, 1007});
  v.push_back({"InvalidAcrossFragments",
               {frame(kText, "ok\xE2\x82", false), frame(kCont, "\x28ok")},
               1007});
  v.push_back({"InvalidInLastFragment",
               {frame(kText, "ok", false), frame(kCont, "ok", false), frame(kCont, "\xC0\xAF")},
               1007});
  v.push_back({"TruncatedAtEndOfFinalFragment",
               {frame(kText, "abc", false), frame(kCont, "\xE2\x82")},
               1007});
  v.push_back({"TruncatedAcrossFragmentsEnd",
               {frame(kText, "abc\xF0", false), frame(kCont, "\x9F\x98")},
               1007});
  return v;
}

std::vector<ErrorCase> close_cases() {
  std::vector<ErrorCase> v;
  v.push_back({"CloseOneBytePayload", {frame(kClose, std::string(1, '\x03'))}, 1002});
  for (int code : {0, 999, 1004, 1005, 1006, 1015, 2999, 5000}) {
    v.push_back({"CloseInvalidCode" + std::to_string(code),
                 {frame(kClose, close_payload(static_cast<uint16_t>(code)))},
                 1002});
  }
  v.push_back({"CloseInvalidUtf8Reason", {frame(kClose, close_payload(1000, "bad\xFF"))}, 1007});
  v.push_back({"CloseTruncatedUtf8Reason", {frame(kClose, close_payload(1000, "\xE2\x82"))}, 1007});
  return v;
}

auto case_name = [](const auto& info) { return info.param.name; };

INSTANTIATE_TEST_SUITE_P(Framing, ProtocolError, ::testing::ValuesIn(framing_cases()), case_name);
INSTANTIATE_TEST_SUITE_P(Utf8, ProtocolError, ::testing::ValuesIn(utf8_cases()), case_name);
INSTANTIATE_TEST_SUITE_P(Close, ProtocolError, ::testing::ValuesIn(close_cases()), case_name);

// A frame announcing more than max_message_size (default 1 MiB): only its header is sent.
TEST_F(ProtocolErrorTest, AnnouncedFrameOverDefaultMaxIs1009) {
  for (uint64_t len : {uint64_t{1048577}, uint64_t{1} << 40}) {
    SCOPED_TRACE("declared length " + std::to_string(len));
    FrameSpec s = frame(kText, "");
    s.declared_len = len;
    run_case(*daemon, {s}, 1009);
  }
}

// max_message_size = 1000: the limit applies to a single frame and to the sum of fragments,
// and exactly the limit is still accepted.
class MessageSizeTest : public ProtocolErrorTest {
 protected:
  static void SetUpTestSuite() {
    DaemonOptions o;
    o.max_message_size = 1000;
    small = std::make_unique<Daemon>(o);
  }
  static void TearDownTestSuite() { small.reset(); }
  void TearDown() override {
    ASSERT_TRUE(small->running()) << "daemon died; stderr:\n" << small->stderr_text();
  }
  static std::unique_ptr<Daemon> small;

  static void expect_relayed(const std::vector<FrameSpec>& frames, const std::string& whole) {
    RawClient c(small->ws_port());
    ASSERT_TRUE(c.upgrade("/ws/size-ok" + std::to_string(g_conn++)));
    std::string wire;
    for (const auto& f : frames) wire += encode_frame(f);
    ASSERT_TRUE(c.send_raw(wire));
    Frame f;
    ASSERT_EQ(c.read_frame(f, 5s), ReadResult::Frame);
    EXPECT_EQ(f.opcode, kText) << f.describe();
    EXPECT_EQ(f.payload.size(), whole.size()) << f.describe();
    EXPECT_TRUE(f.payload == whole);
  }
};
std::unique_ptr<Daemon> MessageSizeTest::small;

TEST_F(MessageSizeTest, SingleFrameAtLimitIsRelayed) {
  expect_relayed({frame(kText, std::string(1000, 'a'))}, std::string(1000, 'a'));
}

TEST_F(MessageSizeTest, SingleFrameOverLimitIs1009) {
  run_case(*small, {frame(kText, std::string(1001, 'a'))}, 1009);
}

TEST_F(MessageSizeTest, FragmentsSummingToLimitAreRelayed) {
  expect_relayed({frame(kText, std::string(600, 'a'), false), frame(kCont, std::string(400, 'b'))},
                 std::string(600, 'a') + std::string(400, 'b'));
}

TEST_F(MessageSizeTest, FragmentsSummingOverLimitAre1009) {
  run_case(*small,
           {frame(kText, std::string(600, 'a'), false), frame(kCont, std::string(401, 'b'))}, 1009);
}

TEST_F(MessageSizeTest, ManyFragmentsSummingOverLimitAre1009) {
  run_case(*small,
           {frame(kText, std::string(400, 'a'), false), frame(kCont, std::string(400, 'b'), false),
            frame(kCont, std::string(400, 'c'))},
           1009);
}

TEST_F(MessageSizeTest, ControlFramesDoNotCountTowardsTheMessage) {
  RawClient c(small->ws_port());
  ASSERT_TRUE(c.upgrade("/ws/size-ping"));
  std::string wire = encode_frame(frame(kText, std::string(900, 'a'), false));
  wire += encode_frame(frame(kPing, std::string(125, 'p')));
  wire += encode_frame(frame(kCont, std::string(100, 'b')));
  ASSERT_TRUE(c.send_raw(wire));
  Frame f;
  ASSERT_EQ(c.read_frame(f, 5s), ReadResult::Frame);
  EXPECT_EQ(f.opcode, kPong) << f.describe();
  ASSERT_EQ(c.read_frame(f, 5s), ReadResult::Frame);
  EXPECT_EQ(f.opcode, kText) << f.describe();
  EXPECT_EQ(f.payload.size(), 1000u);
}

}  // namespace
}  // namespace flowrelay::itest
