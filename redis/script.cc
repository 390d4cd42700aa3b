#include "redis/script.h"

#include <openssl/sha.h>

#include <string>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace taskmesh::redis {
namespace {

std::string Sha1Hex(const std::string& data) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

Args BuildArgs(std::string command, std::string script,
               const std::vector<std::string>& keys,
               const std::vector<std::string>& args) {
  Args out;
  out.reserve(3 + keys.size() + args.size());
  out.push_back(std::move(command));
  out.push_back(std::move(script));
  out.push_back(absl::StrCat(keys.size()));
  out.insert(out.end(), keys.begin(), keys.end());
  out.insert(out.end(), args.begin(), args.end());
  return out;
}

}  // namespace

Script::Script(std::string source) : source_(std::move(source)), sha1_(Sha1Hex(source_)) {}

Args Script::EvalShaArgs(const std::vector<std::string>& keys,
                         const std::vector<std::string>& args) const {
  return BuildArgs("EVALSHA", sha1_, keys, args);
}

Args Script::EvalArgs(const std::vector<std::string>& keys,
                      const std::vector<std::string>& args) const {
  return BuildArgs("EVAL", source_, keys, args);
}

absl::StatusOr<Reply> EvalOn(Connection& conn, const Script& script,
                             const std::vector<std::string>& keys,
                             const std::vector<std::string>& args) {
  absl::StatusOr<Reply> reply = conn.Command(script.EvalShaArgs(keys, args));
  if (reply.ok() && IsNoScript(*reply)) return conn.Command(script.EvalArgs(keys, args));
  return reply;
}

bool IsNoScript(const Reply& reply) {
  return reply.is_error() && absl::StartsWith(reply.str(), "NOSCRIPT");
}

}  // namespace taskmesh::redis
