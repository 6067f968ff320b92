// JWT connection tokens (HS256, RS256), conversation scopes (`read`, `publish`), the Origin
// allow-list, and --check-config on missing or weak key files.
#include <gtest/gtest.h>

#include <memory>

#include "security_util.h"

namespace flowrelay::itest {
namespace {

using sec::bearer;
using sec::Claims;
using sec::keys;
using test::metric_or;

const std::string kSecret = "correct horse battery staple 0123456789";
const std::string kOtherSecret = "another secret of enough bytes, not the daemon's";

// The response head of a handshake to `path` with `extra` headers, then whether the server
// closed the connection afterwards.
struct Refusal {
  HttpHead head;
  bool closed = false;
};
Refusal try_handshake(uint16_t port, const std::string& path, const std::string& extra = "") {
  RawClient c(port);
  Refusal r;
  r.head = c.handshake(path, extra);
  if (r.head.status != 101) r.closed = c.wait_closed(3s);
  return r;
}

std::string describe(const HttpHead& h) {
  std::string s = h.status_line.empty() ? "(no response)" : h.status_line;
  for (const auto& [k, v] : h.headers) s += " | " + k + ": " + v;
  return s;
}

// Upgrades (expects 101); nullptr with a test failure otherwise.
std::unique_ptr<RawClient> join(uint16_t port, const std::string& path,
                                const std::string& extra = "") {
  auto c = std::make_unique<RawClient>(port);
  const HttpHead h = c->handshake(path, extra);
  EXPECT_EQ(h.status, 101) << path << ": " << describe(h);
  if (h.status != 101) return nullptr;
  return c;
}

// Reads frames until a text frame; returns its payload ("" with a description on anything
// else).
// Pings (the server's idle probes, which may arrive at any time) are answered and skipped.
std::string next_text(RawClient& c, Millis timeout = 3s) {
  for (;;) {
    Frame f;
    const ReadResult r = c.read_frame(f, timeout);
    if (r != ReadResult::Frame) return "<no frame: " + std::to_string(static_cast<int>(r)) + ">";
    if (f.opcode == kPing) {
      FrameSpec pong;
      pong.opcode = kPong;
      pong.payload = f.payload;
      c.send_frame(pong);
      continue;
    }
    if (f.opcode == kPong) continue;
    if (f.opcode != kText) return "<" + f.describe() + ">";
    return f.payload;
  }
}

// The client gets a close frame with `code` and then EOF.
void expect_close(RawClient& c, uint16_t code, const std::string& reason_part) {
  std::vector<Frame> before;
  auto f = c.read_until_close(3s, &before);
  ASSERT_TRUE(f.has_value()) << "no close frame (connection " << (c.closed() ? "closed" : "open")
                             << ")";
  EXPECT_EQ(f->close_code(), code) << f->describe();
  EXPECT_NE(f->close_reason().find(reason_part), std::string::npos) << f->describe();
  for (const Frame& b : before) EXPECT_NE(b.opcode, kText) << "relayed: " << b.describe();
  EXPECT_TRUE(c.wait_closed(3s)) << "no EOF after close " << code;
}

class JwtHs256 : public ::testing::Test {
 protected:
  void SetUp() override {
    secret_file = dir.write("secret.txt", kSecret + "\n");
    DaemonOptions o;
    o.transport_extra = "    auth: jwt\n    jwt:\n      hs256_secret_file: " + secret_file + "\n";
    d = std::make_unique<Daemon>(o);
  }
  std::string token(const Claims& c = {}) { return sec::hs256_token(c, kSecret); }
  uint16_t port() const { return d->ws_port(); }

