// The flags contract of every binary: --help, bad flags, environment variables.
#include <sys/wait.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/binaries.h"
#include "tests/support/process.h"

namespace taskmesh {
namespace {

using ::testing::HasSubstr;

struct RunResult {
  int exit_code = -1;
  std::string output;
};

RunResult RunBinary(const std::string& binary, std::vector<std::string> args,
              std::vector<std::string> env = {}) {
  static int n = 0;
  args.insert(args.begin(), testing::BinaryPath(binary));
  const std::string log = absl::StrCat(testing::TestTempDir(), "/cli-", n++, ".log");
  auto p = testing::Process::Start(args, env, log);
  EXPECT_TRUE(p.ok()) << p.status();
  RunResult run;
  auto status = (*p)->Wait(absl::Seconds(10));
  EXPECT_TRUE(status.ok()) << binary << " did not exit";
  if (status.ok() && WIFEXITED(*status)) run.exit_code = WEXITSTATUS(*status);
  run.output = (*p)->Log();
  return run;
}

class CliTest : public ::testing::TestWithParam<const char*> {};

TEST_P(CliTest, HelpListsFlagsWithEnvironmentNamesAndExitsZero) {
  RunResult run = RunBinary(GetParam(), {"--help"});
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("--redis=redis://127.0.0.1:6379"));
  EXPECT_THAT(run.output, HasSubstr("[TASKMESH_REDIS]"));
  EXPECT_THAT(run.output, HasSubstr("Usage:"));
  EXPECT_THAT(run.output, ::testing::Not(HasSubstr("--flagfile")));  // Only our own flags.
}

TEST_P(CliTest, UnknownFlagFailsWithOneLineReason) {
  RunResult run = RunBinary(GetParam(), {"--no_such_flag=1"});
  EXPECT_NE(run.exit_code, 0);
  EXPECT_THAT(run.output, HasSubstr("no_such_flag"));
  std::vector<std::string> lines = absl::StrSplit(run.output, '\n', absl::SkipEmpty());
  EXPECT_EQ(lines.size(), 1u) << run.output;
}

TEST_P(CliTest, BadValueFailsWithOneLineReason) {
  RunResult run = RunBinary(GetParam(), {"--redis=http://localhost"});
  EXPECT_NE(run.exit_code, 0);
  EXPECT_THAT(run.output, HasSubstr("--redis"));
  std::vector<std::string> lines = absl::StrSplit(run.output, '\n', absl::SkipEmpty());
  EXPECT_EQ(lines.size(), 1u) << run.output;
}

TEST_P(CliTest, EnvironmentVariablesSetFlags) {
  RunResult run = RunBinary(GetParam(), {}, {"TASKMESH_REDIS=nonsense"});
  EXPECT_NE(run.exit_code, 0);
  EXPECT_THAT(run.output, HasSubstr("must start with redis://"));
  run = RunBinary(GetParam(), {}, {"TASKMESH_REDIS_TIMEOUT=soon"});
  EXPECT_NE(run.exit_code, 0);
  EXPECT_THAT(run.output, HasSubstr("TASKMESH_REDIS_TIMEOUT"));
}

INSTANTIATE_TEST_SUITE_P(Binaries, CliTest,
                         ::testing::Values("task_service/task_service", "workers/worker"));

}  // namespace
}  // namespace taskmesh
