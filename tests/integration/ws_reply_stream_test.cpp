// Reply streams through transport-ws with the real flowrelayd and broker-local
// (docs/PROTOCOL.md "Reply streams"): an envelope producer's open/delta/end, what envelope and
// raw viewers receive, duplicate and gap seqs, a resume mid-reply (one snapshot, then the live
// deltas) and across the compaction seam (the reply entry), and a slow viewer whose queued
// deltas are merged instead of it being disconnected.
#include <gtest/gtest.h>

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <algorithm>
#include <atomic>
#include <iostream>
#include <sstream>
#include <thread>

#include "support/envelope_client.h"
#include "support/itest.h"

namespace flowrelay::itest {
namespace {

using Json = Poco::JSON::Object::Ptr;

Json json_of(const std::string& text) {
  try {
    const Poco::Dynamic::Var v = Poco::JSON::Parser().parse(text);
    if (v.type() == typeid(Json)) return v.extract<Json>();
  } catch (const Poco::Exception&) {
  }
  return nullptr;
}
std::string str(const Json& o, const char* name) {
  return o && o->has(name) && o->get(name).isString() ? o->getValue<std::string>(name) : "";
}
uint64_t num(const Json& o, const char* name) {
  return o && o->has(name) && o->get(name).isInteger() ? o->getValue<uint64_t>(name) : 0;
}
// A client frame: `fields` as a JSON object (Poco escapes the strings).
std::string frame(std::initializer_list<std::pair<const char*, Poco::Dynamic::Var>> fields) {
  Poco::JSON::Object o;
  for (const auto& [k, v] : fields) o.set(k, v);
  std::ostringstream s;
  o.stringify(s);
  return s.str();
}

// The deltas of the test replies: quotes, backslashes, newlines and UTF-8 on the way.
std::string piece(uint64_t seq) {
  static const char* kinds[] = {"word ",        "\"q\" ", "caf\xc3\xa9 ",
                                "back\\slash ", "line\n", "\xe6\x97\xa5\xe6\x9c\xac "};
  return std::to_string(seq) + ":" + kinds[seq % 6];
}

// An envelope producer: each step with an id, answered by its ack or error frame (the other
// frames it gets, its own steps echoed, are skipped).
class Producer {
 public:
  Producer(uint16_t port, const std::string& conversation) : _c(port, conversation) {}
  void send(const std::string& type, const std::string& reply, uint64_t seq = 0,
            const std::string& data = {}) {
    const std::string id = "p" + std::to_string(++_ids);
    if (type == "delta")
      _c.send_text(
          frame({{"type", type}, {"reply", reply}, {"seq", seq}, {"data", data}, {"id", id}}));
    else
      _c.send_text(frame({{"type", type}, {"reply", reply}, {"id", id}}));
  }
  void log(const std::string& line) {
    _c.send_text(frame({{"type", "publish"}, {"lane", "log"}, {"data", line}}));
  }
  // The answer to the last step sent.
  Json answer() {
    const std::string id = "p" + std::to_string(_ids);
    for (;;) {
      const auto e = _c.next(5s);
      if (!e) return nullptr;
      const Json o = json_of(e->raw);
      if ((str(o, "type") == "ack" || str(o, "type") == "error") && str(o, "id") == id) return o;
    }
  }
  Json step(const std::string& type, const std::string& reply, uint64_t seq = 0,
            const std::string& data = {}) {
    send(type, reply, seq, data);
    return answer();
  }

