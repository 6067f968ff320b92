// libFuzzer target: the client frame of envelope mode (parse_client_frame, docs/PROTOCOL.md
// "Client to server") and the server frames built from what it yields, and the same text sent
// as one text frame to a real envelope-mode Session (plugins/transport-ws/session.h).
//
// Input: the text of one WebSocket text message, copied into a heap block of exactly its size
// (a read past it is a heap-buffer-overflow). parse_client_frame must not crash on any bytes;
// the invariants are checked for valid UTF-8 input only, as the event loop hands it nothing
// else (RFC 6455 8.1).
//
// Invariants: a publish has lane message or log, and its data is valid UTF-8 and survives a
// round trip (written back with append_json_string and parsed again: same lane and data); the
// message frame built from it parses with Poco::JSON to the same data. A reply step (open,
// delta, end, cancel) has a valid reply id, a delta a positive seq; the server frames of every
// reply kind built from it parse back to the same id and text, and two deltas made of its data
// split in two merge (envelope_reply.h) into one frame that parses back to the whole data. A
// refusal has a reason, and the error frame carrying it is valid UTF-8 (it is a text frame: the
// connection stays open) and parses back to the same reason. The Session publishes exactly what
// parse_client_frame yields (lane and data) or answers exactly its error frame, and stays open;
// text that is not UTF-8 is closed 1007 unparsed.
#include <Poco/Exception.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "../unit/session_test_host.h"
#include "envelope.h"
#include "delta_merge.h"
#include "frame_codec.h"

using namespace flowrelay::ws;

