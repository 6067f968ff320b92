// Presence through the daemon: the router tells the broker every new session count of a
// channel (presence_set) and asks it for the total, answering with its own count when the
// broker leaves counting to it (NULL slot or FLOWRELAY_EUNSUPPORTED); GET /api/presence
// (daemon/presence_api.h) with its statuses: 405, 403, 401, 400, 200, 503 (broker error or no
// answer within the timeout). Driven through real C tables built with plugin.hpp.
#include <gtest/gtest.h>
#include <flowrelay/plugin.hpp>

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include "http_api.h"
#include "plugin_host.h"
#include "presence_api.h"
#include "router.h"

namespace flowrelay {
namespace {

// Records presence_set; answers presence() as `mode` says.
struct PresenceBroker : sdk::Broker {
  enum class Mode { Answer, Unsupported, Refuse, Fail, Never };
  static inline PresenceBroker* last = nullptr;
  PresenceBroker(sdk::BrokerHost, const flowrelay_option*, size_t) { last = this; }

  flowrelay_status publish(std::string_view, const flowrelay_message&, flowrelay_published_fn,
                           void*) override {
    return FLOWRELAY_OK;
  }
  flowrelay_status subscribe(std::string_view) override { return FLOWRELAY_OK; }
  void unsubscribe(std::string_view) override {}
  void presence_set(std::string_view ch, uint64_t clients) override {
    std::lock_guard l(mutex);
    sets.push_back(std::string(ch) + "=" + std::to_string(clients));
  }
  flowrelay_status presence(std::string_view ch, flowrelay_presence_fn done, void* ctx) override {
    asked = std::string(ch);
    switch (mode) {
      case Mode::Answer:
        done(ctx, FLOWRELAY_OK, 7, 2);
        return FLOWRELAY_OK;
      case Mode::Unsupported:
        return FLOWRELAY_EUNSUPPORTED;
      case Mode::Refuse:
        return FLOWRELAY_EAGAIN;
      case Mode::Fail:
        done(ctx, FLOWRELAY_EUNAVAIL, 0, 0);
        return FLOWRELAY_OK;
      case Mode::Never:
        held = {done, ctx};
        return FLOWRELAY_OK;
    }
    return FLOWRELAY_EINTERNAL;
  }

  Mode mode = Mode::Answer;
  std::mutex mutex;
  std::vector<std::string> sets;
  std::string asked;
  std::pair<flowrelay_presence_fn, void*> held{nullptr, nullptr};
};

// A broker table of ABI 2.0's size: no presence slots at all.
const flowrelay_broker_vtable* abi20_table() {
  static flowrelay_broker_vtable vt = *sdk::broker_vtable<PresenceBroker>();
  vt.struct_size = offsetof(flowrelay_broker_vtable, presence_set);
  return &vt;
}

struct Daemon {
  explicit Daemon(const flowrelay_broker_vtable* vt = sdk::broker_vtable<PresenceBroker>())
      : node(0x77, "/etc/flowrelay", "chat:", false, state),
        broker_instance(vt, "presence-broker", {}, node.broker_api(), host()),
        broker(*PresenceBroker::last),
        router(node.id(), broker_instance) {
    node.router = &router;
  }
  flowrelay_host host() { return {&node, &Poco::Logger::get("test")}; }

  struct Count {
    flowrelay_status status;
    uint64_t clients;
    uint32_t nodes;
    bool operator==(const Count&) const = default;
  };
  std::optional<Count> presence(const std::string& ch) {
    std::optional<Count> got;
    router.presence(ch, [&](flowrelay_status s, uint64_t c, uint32_t n) { got = Count{s, c, n}; });
    return got;
  }

