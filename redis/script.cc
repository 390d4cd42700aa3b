#include "redis/script.h"

#include <openssl/sha.h>

#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
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

Script::Script(std::string source, std::vector<Origin> origins)
    : source_(std::move(source)), sha1_(Sha1Hex(source_)), origins_(std::move(origins)) {}

std::string Script::Locate(const std::string& error) const {
  if (origins_.empty()) return error;
  static constexpr char kMark[] = "user_script:";
  const size_t mark_size = sizeof(kMark) - 1;
  std::string out;
  size_t from = 0;
  while (true) {
    const size_t at = error.find(kMark, from);
    if (at == std::string::npos) break;
    size_t end = at + mark_size;
    while (end < error.size() && absl::ascii_isdigit(error[end])) ++end;
    int line = 0;
    const Origin* origin = nullptr;
    if (absl::SimpleAtoi(absl::string_view(error).substr(at + mark_size, end - at - mark_size),
                         &line)) {
      for (const Origin& o : origins_) {
        if (o.first_line <= line) origin = &o;
      }
    }
    absl::StrAppend(&out, absl::string_view(error).substr(from, at - from));
    if (origin == nullptr) {
      absl::StrAppend(&out, absl::string_view(error).substr(at, end - at));
    } else {
      absl::StrAppend(&out, origin->file, ":", origin->file_line + line - origin->first_line);
    }
    from = end;
  }
  absl::StrAppend(&out, absl::string_view(error).substr(from));
  return out;
}

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
  if (reply.ok() && IsNoScript(*reply)) reply = conn.Command(script.EvalArgs(keys, args));
  if (reply.ok() && reply->is_error()) return Reply::Error(script.Locate(reply->str()));
  return reply;
}

bool IsNoScript(const Reply& reply) {
  return reply.is_error() && absl::StartsWith(reply.str(), "NOSCRIPT");
}

}  // namespace taskmesh::redis
