#include "api_gateway/json_scan.h"

#include <chrono>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskmesh::gateway {
namespace {

using ::testing::HasSubstr;

struct ScanCase {
  std::string json;
  const char* error;  // nullptr: valid
};

class JsonScanTest : public ::testing::TestWithParam<ScanCase> {};

TEST_P(JsonScanTest, AcceptsValidAndPinpointsInvalid) {
  const ScanCase& c = GetParam();
  absl::Status s = ScanJson(c.json, /*max_depth=*/8);
  if (c.error == nullptr) {
    EXPECT_TRUE(s.ok()) << c.json << ": " << s;
  } else {
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.json;
    EXPECT_THAT(s.message(), HasSubstr(c.error)) << c.json;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, JsonScanTest,
    ::testing::Values(
        ScanCase{"{}", nullptr}, ScanCase{" [ ] ", nullptr}, ScanCase{"0", nullptr},
        ScanCase{"-0.5e+10", nullptr}, ScanCase{"\"a\\u00e9\\n\"", nullptr},
        ScanCase{"{\"a\":[1,true,false,null,{\"b\":\"c\"}]}", nullptr},
        ScanCase{"\"caf\xC3\xA9 \xF0\x9F\x98\x80\"", nullptr},
        ScanCase{"[[[[[[[[1]]]]]]]]", nullptr},  // exactly 8 deep
        ScanCase{"[[[[[[[[[1]]]]]]]]]", "JSON nested deeper than 8 levels at line 1, column 9 (byte 8)"},
        ScanCase{"", "line 1, column 1 (byte 0): unexpected end of input, expected a value"},
        ScanCase{"{\"a\": [1, 2,]}", "line 1, column 13 (byte 12): expected a value"},
        ScanCase{"{\"a\" 1}", "line 1, column 6 (byte 5): expected ':'"},
        ScanCase{"{\n  \"a\": 1,\n  b: 2}", "line 3, column 3 (byte 14): expected a string key"},
        ScanCase{"{\"a\":1", "unexpected end of input"},
        ScanCase{"{\"a\":1]", "expected ',' or '}'"},
        ScanCase{"[1 2]", "expected ',' or ']'"},
        ScanCase{"{} {}", "unexpected data after the JSON value"},
        ScanCase{"1, \"x\": 2", "unexpected data after the JSON value"},
        ScanCase{"01", "unexpected data after the JSON value"},
        ScanCase{"-", "malformed number"}, ScanCase{"1.", "malformed number"},
        ScanCase{"1e", "malformed number"}, ScanCase{"tru", "expected a value"},
        ScanCase{"'a'", "expected a value"}, ScanCase{"\"abc", "unterminated string"},
        ScanCase{"\"a\\x\"", "unknown escape"}, ScanCase{"\"\\u12g4\"", "malformed \\u escape"},
        ScanCase{std::string("\"a\x01\""), "control character"},
        ScanCase{"\"\xC0\xAF\"", "invalid UTF-8"}, ScanCase{"\"\xED\xA0\x80\"", "invalid UTF-8"},
        ScanCase{"\"\xE2\x82\"", "invalid UTF-8"}, ScanCase{"NaN", "expected a value"}));

TEST(JsonScanDepthTest, DeepNestingIsRejectedInLinearTime) {
  // 1 MiB of '[': protobuf alone would take hours on this; the scan stops at
  // the limit.
  const std::string deep(1 << 20, '[');
  const auto start = std::chrono::steady_clock::now();
  absl::Status s = ScanJson(deep, 64);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_THAT(s.message(), HasSubstr("nested deeper than 64"));
  EXPECT_LT(elapsed, std::chrono::milliseconds(50));
  // And a long flat document is scanned quickly too.
  std::string flat = "[";
  for (int i = 0; i < 200000; ++i) flat += "{\"k\":\"v\"},";
  flat += "1]";
  EXPECT_TRUE(ScanJson(flat, 64).ok());
}

}  // namespace
}  // namespace taskmesh::gateway