  TempDir dir;
  std::string secret_file;
  std::unique_ptr<Daemon> d;
};

TEST_F(JwtHs256, ValidTokenInQueryOrBearerHeaderConnectsAndRelays) {
  Claims c;
  c.read = c.publish = std::vector<std::string>{"room-*"};
  auto via_query = join(port(), "/ws/room-1?token=" + token(c));
  auto via_header = join(port(), "/ws/room-1", bearer(token(c)));
  ASSERT_TRUE(via_query && via_header) << d->stderr_text();
  ASSERT_TRUE(via_query->send_text("from query"));
  EXPECT_EQ(next_text(*via_query), "from query");
  EXPECT_EQ(next_text(*via_header), "from query");
  ASSERT_TRUE(via_header->send_text("from header"));
  EXPECT_EQ(next_text(*via_query), "from header");
  EXPECT_EQ(next_text(*via_header), "from header");
}

TEST_F(JwtHs256, ReadPatternsDecideTheConversation) {
  const double before = metric_or(d->http_port(), "flowrelay_access_rejections_total");
  struct Case {
    std::vector<std::string> read;
    std::string conversation;
    int status;
  };
  const std::vector<Case> cases = {
      {{"*"}, "anything", 101},     {{"room-*"}, "room-7", 101},  {{"room-*"}, "room-", 101},
      {{"room-*"}, "roo", 403},     {{"room-*"}, "xroom-7", 403}, {{"room-1"}, "room-1", 101},
      {{"room-1"}, "room-12", 403}, {{"room-1"}, "room-2", 403},  {{"a", "b*"}, "bee", 101},
      {{"a", "b*"}, "c", 403},      {{}, "room-1", 403},
  };
  int refused = 0;
  for (const auto& k : cases) {
    Claims c;
    c.read = k.read;
    const std::string path = "/ws/" + k.conversation;
    const Refusal r = try_handshake(port(), path + "?token=" + token(c));
    std::string patterns;
    for (const auto& p : k.read) patterns += p + " ";
    EXPECT_EQ(r.head.status, k.status)
        << path << " with read [ " << patterns << "]: " << describe(r.head);
    if (k.status != 101) {
      ++refused;
      EXPECT_TRUE(r.closed) << path << ": connection left open after " << k.status;
    }
  }
  // Without a `read` claim at all: nothing may be read.
  Claims no_read;
  no_read.read.reset();
  EXPECT_EQ(try_handshake(port(), "/ws/room-1", bearer(token(no_read))).head.status, 403);
  ++refused;
  EXPECT_EQ(metric_or(d->http_port(), "flowrelay_access_rejections_total"), before + refused);
}

TEST_F(JwtHs256, PublishingWithoutPublishRightIsClosed1008) {
  const double forbidden0 = metric_or(d->http_port(), "flowrelay_forbidden_publishes_total");
  Claims writer;
  writer.read = writer.publish = std::vector<std::string>{"room-*"};
  Claims reader;  // may read room-1 but has no publish claim
  reader.read = std::vector<std::string>{"room-1"};
  reader.publish.reset();
  Claims elsewhere;  // may publish elsewhere only
  elsewhere.read = std::vector<std::string>{"*"};
  elsewhere.publish = std::vector<std::string>{"lobby", "room-2*"};
  Claims empty;  // an empty publish list
  empty.publish = std::vector<std::string>{};

  auto w = join(port(), "/ws/room-1", bearer(token(writer)));
  auto r = join(port(), "/ws/room-1", bearer(token(reader)));
  auto e = join(port(), "/ws/room-1", bearer(token(elsewhere)));
  auto z = join(port(), "/ws/room-1", bearer(token(empty)));
  ASSERT_TRUE(w && r && e && z);

  // Read-only clients still receive.
  ASSERT_TRUE(w->send_text("hello readers"));
  for (RawClient* c : {w.get(), r.get(), e.get(), z.get()})
    EXPECT_EQ(next_text(*c), "hello readers");

  for (RawClient* c : {r.get(), e.get(), z.get()}) {
    ASSERT_TRUE(c->send_text("may I?"));
    expect_close(*c, 1008, "publish");
  }
  // Nothing of theirs was relayed; the writer is unaffected.
  ASSERT_TRUE(w->send_text("still here"));
  EXPECT_EQ(next_text(*w), "still here");
  EXPECT_EQ(metric_or(d->http_port(), "flowrelay_forbidden_publishes_total"), forbidden0 + 3);
}

TEST_F(JwtHs256, BadTokensAre401WithWwwAuthenticate) {
  const double access0 = metric_or(d->http_port(), "flowrelay_access_rejections_total");
  const double rejected0 = metric_or(d->http_port(), "flowrelay_connections_rejected_total");
  Claims expired;
  expired.exp_in = -60;
  Claims no_exp;
  no_exp.exp_in.reset();
  Claims not_yet;
  not_yet.nbf_in = 3600;
  const std::string good = token();
  // The valid token with its payload swapped for one granting more (signature kept).
  auto part = [](const std::string& jwt, int i) {
    const size_t a = jwt.find('.'), b = jwt.rfind('.');
    return i == 0 ? jwt.substr(0, a) : i == 1 ? jwt.substr(a + 1, b - a - 1) : jwt.substr(b + 1);
  };
  Claims wider;
  wider.sub = "mallory";
  const std::string tampered =
      part(good, 0) + "." + part(sec::hs256_token(wider, "x"), 1) + "." + part(good, 2);
  // The valid token with header alg "none" and no signature.
  const std::string stripped =
      sec::b64url(R"({"alg":"none","typ":"JWT"})") + "." + part(good, 1) + ".";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"no token", ""},
      {"empty bearer", "Authorization: Bearer \r\n"},
      {"malformed", bearer("not-a-jwt")},
      {"three garbage parts", bearer("aaa.bbb.ccc")},
      {"expired", bearer(token(expired))},
      {"no exp", bearer(token(no_exp))},
      {"nbf in the future", bearer(token(not_yet))},
      {"signed with another secret", bearer(sec::hs256_token({}, kOtherSecret))},
      {"alg none", bearer(sec::none_token({}))},
      {"alg none, signature stripped", bearer(stripped)},
      {"payload tampered", bearer(tampered)},
      {"RS256 with an unknown key", bearer(sec::rs256_token({}, keys().rsa_private))},
      {"truncated signature", bearer(good.substr(0, good.size() - 4))},
  };
  for (const auto& [name, header] : cases) {
    const Refusal r = try_handshake(port(), "/ws/room-1", header);
    EXPECT_EQ(r.head.status, 401) << name << ": " << describe(r.head);
    const auto www = r.head.header("WWW-Authenticate");
    EXPECT_TRUE(www && www->rfind("Bearer", 0) == 0)
        << name << ": WWW-Authenticate " << www.value_or("(missing)");
    EXPECT_TRUE(r.closed) << name << ": connection left open after 401";
  }
  // The same bad tokens in ?token= are refused alike.
  EXPECT_EQ(try_handshake(port(), "/ws/room-1?token=" + token(expired)).head.status, 401);
  EXPECT_EQ(try_handshake(port(), "/ws/room-1?token=" + sec::none_token({})).head.status, 401);
  const double n = static_cast<double>(cases.size()) + 2;
  EXPECT_EQ(metric_or(d->http_port(), "flowrelay_access_rejections_total"), access0 + n);
  EXPECT_GE(metric_or(d->http_port(), "flowrelay_connections_rejected_total"), rejected0 + n);
  // And the good one still works.
  EXPECT_EQ(try_handshake(port(), "/ws/room-1", bearer(good)).head.status, 101);
}