#define FUZZ_CHECK(cond)                                                                         \
  do {                                                                                           \
    if (!(cond)) {                                                                               \
      std::fprintf(stderr, "fuzz_envelope: invariant failed at %s:%d: %s\n", __FILE__, __LINE__, \
                   #cond);                                                                       \
      std::abort();                                                                              \
    }                                                                                            \
  } while (0)

namespace {

bool valid_utf8(std::string_view s) {
  Utf8Validator v;
  return v.feed(reinterpret_cast<const uint8_t*>(s.data()), s.size()) && v.complete();
}

// The object `json` holds; aborts if it is not one.
Poco::JSON::Object::Ptr parse_object(const std::string& json) {
  try {
    const Poco::Dynamic::Var v = Poco::JSON::Parser().parse(json);
    if (v.type() == typeid(Poco::JSON::Object::Ptr)) return v.extract<Poco::JSON::Object::Ptr>();
    std::fprintf(stderr, "fuzz_envelope: server frame is not a JSON object: %s\n", json.c_str());
  } catch (const Poco::Exception& e) {
    std::fprintf(stderr, "fuzz_envelope: server frame is not JSON (%s): %s\n",
                 e.displayText().c_str(), json.c_str());
  }
  std::abort();
}

std::string field(const Poco::JSON::Object::Ptr& o, const char* name) {
  FUZZ_CHECK(o->has(name) && o->get(name).isString());
  return o->getValue<std::string>(name);
}

void check_publish(const ClientPublish& p) {
  FUZZ_CHECK(p.lane == FLOWRELAY_LANE_MESSAGE || p.lane == FLOWRELAY_LANE_LOG);
  FUZZ_CHECK(valid_utf8(p.data));  // it goes out to raw clients as a text frame as it is

  std::string again = R"({"type":"publish","lane":")";
  again += p.lane == FLOWRELAY_LANE_LOG ? "log" : "message";
  again += R"(","data":")";
  append_json_string(again, p.data);
  again += "\"}";
  ClientPublish q;
  std::string error;
  FUZZ_CHECK(parse_client_frame(again, q, error));
  FUZZ_CHECK(q.lane == p.lane);
  FUZZ_CHECK(q.data == p.data);

  const std::string frame = envelope_message(p.lane, 7, "e-1", p.data);
  FUZZ_CHECK(valid_utf8(frame));
  const auto o = parse_object(frame);
  FUZZ_CHECK(field(o, "type") == "message");
  FUZZ_CHECK(field(o, "lane") == (p.lane == FLOWRELAY_LANE_LOG ? "log" : "message"));
  FUZZ_CHECK(field(o, "data") == p.data);
}

uint64_t number(const Poco::JSON::Object::Ptr& o, const char* name) {
  FUZZ_CHECK(o->has(name) && o->get(name).isInteger());
  return o->getValue<uint64_t>(name);
}

// The frames of every reply kind made of `p`'s id and data, and two deltas of its data merged.
void check_reply(const ClientPublish& p) {
  const ClientReplyStep& r = p.reply;
  FUZZ_CHECK(!r.reply.empty() && r.reply.size() <= 64);
  for (char c : r.reply) FUZZ_CHECK(c >= 0x21 && c <= 0x7e);
  FUZZ_CHECK(r.kind == FLOWRELAY_KIND_OPEN || r.kind == FLOWRELAY_KIND_DELTA ||
             r.kind == FLOWRELAY_KIND_END);
  if (r.kind == FLOWRELAY_KIND_DELTA) FUZZ_CHECK(r.seq > 0 && valid_utf8(p.data));
  if (r.has_error) FUZZ_CHECK(valid_utf8(r.error));
  const flowrelay_str id{r.reply.data(), r.reply.size()};
  for (flowrelay_kind kind = FLOWRELAY_KIND_OPEN; kind <= FLOWRELAY_KIND_STALLED; ++kind) {
    const flowrelay_reply step{
        sizeof step, kind, id,           r.seq, {"error", 5}, {r.error.data(), r.error.size()},
        -1,          7,    p.data.size()};
    const std::string frame = envelope_reply(step, 3, "e-1", p.data);
    FUZZ_CHECK(valid_utf8(frame));
    const auto o = parse_object(frame);
    FUZZ_CHECK(field(o, "reply") == r.reply);
    const bool text = kind == FLOWRELAY_KIND_DELTA || kind == FLOWRELAY_KIND_SNAPSHOT ||
                      kind == FLOWRELAY_KIND_REPLY;
    if (text) FUZZ_CHECK(field(o, "data") == p.data);
    if (kind == FLOWRELAY_KIND_END || kind == FLOWRELAY_KIND_REPLY)
      FUZZ_CHECK(r.error.empty() ? !o->has("error") : field(o, "error") == r.error);
  }
  if (r.kind != FLOWRELAY_KIND_DELTA) return;
  size_t cut = p.data.size() / 2;  // on a character boundary, as deltas are whole UTF-8
  while (cut > 0 && (static_cast<unsigned char>(p.data[cut]) & 0xc0) == 0x80) --cut;
  const uint64_t seq = r.seq < UINT64_MAX ? r.seq : r.seq - 1;
  SharedFrame* a =
      delta_frame("c", {sizeof(flowrelay_reply), FLOWRELAY_KIND_DELTA, id, seq, {}, {}, -1, -1, 0},
                  10, "e-1", std::string_view(p.data).substr(0, cut));
  SharedFrame* b = delta_frame(
      "c", {sizeof(flowrelay_reply), FLOWRELAY_KIND_DELTA, id, seq + 1, {}, {}, -1, -1, 0}, 11,
      "e-1", std::string_view(p.data).substr(cut));
  if (can_merge(*a, *b)) {
    SharedFrame* m = merge_deltas(*a, *b);
    const auto o = parse_object(std::string(m->payload()));
    FUZZ_CHECK(field(o, "type") == "delta" && field(o, "reply") == r.reply);
    FUZZ_CHECK(field(o, "data") == p.data);
    FUZZ_CHECK(number(o, "from") == seq && number(o, "seq") == seq + 1);
    FUZZ_CHECK(number(o, "offset") == 11);
    m->unref();
  } else {
    FUZZ_CHECK(a->layout().data_len + b->layout().data_len > kMaxMergedData);
  }
  a->unref();
  b->unref();
}

void check_refusal(const std::string& error) {
  FUZZ_CHECK(!error.empty());
  const std::string frame = envelope_error(400, error);
  FUZZ_CHECK(valid_utf8(frame));
  const auto o = parse_object(frame);
  FUZZ_CHECK(field(o, "type") == "error");
  FUZZ_CHECK(field(o, "reason") == error);
}

void check_session(std::string_view text, bool ok, const ClientPublish& p,
                   const std::string& error) {
  using namespace flowrelay::ws::testing;
  SessionEnv env;
  env.limits.publish_rate = 0;
  RecordingHost host;
  Session s(host, env.config, 1);
  feed(s, upgrade_request("/ws/42", kEnvelopeOffer));
  FUZZ_CHECK(s.state() == Session::State::Open && s.envelope());
  take_output(s, true);
  feed(s, client_frame(Opcode::Text, text));
  const Output out = take_output(s);
  FUZZ_CHECK(!out.malformed && out.frames.size() <= 1);
  if (!valid_utf8(text)) {
    FUZZ_CHECK(host.published.empty() && out.frames.size() == 1);
    FUZZ_CHECK(out.frames[0].close_code() == close_code::InvalidPayload);
    return;
  }
  FUZZ_CHECK(s.state() == Session::State::Open);
  if (ok && p.is_reply) {
    FUZZ_CHECK(out.frames.empty() && host.published.empty() && host.reply_steps.size() == 1);
    const auto& got = host.reply_steps[0];
    FUZZ_CHECK(got.step.kind == p.reply.kind && got.step.reply == p.reply.reply);
    FUZZ_CHECK(got.step.seq == p.reply.seq && got.step.cancel == p.reply.cancel);
    FUZZ_CHECK(got.data == p.data && got.id == p.id);
  } else if (ok) {
    FUZZ_CHECK(out.frames.empty() && host.published.size() == 1);
    FUZZ_CHECK(host.published[0].lane == p.lane && host.published[0].data == p.data);
  } else {
    FUZZ_CHECK(host.published.empty() && host.reply_steps.empty() && out.frames.size() == 1);
    // A refused frame that carried a valid id is answered with that id (the client's ack
    // waits on it).
    FUZZ_CHECK(out.frames[0].payload == envelope_error(400, error, p.id));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::unique_ptr<char[]> block(new char[size ? size : 1]);
  if (size) std::memcpy(block.get(), data, size);
  const std::string_view text(block.get(), size);

  ClientPublish p;
  std::string error;
  const bool ok = parse_client_frame(text, p, error);
  check_session(text, ok, p, error);
  if (!valid_utf8(text)) return 0;  // never reaches the parser in the daemon
  if (ok) {
    FUZZ_CHECK(error.empty());
    if (p.is_reply)
      check_reply(p);
    else
      check_publish(p);
  } else {
    check_refusal(error);
  }
  return 0;
}
