// Structured log lines on stderr, one event per line, in logfmt:
//   ts=2026-11-25T21:03:04.512Z level=info component=worker msg="started" queues=default
//
// Thread-safe: each line is written with one fwrite.
//
// Example:
//   taskmesh::log::Info("listening", {{"addr", addr}});
#ifndef TASKMESH_COMMON_LOGGING_H_
#define TASKMESH_COMMON_LOGGING_H_

#include <initializer_list>
#include <string>
#include "absl/strings/string_view.h"
#include <utility>

namespace taskmesh::log {

using Field = std::pair<absl::string_view, absl::string_view>;

enum class Level { kDebug, kInfo, kWarning, kError };

// Names the process in every line (`component=...`). Call once in main().
void SetComponent(absl::string_view component);

// Lines below this level are dropped (default kInfo).
void SetMinLevel(Level level);

void Write(Level level, absl::string_view msg, std::initializer_list<Field> fields);

// Formats one line without writing it (exposed for tests).
std::string Format(Level level, absl::string_view msg,
                   std::initializer_list<Field> fields);

inline void Debug(absl::string_view msg, std::initializer_list<Field> fields = {}) {
  Write(Level::kDebug, msg, fields);
}
inline void Info(absl::string_view msg, std::initializer_list<Field> fields = {}) {
  Write(Level::kInfo, msg, fields);
}
inline void Warning(absl::string_view msg, std::initializer_list<Field> fields = {}) {
  Write(Level::kWarning, msg, fields);
}
inline void Error(absl::string_view msg, std::initializer_list<Field> fields = {}) {
  Write(Level::kError, msg, fields);
}

}  // namespace taskmesh::log

#endif  // TASKMESH_COMMON_LOGGING_H_