TEST(JwtRs256, OnlyTokensSignedWithTheConfiguredKeyPairAreAccepted) {
  DaemonOptions o;
  o.transport_extra = "    auth: jwt\n    jwt.rs256_public_key_file: " + keys().rsa_public + "\n";
  Daemon d(o);
  Claims c;
  c.read = c.publish = std::vector<std::string>{"ops-*"};
  auto a = join(d.ws_port(), "/ws/ops-1?token=" + sec::rs256_token(c, keys().rsa_private));
  auto b = join(d.ws_port(), "/ws/ops-1", bearer(sec::rs256_token(c, keys().rsa_private)));
  ASSERT_TRUE(a && b) << d.stderr_text();
  ASSERT_TRUE(a->send_text("signed"));
  EXPECT_EQ(next_text(*b), "signed");
  EXPECT_EQ(try_handshake(d.ws_port(), "/ws/dev-1", bearer(sec::rs256_token(c, keys().rsa_private)))
                .head.status,
            403);

  const std::vector<std::pair<std::string, std::string>> bad = {
      {"RS256 signed with another key", sec::rs256_token(c, keys().other_rsa_private)},
      // Key confusion: HS256 keyed with the public key's PEM text, which an attacker knows.
      {"HS256 keyed with the public PEM", sec::hs256_token(c, keys().rsa_public_pem)},
      {"HS256 with a random secret", sec::hs256_token(c, kSecret)},
      {"alg none", sec::none_token(c)},
  };
  for (const auto& [name, tok] : bad) {
    const Refusal r = try_handshake(d.ws_port(), "/ws/ops-1", bearer(tok));
    EXPECT_EQ(r.head.status, 401) << name << ": " << describe(r.head);
    EXPECT_TRUE(r.head.header("WWW-Authenticate").has_value()) << name;
  }
}

