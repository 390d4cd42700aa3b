#include "workers/builtin_handlers.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskmesh::workers {
namespace {

using ::testing::HasSubstr;

class BuiltinHandlersTest : public ::testing::Test {
 protected:
  BuiltinHandlersTest() { RegisterBuiltinHandlers(registry_); }

  absl::StatusOr<Result> Run(const std::string& type, const std::string& json,
                             bool is_json = true) {
    TaskContext ctx;
    ctx.type = type;
    ctx.payload = Payload{is_json, json};
    ctx.deadline = absl::Now() + absl::Seconds(10);
    ctx.cancel_flag = &cancel_;
    return (*registry_.Find(type))(ctx);
  }

  HandlerRegistry registry_;
  std::atomic<bool> cancel_{false};
};

TEST_F(BuiltinHandlersTest, EchoReturnsPayloadOfTheSameKind) {
  auto json = Run("echo", R"({"a":1})");
  ASSERT_TRUE(json.ok());
  EXPECT_TRUE(json->is_json);
  EXPECT_EQ(json->data, R"({"a":1})");
  auto bytes = Run("echo", std::string("\0\1", 2), false);
  EXPECT_FALSE(bytes->is_json);
  EXPECT_EQ(bytes->data, std::string("\0\1", 2));
}

TEST_F(BuiltinHandlersTest, Sha256MatchesKnownDigests) {
  // sha256("abc")
  auto one = Run("sha256", R"({"data":"abc"})");
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->data,
            R"({"sha256":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad","rounds":1})");
  // sha256(sha256("abc")) over the raw digest.
  auto two = Run("sha256", R"({"data":"abc","rounds":2})");
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(two->data,
            R"({"sha256":"4f8b42c22dd3729b519ba6f68d2da7cc5b2d606d05daed5ad5128cc03e6c6358","rounds":2})");
}

TEST_F(BuiltinHandlersTest, BadPayloadsFailWithoutRetry) {
  auto s = Run("sha256", R"({"rounds":-1})");
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(IsSkipRetry(s.status()));
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("payload.rounds"));
  EXPECT_TRUE(IsSkipRetry(Run("sleep", R"({"ms":"soon"})").status()));
  EXPECT_TRUE(IsSkipRetry(Run("sleep", "[1,2]").status()));
  EXPECT_TRUE(IsSkipRetry(Run("sleep", "raw", false).status()));
  EXPECT_TRUE(IsSkipRetry(Run("sha256", R"({"rounds":10000001})").status()));
}

TEST_F(BuiltinHandlersTest, SleepSleepsAndStopsWhenCancelled) {
  const absl::Time start = absl::Now();
  auto r = Run("sleep", R"({"ms":30})");
  ASSERT_TRUE(r.ok());
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(30));
  EXPECT_EQ(r->data, R"({"slept_ms":30})");
  cancel_ = true;
  EXPECT_EQ(Run("sleep", R"({"ms":60000})").status().code(), absl::StatusCode::kCancelled);
}

TEST_F(BuiltinHandlersTest, FailAlwaysFailsWithItsMessage) {
  auto r = Run("fail", R"({"message":"nope"})");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(r.status().message(), "nope");
  EXPECT_FALSE(IsSkipRetry(r.status()));
  EXPECT_THAT(std::string(Run("fail", "null").status().message()), HasSubstr("on purpose"));
}

}  // namespace
}  // namespace taskmesh::workers
