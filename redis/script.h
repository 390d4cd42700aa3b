// Script: a Lua script called by SHA1 (EVALSHA), re-sent with EVAL when
// Redis answers NOSCRIPT (after a restart or SCRIPT FLUSH).
//
// Immutable and thread-safe once built.
//
// Example:
//   static const Script kEnqueue(R"lua( ... )lua");
//   client.Eval(kEnqueue, {key1, key2}, {arg1}, callback);
#ifndef TASKMESH_REDIS_SCRIPT_H_
#define TASKMESH_REDIS_SCRIPT_H_

#include <string>
#include <vector>

#include "redis/connection.h"

namespace taskmesh::redis {

class Script {
 public:
  // Where a stretch of the source came from (a script assembled from files):
  // its lines from `first_line` on are those of `file` from `file_line` on,
  // until the next origin.
  struct Origin {
    int first_line;
    std::string file;
    int file_line;
  };

  explicit Script(std::string source, std::vector<Origin> origins = {});

  const std::string& source() const { return source_; }
  // Lowercase hex SHA1 of the source, as Redis names scripts.
  const std::string& sha1() const { return sha1_; }

  // `error` (a Redis error reply to this script) with each `user_script:N`
  // replaced by the file and line it came from (when origins are known).
  std::string Locate(const std::string& error) const;

  // EVALSHA sha numkeys keys... args...
  Args EvalShaArgs(const std::vector<std::string>& keys,
                   const std::vector<std::string>& args) const;
  // EVAL source numkeys keys... args... (also caches the script in Redis).
  Args EvalArgs(const std::vector<std::string>& keys,
                const std::vector<std::string>& args) const;

 private:
  std::string source_;
  std::string sha1_;
  std::vector<Origin> origins_;
};

// True for the error reply that asks for the script's source.
bool IsNoScript(const Reply& reply);

// Runs `script` on `conn` (blocking): EVALSHA, then EVAL once if Redis lacks
// the script. An error reply is located (Script::Locate).
absl::StatusOr<Reply> EvalOn(Connection& conn, const Script& script,
                             const std::vector<std::string>& keys,
                             const std::vector<std::string>& args);

}  // namespace taskmesh::redis

#endif  // TASKMESH_REDIS_SCRIPT_H_