  ServiceState state;
  Node node;
  BrokerInstance broker_instance;
  PresenceBroker& broker;
  Router router;
};

using Sets = std::vector<std::string>;

TEST(RouterPresence, TellsTheBrokerEveryNewCount) {
  Daemon d;
  EXPECT_EQ(d.router.subscribe("chat:1"), FLOWRELAY_OK);
  EXPECT_EQ(d.router.subscribe("chat:1"), FLOWRELAY_OK);
  EXPECT_EQ(d.router.subscribe("chat:2"), FLOWRELAY_OK);
  d.router.unsubscribe("chat:1");
  d.router.unsubscribe("chat:1");
  d.router.unsubscribe("chat:1");  // unbalanced: nothing to tell
  EXPECT_EQ(d.broker.sets, (Sets{"chat:1=1", "chat:1=2", "chat:2=1", "chat:1=1", "chat:1=0"}));
}

TEST(RouterPresence, AsksTheBroker) {
  Daemon d;
  EXPECT_EQ(d.presence("chat:9"), (Daemon::Count{FLOWRELAY_OK, 7, 2}));
  EXPECT_EQ(d.broker.asked, "chat:9");
  d.broker.mode = PresenceBroker::Mode::Fail;
  EXPECT_EQ(d.presence("chat:9"), (Daemon::Count{FLOWRELAY_EUNAVAIL, 0, 0}));
  d.broker.mode = PresenceBroker::Mode::Refuse;
  EXPECT_EQ(d.presence("chat:9"), (Daemon::Count{FLOWRELAY_EAGAIN, 0, 0}));
}

TEST(RouterPresence, CountsItselfWhenTheBrokerDoesNot) {
  Daemon d;
  d.broker.mode = PresenceBroker::Mode::Unsupported;
  EXPECT_EQ(d.presence("chat:1"), (Daemon::Count{FLOWRELAY_OK, 0, 0}));
  d.router.subscribe("chat:1");
  d.router.subscribe("chat:1");
  EXPECT_EQ(d.presence("chat:1"), (Daemon::Count{FLOWRELAY_OK, 2, 1}));
}

TEST(RouterPresence, ABrokerWithoutTheSlotsLeavesCountingToTheDaemon) {
  Daemon d(abi20_table());
  d.router.subscribe("chat:1");
  EXPECT_TRUE(d.broker.sets.empty()) << "presence_set called beyond the table's struct_size";
  EXPECT_EQ(d.presence("chat:1"), (Daemon::Count{FLOWRELAY_OK, 1, 1}));
  EXPECT_TRUE(d.broker.asked.empty());
}

// ---------------------------------------------------------------------------- the HTTP API

struct Api {
  explicit Api(std::string key = "k3y") : api(d.router, options(std::move(key)), schedule()) {}
  static PresenceApiOptions options(std::string key) {
    PresenceApiOptions o;
    o.api_key = std::move(key);
    o.timeout_ms = 250;
    return o;
  }
  // Deadlines run when the test says (fire()), not on a timer.
  PublishScheduler schedule() {
    return [this](uint32_t ms, std::function<void()> fn) {
      deadlines.push_back(ms);
      timers.push_back(std::move(fn));
    };
  }
  void fire() {
    for (auto& t : timers) t();
  }
  std::optional<HttpAnswer> get(const std::string& query, std::optional<std::string> key = "k3y",
                                const std::string& method = "GET") {
    HttpRequest req;
    req.method = method;
    req.path = "/api/presence";
    req.query = query;
    if (key) req.headers.emplace_back("x-api-key", *key);
    last.reset();
    const int before = answers;
    api.handle(req, [this](HttpAnswer a) {  // may run later: writes into the fixture only
      ++answers;
      last = std::move(a);
    });
    return answers > before ? last : std::nullopt;
  }
  Poco::JSON::Object::Ptr json(const HttpAnswer& a) {
    return Poco::JSON::Parser().parse(a.body).extract<Poco::JSON::Object::Ptr>();
  }