 private:
  EnvelopeClient _c;
  uint64_t _ids = 0;
};

// What a viewer assembled of one reply.
struct Assembled {
  std::string text;
  uint64_t last_seq = 0;
  uint64_t last_offset = 0;
  std::string epoch;
  std::vector<std::string> types;
  Json end;
  std::string problem;  // a gap or a repeat, "" if none
};

// Reads `v`'s frames of `reply` until its end (or reply entry) or `stop_after_seq` is reached.
void read_reply(EnvelopeClient& v, const std::string& reply, Assembled& a,
                uint64_t stop_after_seq = UINT64_MAX) {
  while (a.last_seq < stop_after_seq) {
    const auto e = v.next(10s);
    if (!e) {
      a.problem += "no frame within 10 s after seq " + std::to_string(a.last_seq) + "; ";
      return;
    }
    const Json o = json_of(e->raw);
    const std::string type = str(o, "type");
    if (num(o, "offset")) a.last_offset = num(o, "offset");
    if (!str(o, "epoch").empty()) a.epoch = str(o, "epoch");
    if (str(o, "reply") != reply) continue;
    a.types.push_back(type);
    if (type == "delta") {
      const uint64_t from = o->has("from") ? num(o, "from") : num(o, "seq");
      if (from != a.last_seq + 1)
        a.problem +=
            "delta from " + std::to_string(from) + " after " + std::to_string(a.last_seq) + "; ";
      a.text += str(o, "data");
      a.last_seq = num(o, "seq");
    } else if (type == "snapshot" || type == "reply") {
      a.text = str(o, "data");  // the text from seq 1: replaces what the viewer had
      a.last_seq = num(o, "seq");
      if (type == "reply") {
        a.end = o;
        return;
      }
    } else if (type == "end") {
      a.end = o;
      return;
    }
  }
}

std::string text_of(uint64_t from, uint64_t to) {
  std::string t;
  for (uint64_t i = from; i <= to; ++i) t += piece(i);
  return t;
}

class ReplyStream : public ::testing::Test {
 protected:
  void start(const std::string& transport_extra = {}, const std::string& broker_extra = {}) {
    DaemonOptions o;
    o.transport_extra = "    publish_rate: 0\n" + transport_extra;
    o.broker_extra = broker_extra;
    daemon = std::make_unique<Daemon>(o);
  }
  double metric(const std::string& name) const { return metric_value(daemon->http_port(), name); }
  std::unique_ptr<Daemon> daemon;
};

TEST_F(ReplyStream, EnvelopeAndRawViewersGetTheWholeReply) {
  start();
  EnvelopeClient v1(daemon->ws_port(), "42"), v2(daemon->ws_port(), "42");
  RawClient raw(daemon->ws_port());
  ASSERT_TRUE(raw.upgrade("/ws/42"));
  Producer p(daemon->ws_port(), "42");
  ASSERT_EQ(str(p.step("open", "r17"), "type"), "ack");
  constexpr uint64_t kDeltas = 30;
  for (uint64_t seq = 1; seq <= kDeltas; ++seq) {
    const Json a = p.step("delta", "r17", seq, piece(seq));
    ASSERT_EQ(str(a, "type"), "ack") << seq;
    EXPECT_GT(num(a, "offset"), 0u);
  }
  ASSERT_EQ(str(p.step("end", "r17"), "type"), "ack");
  for (EnvelopeClient* v : {&v1, &v2}) {
    Assembled a;
    read_reply(*v, "r17", a);
    EXPECT_EQ(a.problem, "");
    EXPECT_EQ(a.text, text_of(1, kDeltas));
    ASSERT_GE(a.types.size(), 2u);
    EXPECT_EQ(a.types.front(), "open");
    EXPECT_EQ(a.types.size(), kDeltas + 2) << "open, every delta once, end";
    ASSERT_TRUE(a.end);
    EXPECT_EQ(str(a.end, "reason"), "done");
    const Json stats = a.end->getObject("stats");
    ASSERT_TRUE(stats) << "end without stats";
    EXPECT_EQ(num(stats, "tokens"), kDeltas);
    EXPECT_EQ(num(stats, "bytes"), text_of(1, kDeltas).size());
  }
  // Raw: each delta's text as a frame of its own, then nothing of the open or the end: the next
  // frame is a plain message published after the reply.
  for (uint64_t seq = 1; seq <= kDeltas; ++seq) {
    Frame f;
    ASSERT_EQ(raw.read_frame(f, 5s), ReadResult::Frame) << seq;
    EXPECT_EQ(f.payload, piece(seq));
  }
  EnvelopeClient tail(daemon->ws_port(), "42");
  tail.publish("after the reply");
  Frame f;
  ASSERT_EQ(raw.read_frame(f, 5s), ReadResult::Frame);
  EXPECT_EQ(f.payload, "after the reply");
}

TEST_F(ReplyStream, DuplicateSeqsAreStoredOnceAndGapsAreRefused) {
  start();
  EnvelopeClient viewer(daemon->ws_port(), "42");
  Producer p(daemon->ws_port(), "42");
  const Json first = p.step("delta", "r1", 1, piece(1));
  ASSERT_EQ(str(first, "type"), "ack");
  EXPECT_FALSE(first->has("duplicate"));
  const Json again = p.step("delta", "r1", 1, piece(1));
  ASSERT_EQ(str(again, "type"), "ack") << again;
  EXPECT_TRUE(again->getValue<bool>("duplicate"));
  const Json gap = p.step("delta", "r1", 3, piece(3));
  EXPECT_EQ(num(gap, "code"), 409u);
  EXPECT_EQ(num(gap, "expected_seq"), 2u);
  ASSERT_EQ(str(p.step("delta", "r1", 2, piece(2)), "type"), "ack");
  ASSERT_EQ(str(p.step("end", "r1"), "type"), "ack");
  const Json late = p.step("delta", "r1", 3, piece(3));
  EXPECT_EQ(num(late, "code"), 409u);
  EXPECT_EQ(str(late, "ended"), "done");
  const Json bad = p.step("delta", "", 1, "x");
  EXPECT_EQ(num(bad, "code"), 400u);
  Assembled a;
  read_reply(viewer, "r1", a);
  EXPECT_EQ(a.problem, "");
  EXPECT_EQ(a.text, text_of(1, 2)) << "the resent delta was delivered once";
  EXPECT_EQ(a.types, (std::vector<std::string>{"delta", "delta", "end"}));
}

TEST_F(ReplyStream, ResumeMidReplyIsOneSnapshotThenTheLiveDeltas) {
  start();
  Producer p(daemon->ws_port(), "42");
  Assembled before;
  {
    EnvelopeClient first(daemon->ws_port(), "42");
    for (uint64_t seq = 1; seq <= 5; ++seq)
      ASSERT_EQ(str(p.step("delta", "r2", seq, piece(seq)), "type"), "ack");
    read_reply(first, "r2", before, 5);
    ASSERT_EQ(before.problem, "");
  }  // gone: it knows offset and epoch of delta 5
  constexpr uint64_t kLast = 400;
  std::atomic<bool> failed{false};
  std::thread producing([&] {  // live deltas keep coming while the viewer resumes
    for (uint64_t seq = 6; seq <= kLast; ++seq) {
      if (str(p.step("delta", "r2", seq, piece(seq)), "type") != "ack") failed = true;
      std::this_thread::sleep_for(1ms);  // the resume lands mid-reply
    }
    if (str(p.step("end", "r2"), "type") != "ack") failed = true;
  });
  std::this_thread::sleep_for(20ms);
  EnvelopeClient resumed(daemon->ws_port(), resume_path("42", before.last_offset, before.epoch));
  Assembled after;
  read_reply(resumed, "r2", after);
  producing.join();
  ASSERT_FALSE(failed);
  EXPECT_EQ(after.problem, "") << "a gap or a duplicate after the snapshot";
  EXPECT_EQ(after.text, text_of(1, kLast));
  ASSERT_FALSE(after.types.empty());
  EXPECT_EQ(std::count(after.types.begin(), after.types.end(), "snapshot"), 1)
      << "exactly one snapshot";
  EXPECT_EQ(after.types.front(), "snapshot");
  EXPECT_EQ(after.types.back(), "end");
}

TEST_F(ReplyStream, ResumeAcrossTheCompactionSeamGetsTheReplyEntry) {
  start();
  Producer p(daemon->ws_port(), "42");
  Assembled before;
  {
    EnvelopeClient first(daemon->ws_port(), "42");
    for (uint64_t seq = 1; seq <= 3; ++seq)
      ASSERT_EQ(str(p.step("delta", "r3", seq, piece(seq)), "type"), "ack");
    read_reply(first, "r3", before, 3);
  }
  for (uint64_t seq = 4; seq <= 6; ++seq)
    ASSERT_EQ(str(p.step("delta", "r3", seq, piece(seq)), "type"), "ack");
  ASSERT_EQ(str(p.step("end", "r3"), "type"), "ack");  // compacted: one entry at the end's offset
  EnvelopeClient resumed(daemon->ws_port(), resume_path("42", before.last_offset, before.epoch));
  const auto e = resumed.next(5s);
  ASSERT_TRUE(e);
  const Json entry = json_of(e->raw);
  EXPECT_EQ(str(entry, "type"), "reply") << e->raw;
  EXPECT_EQ(str(entry, "data"), text_of(1, 6)) << "the whole text, never half a reply twice";
  EXPECT_EQ(num(entry, "seq"), 6u);
  EXPECT_EQ(str(entry, "reason"), "done");
  const auto r = resumed.next(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->type, "resumed") << r->raw;
  EXPECT_EQ(r->recovered, std::optional<bool>(true)) << r->raw;
}

// The slow viewer never reads until the reply is over: past half of max_outbound_bytes its
// log-lane frames are shed and its queued deltas merged, so it stays under the bound.
TEST_F(ReplyStream, ASlowViewerGetsTheWholeTextThroughMergedDeltas) {
  start("    max_outbound_bytes: 131072\n", "  history_max_bytes: 67108864\n");
  RawClient slow(daemon->ws_port(), 4096);
  ASSERT_EQ(
      slow.handshake("/ws/42", std::string("Sec-WebSocket-Protocol: ") + kSubprotocol + "\r\n")
          .status,
      101);
  Producer p(daemon->ws_port(), "42");  // reads its echoes: never slow itself
  uint64_t seq = 0, after_merging = 0;
  const std::string log_line(200, 'l');
  while (after_merging < 300) {
    ASSERT_LT(seq, 400000u) << "no delta merged; deltas_merged_total = "
                            << metric("flowrelay_deltas_merged_total");
    for (int i = 0; i < 50; ++i) {
      ++seq;
      p.send("delta", "r4", seq, piece(seq));
    }
    p.log(log_line);
    ASSERT_EQ(str(p.answer(), "type"), "ack") << seq;
    if (after_merging > 0 || metric("flowrelay_deltas_merged_total") > 0) after_merging += 50;
  }
  ASSERT_EQ(str(p.step("end", "r4"), "type"), "ack");
  EXPECT_GT(metric("flowrelay_log_frames_shed_total"), 0) << "the log lane goes first";
  EXPECT_EQ(metric("flowrelay_slow_consumer_closes_total"), 0);
  // Now it reads: every delta's text exactly once, in order, then the end.
  std::string text;
  uint64_t last = 0, frames = 0;
  bool ended = false;
  while (!ended) {
    Frame f;
    ASSERT_EQ(slow.read_frame(f, 10s), ReadResult::Frame) << "after seq " << last;
    ASSERT_NE(f.opcode, kClose) << "closed: " << f.close_reason();
    const Json o = json_of(f.payload);
    if (str(o, "reply") != "r4") continue;
    if (str(o, "type") == "end") {
      ended = true;
      break;
    }
    ASSERT_EQ(str(o, "type"), "delta") << f.payload.substr(0, 200);
    const uint64_t from = o->has("from") ? num(o, "from") : num(o, "seq");
    ASSERT_EQ(from, last + 1) << "a gap or a repeat";
    text += str(o, "data");
    last = num(o, "seq");
    ++frames;
  }
  EXPECT_EQ(last, seq);
  EXPECT_EQ(text, text_of(1, seq));
  EXPECT_LT(frames, seq) << "no delta was merged for the slow viewer";
  std::cout << "[ MEASURE  ] " << seq << " deltas reached the slow viewer in " << frames
            << " frames; merged: " << metric("flowrelay_deltas_merged_total") << "\n";
}

}  // namespace
}  // namespace flowrelay::itest
