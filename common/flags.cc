#include "common/flags.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/flags/commandlineflag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace taskmesh {
namespace {

// Flags defined by taskmesh's own sources, as opposed to Abseil's
// (--flagfile, --fromenv, ...). Bazel compiles with workspace-relative paths.
bool IsOwnFlagFile(absl::string_view filename) {
  return !absl::StrContains(filename, "absl/") && !absl::StartsWith(filename, "/");
}

bool WantsHelp(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg == "--help" || arg == "-help" || arg == "-h") return true;
  }
  return false;
}

// `--help`: the binary's own flags, their defaults, environment variables.
void PrintHelp(absl::string_view usage) {
  std::vector<std::pair<std::string, const absl::CommandLineFlag*>> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (IsOwnFlagFile(flag->Filename())) flags.emplace_back(std::string(name), flag);
  }
  std::sort(flags.begin(), flags.end());
  std::string out = absl::StrCat(usage, "\n\nFlags (each also settable as TASKMESH_<NAME>; the "
                                 "command line wins):\n");
  for (const auto& [name, flag] : flags) {
    absl::StrAppend(&out, "  --", name, "=", flag->DefaultValue(), "\n      ", flag->Help(),
                    "  [", FlagEnvName(name), "]\n");
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
}

void ApplyEnvironment() {
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (!IsOwnFlagFile(flag->Filename())) continue;
    const std::string env = FlagEnvName(name);
    const char* value = std::getenv(env.c_str());
    if (value == nullptr) continue;
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      std::fprintf(stderr, "ERROR: bad value '%s' in %s for --%s: %s\n", value,
                   env.c_str(), std::string(name).c_str(), error.c_str());
      std::exit(2);
    }
  }
}

}  // namespace

std::string FlagEnvName(absl::string_view flag_name) {
  return absl::StrCat("TASKMESH_", absl::AsciiStrToUpper(flag_name));
}

std::vector<std::string> ParseFlags(int argc, char** argv, absl::string_view usage,
                                    bool allow_positional) {
  absl::FlagsUsageConfig config;
  config.contains_help_flags = &IsOwnFlagFile;
  config.contains_helpshort_flags = &IsOwnFlagFile;
  config.version_string = [] { return std::string("taskmesh 0.1.0\n"); };
  absl::SetFlagsUsageConfig(config);
  absl::SetProgramUsageMessage(usage);
  if (WantsHelp(argc, argv)) {
    PrintHelp(usage);
    std::exit(0);
  }

  ApplyEnvironment();
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (!allow_positional && positional.size() > 1) {
    std::fprintf(stderr, "ERROR: unexpected argument '%s' (flags look like --name=value)\n",
                 positional[1]);
    std::exit(2);
  }
  return std::vector<std::string>(positional.begin(), positional.end());
}

}  // namespace taskmesh
