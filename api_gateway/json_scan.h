// A cheap, linear pre-scan of a JSON request body, run before protobuf's JSON
// parser sees it.
//
// Why: protobuf 3.21's JsonStringToMessage rejects deep nesting only after
// super-linear work (depth 16,000 in 32 KB takes ~26 s; see
// shared/notes/reliability-facts.md), and its syntax errors do not say where.
// This scan checks RFC 8259 syntax (one value, nothing after it), UTF-8 in
// strings and a nesting limit in one pass with O(depth) memory, and reports
// the first problem with its line, column and byte offset.
//
// Thread-safe (a pure function).
//
// Example:
//   absl::Status s = ScanJson(R"({"a": [1, 2,]})", /*max_depth=*/64);
//   // INVALID_ARGUMENT: "malformed JSON at line 1, column 13 (byte 12): expected a value"
#ifndef TASKMESH_API_GATEWAY_JSON_SCAN_H_
#define TASKMESH_API_GATEWAY_JSON_SCAN_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace taskmesh::gateway {

// OK when `text` is exactly one JSON value (surrounded by optional
// whitespace) nested at most `max_depth` objects/arrays deep; otherwise
// INVALID_ARGUMENT naming the position.
absl::Status ScanJson(absl::string_view text, int max_depth);

}  // namespace taskmesh::gateway

#endif  // TASKMESH_API_GATEWAY_JSON_SCAN_H_