TEST(JwtBoth, Hs256AndRs256TogetherAcceptEither) {
  TempDir dir;
  const std::string secret = dir.write("s", kSecret);
  DaemonOptions o;
  o.transport_extra = "    auth: jwt\n    jwt.hs256_secret_file: " + secret +
                      "\n    jwt.rs256_public_key_file: " + keys().rsa_public + "\n";
  Daemon d(o);
  EXPECT_EQ(try_handshake(d.ws_port(), "/ws/x", bearer(sec::hs256_token({}, kSecret))).head.status,
            101);
  EXPECT_EQ(try_handshake(d.ws_port(), "/ws/x", bearer(sec::rs256_token({}, keys().rsa_private)))
                .head.status,
            101);
  EXPECT_EQ(
      try_handshake(d.ws_port(), "/ws/x", bearer(sec::rs256_token({}, keys().other_rsa_private)))
          .head.status,
      401);
  EXPECT_EQ(try_handshake(d.ws_port(), "/ws/x", bearer(sec::none_token({}))).head.status, 401);
}

TEST(AuthNone, NoTokenNeededAndATokenIsIgnored) {
  Daemon d;
  EXPECT_EQ(try_handshake(d.ws_port(), "/ws/open").head.status, 101);
  EXPECT_EQ(try_handshake(d.ws_port(), "/ws/open?token=garbage", bearer("junk")).head.status, 101);
}

// ---------------------------------------------------------------------------------------------
// --check-config with key files

struct CheckResult {
  ProcessResult p;
  std::string text() const { return p.out + p.err; }
};
CheckResult check_config(const TempDir& dir, const std::string& transport_extra) {
  DaemonOptions o;
  o.transport_extra = transport_extra;
  const std::string file =
      dir.write("flowrelay.yaml", make_config(Ports{free_port(), free_port()}, o));
  return {run_daemon_command({"--check-config", "--config", file})};
}

TEST(JwtCheckConfig, MissingKeyFilesExit78NamingTheFile) {
  TempDir dir;
  const std::string missing_secret = dir.path() + "/no-such-secret.txt";
  const std::string missing_pem = dir.path() + "/no-such-key.pem";
  for (const auto& [extra, file] : std::vector<std::pair<std::string, std::string>>{
           {"    auth: jwt\n    jwt.hs256_secret_file: " + missing_secret + "\n", missing_secret},
           {"    auth: jwt\n    jwt:\n      rs256_public_key_file: " + missing_pem + "\n",
            missing_pem},
       }) {
    const CheckResult r = check_config(dir, extra);
    EXPECT_TRUE(r.p.status.exited && r.p.status.code == 78) << r.p.status.describe() << "\n"
                                                            << r.text();
    EXPECT_NE(r.text().find(file), std::string::npos) << "output does not name " << file << ":\n"
                                                      << r.text();
  }
}

