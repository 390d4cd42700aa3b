#include "api_gateway/url_codec.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskmesh::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

std::string Decode(const char* in, DecodeMode mode) {
  std::string out;
  EXPECT_TRUE(PercentDecode(in, mode, &out)) << in;
  return out;
}

TEST(PercentDecodeTest, ModesDifferOnlyInWhatStaysEscaped) {
  EXPECT_EQ(Decode("a%2Fb%20c%3A", DecodeMode::kFull), "a/b c:");
  EXPECT_EQ(Decode("a%2Fb%20c%3A", DecodeMode::kSingleSegment), "a%2Fb c:");
  EXPECT_EQ(Decode("a%2fb%20c%3A%41", DecodeMode::kMultiSegment), "a%2fb c%3AA");
  EXPECT_EQ(Decode("a+b%2B", DecodeMode::kQuery), "a b+");
  EXPECT_EQ(Decode("a+b", DecodeMode::kFull), "a+b");
}

TEST(PercentDecodeTest, RejectsMalformedEscapes) {
  std::string out;
  EXPECT_FALSE(PercentDecode("%", DecodeMode::kFull, &out));
  EXPECT_FALSE(PercentDecode("ab%4", DecodeMode::kFull, &out));
  EXPECT_FALSE(PercentDecode("%x1", DecodeMode::kQuery, &out));
}

TEST(PercentEncodeTest, RoundTrips) {
  EXPECT_EQ(PercentEncode("a b/c~"), "a%20b%2Fc~");
  EXPECT_EQ(PercentEncode("a b/c", /*keep_slash=*/true), "a%20b/c");
  std::string out;
  ASSERT_TRUE(PercentDecode(PercentEncode("\x01\xff:%"), DecodeMode::kFull, &out));
  EXPECT_EQ(out, "\x01\xff:%");
}

TEST(ParseQueryTest, SplitsDecodesAndKeepsRepeats) {
  auto q = ParseQuery("a=1&b=x+y%21&&a=2&flag&c=").value();
  EXPECT_THAT(q, ElementsAre(Pair("a", "1"), Pair("b", "x y!"), Pair("a", "2"), Pair("flag", ""),
                             Pair("c", "")));
  EXPECT_FALSE(ParseQuery("a=%zz").ok());
  EXPECT_TRUE(ParseQuery("").value().empty());
}

}  // namespace
}  // namespace taskmesh::gateway
