// The gRPC wire format over HTTP/2, as far as a client needs it: message
// framing (a 5-byte prefix, then the message), the `grpc-timeout` header, the
// percent-encoding of `grpc-message`, `-bin` header values, which headers are
// the protocol's own, and the status codes a client makes up or maps from an
// HTTP status. No I/O: h2_connection carries the bytes, upstream the calls.
//
// Thread-safe (pure functions).
//
// Example:
//   std::string body = grpc_wire::Frame(request);          // "\0" + length + request
//   headers.emplace_back("grpc-timeout", grpc_wire::EncodeTimeout(absl::Seconds(5)));  // "5000000u"
//   if (auto prefix = grpc_wire::ReadPrefix(received)) { ... prefix->length ... }
#ifndef TASKMESH_API_GATEWAY_GRPC_WIRE_H_
#define TASKMESH_API_GATEWAY_GRPC_WIRE_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace taskmesh::gateway::grpc_wire {

// gRPC status codes (grpc::StatusCode values) that the client produces.
constexpr int kOk = 0;
constexpr int kCancelled = 1;
constexpr int kUnknown = 2;
constexpr int kDeadlineExceeded = 4;
constexpr int kPermissionDenied = 7;
constexpr int kResourceExhausted = 8;
constexpr int kUnimplemented = 12;
constexpr int kInternal = 13;
constexpr int kUnavailable = 14;
constexpr int kUnauthenticated = 16;

// grpc-message is percent-encoded (RFC 3986 style, %XX); a malformed escape
// stays as it is.
std::string PercentDecode(absl::string_view in);
std::string PercentEncode(absl::string_view in);

// grpc-timeout: at most 8 digits and a unit, rounded up (never shorter).
std::string EncodeTimeout(absl::Duration timeout);

// A length-prefixed message: flags byte, 4-byte big-endian length, message.
constexpr size_t kPrefixBytes = 5;
std::string Frame(absl::string_view message);
struct Prefix {
  uint8_t flags;    // non-zero: compressed
  uint32_t length;  // of the message after the prefix
};
// The prefix at the start of `buffered`, or nullopt while fewer than 5
// bytes are there.
std::optional<Prefix> ReadPrefix(absl::string_view buffered);

// The gRPC code for a response whose HTTP status is not 200.
int CodeFromHttpStatus(int http_status);

// Headers that belong to the protocol (pseudo-headers, content-type, te,
// grpc-status, grpc-message, ...), not to the call's metadata.
bool IsProtocolHeader(absl::string_view key);

// A `-bin` header value: base64, padded or not, either alphabet.
std::string DecodeBinaryHeader(absl::string_view value);

}  // namespace taskmesh::gateway::grpc_wire

#endif  // TASKMESH_API_GATEWAY_GRPC_WIRE_H_
