// Calls a transition script whose answer is one word (or number) and maps
// that word to a result, for Broker and Consumer.
#ifndef TASKMESH_BROKER_SCRIPT_CALL_H_
#define TASKMESH_BROKER_SCRIPT_CALL_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "redis/commands.h"
#include "redis/script.h"

namespace taskmesh::broker {

// The word a script answered (an integer answer as its decimal text).
inline absl::StatusOr<std::string> WordOf(const absl::StatusOr<redis::Reply>& reply) {
  if (!reply.ok()) return reply.status();
  if (reply->type() == redis::Reply::Type::kInteger) return absl::StrCat(reply->integer());
  return reply->AsString();
}

// Runs `script`; `decode` turns its word into the result passed to `done`.
template <typename T>
void EvalWord(redis::Commands* client, const redis::Script& script, std::vector<std::string> keys,
              std::vector<std::string> args,
              absl::AnyInvocable<absl::StatusOr<T>(const std::string& word)> decode,
              absl::AnyInvocable<void(absl::StatusOr<T>)> done) {
  client->Eval(script, keys, args,
               [decode = std::move(decode), done = std::move(done)](
                   absl::StatusOr<redis::Reply> reply) mutable {
                 absl::StatusOr<std::string> word = WordOf(reply);
                 if (!word.ok()) {
                   done(word.status());
                   return;
                 }
                 done(decode(*word));
               });
}

}  // namespace taskmesh::broker

#endif  // TASKMESH_BROKER_SCRIPT_CALL_H_
