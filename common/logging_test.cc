#include "common/logging.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskmesh::log {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(LoggingTest, FormatsOneLogfmtLine) {
  SetComponent("worker");
  const std::string line = Format(Level::kInfo, "started", {{"queues", "a,b"}});
  EXPECT_THAT(line, StartsWith("ts="));
  EXPECT_THAT(line, HasSubstr(" level=info component=worker msg=started queues=a,b"));
  EXPECT_THAT(line, EndsWith("\n"));
}

TEST(LoggingTest, QuotesValuesThatNeedIt) {
  const std::string line =
      Format(Level::kError, "redis down", {{"error", "say \"hi\"\nnow"}, {"empty", ""}});
  EXPECT_THAT(line, HasSubstr("msg=\"redis down\""));
  EXPECT_THAT(line, HasSubstr("error=\"say \\\"hi\\\"\\nnow\""));
  EXPECT_THAT(line, HasSubstr("empty=\"\""));
}

TEST(LoggingTest, KeepsUtf8Unquoted) {
  const std::string line = Format(Level::kWarning, "caf\xc3\xa9", {});
  EXPECT_THAT(line, HasSubstr("msg=caf\xc3\xa9\n"));
}

}  // namespace
}  // namespace taskmesh::log
