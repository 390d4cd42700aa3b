// UTF-8 checks shared by the JSON pre-scan and the translators
// (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
#ifndef TASKMESH_API_GATEWAY_UTF8_H_
#define TASKMESH_API_GATEWAY_UTF8_H_

#include <cstddef>

#include "absl/strings/string_view.h"

namespace taskmesh::gateway {

// Length of the UTF-8 sequence that starts at s[i] (1 for ASCII), or 0 when
// it is not valid UTF-8. Requires i < s.size().
inline size_t Utf8SequenceLength(absl::string_view s, size_t i) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return 1;
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  const unsigned char second = static_cast<unsigned char>(s[i + 1]);
  if (second < lo || second > hi) return 0;
  for (size_t k = 2; k < len; ++k) {
    const unsigned char b = static_cast<unsigned char>(s[i + k]);
    if (b < 0x80 || b > 0xBF) return 0;
  }
  return len;
}

inline bool IsValidUtf8(absl::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t len = Utf8SequenceLength(s, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

}  // namespace taskmesh::gateway

#endif  // TASKMESH_API_GATEWAY_UTF8_H_
