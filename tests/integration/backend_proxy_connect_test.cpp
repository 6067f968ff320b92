// The connect proxy (the backend admits or refuses each handshake, and names the user the
// publish proxy then sees) and the join/leave events sent to events_url.
#include <gtest/gtest.h>

#include "backend_proxy_fake.h"

namespace flowrelay::itest {
namespace {

BackendReply connect_policy(const BackendRequest& r) {
  if (r.path != "/connect" || !r.json) return BackendReply{};
  const std::string auth = r.json->getValue<std::string>("authorization");
  if (auth == "Bearer good")
    return {200, R"({"user":{"id":"ann","cookie":")" + r.json->getValue<std::string>("cookie") +
                     R"("},"publish":true})"};
  if (auth == "Bearer bad") return {401, R"({"error":"log in first"})"};
  if (auth == "Bearer banned") return {403, R"({"error":"banned"})"};
  if (auth == "Bearer garbage") return {200, "not json"};
  return {500, "{}"};
}

TEST(ConnectProxy, AdmitsRefusesAndNamesTheUser) {
  TempDir dir("backend");
  FakeBackend backend;
  backend.answer(connect_policy);
  DaemonOptions options;
  options.extra = backend_section(dir, "  connect_url: " + backend.url("/connect") +
                                           "\n  publish_url: " + backend.url("/publish") +
                                           "\n  events_url: " + backend.url("/events") +
                                           "\n  events_batch_ms: 50\n  timeout_ms: 1000\n");
  Daemon daemon(options);
  struct Case {
    const char* auth;
    int status;
    const char* body;  // in the refusal's body
  };
  for (const Case& c : {Case{"bad", 401, "log in first"}, Case{"banned", 403, "banned"},
                        Case{"boom", 503, "backend unavailable: HTTP 500"},
                        Case{"garbage", 503, "backend unavailable: the answer is not JSON"}}) {
    SCOPED_TRACE(c.auth);
    RawClient client(daemon.ws_port());
    const HttpHead head =
        client.handshake("/ws/room", std::string("Authorization: Bearer ") + c.auth + "\r\n");
    EXPECT_EQ(head.status, c.status);
  }
  EXPECT_EQ(backend_count(daemon.http_port(), "connect", "refused"), 2);
  EXPECT_EQ(backend_count(daemon.http_port(), "connect", "unavailable"), 1);
  EXPECT_EQ(backend_count(daemon.http_port(), "connect", "bad_answer"), 1);

  RawClient ann(daemon.ws_port());
  ASSERT_TRUE(ann.upgrade("/ws/room", "Authorization: Bearer good\r\nCookie: session=s3cr3t\r\n"));
  EXPECT_EQ(backend_count(daemon.http_port(), "connect", "ok"), 1);
  const auto connects = backend.requests("/connect");
  ASSERT_EQ(connects.size(), 5u);
  const auto& admitted = connects.back();
  EXPECT_TRUE(admitted.signature_ok);
  EXPECT_EQ(admitted.json->getValue<std::string>("conversation"), "room");
  EXPECT_EQ(admitted.json->getValue<std::string>("cookie"), "session=s3cr3t");
  EXPECT_EQ(admitted.json->getValue<std::string>("transport"), "ws");
  EXPECT_EQ(admitted.json->getValue<std::string>("remote_addr").rfind("127.0.0.1:", 0), 0u);

  // The backend's user is who publishes, in the publish proxy's body.
  ASSERT_TRUE(ann.send_text("hi"));
  Frame f;
  ASSERT_EQ(ann.read_frame(f, 5s), ReadResult::Frame);
  EXPECT_EQ(f.payload, "hi");
  const auto published = backend.requests("/publish");
  ASSERT_EQ(published.size(), 1u);
  const auto user = published[0].json->getObject("user");
  ASSERT_TRUE(user) << published[0].body;
  EXPECT_EQ(user->getValue<std::string>("id"), "ann");
  EXPECT_EQ(user->getValue<std::string>("cookie"), "session=s3cr3t");

  // Join, then leave, batched to events_url.
  const std::string client = published[0].json->getValue<std::string>("client");
  FrameSpec close;
  close.opcode = kClose;
  close.payload = std::string("\x03\xe8", 2);
  ann.send_frame(close);
  ann.wait_closed(3s);
  std::vector<std::pair<std::string, std::string>> seen;  // (type, client)
  ASSERT_TRUE(wait_for(
      [&] {
        seen.clear();
        for (const auto& r : backend.requests("/events")) {
          EXPECT_TRUE(r.signature_ok);
          const auto events = r.json ? r.json->getArray("events") : nullptr;
          for (size_t i = 0; events && i < events->size(); ++i) {
            const auto e = events->getObject(static_cast<unsigned>(i));
            EXPECT_EQ(e->getValue<std::string>("conversation"), "room");
            EXPECT_GT(e->getValue<int64_t>("time_ms"), 1700000000000);
            seen.emplace_back(e->getValue<std::string>("type"), e->getValue<std::string>("client"));
          }
        }
        return seen.size() >= 2;
      },
      5s));
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], std::make_pair(std::string("join"), client));
  EXPECT_EQ(seen[1], std::make_pair(std::string("leave"), client));
  EXPECT_GE(backend_count(daemon.http_port(), "events", "ok"), 1);
}

TEST(ConnectProxy, BackendDownIs503AtTheHandshake) {
  TempDir dir("backend");
  DaemonOptions options;
  options.extra = backend_section(
      dir, "  connect_url: http://127.0.0.1:" + std::to_string(free_port()) + "/connect\n");
  Daemon daemon(options);
  RawClient client(daemon.ws_port());
  EXPECT_EQ(client.handshake("/ws/room").status, 503);
  EXPECT_EQ(backend_count(daemon.http_port(), "connect", "unavailable"), 1);
}

}  // namespace
}  // namespace flowrelay::itest
