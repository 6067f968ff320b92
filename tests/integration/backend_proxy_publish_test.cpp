// The publish proxy, every outcome: what the sending client gets (envelope: ack or error frame;
// raw: close 1008 / 1013), what the other clients of the conversation get (nothing on a
// refusal) and which /metrics counter moved. Real flowrelayd, fake backend in this process.
#include <gtest/gtest.h>

#include <Poco/JSON/Parser.h>

#include <signal.h>

#include <fstream>
#include <iterator>
#include <regex>

#include "backend_proxy_fake.h"
#include "support/envelope_client.h"

namespace flowrelay::itest {
namespace {

using Obj = Poco::JSON::Object::Ptr;

Obj parse(const std::string& text) {
  try {
    auto v = Poco::JSON::Parser().parse(text);
    if (v.type() == typeid(Obj)) return v.extract<Obj>();
  } catch (const Poco::Exception&) {
  }
  return nullptr;
}

// The sender's answer to the publish with `id`: the ack or error frame (messages skipped).
Obj answer_to(EnvelopeClient& c, const std::string& id, Millis timeout = 5s) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    auto e = c.next(Millis(remaining_ms(deadline)));
    if (!e) break;
    Obj o = parse(e->raw);
    if (o && (e->type == "ack" || e->type == "error") && o->optValue<std::string>("id", "") == id)
      return o;
  }
  return nullptr;
}

// The next message a watcher gets (its data), "" if none within `timeout`.
std::string next_data(EnvelopeClient& c, Millis timeout = 5s) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    auto e = c.next(Millis(remaining_ms(deadline)));
    if (!e) break;
    if (e->is_message()) return e->data.value_or("");
  }
  return "";
}

std::string publish_with_id(const std::string& id, const std::string& data) {
  Poco::JSON::Object o;
  o.set("type", "publish");
  o.set("id", id);
  o.set("data", data);
  std::ostringstream s;
  o.stringify(s);
  return s.str();
}

struct Outcome {
  const char* name;
  BackendReply reply;
  const char* counter;  // outcome label
  int code;             // 0: acked
  const char* reason;   // prefix of the error's reason
  const char* relayed;  // what the watcher receives ("" nothing)
};

class PublishProxy : public ::testing::Test {
 protected:
  void start(const std::string& publish_url, const std::string& more = "") {
    DaemonOptions options;
    options.extra =
        backend_section(_dir, "  publish_url: " + publish_url +
                                  "\n  timeout_ms: 500\n  max_answer_bytes: 1024\n" + more);
    _daemon = std::make_unique<Daemon>(options);
  }
  Daemon& daemon() { return *_daemon; }
  TempDir _dir{"backend"};
  FakeBackend _backend;
  std::unique_ptr<Daemon> _daemon;
};

