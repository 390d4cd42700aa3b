#include "api_gateway/path_template.h"

#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskmesh::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A compact rendering of a parsed template: L(lit) * ** {var:start-end[m]} :verb
std::string Describe(const PathTemplate& t) {
  std::vector<std::string> parts;
  for (const TemplateSegment& s : t.segments()) {
    switch (s.kind) {
      case TemplateSegment::Kind::kLiteral: parts.push_back("L(" + s.literal + ")"); break;
      case TemplateSegment::Kind::kWildcard: parts.push_back("*"); break;
      case TemplateSegment::Kind::kMultiWildcard: parts.push_back("**"); break;
    }
  }
  for (const TemplateVariable& v : t.variables()) {
    parts.push_back("{" + absl::StrJoin(v.field_path, ".") + ":" + std::to_string(v.start_segment) +
                    "-" + std::to_string(v.end_segment) + (v.multi_segment ? "m" : "") + "}");
  }
  if (!t.verb().empty()) parts.push_back(":" + t.verb());
  return absl::StrJoin(parts, " ");
}

struct ParseCase {
  const char* text;
  const char* expected;  // Describe(), or "error: <substring>"
};

class PathTemplateParseTest : public ::testing::TestWithParam<ParseCase> {};

TEST_P(PathTemplateParseTest, ParsesOrRejects) {
  const ParseCase& c = GetParam();
  absl::StatusOr<PathTemplate> t = PathTemplate::Parse(c.text);
  const std::string expected = c.expected;
  if (expected.rfind("error: ", 0) == 0) {
    ASSERT_FALSE(t.ok()) << c.text << " parsed as " << Describe(*t);
    EXPECT_THAT(t.status().message(), HasSubstr(expected.substr(7))) << c.text;
  } else {
    ASSERT_TRUE(t.ok()) << c.text << ": " << t.status();
    EXPECT_EQ(Describe(*t), expected) << c.text;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Grammar, PathTemplateParseTest,
    ::testing::Values(
        ParseCase{"/v1/things", "L(v1) L(things)"},
        ParseCase{"/v1/{id}", "L(v1) * {id:1-2}"},
        ParseCase{"/v1/{id=*}", "L(v1) * {id:1-2}"},
        ParseCase{"/v1/{name=things/*}", "L(v1) L(things) * {name:1-3m}"},
        ParseCase{"/v1/{name=a/*/b/**}", "L(v1) L(a) * L(b) ** {name:1-5m}"},
        ParseCase{"/v1/{path=**}", "L(v1) ** {path:1-2m}"},
        ParseCase{"/v1/static/**", "L(v1) L(static) **"},
        ParseCase{"/v1/*/x", "L(v1) * L(x)"},
        ParseCase{"/v1/{name=things/*}:cancel", "L(v1) L(things) * {name:1-3m} :cancel"},
        ParseCase{"/v1/things:batchGet", "L(v1) L(things) :batchGet"},
        ParseCase{"/v1/{a.b.c}/x/{d}", "L(v1) * L(x) * {a.b.c:1-2} {d:3-4}"},
        ParseCase{"/v1/th%69ngs", "L(v1) L(things)"},
        ParseCase{"v1/things", "error: must start with '/'"},
        ParseCase{"/v1//things", "error: empty segment"},
        ParseCase{"/v1/things/", "error: empty segment"},
        ParseCase{"/v1/**/x", "error: '**' must be the last segment"},
        ParseCase{"/v1/{a=**}/x", "error: '**' must be the last segment"},
        ParseCase{"/v1/{a={b}}", "error: cannot hold another variable"},
        ParseCase{"/v1/{a", "error: expected '}'"},
        ParseCase{"/v1/{}", "error: expected a field name"},
        ParseCase{"/v1/{1a}", "error: expected a field name"},
        ParseCase{"/v1/{a}/{a}", "error: appears twice"},
        ParseCase{"/v1/x:", "error: empty verb"},
        ParseCase{"/v1/x:a:b", "error: unexpected ':'"},
        ParseCase{"/v1/%zz", "error: malformed percent-encoding"},
        ParseCase{"/v1/a b", "error: unexpected ' '"}));

struct MatchCase {
  const char* path_template;
  const char* path;
  bool matches;
  std::vector<std::string> values;
};

class PathTemplateMatchTest : public ::testing::TestWithParam<MatchCase> {};

TEST_P(PathTemplateMatchTest, MatchesAndBindsVariables) {
  const MatchCase& c = GetParam();
  PathTemplate t = PathTemplate::Parse(c.path_template).value();
  absl::StatusOr<RequestPath> p = RequestPath::Parse(c.path);
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(t.Matches(*p), c.matches) << c.path_template << " vs " << c.path;
  if (!c.matches) return;
  absl::StatusOr<std::vector<std::string>> values = t.ExtractVariables(*p);
  ASSERT_TRUE(values.ok()) << values.status();
  EXPECT_EQ(*values, c.values) << c.path_template << " vs " << c.path;
}

INSTANTIATE_TEST_SUITE_P(
    Paths, PathTemplateMatchTest,
    ::testing::Values(
        MatchCase{"/v1/things", "/v1/things", true, {}},
        MatchCase{"/v1/things", "/v1/thing", false, {}},
        MatchCase{"/v1/things", "/v1/things/x", false, {}},
        MatchCase{"/v1/things", "/v1/th%69ngs", true, {}},  // literals compare decoded
        MatchCase{"/v1/{id}", "/v1/abc", true, {"abc"}},
        MatchCase{"/v1/{id}", "/v1/", false, {}},  // `*` never matches an empty segment
        MatchCase{"/v1/{id=*}", "/v1/a%20b", true, {"a b"}},
        // A single-segment variable keeps %2F escaped (never gains a '/').
        MatchCase{"/v1/{id}", "/v1/a%2Fb", true, {"a%2Fb"}},
        MatchCase{"/v1/{id}", "/v1/a%2fb%3Ac", true, {"a%2fb:c"}},
        MatchCase{"/v1/{name=things/*}", "/v1/things/t1", true, {"things/t1"}},
        MatchCase{"/v1/{name=things/*}", "/v1/shelves/t1", false, {}},
        // A multi-segment variable keeps reserved characters escaped.
        MatchCase{"/v1/{name=things/*}", "/v1/things/a%2Fb%3Ac%20d", true, {"things/a%2Fb%3Ac d"}},
        MatchCase{"/v1/{name=a/*/b/**}", "/v1/a/x/b", true, {"a/x/b"}},
        MatchCase{"/v1/{name=a/*/b/**}", "/v1/a/x/b/c/d", true, {"a/x/b/c/d"}},
        MatchCase{"/v1/{name=a/*/b/**}", "/v1/a/x/c/d", false, {}},
        MatchCase{"/v1/{path=**}", "/v1/x/y/z", true, {"x/y/z"}},
        MatchCase{"/v1/{path=**}", "/v1", true, {""}},
        MatchCase{"/v1/static/**", "/v1/static/css/a.css", true, {}},
        MatchCase{"/v1/{name=things/*}:cancel", "/v1/things/t1:cancel", true, {"things/t1"}},
        MatchCase{"/v1/{name=things/*}:cancel", "/v1/things/t1:retry", false, {}},
        MatchCase{"/v1/{name=things/*}:cancel", "/v1/things/t1", false, {}},
        // Without a verb in the template, a colon is part of the segment.
        MatchCase{"/v1/{name=things/*}", "/v1/things/t1:cancel", true, {"things/t1:cancel"}},
        MatchCase{"/v1/{path=**}:get", "/v1/a/b:get", true, {"a/b"}},
        MatchCase{"/v1/{a.b}/x/{c}", "/v1/1/x/2", true, {"1", "2"}},
        MatchCase{"/v1/{id}", "/v1/caf%C3%A9", true, {"caf\xC3\xA9"}}));

TEST(RequestPathTest, RejectsMalformedEscapes) {
  EXPECT_FALSE(RequestPath::Parse("/v1/%").ok());
  EXPECT_FALSE(RequestPath::Parse("/v1/%4").ok());
  EXPECT_FALSE(RequestPath::Parse("/v1/%g0").ok());
  EXPECT_FALSE(RequestPath::Parse("v1").ok());
  EXPECT_FALSE(RequestPath::Parse("").ok());
}

TEST(RequestPathTest, SplitsVerbFromLastSegmentOnly) {
  RequestPath p = RequestPath::Parse("/v1/a:b/c:d").value();
  EXPECT_THAT(p.raw_segments(), ElementsAre("v1", "a:b", "c:d"));
  EXPECT_TRUE(p.has_verb());
  EXPECT_EQ(p.verb(), "d");
  EXPECT_EQ(p.raw_last_without_verb(), "c");
}

TEST(PathTemplateTest, SpecificityPrefersLiteralsThenWildcardsThenVerbs) {
  auto t = [](const char* s) { return PathTemplate::Parse(s).value(); };
  EXPECT_LT(t("/v1/things/special").CompareSpecificity(t("/v1/things/{id}")), 0);
  EXPECT_GT(t("/v1/{path=**}").CompareSpecificity(t("/v1/{id}")), 0);
  EXPECT_LT(t("/v1/{id}:cancel").CompareSpecificity(t("/v1/{id}")), 0);
  EXPECT_LT(t("/v1").CompareSpecificity(t("/v1/**")), 0);
  EXPECT_EQ(t("/v1/{a}").CompareSpecificity(t("/v1/{b}")), 0);
}

}  // namespace
}  // namespace taskmesh::gateway
