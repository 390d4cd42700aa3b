#include "redis/options.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskmesh::redis {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(ParseRedisUrlTest, HostOnlyUsesDefaults) {
  absl::StatusOr<ConnectionOptions> o = ParseRedisUrl("redis://cache.internal");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->host, "cache.internal");
  EXPECT_EQ(o->port, 6379);
  EXPECT_EQ(o->db, 0);
  EXPECT_EQ(o->username, "");
  EXPECT_EQ(o->password, "");
  // Timeouts keep their defaults.
  EXPECT_EQ(o->connect_timeout, ConnectionOptions().connect_timeout);
  EXPECT_EQ(o->command_timeout, ConnectionOptions().command_timeout);
}

TEST(ParseRedisUrlTest, FullUrl) {
  absl::StatusOr<ConnectionOptions> o = ParseRedisUrl("redis://worker:s3cret@10.0.0.5:6380/3");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->host, "10.0.0.5");
  EXPECT_EQ(o->port, 6380);
  EXPECT_EQ(o->db, 3);
  EXPECT_EQ(o->username, "worker");
  EXPECT_EQ(o->password, "s3cret");
}

TEST(ParseRedisUrlTest, PasswordOnly) {
  absl::StatusOr<ConnectionOptions> o = ParseRedisUrl("redis://:pw@localhost:7000");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->username, "");
  EXPECT_EQ(o->password, "pw");
  EXPECT_EQ(o->host, "localhost");
  EXPECT_EQ(o->port, 7000);
}

TEST(ParseRedisUrlTest, LoneUserinfoIsThePassword) {
  absl::StatusOr<ConnectionOptions> o = ParseRedisUrl("redis://secret@localhost");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->username, "");
  EXPECT_EQ(o->password, "secret");
}

TEST(ParseRedisUrlTest, PercentEscapesInUserAndPassword) {
  absl::StatusOr<ConnectionOptions> o =
      ParseRedisUrl("redis://us%40er:p%3Aa%2Fs%40s%25w%00rd@host:1/0");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->username, "us@er");
  EXPECT_EQ(o->password, std::string("p:a/s@s%w\0rd", 12));
  EXPECT_EQ(o->host, "host");
  EXPECT_EQ(o->port, 1);
}

TEST(ParseRedisUrlTest, PercentEscapeHexIsCaseInsensitive) {
  absl::StatusOr<ConnectionOptions> o = ParseRedisUrl("redis://:%2f%2F@h");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->password, "//");
}

TEST(ParseRedisUrlTest, UnescapedAtInPasswordSplitsAtTheLastAt) {
  absl::StatusOr<ConnectionOptions> o = ParseRedisUrl("redis://:p@ss@host");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->password, "p@ss");
  EXPECT_EQ(o->host, "host");
}

TEST(ParseRedisUrlTest, BadPercentEscapes) {
  for (const char* url : {"redis://:abc%@host", "redis://:abc%4@host", "redis://:%zz@host",
                          "redis://us%g1er:pw@host"}) {
    absl::StatusOr<ConnectionOptions> o = ParseRedisUrl(url);
    EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument) << url;
  }
}

TEST(ParseRedisUrlTest, DatabaseRange) {
  EXPECT_EQ(ParseRedisUrl("redis://h/0")->db, 0);
  EXPECT_EQ(ParseRedisUrl("redis://h/15")->db, 15);
  EXPECT_EQ(ParseRedisUrl("redis://h:1/7")->db, 7);
  EXPECT_EQ(ParseRedisUrl("redis://h/")->db, 0);  // Empty path: the default.
  for (const char* url : {"redis://h/16", "redis://h/-1", "redis://h/x", "redis://h/1x",
                          "redis://h/+1", "redis://h/ 1", "redis://h/1/2",
                          "redis://h/99999999999999999999", "redis://h/0?timeout=1"}) {
    EXPECT_EQ(ParseRedisUrl(url).status().code(), absl::StatusCode::kInvalidArgument) << url;
  }
}

TEST(ParseRedisUrlTest, PortRange) {
  EXPECT_EQ(ParseRedisUrl("redis://h:1")->port, 1);
  EXPECT_EQ(ParseRedisUrl("redis://h:65535")->port, 65535);
  for (const char* url : {"redis://h:0", "redis://h:65536", "redis://h:-1", "redis://h:",
                          "redis://h:http", "redis://h:+80", "redis://h: 80",
                          "redis://h:99999999999999999999"}) {
    EXPECT_EQ(ParseRedisUrl(url).status().code(), absl::StatusCode::kInvalidArgument) << url;
  }
}

TEST(ParseRedisUrlTest, Ipv6InBrackets) {
  absl::StatusOr<ConnectionOptions> o = ParseRedisUrl("redis://:pw@[::1]:6390/2");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->host, "::1");
  EXPECT_EQ(o->port, 6390);
  EXPECT_EQ(o->db, 2);
  EXPECT_EQ(o->password, "pw");

  absl::StatusOr<ConnectionOptions> no_port = ParseRedisUrl("redis://[fe80::1:2]");
  ASSERT_TRUE(no_port.ok()) << no_port.status();
  EXPECT_EQ(no_port->host, "fe80::1:2");
  EXPECT_EQ(no_port->port, 6379);

  absl::StatusOr<ConnectionOptions> with_db = ParseRedisUrl("redis://[::1]/4");
  ASSERT_TRUE(with_db.ok()) << with_db.status();
  EXPECT_EQ(with_db->host, "::1");
  EXPECT_EQ(with_db->db, 4);
}