TEST_F(PublishProxy, EveryOutcomeOfEnvelopeClients) {
  start(_backend.url("/publish"));
  EnvelopeClient sender(daemon().ws_port(), "room1");
  EnvelopeClient watcher(daemon().ws_port(), "room1");
  const std::string big = "{\"data\":\"" + std::string(2000, 'x') + "\"}";
  const Outcome outcomes[] = {
      {"accept", {200, "{}"}, "ok", 0, "", "hello"},
      {"rewrite", {200, R"({"data":"HELLO!"})"}, "rewritten", 0, "", "HELLO!"},
      {"private", {200, R"({"publish":false})"}, "private", 0, "", ""},
      {"4xx", {422, R"({"error":"no shouting"})"}, "refused", 422, "no shouting", ""},
      {"4xx without error", {403, "nope"}, "refused", 403, "refused by the backend (HTTP 403)", ""},
      {"5xx", {500, "{}"}, "unavailable", 503, "backend unavailable: HTTP 500", ""},
      {"timeout",
       {200, "{}", 1500},
       "timeout",
       503,
       "backend unavailable: timeout after 500 ms",
       ""},
      {"garbage",
       {200, "<html>oops"},
       "bad_answer",
       503,
       "backend unavailable: the answer is not JSON",
       ""},
      {"wrong type",
       {200, R"({"data":42})"},
       "bad_answer",
       503,
       "backend unavailable: \"data\" must be a string",
       ""},
      {"oversized",
       {200, big},
       "bad_answer",
       503,
       "backend unavailable: answer of 2011 bytes is over max_answer_bytes (1024)",
       ""},
  };
  int n = 0;
  for (const Outcome& o : outcomes) {
    SCOPED_TRACE(o.name);
    const std::string id = "p" + std::to_string(++n);
    const double before = backend_count(daemon().http_port(), "publish", o.counter);
    _backend.answer([&](const BackendRequest&) { return o.reply; });
    sender.send_text(publish_with_id(id, "hello"));
    const Obj a = answer_to(sender, id);
    ASSERT_TRUE(a) << "no answer to " << id;
    if (o.code == 0) {
      EXPECT_EQ(a->getValue<std::string>("type"), "ack");
      EXPECT_EQ(a->has("offset"), *o.relayed != 0);
      EXPECT_EQ(a->optValue<bool>("relayed", true), *o.relayed != 0);
    } else {
      EXPECT_EQ(a->getValue<std::string>("type"), "error");
      EXPECT_EQ(a->getValue<int>("code"), o.code);
      EXPECT_EQ(a->getValue<std::string>("reason").rfind(o.reason, 0), 0u)
          << a->getValue<std::string>("reason");
    }
    // Counted by the time the client learns (a relayed one once the broker took it).
    EXPECT_TRUE(wait_for(
        [&] { return backend_count(daemon().http_port(), "publish", o.counter) == before + 1; },
        2s));
    // What the watcher gets next: the relayed message, or (nothing was published) the marker
    // sent after it.
    _backend.answer([](const BackendRequest&) { return BackendReply{}; });
    const std::string marker = "marker" + std::to_string(n);
    sender.send_text(publish_with_id(id + "m", marker));
    if (*o.relayed) {
      EXPECT_EQ(next_data(watcher), o.relayed);
    }
    EXPECT_EQ(next_data(watcher), marker);
    EXPECT_TRUE(answer_to(sender, id + "m"));
  }
  // Every request was signed and carried the message and its client.
  const auto reqs = _backend.requests("/publish");
  ASSERT_EQ(reqs.size(), 2 * std::size(outcomes));
  for (const auto& r : reqs) {
    EXPECT_TRUE(r.signature_ok) << r.body;
    ASSERT_TRUE(r.json) << r.body;
    EXPECT_EQ(r.json->getValue<std::string>("conversation"), "room1");
    EXPECT_EQ(r.json->getValue<std::string>("lane"), "message");
    EXPECT_TRUE(r.json->isNull("user"));
    EXPECT_TRUE(std::regex_match(r.json->getValue<std::string>("client"),
                                 std::regex("[0-9a-f]{16}-[0-9]+")))
        << r.body;
    EXPECT_EQ(r.json->getValue<std::string>("remote_addr").rfind("127.0.0.1:", 0), 0u) << r.body;
  }
  EXPECT_EQ(reqs[0].json->getValue<std::string>("data"), "hello");
  EXPECT_GT(metric_value(daemon().http_port(), "flowrelay_backend_request_seconds_count"), 0);
}

TEST_F(PublishProxy, RawClientsAreClosed1008On4xxAnd1013On503) {
  start(_backend.url("/publish"));
  RawClient watcher(daemon().ws_port());
  ASSERT_TRUE(watcher.upgrade("/ws/raw1"));
  struct Case {
    BackendReply reply;
    uint16_t close;
    std::string reason;
  };
  const Case cases[] = {{{451, R"({"error":"not here"})"}, 1008, "not here"},
                        {{502, "{}"}, 1013, "backend unavailable: HTTP 502"}};
  for (const Case& c : cases) {
    _backend.answer([&](const BackendRequest&) { return c.reply; });
    RawClient sender(daemon().ws_port());
    ASSERT_TRUE(sender.upgrade("/ws/raw1"));
    ASSERT_TRUE(sender.send_text("refused words"));
    const auto close = sender.read_until_close(5s);
    ASSERT_TRUE(close && close->has_close_code());
    EXPECT_EQ(close->close_code(), c.close);
    EXPECT_EQ(close->close_reason().rfind(c.reason, 0), 0u) << close->close_reason();
  }
  // Accepted and private messages of a raw client: relayed, or silently kept back.
  RawClient sender(daemon().ws_port());
  ASSERT_TRUE(sender.upgrade("/ws/raw1"));
  _backend.answer([](const BackendRequest& r) {
    return r.json && r.json->getValue<std::string>("data") == "secret"
               ? BackendReply{200, R"({"publish":false})"}
               : BackendReply{};
  });
  ASSERT_TRUE(sender.send_text("secret"));
  ASSERT_TRUE(sender.send_text("public"));
  Frame f;
  ASSERT_EQ(watcher.read_frame(f, 5s), ReadResult::Frame);
  EXPECT_EQ(f.payload, "public");  // neither refused message nor "secret" came first
  EXPECT_EQ(backend_count(daemon().http_port(), "publish", "private"), 1);
  EXPECT_EQ(backend_count(daemon().http_port(), "publish", "refused"), 1);
  EXPECT_EQ(backend_count(daemon().http_port(), "publish", "unavailable"), 1);
}

