// broker-redis' Redis Cluster routing (slot_map.h, issue #13): key slots per the Redis Cluster
// specification, the slot map from CLUSTER SLOTS replies (RESP bytes parsed by hiredis' own
// reader, as a live connection would hand them over) and the MOVED / ASK redirections.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "slot_map.h"

namespace flowrelay::redis {
namespace {

// RESP pieces.
std::string bulk(const std::string& s) {
  return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n";
}
std::string num(long long n) { return ":" + std::to_string(n) + "\r\n"; }
std::string arr(const std::vector<std::string>& items) {
  std::string out = "*" + std::to_string(items.size()) + "\r\n";
  for (const auto& i : items) out += i;
  return out;
}
const std::string kNil = "$-1\r\n";

// One node as CLUSTER SLOTS gives it: [host, port, id]; Redis 7 may add a 4th element, the
// networking metadata (a map in RESP3, flat key/value pairs in RESP2).
std::string node(const std::string& host, int port, const std::string& id,
                 const std::vector<std::string>& meta = {}) {
  std::vector<std::string> items{bulk(host), num(port), bulk(id)};
  if (!meta.empty()) {
    std::vector<std::string> m;
    for (const auto& s : meta) m.push_back(bulk(s));
    items.push_back(arr(m));
  }
  return arr(items);
}
std::string range(int start, int end, const std::string& master,
                  const std::vector<std::string>& replicas = {}) {
  std::vector<std::string> items{num(start), num(end), master};
  items.insert(items.end(), replicas.begin(), replicas.end());
  return arr(items);
}

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

// `resp` through hiredis' reader: one complete reply, or the test fails.
Reply parse(const std::string& resp) {
  redisReader* reader = redisReaderCreate();
  void* out = nullptr;
  EXPECT_EQ(redisReaderFeed(reader, resp.data(), resp.size()), REDIS_OK);
  EXPECT_EQ(redisReaderGetReply(reader, &out), REDIS_OK) << reader->errstr;
  redisReaderFree(reader);
  EXPECT_NE(out, nullptr) << "incomplete RESP: " << resp;
  return Reply(static_cast<redisReply*>(out));
}

RedisEndpoint endpoint(const std::string& host, int port) {
  RedisEndpoint e;
  e.host = host;
  e.port = port;
  return e;
}
const RedisEndpoint kAsked = endpoint("10.0.0.9", 7000);

std::optional<SlotMap> map_of(const std::string& resp, std::string& error,
                              const RedisEndpoint& credentials = RedisEndpoint{}) {
  const Reply r = parse(resp);
  return SlotMap::from_cluster_slots(r.get(), credentials, kAsked, error);
}

std::string three_masters() {
  return arr({range(0, 5460, node("127.0.0.1", 7000, "a"), {node("127.0.0.1", 7003, "d")}),
              range(5461, 10922, node("127.0.0.1", 7001, "b"), {node("127.0.0.1", 7004, "e")}),
              range(10923, 16383, node("127.0.0.1", 7002, "c"), {node("127.0.0.1", 7005, "f")})});
}

TEST(RedisSlotMap, Crc16SpecVector) {
  EXPECT_EQ(crc16("123456789"), 0x31C3);
  EXPECT_EQ(crc16(""), 0);
}

TEST(RedisSlotMap, KnownSlots) {
  EXPECT_EQ(key_slot("foo"), 12182);
  EXPECT_EQ(key_slot("bar"), 5061);
  EXPECT_EQ(key_slot("123456789"), 0x31C3 % 16384);
  EXPECT_EQ(key_slot(""), 0);
  EXPECT_EQ(key_slot("chat:42"), key_slot("flowrelay:history:{chat:42}"));
  EXPECT_EQ(key_slot("chat:42"), key_slot("flowrelay:seq:{chat:42}"));
}

TEST(RedisSlotMap, HashTagRules) {
  const auto whole = [](std::string_view k) { return crc16(k) % 16384; };
  EXPECT_EQ(key_slot("{user1000}.following"), key_slot("{user1000}.followers"));
  EXPECT_EQ(key_slot("{user1000}.following"), key_slot("user1000"));
  EXPECT_EQ(key_slot("foo{}{bar}"), whole("foo{}{bar}"));  // empty tag: the whole key
  EXPECT_EQ(key_slot("foo{{bar}}zap"), whole("{bar"));     // first '{', first '}' after it
  EXPECT_EQ(key_slot("foo{bar}{zap}"), key_slot("bar"));   // only the first tag counts
  EXPECT_EQ(key_slot("foo{bar"), whole("foo{bar"));        // no '}': the whole key
  EXPECT_EQ(key_slot("foo}bar{"), whole("foo}bar{"));      // '}' before '{' does not close
  EXPECT_EQ(key_slot("}x{y}"), key_slot("y"));
  EXPECT_NE(key_slot("{a}"), key_slot("{b}"));
}

TEST(RedisSlotMap, ThreeMastersCoverAllSlots) {
  RedisEndpoint creds = endpoint("ignored", 1);
  creds.user = "u";
  creds.password = "p";
  creds.unix_path = "/tmp/redis.sock";
  std::string error;
  const auto m = map_of(three_masters(), error, creds);
  ASSERT_TRUE(m.has_value()) << error;
  EXPECT_TRUE(m->covers_all());
  const auto masters = m->masters();
  ASSERT_EQ(masters.size(), 3u);
  EXPECT_EQ(masters[0].port, 7000);
  EXPECT_EQ(masters[1].port, 7001);
  EXPECT_EQ(masters[2].port, 7002);
  ASSERT_NE(m->owner(0), nullptr);
  EXPECT_EQ(*m->owner(0), masters[0]);
  EXPECT_EQ(m->owner(5460)->port, 7000);
  EXPECT_EQ(m->owner(5461)->port, 7001);
  EXPECT_EQ(m->owner(16383)->port, 7002);
  EXPECT_EQ(m->owner(16384), nullptr);
  // Host and port from the reply, the rest from the credentials; TCP, never the unix socket.
  EXPECT_EQ(m->owner(0)->host, "127.0.0.1");
  EXPECT_EQ(m->owner(0)->user, "u");
  EXPECT_EQ(m->owner(0)->password, "p");
  EXPECT_EQ(m->owner(0)->unix_path, "");
}

TEST(RedisSlotMap, SeveralRangesPerMasterAndRedis7Metadata) {
  const std::string resp =
      arr({range(0, 99, node("10.0.0.1", 6379, "a", {"hostname", "n1.example"})),
           range(100, 16383, node("10.0.0.2", 6379, "b", {"hostname", "n2.example"})),
           range(50, 50, node("10.0.0.1", 6379, "a"))});  // the same master again: fine
  std::string error;
  const auto m = map_of(resp, error);
  ASSERT_TRUE(m.has_value()) << error;
  EXPECT_TRUE(m->covers_all());
  ASSERT_EQ(m->masters().size(), 2u);
  EXPECT_EQ(m->owner(99)->host, "10.0.0.1");
  EXPECT_EQ(m->owner(100)->host, "10.0.0.2");
}

TEST(RedisSlotMap, GapsAndEmptyRepliesLeaveSlotsUnserved) {
  std::string error;
  const auto gap = map_of(
      arr({range(0, 8000, node("h", 1, "a")), range(8002, 16383, node("h", 2, "b"))}), error);
  ASSERT_TRUE(gap.has_value()) << error;
  EXPECT_FALSE(gap->covers_all());
  EXPECT_EQ(gap->owner(8001), nullptr);
  EXPECT_NE(gap->owner(8002), nullptr);

  // A cluster node with no slots assigned yet answers an empty array.
  const auto none = map_of("*0\r\n", error);
  ASSERT_TRUE(none.has_value()) << error;
  EXPECT_FALSE(none->covers_all());
  EXPECT_TRUE(none->masters().empty());
  EXPECT_FALSE(SlotMap().covers_all());
  EXPECT_EQ(SlotMap().owner(0), nullptr);
}

TEST(RedisSlotMap, EmptyOrNilHostIsTheAskedNode) {
  std::string error;
  const auto m = map_of(arr({range(0, 9999, node("", 7005, "a")),
                             range(10000, 16383, arr({kNil, num(7006), bulk("b")}))}),
                        error);
  ASSERT_TRUE(m.has_value()) << error;
  EXPECT_TRUE(m->covers_all());
  EXPECT_EQ(m->owner(0)->host, "10.0.0.9");
  EXPECT_EQ(m->owner(0)->port, 7005);  // the reply's port, not the asked one's
  EXPECT_EQ(m->owner(16383)->host, "10.0.0.9");
  EXPECT_EQ(m->owner(16383)->port, 7006);
}

TEST(RedisSlotMap, UnknownHostnameLeavesItsSlotsUnserved) {
  std::string error;
  const auto m =
      map_of(arr({range(0, 9999, node("?", 7005, "a")), range(10000, 16383, node("h", 7006, "b"))}),
             error);
  ASSERT_TRUE(m.has_value()) << error;
  EXPECT_FALSE(m->covers_all());
  EXPECT_EQ(m->owner(0), nullptr);
  EXPECT_EQ(m->masters().size(), 1u);
}

TEST(RedisSlotMap, MalformedRepliesAreRefusedWithAMessage) {
  const std::vector<std::pair<std::string, std::string>> cases{
      {"-ERR This instance has cluster support disabled\r\n", "cluster support disabled"},
      {"+OK\r\n", "not an array"},
      {arr({arr({num(0), num(16383)})}), "range 0"},
      {arr({bulk("0-16383")}), "range 0"},
      {arr({range(10, 9, node("h", 1, "a"))}), "start <= end"},
      {arr({range(0, 16384, node("h", 1, "a"))}), "start <= end"},
      {arr({range(-1, 5, node("h", 1, "a"))}), "start <= end"},
      {arr({arr({bulk("0"), num(5), node("h", 1, "a")})}), "start <= end"},
      {arr({range(0, 5, arr({bulk("h")}))}), "port"},
      {arr({range(0, 5, arr({bulk("h"), bulk("6379")}))}), "port"},
      {arr({range(0, 5, arr({bulk("h"), num(0)}))}), "port"},
      {arr({range(0, 5, arr({bulk("h"), num(65536)}))}), "port"},
      {arr({range(0, 5, arr({num(1), num(6379)}))}), "host"},
      {arr({range(0, 5, bulk("h:1"))}), "master"},
      {arr({range(0, 100, node("h", 1, "a")), range(100, 200, node("h", 2, "b"))}),
       "range 1: slot 100 claimed by both"},
  };
  for (const auto& [resp, message] : cases) {
    std::string error;
    EXPECT_FALSE(map_of(resp, error).has_value()) << resp;
    EXPECT_NE(error.find(message), std::string::npos) << resp << " -> " << error;
  }
  std::string error;
  EXPECT_FALSE(SlotMap::from_cluster_slots(nullptr, {}, kAsked, error).has_value());
  EXPECT_EQ(error, "CLUSTER SLOTS: no reply");
}

TEST(RedisSlotMap, AssignPatchesOneSlot) {
  std::string error;
  auto m = map_of(three_masters(), error);
  ASSERT_TRUE(m.has_value()) << error;
  m->assign(3999, endpoint("127.0.0.1", 7002));  // a known master
  EXPECT_EQ(m->owner(3999)->port, 7002);
  EXPECT_EQ(m->owner(3998)->port, 7000);
  EXPECT_EQ(m->masters().size(), 3u);
  m->assign(0, endpoint("127.0.0.1", 7009));  // a new one, appended
  EXPECT_EQ(m->owner(0)->port, 7009);
  ASSERT_EQ(m->masters().size(), 4u);
  EXPECT_EQ(m->masters()[3].port, 7009);
  m->assign(16384, endpoint("127.0.0.1", 7009));  // not a slot: nothing
  EXPECT_TRUE(m->covers_all());

  // A master left with no slot is no longer listed.
  SlotMap one;
  for (uint16_t s = 0; s < kClusterSlots; ++s) one.assign(s, endpoint("a", 1));
  EXPECT_TRUE(one.covers_all());
  for (uint16_t s = 0; s < kClusterSlots; ++s) one.assign(s, endpoint("b", 1));
  ASSERT_EQ(one.masters().size(), 1u);
  EXPECT_EQ(one.masters()[0].host, "b");
}

TEST(RedisSlotMap, ParseRedirect) {
  auto r = parse_redirect("MOVED 3999 127.0.0.1:6381");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->kind, Redirect::Moved);
  EXPECT_EQ(r->slot, 3999);
  EXPECT_EQ(r->host, "127.0.0.1");
  EXPECT_EQ(r->port, 6381);

