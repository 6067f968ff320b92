// POST /api/publish (docs/PROTOCOL.md "Publish API"): answers with the offset and epoch the
// message got, batches in order, and the status table: 401 without the right key, 403 when no
// key is configured, 400 for bad bodies, 405 for other methods, 413 past max_body_bytes.
#include <gtest/gtest.h>

#include <memory>

#include "support/envelope_client.h"
#include "support/itest.h"

namespace flowrelay::itest {
namespace {

const std::string kKey = "test-key";
constexpr size_t kMaxBody = 4096;

class PublishApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    DaemonOptions o;
    o.api_key = kKey;
    o.http_extra = "  max_body_bytes: " + std::to_string(kMaxBody) + "\n";
    daemon = std::make_unique<Daemon>(o);
  }
  static void TearDownTestSuite() { daemon.reset(); }
  void TearDown() override {
    ASSERT_TRUE(daemon->running()) << "daemon died; stderr:\n" << daemon->stderr_text();
  }
  static HttpResult post(const std::string& body, const HttpHeaders& headers = api_headers(kKey)) {
    return http_post(daemon->http_port(), "/api/publish", body, headers);
  }
  static std::unique_ptr<Daemon> daemon;
};
std::unique_ptr<Daemon> PublishApiTest::daemon;

// An error answer: `status` with a JSON {"error": "..."} body.
void expect_error(const HttpResult& r, int status, const std::string& what) {
  EXPECT_EQ(r.status, status) << what << ": " << r.body;
  EXPECT_FALSE(error_of(r.body).empty()) << what << ": no {\"error\":...} body: " << r.body;
}

// Nothing was published into `conv`: the next message there gets offset 1.
void expect_nothing_published(uint16_t http_port, const std::string& conv) {
  const HttpResult r =
      http_post(http_port, "/api/publish", publish_body(conv, "probe"), api_headers(kKey));
  const Published p = parse_published(r.status, r.body);
  ASSERT_EQ(p.status, 200) << p.body;
  EXPECT_EQ(p.offset, std::optional<uint64_t>(1))
      << "a refused request published something into " << conv << ": " << p.body;
}

TEST_F(PublishApiTest, PublishAnswersOffsetAndEpochAndClientsGetTheSameMessage) {
  EnvelopeClient c(daemon->ws_port(), "api-1");
  HttpSession api(daemon->http_port());
  std::optional<std::string> epoch;
  const std::vector<std::pair<std::string, std::string>> sent{
      {"", "hello"}, {"message", "world"}, {"log", "thinking..."}};
  for (size_t i = 0; i < sent.size(); ++i) {
    const HttpResult r = api.post(
        "/api/publish", publish_body("api-1", sent[i].second, sent[i].first), api_headers(kKey));
    const Published p = parse_published(r.status, r.body);
    ASSERT_EQ(p.status, 200) << p.body;
    EXPECT_NE(r.content_type.find("application/json"), std::string::npos) << r.content_type;
    EXPECT_EQ(p.conversation, std::optional<std::string>("api-1")) << p.body;
    EXPECT_EQ(p.offset, std::optional<uint64_t>(i + 1)) << p.body;
    ASSERT_TRUE(p.epoch && !p.epoch->empty()) << p.body;
    if (!epoch) epoch = p.epoch;
    EXPECT_EQ(p.epoch, epoch) << p.body;
  }
  for (size_t i = 0; i < sent.size(); ++i) {
    auto e = c.next(5s);
    ASSERT_TRUE(e.has_value()) << "message " << i << " did not reach the client";
    EXPECT_EQ(e->type, "message") << e->describe();
    EXPECT_EQ(e->lane, sent[i].first.empty() ? "message" : sent[i].first) << e->describe();
    EXPECT_EQ(e->offset, std::optional<uint64_t>(i + 1)) << e->describe();
    EXPECT_EQ(e->epoch, epoch) << e->describe();
    EXPECT_EQ(e->data, sent[i].second) << e->describe();
  }
}

TEST_F(PublishApiTest, BatchIsPublishedInOrderWithOneResultPerMessage) {
  EnvelopeClient c(daemon->ws_port(), "batch-a");
  const std::vector<BatchItem> items{{"batch-a", "thinking...", "log"},
                                     {"batch-a", "The answer", ""},
                                     {"batch-b", "elsewhere", "message"},
                                     {"batch-a", "and more", "message"}};
  const HttpResult r = post(batch_body(items));
  ASSERT_EQ(r.status, 200) << r.body;
  const auto results = parse_batch_results(r.body);
  ASSERT_TRUE(results.has_value()) << "no \"results\" array: " << r.body;
  ASSERT_EQ(results->size(), items.size()) << r.body;
  const std::vector<uint64_t> offsets{1, 2, 1, 3};
  for (size_t i = 0; i < items.size(); ++i) {
    EXPECT_EQ((*results)[i].conversation, items[i].conversation)
        << "result " << i << ": " << r.body;
    EXPECT_EQ((*results)[i].offset, offsets[i]) << "result " << i << ": " << r.body;
    EXPECT_TRUE((*results)[i].epoch && !(*results)[i].epoch->empty()) << r.body;
  }
  const std::vector<std::pair<std::string, std::string>> expected{
      {"log", "thinking..."}, {"message", "The answer"}, {"message", "and more"}};
  for (size_t i = 0; i < expected.size(); ++i) {
    auto e = c.next(5s);
    ASSERT_TRUE(e.has_value()) << "frame " << i << " missing";
    EXPECT_EQ(e->lane, expected[i].first) << e->describe();
    EXPECT_EQ(e->data, expected[i].second) << e->describe();
    EXPECT_EQ(e->offset, std::optional<uint64_t>(i + 1)) << e->describe();
  }
}

