// broker-redis' URL forms, Sentinel's in particular: what is accepted, and what a bad URL is told.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "redis_options.h"

namespace flowrelay::redis {
namespace {

RedisOptions parse(const std::string& url, const char* env = nullptr,
                   std::vector<std::pair<std::string, std::string>> extra = {}) {
  std::vector<flowrelay_option> opts{{sdk::str("url"), sdk::str(url)}};
  for (const auto& [k, v] : extra) opts.push_back({sdk::str(k), sdk::str(v)});
  return parse_options(opts.data(), opts.size(), env);
}

std::string error_of(const std::string& url) {
  try {
    parse(url);
  } catch (const sdk::OptionError& e) {
    return e.what();
  }
  return "";
}

TEST(RedisOptions, StandaloneUrlHasNoSentinels) {
  const RedisOptions o = parse("redis://u:p@h:7000/3");
  EXPECT_TRUE(o.sentinels.empty());
  EXPECT_EQ(o.endpoint.host, "h");
  EXPECT_EQ(o.endpoint.port, 7000);
  EXPECT_EQ(o.endpoint.db, 3);
  EXPECT_EQ(o.sentinel_check_ms, 2000u);
}

TEST(RedisOptions, SentinelUrlWithSeveralHostsDefaultPortAndDb) {
  const RedisOptions o =
      parse("redis+sentinel://user:secret@s1:26380,s2,10.0.0.3:1/mymaster.a-b_c/2", nullptr,
            {{"sentinel_password", "sp"}, {"sentinel_check_ms", "500"}});
  ASSERT_EQ(o.sentinels.size(), 3u);
  EXPECT_EQ(o.sentinels[0].host, "s1");
  EXPECT_EQ(o.sentinels[0].port, 26380);
  EXPECT_EQ(o.sentinels[1].host, "s2");
  EXPECT_EQ(o.sentinels[1].port, 26379);
  EXPECT_EQ(o.sentinels[2].port, 1);
  for (const auto& s : o.sentinels) {
    EXPECT_EQ(s.password, "sp");  // the sentinels' own, not the master's
    EXPECT_TRUE(s.user.empty());
  }
  EXPECT_EQ(o.master_name, "mymaster.a-b_c");
  EXPECT_EQ(o.endpoint.user, "user");
  EXPECT_EQ(o.endpoint.password, "secret");
  EXPECT_EQ(o.endpoint.db, 2);
  EXPECT_EQ(o.sentinel_check_ms, 500u);
}

TEST(RedisOptions, SentinelUrlPasswordOnlyAndNoDb) {
  const RedisOptions o = parse("redis+sentinel://secret@127.0.0.1/m");
  ASSERT_EQ(o.sentinels.size(), 1u);
  EXPECT_EQ(o.endpoint.password, "secret");
  EXPECT_TRUE(o.endpoint.user.empty());
  EXPECT_EQ(o.endpoint.db, 0);
  EXPECT_TRUE(o.sentinels[0].password.empty());
}

TEST(RedisOptions, BadSentinelUrlsAreToldWhy) {
  const std::string prefix = "broker-redis: invalid option 'url' '";
  struct Case {
    const char* url;
    const char* why;
  } cases[] = {
      {"redis+sentinel://", "empty sentinel host"},
      {"redis+sentinel://h1:26379", "missing master name"},
      {"redis+sentinel://h1:26379/", "missing master name"},
      {"redis+sentinel://h1,,h2/m", "empty sentinel host"},
      {"redis+sentinel://h1:0/m", "sentinel port must be a number from 1 to 65535"},
      {"redis+sentinel://h1:70000/m", "sentinel port must be a number from 1 to 65535"},
      {"redis+sentinel://h1:x/m", "sentinel port must be"},
      {"redis+sentinel://h1/ma ster", "must be letters, digits"},
      {"redis+sentinel://h1/m$", "must be letters, digits"},
      {"redis+sentinel://h1/m/x", "must be a database number"},
      {"redis+sentinel://h1/m/1/2", "must be a database number"},
  };
  for (const auto& c : cases) {
    const std::string e = error_of(c.url);
    EXPECT_EQ(e.rfind(prefix + c.url + "': ", 0), 0u) << c.url << ": " << e;
    EXPECT_NE(e.find(c.why), std::string::npos) << c.url << ": " << e;
  }
}

TEST(RedisOptions, RedisUrlWithSentinelWinsOverUrl) {
  const RedisOptions o = parse("redis://localhost:6379", "redis+sentinel://a:1,b:2/mm");
  EXPECT_EQ(o.url, "redis+sentinel://a:1,b:2/mm");
  ASSERT_EQ(o.sentinels.size(), 2u);
  EXPECT_EQ(o.master_name, "mm");
  try {
    parse("redis://localhost", "redis+sentinel://a/");
    FAIL() << "accepted a sentinel REDIS_URL with no master name";
  } catch (const sdk::OptionError& e) {
    EXPECT_NE(std::string(e.what()).find("invalid REDIS_URL"), std::string::npos) << e.what();
  }
}

// mode: cluster (issue #13): the seeds, their shared credentials, and what is refused.
TEST(RedisOptions, ClusterModeTakesSeveralSeedsWithSharedCredentials) {
  const RedisOptions o =
      parse("redis://user:secret@n1:7000,n2,10.0.0.3:7002", nullptr, {{"mode", "cluster"}});
  EXPECT_EQ(o.mode, "cluster");
  ASSERT_EQ(o.cluster_seeds.size(), 3u);
  EXPECT_EQ(o.cluster_seeds[0].host, "n1");
  EXPECT_EQ(o.cluster_seeds[0].port, 7000);
  EXPECT_EQ(o.cluster_seeds[1].host, "n2");
  EXPECT_EQ(o.cluster_seeds[1].port, 6379);
  EXPECT_EQ(o.cluster_seeds[2].port, 7002);
  for (const auto& seed : o.cluster_seeds) {
    EXPECT_EQ(seed.user, "user");
    EXPECT_EQ(seed.password, "secret");
  }
  EXPECT_EQ(o.endpoint, o.cluster_seeds[0]);
  EXPECT_TRUE(o.sentinels.empty());
  // REDIS_URL gives the seeds too; one seed is enough.
  const RedisOptions env = parse("redis://ignored:1", "redis://s:7005", {{"mode", "cluster"}});
  ASSERT_EQ(env.cluster_seeds.size(), 1u);
  EXPECT_EQ(env.cluster_seeds[0].port, 7005);
  // Standalone (the default) has no seeds.
  EXPECT_TRUE(parse("redis://h:1").cluster_seeds.empty());
  EXPECT_EQ(parse("redis://h:1").mode, "standalone");
}

TEST(RedisOptions, BadClusterSettingsAreToldWhy) {
  auto error = [](const std::string& url, const std::string& mode) {
    try {
      parse(url, nullptr, {{"mode", mode}});
    } catch (const sdk::OptionError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error("redis://h:1", "sharded").find("option 'mode' must be standalone or cluster"),
            std::string::npos);
  EXPECT_NE(error("redis://h1:1,h2:2", "standalone").find("set mode: cluster"), std::string::npos);
  EXPECT_NE(error("redis+sentinel://s1/m", "cluster").find("mode: cluster takes redis://"),
            std::string::npos);
  EXPECT_NE(error("unix:///run/redis.sock", "cluster").find("mode: cluster takes redis://"),
            std::string::npos);
  EXPECT_NE(error("redis://h1:1,,h2:2", "cluster").find("seed ''"), std::string::npos);
  EXPECT_NE(error("redis://h1:1,h2:2/3", "cluster").find("only database 0"), std::string::npos);
  EXPECT_EQ(error("redis://h1:1,h2:2/0", "cluster"), "");
}

}  // namespace
}  // namespace flowrelay::redis
