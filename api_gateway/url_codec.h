// Percent-decoding of URL paths and query strings, with the rules of Google's
// http.proto for path variables.
//
// - A literal path segment is compared after full decoding.
// - A single-segment variable (`{var}`, `{var=*}`) is fully decoded except
//   `%2F`/`%2f`, which stays escaped: a decoded value can never gain a `/`,
//   so it cannot reach a different resource than the one the path named.
// - A multi-segment variable (`{var=a/*}`, `{var=**}`) uses RFC 6570 reserved
//   expansion: escapes of reserved characters (`!#$&'()*+,/:;=?@[]`) stay
//   escaped, everything else is decoded.
// - A query string is split on `&` and `=`, `+` means a space, and every
//   escape is decoded.
//
// Thread-safe (pure functions).
//
// Example:
//   std::string out;
//   PercentDecode("a%2Fb%20c", DecodeMode::kSingleSegment, &out);  // "a%2Fb c"
#ifndef TASKMESH_API_GATEWAY_URL_CODEC_H_
#define TASKMESH_API_GATEWAY_URL_CODEC_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace taskmesh::gateway {

enum class DecodeMode {
  kFull,           // every escape (literal segments)
  kSingleSegment,  // every escape but %2F
  kMultiSegment,   // only escapes of unreserved characters (reserved expansion)
  kQuery,          // every escape, and '+' is a space
};

// Appends the decoded `in` to `out`. False on a malformed escape ("%zz",
// a trailing "%4").
bool PercentDecode(absl::string_view in, DecodeMode mode, std::string* out);

// Percent-encodes everything but RFC 3986 unreserved characters (and '/'
// when `keep_slash`). For building URLs in tests and documents.
std::string PercentEncode(absl::string_view in, bool keep_slash = false);

// "a=1&b=x+y&a=2" -> {{"a","1"},{"b","x y"},{"a","2"}}. An empty part is
// skipped; "a" alone gives {"a",""}. INVALID_ARGUMENT on a malformed escape.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ParseQuery(
    absl::string_view query);

}  // namespace taskmesh::gateway

#endif  // TASKMESH_API_GATEWAY_URL_CODEC_H_