TEST_F(PublishApiTest, MissingOrWrongKeyIs401AndPublishesNothing) {
  expect_error(post(publish_body("api-401", "x"), {}), 401, "no X-API-Key");
  expect_error(post(publish_body("api-401", "x"), api_headers("wrong-key")), 401, "wrong key");
  expect_error(post(publish_body("api-401", "x"), api_headers(kKey + "x")), 401, "key + suffix");
  expect_error(post(publish_body("api-401", "x"), api_headers("")), 401, "empty key");
  expect_nothing_published(daemon->http_port(), "api-401");
}

TEST_F(PublishApiTest, BadBodiesAre400AndPublishNothing) {
  const std::string too_long_id(129, 'a');
  const std::vector<std::pair<std::string, std::string>> bad{
      {"not JSON", "this is not json"},
      {"JSON array", R"(["api-400","x"])"},
      {"missing conversation", R"({"data":"x"})"},
      {"conversation not a string", R"({"conversation":42,"data":"x"})"},
      {"bad conversation id", R"({"conversation":"api 400!","data":"x"})"},
      {"empty conversation id", R"({"conversation":"","data":"x"})"},
      {"conversation id of 129 characters",
       R"({"conversation":")" + too_long_id + R"(","data":"x"})"},
      {"missing data", R"({"conversation":"api-400"})"},
      {"data not a string", R"({"conversation":"api-400","data":5})"},
      {"unknown lane", R"({"conversation":"api-400","lane":"video","data":"x"})"},
      {"empty batch", R"({"messages":[]})"},
      {"batch with a bad message",
       R"({"messages":[{"conversation":"api-400","data":"x"},{"conversation":"api-400"}]})"},
  };
  for (const auto& [name, body] : bad) expect_error(post(body), 400, name);
  expect_nothing_published(daemon->http_port(), "api-400");
}

TEST_F(PublishApiTest, GetIs405) {
  const HttpResult r =
      http_request(daemon->http_port(), "GET", "/api/publish", "", api_headers(kKey));
  EXPECT_EQ(r.status, 405) << r.body;
}

TEST_F(PublishApiTest, BodyOverMaxBodyBytesIs413) {
  const std::string big = publish_body("api-413", std::string(kMaxBody + 100, 'x'));
  ASSERT_GT(big.size(), kMaxBody);
  EXPECT_EQ(post(big).status, 413);
  // Just under the limit is fine.
  const std::string fits = publish_body("api-413", std::string(kMaxBody - 100, 'x'));
  ASSERT_LE(fits.size(), kMaxBody);
  const HttpResult r = post(fits);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(parse_published(r.status, r.body).offset, std::optional<uint64_t>(1)) << r.body;
}

TEST(PublishApi, NoKeyConfiguredIs403) {
  Daemon daemon;  // no http.api_key / api_key_file
  for (const HttpHeaders& h : {HttpHeaders{}, api_headers("any-key")}) {
    const HttpResult r = http_post(daemon.http_port(), "/api/publish", publish_body("off", "x"), h);
    EXPECT_EQ(r.status, 403) << r.body;
    EXPECT_FALSE(error_of(r.body).empty()) << r.body;
  }
}

TEST(PublishApi, ApiKeyFileIsReadWithoutItsTrailingNewline) {
  TempDir dir;
  const std::string key_file = dir.write("api.key", "file-key\n");
  DaemonOptions o;
  o.http_extra = "  api_key_file: " + key_file + "\n";
  Daemon daemon(o);
  const std::string body = publish_body("keyfile", "x");
  HttpResult r = http_post(daemon.http_port(), "/api/publish", body, api_headers("file-key"));
  EXPECT_EQ(r.status, 200) << r.body;
  r = http_post(daemon.http_port(), "/api/publish", body, api_headers("file-ke"));
  EXPECT_EQ(r.status, 401) << r.body;
  r = http_post(daemon.http_port(), "/api/publish", body, api_headers("other"));
  EXPECT_EQ(r.status, 401) << r.body;
}

}  // namespace
}  // namespace flowrelay::itest
