// The api_gateway binary's flags contract: --help, bad flags and values,
// environment variables; the same as every taskmesh binary.
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

RunResult RunGateway(std::vector<std::string> args, std::vector<std::string> env = {}) {
  static int n = 0;
  args.insert(args.begin(), testing::BinaryPath("api_gateway/api_gateway"));
  auto p = testing::Process::Start(args, env,
                                   absl::StrCat(testing::TestTempDir(), "/gw-cli-", n++, ".log"));
  EXPECT_TRUE(p.ok()) << p.status();
  RunResult run;
  auto status = (*p)->Wait(absl::Seconds(10));
  EXPECT_TRUE(status.ok()) << "did not exit";
  if (status.ok() && WIFEXITED(*status)) run.exit_code = WEXITSTATUS(*status);
  run.output = (*p)->Log();
  return run;
}

size_t LineCount(const std::string& s) {
  std::vector<std::string> lines = absl::StrSplit(s, '\n', absl::SkipEmpty());
  return lines.size();
}

TEST(GatewayCliTest, HelpListsFlagsWithDefaultsAndEnvironmentNames) {
  RunResult run = RunGateway({"--help"});
  EXPECT_EQ(run.exit_code, 0);
  for (const char* flag :
       {"--listen=0.0.0.0:8080", "--upstream=127.0.0.1:50051", "--max_body_bytes=1048576",
        "--max_header_bytes=61440", "--max_json_depth=64", "--header_timeout=10s",
        "--max_concurrent_calls=4096", "[TASKMESH_UPSTREAM]", "--route=", "--descriptor_set=",
        "--cors_origins=", "Usage:"}) {
    EXPECT_THAT(run.output, HasSubstr(flag));
  }
  EXPECT_THAT(run.output, ::testing::Not(HasSubstr("--flagfile")));
}

TEST(GatewayCliTest, BadFlagsAndValuesFailWithOneLine) {
  RunResult run = RunGateway({"--no_such_flag=1"});
  EXPECT_NE(run.exit_code, 0);
  EXPECT_EQ(LineCount(run.output), 1u) << run.output;
  run = RunGateway({"--max_json_depth=500"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.output, HasSubstr("--max_json_depth must be 1-99"));
  EXPECT_EQ(LineCount(run.output), 1u) << run.output;
  run = RunGateway({"--route=nonsense"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.output, HasSubstr("is not package.Service=TARGET"));
  run = RunGateway({"--route=no.Such=127.0.0.1:1"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.output, HasSubstr("'no.Such', which is not a served service"));
  run = RunGateway({"--descriptor_set=/no/such/file"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.output, HasSubstr("cannot read /no/such/file"));
  run = RunGateway({"--listen=nonsense"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.output, HasSubstr("--listen"));
}

TEST(GatewayCliTest, EnvironmentSetsFlags) {
  RunResult run = RunGateway({}, {"TASKMESH_MAX_JSON_DEPTH=0"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.output, HasSubstr("--max_json_depth must be 1-99"));
}

}  // namespace
}  // namespace taskmesh
