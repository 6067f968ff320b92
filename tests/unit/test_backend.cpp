// The backend proxy's pure parts: the signature (against vectors from Python's hmac module),
// the backend: section of the config, the request bodies and the reading of answers.
#include <gtest/gtest.h>

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <filesystem>
#include <fstream>

#include "backend/backend_messages.h"
#include "backend/signature.h"
#include "config.h"

using namespace flowrelay;

namespace {

const std::string kPlugins = FLOWRELAY_PLUGIN_DIR;

struct ConfigDir {
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("flowrelay-backend-" + std::to_string(::getpid()));
  ConfigDir() { std::filesystem::create_directories(dir); }
  ~ConfigDir() { std::filesystem::remove_all(dir); }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(dir / name) << text;
  }
  std::string config() const { return (dir / "flowrelay.yaml").string(); }
};

std::string with_backend(const std::string& section) {
  return "plugin_dir: " + kPlugins +
         "\ntransports:\n  - plugin: transport-ws\n    listen: 127.0.0.1:8080\n"
         "broker:\n  plugin: broker-local\nbackend:\n" +
         section;
}

std::string error_of(const std::string& yaml, const std::string& path) {
  try {
    Config::parse(yaml, path);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

BackendAnswer answer(int status, std::string body) {
  BackendAnswer a;
  a.status = status;
  a.body = std::move(body);
  return a;
}

Poco::JSON::Object::Ptr json(const std::string& text) {
  return Poco::JSON::Parser().parse(text).extract<Poco::JSON::Object::Ptr>();
}

}  // namespace

TEST(BackendSignature, MatchesPythonHmac) {
  // python3 -c 'import hmac,hashlib; print(hmac.new(KEY, TS + b"." + BODY,
  //             hashlib.sha256).hexdigest())'
  EXPECT_EQ(backend_signature("0123456789abcdef-secret", "1700000000",
                              "{\"conversation\":\"42\",\"data\":\"h\xc3\xa9llo\"}"),
            "sha256=527d4b10bd1f7872b00db2280da25cdec4cc1136948237cee75ff3c65e054de2");
  // A key longer than SHA-256's 64-byte block is hashed first (RFC 2104).
  EXPECT_EQ(backend_signature(std::string(100, 'k'), "1", ""),
            "sha256=f380fa061ddac7555fce09c4f9d5ba3c4d7eb9115eaa097dd2c14988a18ae793");
}

TEST(BackendConfig, ReadsEveryKeyAndTheSecret) {
  ConfigDir d;
  d.write("backend.secret", "0123456789abcdef-secret\n\n");
  const Config c =
      Config::parse(with_backend("  publish_url: http://127.0.0.1:8000/flowrelay/publish\n"
                                 "  connect_url: http://127.0.0.1:8000/flowrelay/connect\n"
                                 "  events_url: http://localhost/events\n"
                                 "  timeout_ms: 250\n  max_in_flight: 8\n  max_queued: 100\n"
                                 "  max_answer_bytes: 4096\n  events_batch_ms: 50\n"
                                 "  secret_file: backend.secret\n"),
                    d.config());
  EXPECT_EQ(c.backend.publish_url, "http://127.0.0.1:8000/flowrelay/publish");
  EXPECT_EQ(c.backend.connect_url, "http://127.0.0.1:8000/flowrelay/connect");
  EXPECT_EQ(c.backend.events_url, "http://localhost/events");
  EXPECT_EQ(c.backend.timeout_ms, 250u);
  EXPECT_EQ(c.backend.max_in_flight, 8u);
  EXPECT_EQ(c.backend.max_queued, 100u);
  EXPECT_EQ(c.backend.max_answer_bytes, 4096u);
  EXPECT_EQ(c.backend.events_batch_ms, 50u);
  EXPECT_EQ(c.backend.secret_file, (d.dir / "backend.secret").string());
  EXPECT_EQ(c.backend.secret, "0123456789abcdef-secret");
}

TEST(BackendConfig, DefaultsAndOff) {
  ConfigDir d;
  const Config c = Config::parse(with_backend("  timeout_ms: 100\n"), d.config());
  EXPECT_FALSE(c.backend.any_url());
  const BackendConfig defaults;
  EXPECT_EQ(defaults.timeout_ms, 5000u);
  EXPECT_EQ(defaults.max_in_flight, 64u);
  EXPECT_EQ(defaults.max_queued, 4096u);
  EXPECT_EQ(defaults.max_answer_bytes, 1u << 20);
  EXPECT_EQ(defaults.events_batch_ms, 1000u);
}

TEST(BackendConfig, ErrorsAreLocatedAndSayWhy) {
  ConfigDir d;
  d.write("short.secret", "tooshort   \n");
  d.write("good.secret", "0123456789abcdef");
  const std::string file = d.config();
  EXPECT_EQ(error_of(with_backend("  publish_url: http://h/p\n"), file),
            file +
                ":8:3: backend.secret_file is required when a backend URL is set (the "
                "backend checks the X-Flowrelay-Signature made with it)");
  EXPECT_EQ(
      error_of(with_backend("  publish_url: http://h/p\n  secret_file: short.secret\n"), file),
      file + ":9:16: backend.secret_file: " + (d.dir / "short.secret").string() +
          " holds 8 bytes (after trimming trailing whitespace); the secret must be at "
          "least 16 bytes");
  EXPECT_NE(error_of(with_backend("  publish_url: http://h/p\n  secret_file: none.secret\n"), file)
                .find(":9:16: backend.secret_file: cannot read "),
            std::string::npos);
  EXPECT_NE(error_of(with_backend("  publish_url: https://h/p\n  secret_file: good.secret\n"), file)
                .find(":8:16: backend.publish_url 'https://h/p' uses https, which is not "
                      "supported yet"),
            std::string::npos);
  EXPECT_NE(error_of(with_backend("  connect_url: ftp://h/p\n  secret_file: good.secret\n"), file)
                .find(":8:16: backend.connect_url 'ftp://h/p' must start with http://"),
            std::string::npos);
  EXPECT_NE(error_of(with_backend("  timeout_ms: 0\n"), file)
                .find(":8:15: backend.timeout_ms must be between 1 and 600000, got 0"),
            std::string::npos);
  EXPECT_NE(error_of(with_backend("  publish: x\n"), file)
                .find(":8:3: unknown key 'publish' in backend (expected one of: "),
            std::string::npos);
  EXPECT_NE(error_of(with_backend("  - a\n"), file).find("backend must be a mapping"),
            std::string::npos);
}

TEST(BackendMessages, PublishBodyCarriesEveryField) {
  const auto o = json(publish_request_body("42", FLOWRELAY_LANE_LOG, "a \"q\"\n\xc3\xa9",
                                           "{\"sub\":\"ann\"}", "00ff-7", "127.0.0.1:5000"));
  EXPECT_EQ(o->getValue<std::string>("conversation"), "42");
  EXPECT_EQ(o->getValue<std::string>("lane"), "log");
  EXPECT_EQ(o->getValue<std::string>("data"), "a \"q\"\n\xc3\xa9");
  EXPECT_EQ(o->getObject("user")->getValue<std::string>("sub"), "ann");
  EXPECT_EQ(o->getValue<std::string>("client"), "00ff-7");
  EXPECT_EQ(o->getValue<std::string>("remote_addr"), "127.0.0.1:5000");
  // Anonymous (or anything that is not an object) goes out as null.
  EXPECT_TRUE(
      json(publish_request_body("42", FLOWRELAY_LANE_MESSAGE, "x", "", "c", "r"))->isNull("user"));
  EXPECT_TRUE(json(publish_request_body("42", FLOWRELAY_LANE_MESSAGE, "x", "[1]", "c", "r"))
                  ->isNull("user"));
}

TEST(BackendMessages, PublishAnswers) {
  EXPECT_EQ(judge_publish_answer(answer(200, "{}")).outcome, BackendOutcome::Ok);
  const PublishVerdict rw = judge_publish_answer(answer(200, "{\"data\":\"new\"}"));
  EXPECT_EQ(rw.outcome, BackendOutcome::Rewritten);
  EXPECT_EQ(rw.data, "new");
  EXPECT_EQ(judge_publish_answer(answer(200, "{\"publish\":false}")).outcome,
            BackendOutcome::Private);
  const PublishVerdict refused = judge_publish_answer(answer(422, "{\"error\":\"too rude\"}"));
  EXPECT_EQ(refused.outcome, BackendOutcome::Refused);
  EXPECT_EQ(refused.code, 422u);
  EXPECT_EQ(refused.reason, "too rude");
  EXPECT_EQ(judge_publish_answer(answer(403, "nope")).reason, "refused by the backend (HTTP 403)");
  struct Case {
    BackendAnswer a;
    BackendOutcome outcome;
    std::string reason;
  };
  BackendAnswer timeout;
  timeout.failure = BackendAnswer::Failure::Timeout;
  timeout.error = "timeout after 5000 ms";
  const Case cases[] = {
      {answer(500, "{}"), BackendOutcome::Unavailable, "backend unavailable: HTTP 500"},
      {answer(302, ""), BackendOutcome::BadAnswer, "backend unavailable: unexpected HTTP 302"},
      {answer(200, "<html>"), BackendOutcome::BadAnswer,
       "backend unavailable: the answer is not JSON"},
      {answer(200, "[1]"), BackendOutcome::BadAnswer,
       "backend unavailable: the answer is not a JSON object"},
      {answer(200, "{\"data\":1}"), BackendOutcome::BadAnswer,
       "backend unavailable: \"data\" must be a string"},
      {answer(200, "{\"publish\":\"no\"}"), BackendOutcome::BadAnswer,
       "backend unavailable: \"publish\" must be true or false"},
      {timeout, BackendOutcome::Timeout, "backend unavailable: timeout after 5000 ms"},
  };
  for (const Case& c : cases) {
    const PublishVerdict v = judge_publish_answer(c.a);
    EXPECT_EQ(v.outcome, c.outcome) << c.a.body;
    EXPECT_EQ(v.code, 503u) << c.a.body;
    EXPECT_EQ(v.reason, c.reason);
    EXPECT_FALSE(v.publish());
  }
}

TEST(BackendMessages, ConnectAnswers) {
  const ConnectVerdict ok =
      judge_connect_answer(answer(200, "{\"user\":{\"id\":7},\"publish\":false}"));
  EXPECT_EQ(ok.code, 200u);
  EXPECT_FALSE(ok.can_publish);
  EXPECT_EQ(ok.user, "{\"id\":7}");
  const ConnectVerdict anon = judge_connect_answer(answer(200, "{\"user\":null}"));
  EXPECT_EQ(anon.code, 200u);
  EXPECT_TRUE(anon.can_publish);
  EXPECT_EQ(anon.user, "");
  const ConnectVerdict refused = judge_connect_answer(answer(401, "{\"error\":\"log in\"}"));
  EXPECT_EQ(refused.code, 401u);
  EXPECT_EQ(refused.reason, "log in");
  EXPECT_EQ(judge_connect_answer(answer(404, "{}")).code, 503u);
  EXPECT_EQ(judge_connect_answer(answer(502, "{}")).code, 503u);
  EXPECT_EQ(judge_connect_answer(answer(200, "{\"user\":\"ann\"}")).code, 503u);
}
