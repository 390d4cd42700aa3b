#include "api_gateway/path_matcher.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskmesh::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Outcome = PathMatcher::Outcome;

class PathMatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PathMatcher::Builder b;
    ASSERT_TRUE(b.Add("GET", "/v1/{name=queues/*/tasks/*}", 0).ok());
    ASSERT_TRUE(b.Add("DELETE", "/v1/{name=queues/*/tasks/*}", 1).ok());
    ASSERT_TRUE(b.Add("POST", "/v1/{name=queues/*/tasks/*}:cancel", 2).ok());
    ASSERT_TRUE(b.Add("GET", "/v1/{name=queues/*/tasks/*}:watch", 3).ok());
    ASSERT_TRUE(b.Add("GET", "/v1/queues/default/tasks/special", 4).ok());
    ASSERT_TRUE(b.Add("GET", "/v1/{path=files/**}", 5).ok());
    ASSERT_TRUE(b.Add("GET", "/v1/files/readme", 6).ok());
    ASSERT_TRUE(b.Add("SEARCH", "/v1/{parent=queues/*}/tasks", 7).ok());
    matcher_ = std::move(b).Build();
  }
  PathMatcher matcher_;
};

TEST_F(PathMatcherTest, VariableBindingsWithCustomVerb) {
  PathMatcher::Result r = matcher_.Lookup("POST", "/v1/queues/q/tasks/t1:cancel");
  ASSERT_EQ(r.outcome, Outcome::kMatched);
  EXPECT_EQ(r.value, 2);
  EXPECT_THAT(r.variable_values, ElementsAre("queues/q/tasks/t1"));
}

TEST_F(PathMatcherTest, VerbRouteBeatsPlainRouteForSameMethod) {
  PathMatcher::Result r = matcher_.Lookup("GET", "/v1/queues/q/tasks/t1:watch");
  ASSERT_EQ(r.outcome, Outcome::kMatched);
  EXPECT_EQ(r.value, 3);
  EXPECT_THAT(r.variable_values, ElementsAre("queues/q/tasks/t1"));
}

TEST_F(PathMatcherTest, LiteralBeatsWildcard) {
  EXPECT_EQ(matcher_.Lookup("GET", "/v1/queues/default/tasks/special").value, 4);
  EXPECT_EQ(matcher_.Lookup("GET", "/v1/queues/default/tasks/other").value, 0);
  EXPECT_EQ(matcher_.Lookup("GET", "/v1/files/readme").value, 6);
  PathMatcher::Result r = matcher_.Lookup("GET", "/v1/files/a/b/c");
  EXPECT_EQ(r.value, 5);
  EXPECT_THAT(r.variable_values, ElementsAre("files/a/b/c"));
}

TEST_F(PathMatcherTest, CustomMethodKind) {
  PathMatcher::Result r = matcher_.Lookup("SEARCH", "/v1/queues/q/tasks");
  ASSERT_EQ(r.outcome, Outcome::kMatched);
  EXPECT_EQ(r.value, 7);
}

TEST_F(PathMatcherTest, KnownPathWithOtherMethodIsMethodNotAllowed) {
  PathMatcher::Result r = matcher_.Lookup("PUT", "/v1/queues/q/tasks/t1");
  EXPECT_EQ(r.outcome, Outcome::kMethodNotAllowed);
  EXPECT_THAT(r.allowed_methods, ElementsAre("DELETE", "GET"));
}

TEST_F(PathMatcherTest, UnknownPathIsNotFound) {
  EXPECT_EQ(matcher_.Lookup("GET", "/v2/queues/q").outcome, Outcome::kNotFound);
  EXPECT_EQ(matcher_.Lookup("GET", "/v1/queues/q/tasks/").outcome, Outcome::kNotFound);
  EXPECT_EQ(matcher_.Lookup("POST", "/v1/queues/q:retry").outcome, Outcome::kNotFound);
  // An unknown verb is part of the last segment, so the GET/DELETE templates match.
  EXPECT_EQ(matcher_.Lookup("POST", "/v1/queues/q/tasks/t:retry").outcome,
            Outcome::kMethodNotAllowed);
}

TEST_F(PathMatcherTest, MalformedPathIsBadPath) {
  PathMatcher::Result r = matcher_.Lookup("GET", "/v1/queues/%zz/tasks/t");
  EXPECT_EQ(r.outcome, Outcome::kBadPath);
  EXPECT_THAT(r.error, HasSubstr("percent-encoding"));
}

TEST_F(PathMatcherTest, EscapedSlashStaysInsideItsSegment) {
  PathMatcher::Result r = matcher_.Lookup("GET", "/v1/queues/q/tasks/a%2Fb");
  ASSERT_EQ(r.outcome, Outcome::kMatched);
  EXPECT_THAT(r.variable_values, ElementsAre("queues/q/tasks/a%2Fb"));
}

TEST(PathMatcherBuilderTest, RejectsEquivalentTemplatesForOneMethod) {
  PathMatcher::Builder b;
  ASSERT_TRUE(b.Add("GET", "/v1/{name=things/*}", 0).ok());
  absl::Status s = b.Add("GET", "/v1/{other=things/*}", 1);
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(b.Add("POST", "/v1/{other=things/*}", 1).ok());
  EXPECT_EQ(b.Add("GET", "/v1/{", 2).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace taskmesh::gateway