TEST_F(PublishProxy, BackendDownIs503) {
  const uint16_t closed = free_port();  // nothing listens there
  start("http://127.0.0.1:" + std::to_string(closed) + "/publish");
  EnvelopeClient sender(daemon().ws_port(), "room2");
  sender.send_text(publish_with_id("d1", "hello"));
  const Obj a = answer_to(sender, "d1");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->getValue<std::string>("type"), "error");
  EXPECT_EQ(a->getValue<int>("code"), 503);
  EXPECT_EQ(a->getValue<std::string>("reason").rfind("backend unavailable: ", 0), 0u);
  EXPECT_NE(a->getValue<std::string>("reason").find("refused"), std::string::npos)
      << a->getValue<std::string>("reason");
  EXPECT_TRUE(wait_for(
      [&] { return backend_count(daemon().http_port(), "publish", "unavailable") == 1; }, 2s));
}

TEST_F(PublishProxy, WrongSecretAtTheBackendIsItsRefusal) {
  FakeBackend strict("another-secret-the-daemon-does-not-have");
  start(strict.url("/publish"));
  EnvelopeClient sender(daemon().ws_port(), "room3");
  EnvelopeClient watcher(daemon().ws_port(), "room3");
  sender.send_text(publish_with_id("s1", "forged?"));
  const Obj a = answer_to(sender, "s1");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->getValue<std::string>("type"), "error");
  EXPECT_EQ(a->getValue<int>("code"), 401);
  EXPECT_EQ(a->getValue<std::string>("reason"), "bad signature");
  ASSERT_EQ(strict.count("/publish"), 1u);
  EXPECT_FALSE(strict.requests("/publish")[0].signature_ok);
  EXPECT_EQ(next_data(watcher, 300ms), "");
  EXPECT_EQ(backend_count(daemon().http_port(), "publish", "refused"), 1);
}

TEST_F(PublishProxy, SighupRotatesTheSecretLive) {
  FakeBackend rotated("the-new-secret-after-rotation");
  start(rotated.url("/publish"));
  EnvelopeClient sender(daemon().ws_port(), "room4");
  sender.send_text(publish_with_id("r1", "before"));
  Obj a = answer_to(sender, "r1");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->getValue<int>("code"), 401);  // the daemon still signs with the old secret
  _dir.write("backend.secret", "the-new-secret-after-rotation\n");
  // A URL change is named as needing a restart (and not applied).
  std::ifstream in(daemon().config_path());
  std::string config((std::istreambuf_iterator<char>(in)), {});
  const size_t at = config.find("/publish\n");
  ASSERT_NE(at, std::string::npos);
  config.replace(at, 8, "/elsewhere");
  std::ofstream(daemon().config_path()) << config;
  ASSERT_EQ(::kill(daemon().pid(), SIGHUP), 0);
  ASSERT_TRUE(wait_for(
      [&] { return daemon().stderr_text().find("backend: new secret") != std::string::npos; }, 5s))
      << daemon().stderr_text();
  EXPECT_NE(
      daemon().stderr_text().find("backend.publish_url changed: takes effect after a restart"),
      std::string::npos)
      << daemon().stderr_text();
  sender.send_text(publish_with_id("r2", "after"));
  a = answer_to(sender, "r2");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->getValue<std::string>("type"), "ack") << a->getValue<std::string>("type");
  EXPECT_EQ(rotated.count("/publish"), 2u);  // still the URL it started with
}

}  // namespace
}  // namespace flowrelay::itest
