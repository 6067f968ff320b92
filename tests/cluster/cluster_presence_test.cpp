// Presence across replicas (GET /api/presence): real flowrelayd replicas on one redis-server,
// real WebSocket clients. Every replica answers the sum over all of them; a replica that
// leaves cleanly takes its clients out at once, one that is SIGKILLed stops refreshing and its
// clients vanish once presence_ttl_ms has passed.
#include <gtest/gtest.h>

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <optional>
#include <thread>

#include "cluster.h"
#include "cluster_fixture.h"
#include "support/http.h"

namespace flowrelay::ctest {
namespace {

constexpr const char* kKey = "presence-key";
constexpr uint32_t kTtlMs = 1500;

struct Presence {
  int status = 0;
  int64_t clients = -1;
  int64_t nodes = -1;
  std::string body;
};

class ClusterPresenceTest : public ClusterFixture {
 protected:
  void start(size_t n) {
    ReplicaOptions o;
    o.api_key = kKey;
    o.broker_options = {"presence_ttl_ms: " + std::to_string(kTtlMs)};
    start_replicas(n, o);
  }

  Presence presence(size_t replica, const std::string& conversation,
                    const std::optional<std::string>& key = kKey) {
    HttpHeaders headers;
    if (key) headers.emplace_back("X-API-Key", *key);
    const HttpResult r = http_request(replicas[replica]->http_port(), "GET",
                                      "/api/presence?conversation=" + conversation, "", headers);
    Presence p{r.status, -1, -1, r.body};
    if (r.status != 200) return p;
    try {
      auto o = Poco::JSON::Parser().parse(r.body).extract<Poco::JSON::Object::Ptr>();
      if (o->getValue<std::string>("conversation") != conversation) return p;
      p.clients = o->getValue<int64_t>("clients");
      p.nodes = o->getValue<int64_t>("nodes");
    } catch (const std::exception&) {
    }
    return p;
  }

  // Polls until `replica` answers {clients, nodes}; returns the last answer.
  Presence await(size_t replica, const std::string& conversation, int64_t clients, int64_t nodes,
                 Millis timeout = 5s) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      Presence p = presence(replica, conversation);
      if ((p.clients == clients && p.nodes == nodes) || Clock::now() > deadline) return p;
      std::this_thread::sleep_for(20ms);
    }
  }
};

#define EXPECT_PRESENCE(p, c, n)               \
  do {                                         \
    const Presence got_ = (p);                 \
    EXPECT_EQ(got_.status, 200) << got_.body;  \
    EXPECT_EQ(got_.clients, (c)) << got_.body; \
    EXPECT_EQ(got_.nodes, (n)) << got_.body;   \
  } while (0)

TEST_F(ClusterPresenceTest, EveryReplicaAnswersTheSumAndACrashedOnesClientsVanish) {
  start(2);
  Clients clients;
  for (int i = 0; i < 2; ++i) clients.join(replicas[0]->ws_port(), "42");
  for (int i = 0; i < 3; ++i) clients.join(replicas[1]->ws_port(), "42");
  clients.join(replicas[1]->ws_port(), "other");
  EXPECT_PRESENCE(await(0, "42", 5, 2), 5, 2);
  EXPECT_PRESENCE(await(1, "42", 5, 2), 5, 2);
  EXPECT_PRESENCE(await(0, "other", 1, 1), 1, 1);
  EXPECT_PRESENCE(presence(0, "nobody"), 0, 0);

  // A client leaving is counted out on every replica.
  clients.client(0).fin_close();
  EXPECT_PRESENCE(await(1, "42", 4, 2), 4, 2);

  // SIGKILL: nobody withdraws replica 2's entries; they expire after presence_ttl_ms.
  replicas[1]->kill();
  const auto killed = Clock::now();
  EXPECT_PRESENCE(presence(0, "42"), 4, 2);  // still counted until the ttl passes
  EXPECT_PRESENCE(await(0, "42", 1, 1, Millis(kTtlMs) + 3s), 1, 1);
  const auto gone_after = std::chrono::duration_cast<Millis>(Clock::now() - killed);
  EXPECT_LE(gone_after, Millis(kTtlMs) + 1000ms) << "vanished later than presence_ttl_ms + 1 s";
  EXPECT_PRESENCE(presence(0, "other"), 0, 0);
}

TEST_F(ClusterPresenceTest, TheApiChecksKeyMethodAndConversation) {
  start(1);
  const uint16_t port = replicas[0]->http_port();
  EXPECT_EQ(presence(0, "42", std::nullopt).status, 401);
  EXPECT_EQ(presence(0, "42", "wrong").status, 401);
  EXPECT_EQ(presence(0, "a%20b").status, 400);
  EXPECT_EQ(http_request(port, "GET", "/api/presence", "", {{"X-API-Key", kKey}}).status, 400);
  EXPECT_EQ(http_request(port, "POST", "/api/presence?conversation=42", "{}",
                         {{"X-API-Key", kKey}, {"Content-Type", "application/json"}})
                .status,
            405);
  EXPECT_PRESENCE(presence(0, "42"), 0, 0);
}

TEST_F(ClusterPresenceTest, OffWithoutAnApiKey) {
  start_replicas(1);
  EXPECT_EQ(presence(0, "42", "").status, 403);
}

// Redis unreachable: 503 with an error, not a hang and not a stale count.
TEST_F(ClusterPresenceTest, RedisDownIs503) {
  start(1);
  Clients clients;
  clients.join(replicas[0]->ws_port(), "42");
  EXPECT_PRESENCE(await(0, "42", 1, 1), 1, 1);
  redis->kill();
  const auto asked = Clock::now();
  const Presence p = await(0, "42", -1, -1, 2s);  // polls until the timeout: never 200
  EXPECT_EQ(p.status, 503) << p.body;
  EXPECT_NE(p.body.find("\"error\""), std::string::npos) << p.body;
  EXPECT_LT(Clock::now() - asked, 10s);
}

}  // namespace
}  // namespace flowrelay::ctest