  Daemon d;
  PresenceApi api;
  std::vector<uint32_t> deadlines;
  std::vector<std::function<void()>> timers;
  int answers = 0;
  std::optional<HttpAnswer> last;
};

TEST(PresenceApi, AnswersTheBrokersCount) {
  Api a;
  auto got = a.get("conversation=42");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(got->content_type, "application/json");
  EXPECT_EQ(got->body, "{\"conversation\":\"42\",\"clients\":7,\"nodes\":2}\n");
  EXPECT_EQ(a.d.broker.asked, "chat:42");
  EXPECT_EQ(a.deadlines, (std::vector<uint32_t>{250}));
  a.fire();  // the deadline of an answered request does nothing
  EXPECT_EQ(a.answers, 1);
}

TEST(PresenceApi, DecodesTheQuery) {
  Api a;
  auto got = a.get("x=1&conversation=room%3A7&conversation=ignored");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(a.json(*got)->getValue<std::string>("conversation"), "room:7");
  EXPECT_EQ(a.d.broker.asked, "chat:room:7");
}

TEST(PresenceApi, CountsLocallyWithABrokerThatDoesNot) {
  Api a;
  a.d.broker.mode = PresenceBroker::Mode::Unsupported;
  a.d.router.subscribe("chat:5");
  auto got = a.get("conversation=5");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(a.json(*got)->getValue<uint64_t>("clients"), 1u);
  EXPECT_EQ(a.json(*got)->getValue<uint32_t>("nodes"), 1u);
}

TEST(PresenceApi, OnlyGet) {
  Api a;
  for (const char* method : {"POST", "PUT", "DELETE", "HEAD"}) {
    auto got = a.get("conversation=42", "k3y", method);
    ASSERT_TRUE(got);
    EXPECT_EQ(got->status, 405) << method;
    ASSERT_EQ(got->headers.size(), 1u);
    EXPECT_EQ(got->headers[0], (std::pair<std::string, std::string>{"Allow", "GET"}));
  }
  EXPECT_TRUE(a.d.broker.asked.empty());
}

TEST(PresenceApi, NeedsTheKey) {
  Api a;
  auto missing = a.get("conversation=42", std::nullopt);
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 401);
  EXPECT_EQ(a.json(*missing)->getValue<std::string>("error"), "missing X-API-Key header");
  auto wrong = a.get("conversation=42", "k3yy");
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  EXPECT_EQ(a.json(*wrong)->getValue<std::string>("error"), "wrong X-API-Key");
  auto empty = a.get("conversation=42", "");
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->status, 401);
  EXPECT_TRUE(a.d.broker.asked.empty());
}

TEST(PresenceApi, OffWithoutAKey) {
  Api a("");
  auto got = a.get("conversation=42", "");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, 403);
  EXPECT_TRUE(a.d.broker.asked.empty());
}

TEST(PresenceApi, RefusesABadConversation) {
  Api a;
  for (const char* q : {"", "conversation=", "conversation", "conv=42", "conversation=a%20b",
                        "conversation=a/b", "conversation=%zz", "conversation=a+b"}) {
    auto got = a.get(q);
    ASSERT_TRUE(got) << q;
    EXPECT_EQ(got->status, 400) << q;
    EXPECT_TRUE(a.json(*got)->has("error")) << q;
  }
  auto long_id = a.get("conversation=" + std::string(129, 'a'));
  ASSERT_TRUE(long_id);
  EXPECT_EQ(long_id->status, 400);
  EXPECT_TRUE(a.d.broker.asked.empty());
}

TEST(PresenceApi, BrokerErrorsAre503) {
  Api a;
  a.d.broker.mode = PresenceBroker::Mode::Fail;
  auto failed = a.get("conversation=42");
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->status, 503);
  a.d.broker.mode = PresenceBroker::Mode::Refuse;
  auto refused = a.get("conversation=42");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 503);
  EXPECT_TRUE(a.json(*refused)->has("error"));
}

TEST(PresenceApi, NoAnswerInTimeIs503AndALateOneIsDropped) {
  Api a;
  a.d.broker.mode = PresenceBroker::Mode::Never;
  EXPECT_FALSE(a.get("conversation=42")) << "answered before the broker did";
  a.fire();
  ASSERT_TRUE(a.last);
  EXPECT_EQ(a.last->status, 503);
  EXPECT_NE(a.json(*a.last)->getValue<std::string>("error").find("250 ms"), std::string::npos);
  EXPECT_EQ(a.answers, 1);
  auto [done, ctx] = a.d.broker.held;
  ASSERT_NE(done, nullptr);
  done(ctx, FLOWRELAY_OK, 1, 1);  // late: frees the request, answers nothing
  EXPECT_EQ(a.answers, 1);
}

}  // namespace
}  // namespace flowrelay
