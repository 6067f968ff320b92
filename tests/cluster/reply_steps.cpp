#include "reply_steps.h"

#include <Poco/Dynamic/Var.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <sstream>

namespace flowrelay::ctest {

namespace {

using Poco::JSON::Object;

Object::Ptr parse_object(const std::string& text) {
  try {
    Poco::Dynamic::Var v = Poco::JSON::Parser().parse(text);
    if (v.type() == typeid(Object::Ptr)) return v.extract<Object::Ptr>();
  } catch (const Poco::Exception&) {
  } catch (const std::exception&) {
  }
  return nullptr;
}

std::optional<std::string> string_of(const Object::Ptr& o, const std::string& k) {
  if (!o->has(k) || !o->get(k).isString()) return std::nullopt;
  return o->get(k).convert<std::string>();
}

std::optional<int64_t> int_of(const Object::Ptr& o, const std::string& k) {
  if (!o->has(k) || !o->get(k).isInteger()) return std::nullopt;
  return o->get(k).convert<Poco::Int64>();
}

std::optional<uint64_t> count_of(const Object::Ptr& o, const std::string& k) {
  const auto v = int_of(o, k);
  if (!v || *v < 0) return std::nullopt;
  return static_cast<uint64_t>(*v);
}

bool true_of(const Object::Ptr& o, const std::string& k) {
  return o->has(k) && o->get(k).isBoolean() && o->get(k).convert<bool>();
}

std::string text_of(const Object& o) {
  std::ostringstream s;
  o.stringify(s);
  return s.str();
}

Object step(const std::string& conversation, const std::string& reply) {
  Object o;
  o.set("conversation", conversation);
  o.set("reply", reply);
  return o;
}

StepAnswer answer_from(int status, const std::string& body, const Object::Ptr& o) {
  StepAnswer a;
  a.status = status;
  a.body = body;
  if (!o) return a;
  a.offset = count_of(o, "offset");
  a.epoch = string_of(o, "epoch");
  a.duplicate = true_of(o, "duplicate");
  a.expected_seq = count_of(o, "expected_seq");
  a.ended = string_of(o, "ended");
  return a;
}

}  // namespace

ReplyFrame parse_reply_frame(const std::string& text) {
  ReplyFrame f;
  f.raw = text;
  const auto o = parse_object(text);
  if (!o) return f;
  f.type = string_of(o, "type").value_or("");
  f.reply = string_of(o, "reply").value_or("");
  f.seq = count_of(o, "seq");
  f.from = count_of(o, "from");
  f.offset = count_of(o, "offset");
  f.epoch = string_of(o, "epoch");
  f.data = string_of(o, "data");
  f.reason = string_of(o, "reason").value_or("");
  f.error = string_of(o, "error");
  if (o->has("recovered") && o->get("recovered").isBoolean())
    f.recovered = o->get("recovered").convert<bool>();
  f.id = string_of(o, "id");
  if (auto c = int_of(o, "code")) f.code = static_cast<int>(*c);
  f.expected_seq = count_of(o, "expected_seq");
  f.ended = string_of(o, "ended");
  f.duplicate = true_of(o, "duplicate");
  if (o->has("stats")) {
    if (const auto s = o->getObject("stats")) {
      ReplyStats st;
      st.tokens = int_of(s, "tokens").value_or(-1);
      st.ttft_ms = int_of(s, "ttft_ms");
      st.duration_ms = int_of(s, "duration_ms").value_or(-1);
      st.bytes = int_of(s, "bytes").value_or(-1);
      f.stats = st;
    }
  }
  return f;
}

std::optional<ReplyFrame> next_frame(test::EnvelopeClient& c, test::Millis timeout) {
  const auto e = c.next(timeout);
  if (!e) return std::nullopt;
  return parse_reply_frame(e->raw);
}

std::string open_body(const std::string& conversation, const std::string& reply) {
  Object o = step(conversation, reply);
  o.set("open", true);
  return text_of(o);
}

std::string delta_body(const std::string& conversation, const std::string& reply, uint64_t seq,
                       const std::string& data) {
  Object o = step(conversation, reply);
  o.set("seq", seq);
  o.set("delta", data);
  return text_of(o);
}

std::string end_body(const std::string& conversation, const std::string& reply,
                     const std::optional<std::string>& error) {
  Object o = step(conversation, reply);
  o.set("end", true);
  if (error) o.set("error", *error);
  return text_of(o);
}

std::string batch_of(const std::vector<std::string>& items) {
  std::string out = "{\"messages\":[";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? "," : "") + items[i];
  return out + "]}";
}

StepAnswer post_step(test::HttpSession& api, const std::string& key, const std::string& body) {
  const test::HttpResult r = api.post("/api/publish", body, test::api_headers(key));
  return answer_from(r.status, r.body, parse_object(r.body));
}

std::optional<std::vector<StepAnswer>> batch_answers(const std::string& body) {
  const auto o = parse_object(body);
  if (!o || !o->has("results")) return std::nullopt;
  const auto arr = o->getArray("results");
  if (!arr) return std::nullopt;
  std::vector<StepAnswer> out;
  for (unsigned i = 0; i < arr->size(); ++i) out.push_back(answer_from(200, "", arr->getObject(i)));
  return out;
}

// ---------------------------------------------------------------------------------------------

void ReplyAssembler::apply(const ReplyFrame& f) {
  if (f.reply.empty()) return;
  State& s = _replies[f.reply];
  if (f.type == "delta") {
    const uint64_t first = f.from.value_or(f.seq.value_or(0));
    if (!f.seq || first != s.seq + 1 || *f.seq < first) {
      _problems.push_back((first <= s.seq ? "duplicate: " : "gap: ") + std::string("after seq ") +
                          std::to_string(s.seq) + ": " + f.describe());
      return;
    }
    if (_ends.count(f.reply)) _problems.push_back("delta after end: " + f.describe());
    s.text += f.data.value_or("");
    s.seq = *f.seq;
  } else if (f.type == "snapshot" || f.type == "reply") {
    if (f.seq && *f.seq < s.seq)
      _problems.push_back("went back from seq " + std::to_string(s.seq) + ": " + f.describe());
    s.text = f.data.value_or("");
    s.seq = f.seq.value_or(0);
    if (f.type == "reply") _ends[f.reply] = f;
  } else if (f.type == "end") {
    if (f.seq && *f.seq != s.seq)
      _problems.push_back("end at seq " + std::to_string(*f.seq) + " after seq " +
                          std::to_string(s.seq) + ": " + f.describe());
    if (_ends.count(f.reply) && _ends[f.reply].type == "end")
      _problems.push_back("a second end: " + f.describe());
    _ends[f.reply] = f;
  }
}

std::string ReplyAssembler::text(const std::string& reply) const {
  const auto it = _replies.find(reply);
  return it == _replies.end() ? "" : it->second.text;
}

uint64_t ReplyAssembler::last_seq(const std::string& reply) const {
  const auto it = _replies.find(reply);
  return it == _replies.end() ? 0 : it->second.seq;
}

const ReplyFrame* ReplyAssembler::end_of(const std::string& reply) const {
  const auto it = _ends.find(reply);
  return it == _ends.end() ? nullptr : &it->second;
}

}  // namespace flowrelay::ctest