  r = parse_redirect("ASK 3999 127.0.0.1:6381");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->kind, Redirect::Ask);
  EXPECT_EQ(r->slot, 3999);
  EXPECT_EQ(r->port, 6381);

  r = parse_redirect("MOVED 1 ::1:6380");  // IPv6, bare: the port follows the last ':'
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->host, "::1");
  EXPECT_EQ(r->port, 6380);
  r = parse_redirect("MOVED 16383 [fe80::1]:6380");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->slot, 16383);
  EXPECT_EQ(r->host, "fe80::1");

  r = parse_redirect("MOVED 1 :6380");  // unknown endpoint: the answering node's host
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->host, "");
  EXPECT_EQ(r->port, 6380);

  r = parse_redirect("ASK 0 redis-2.example:7000");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->host, "redis-2.example");

  for (const char* bad : {"",
                          "MOVED",
                          "MOVED ",
                          "MOVED 3999",
                          "MOVED 3999 ",
                          "MOVED x 127.0.0.1:6381",
                          "MOVED -1 h:1",
                          "MOVED 16384 h:1",
                          "MOVED 1 host",
                          "MOVED 1 host:",
                          "MOVED 1 host:0",
                          "MOVED 1 host:65536",
                          "MOVED 1 host:12ab",
                          "MOVED  1 h:1",
                          "MOVED 1 h:1 more",
                          "moved 1 h:1",
                          "ASKING 1 h:1",
                          "ERR unknown command",
                          "TRYAGAIN Multiple keys",
                          "CLUSTERDOWN The cluster is down"})
    EXPECT_FALSE(parse_redirect(bad).has_value()) << '"' << bad << '"';
}

TEST(RedisSlotMap, TryAgainAndClusterDown) {
  EXPECT_TRUE(is_tryagain("TRYAGAIN Multiple keys request during rehashing of slot"));
  EXPECT_TRUE(is_tryagain("TRYAGAIN"));
  EXPECT_FALSE(is_tryagain("TRYAGAINX"));
  EXPECT_FALSE(is_tryagain("ERR TRYAGAIN"));
  EXPECT_TRUE(is_clusterdown("CLUSTERDOWN The cluster is down"));
  EXPECT_TRUE(is_clusterdown("CLUSTERDOWN Hash slot not served"));
  EXPECT_FALSE(is_clusterdown("MOVED 1 h:1"));
  EXPECT_FALSE(is_clusterdown(""));
}

}  // namespace
}  // namespace flowrelay::redis
