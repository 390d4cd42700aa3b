#include "workers/handler.h"

#include "gtest/gtest.h"

namespace taskmesh::workers {
namespace {

TEST(HandlerTest, SkipRetryMarksErrorsOnly) {
  EXPECT_FALSE(IsSkipRetry(absl::InternalError("x")));
  const absl::Status s = SkipRetry(absl::InvalidArgumentError("bad payload"));
  EXPECT_TRUE(IsSkipRetry(s));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "bad payload");
  EXPECT_TRUE(SkipRetry(absl::OkStatus()).ok());
}

TEST(HandlerTest, RegistryFindsByTypeAndListsSorted) {
  HandlerRegistry registry;
  registry.Register("b", [](const TaskContext&) { return Result::Json("1"); });
  registry.Register("a", [](const TaskContext&) { return Result::Json("2"); });
  ASSERT_NE(registry.Find("a"), nullptr);
  EXPECT_EQ((*registry.Find("a"))(TaskContext{})->data, "2");
  EXPECT_EQ(registry.Find("c"), nullptr);
  EXPECT_EQ(registry.Types(), (std::vector<std::string>{"a", "b"}));
}

TEST(HandlerTest, ContextStopsWhenCancelledOrPastDeadline) {
  std::atomic<bool> flag{false};
  TaskContext ctx;
  ctx.cancel_flag = &flag;
  EXPECT_FALSE(ctx.should_stop());
  flag = true;
  EXPECT_TRUE(ctx.cancelled());
  EXPECT_TRUE(ctx.should_stop());
  TaskContext late;
  late.deadline = absl::Now() - absl::Seconds(1);
  EXPECT_TRUE(late.should_stop());
}

}  // namespace
}  // namespace taskmesh::workers