TEST(ParseRedisUrlTest, MalformedIpv6) {
  for (const char* url : {"redis://[::1", "redis://[::1]:", "redis://[::1]x", "redis://[]:1",
                          "redis://[::1]6379", "redis://::1", "redis://::1:6379",
                          "redis://a]:1"}) {
    EXPECT_EQ(ParseRedisUrl(url).status().code(), absl::StatusCode::kInvalidArgument) << url;
  }
}

TEST(ParseRedisUrlTest, MissingHost) {
  for (const char* url : {"redis://", "redis://:6379", "redis:///0", "redis://:pw@",
                          "redis://:pw@:1/0"}) {
    EXPECT_EQ(ParseRedisUrl(url).status().code(), absl::StatusCode::kInvalidArgument) << url;
  }
}

TEST(ParseRedisUrlTest, RefusesTlsAndOtherSchemes) {
  absl::StatusOr<ConnectionOptions> tls = ParseRedisUrl("rediss://:pw@host:6380");
  EXPECT_EQ(tls.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(tls.status().message()), HasSubstr("TLS"));
  for (const char* url : {"http://host", "host:6379", "", "redis:/host", "unix:///tmp/r.sock"}) {
    EXPECT_EQ(ParseRedisUrl(url).status().code(), absl::StatusCode::kInvalidArgument) << url;
  }
}

TEST(ParseRedisUrlTest, ErrorsNeverEchoThePassword) {
  for (const char* url : {"redis://:hunter2@h:99999", "redis://:hunter2@h/99",
                          "rediss://:hunter2@h", "redis://:hunter2%zz@h"}) {
    absl::StatusOr<ConnectionOptions> o = ParseRedisUrl(url);
    ASSERT_FALSE(o.ok()) << url;
    EXPECT_THAT(std::string(o.status().message()), Not(HasSubstr("hunter2"))) << url;
  }
}

TEST(DescribeEndpointTest, NeverIncludesThePassword) {
  ConnectionOptions o = *ParseRedisUrl("redis://u:hunter2@redis.local:6380/2");
  const std::string described = DescribeEndpoint(o);
  EXPECT_EQ(described, "redis.local:6380/2");
  EXPECT_THAT(described, Not(HasSubstr("hunter2")));
}

TEST(DescribeEndpointTest, BracketsIpv6) {
  ConnectionOptions o = *ParseRedisUrl("redis://[::1]:6380/1");
  EXPECT_EQ(DescribeEndpoint(o), "[::1]:6380/1");
}

TEST(ParseRedisSeedsTest, OneUrlIsOneSeed) {
  auto seeds = ParseRedisSeeds("redis://:p,w@h:7000/2");
  ASSERT_TRUE(seeds.ok()) << seeds.status();
  ASSERT_EQ(seeds->size(), 1u);
  EXPECT_EQ((*seeds)[0].password, "p,w");  // as ParseRedisUrl reads it
  EXPECT_EQ((*seeds)[0].db, 2);
}

TEST(ParseRedisSeedsTest, BareSeedsTakeTheFirstSeedsCredentials) {
  auto seeds = ParseRedisSeeds("redis://u:pw@a:7000,b:7001,[::1]:7002,c");
  ASSERT_TRUE(seeds.ok()) << seeds.status();
  ASSERT_EQ(seeds->size(), 4u);
  EXPECT_EQ((*seeds)[1].host, "b");
  EXPECT_EQ((*seeds)[1].port, 7001);
  EXPECT_EQ((*seeds)[1].username, "u");
  EXPECT_EQ((*seeds)[1].password, "pw");
  EXPECT_EQ((*seeds)[2].host, "::1");
  EXPECT_EQ((*seeds)[3].port, 6379);
}

TEST(ParseRedisSeedsTest, FullUrlsKeepTheirOwnCredentials) {
  auto seeds = ParseRedisSeeds("redis://u:pw@a:7000,redis://b:7001,c:7002");
  ASSERT_TRUE(seeds.ok()) << seeds.status();
  ASSERT_EQ(seeds->size(), 3u);
  EXPECT_EQ((*seeds)[0].password, "pw");
  EXPECT_EQ((*seeds)[1].password, "");
  EXPECT_EQ((*seeds)[2].password, "pw");  // bare: the first seed's
  auto escaped = ParseRedisSeeds("redis://:p%2Cw@a:1,redis://:p%2Cw@b:2");
  ASSERT_TRUE(escaped.ok()) << escaped.status();
  EXPECT_EQ((*escaped)[1].password, "p,w");
  // Without ",redis://", a string that is one valid URL is one URL: here
  // user "a", password "1,u".
  auto one = ParseRedisSeeds("redis://a:1,u@b:2");
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->size(), 1u);
  auto first_without_port = ParseRedisSeeds("redis://a,b:2");
  ASSERT_TRUE(first_without_port.ok()) << first_without_port.status();
  EXPECT_EQ(first_without_port->size(), 2u);
}

TEST(ParseRedisSeedsTest, RejectsBadLists) {
  for (const char* bad : {"a:1,b:2", "redis://a:1,", "redis://a:1,,b:2",
                          "redis://a:1,b:2/3", "redis://a:1,b:x", "redis://a:1,rediss://b:2"}) {
    EXPECT_EQ(ParseRedisSeeds(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace taskmesh::redis