TEST(JwtCheckConfig, WeakSecretOrNoKeyIsRefusedAndGoodKeysPass) {
  TempDir dir;
  const std::string weak = dir.write("weak.txt", "only15bytes....\n");  // 15 bytes after trim
  CheckResult r = check_config(dir, "    auth: jwt\n    jwt.hs256_secret_file: " + weak + "\n");
  EXPECT_TRUE(r.p.status.exited && r.p.status.code == 78) << r.p.status.describe() << r.text();
  EXPECT_NE(r.text().find(weak), std::string::npos) << r.text();

  r = check_config(dir, "    auth: jwt\n");
  EXPECT_TRUE(r.p.status.exited && r.p.status.code == 78) << r.p.status.describe() << r.text();

  const std::string not_pem = dir.write("not.pem", "hello\n");
  r = check_config(dir, "    auth: jwt\n    jwt.rs256_public_key_file: " + not_pem + "\n");
  EXPECT_TRUE(r.p.status.exited && r.p.status.code == 78) << r.p.status.describe() << r.text();

  const std::string exact16 = dir.write("ok.txt", "exactly16bytes!!");
  r = check_config(dir, "    auth: jwt\n    jwt.hs256_secret_file: " + exact16 +
                            "\n    jwt.rs256_public_key_file: " + keys().rsa_public + "\n");
  EXPECT_TRUE(r.p.status.exited && r.p.status.code == 0) << r.p.status.describe() << r.text();

  r = check_config(dir, "    auth: none\n");
  EXPECT_TRUE(r.p.status.exited && r.p.status.code == 0) << r.p.status.describe() << r.text();
}

// ---------------------------------------------------------------------------------------------
// Origin

TEST(Origin, AllowListRefusesOtherOriginsAndAllowsMissingByDefault) {
  DaemonOptions o;
  o.transport_extra = "    allowed_origins: \"https://a.example, https://b.example\"\n";
  Daemon d(o);
  const double access0 = metric_or(d.http_port(), "flowrelay_access_rejections_total");
  const std::vector<std::pair<std::string, int>> cases = {
      {"Origin: https://a.example\r\n", 101},
      {"Origin: https://b.example\r\n", 101},
      {"", 101},  // no Origin: a non-browser client, allowed by default
      {"Origin: https://c.example\r\n", 403},
      {"Origin: https://a.example.evil.com\r\n", 403},
      {"Origin: http://a.example\r\n", 403},
      {"Origin: https://a.example:8443\r\n", 403},
      {"Origin: null\r\n", 403},
  };
  int refused = 0;
  for (const auto& [header, status] : cases) {
    const Refusal r = try_handshake(d.ws_port(), "/ws/site", header);
    EXPECT_EQ(r.head.status, status) << "[" << header << "]: " << describe(r.head);
    if (status != 101) {
      ++refused;
      EXPECT_TRUE(r.closed);
    }
  }
  EXPECT_EQ(metric_or(d.http_port(), "flowrelay_access_rejections_total"), access0 + refused);
}

TEST(Origin, MissingOriginRefusedWhenNotAllowed) {
  DaemonOptions o;
  o.transport_extra =
      "    allowed_origins: \"https://a.example, https://b.example\"\n"
      "    allow_missing_origin: false\n";
  Daemon d(o);
  EXPECT_EQ(try_handshake(d.ws_port(), "/ws/site").head.status, 403);
  EXPECT_EQ(try_handshake(d.ws_port(), "/ws/site", "Origin: https://b.example\r\n").head.status,
            101);
  EXPECT_EQ(try_handshake(d.ws_port(), "/ws/site", "Origin: https://z.example\r\n").head.status,
            403);
  EXPECT_EQ(metric_or(d.http_port(), "flowrelay_access_rejections_total"), 2);
}

TEST(Origin, OriginAndTokenAreBothRequired) {
  TempDir dir;
  const std::string secret = dir.write("s", kSecret);
  DaemonOptions o;
  o.transport_extra = "    auth: jwt\n    jwt.hs256_secret_file: " + secret +
                      "\n    allowed_origins: https://a.example\n";
  Daemon d(o);
  const std::string tok = sec::hs256_token({}, kSecret);
  EXPECT_EQ(try_handshake(d.ws_port(), "/ws/x", bearer(tok) + "Origin: https://a.example\r\n")
                .head.status,
            101);
  EXPECT_EQ(try_handshake(d.ws_port(), "/ws/x", bearer(tok) + "Origin: https://e.example\r\n")
                .head.status,
            403);
  EXPECT_EQ(try_handshake(d.ws_port(), "/ws/x", "Origin: https://a.example\r\n").head.status, 401);
}

}  // namespace
}  // namespace flowrelay::itest
