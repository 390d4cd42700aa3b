// EncodePlainJson: a fast path from a small, plain JSON object to a message's
// binary encoding, for RequestTranslator.
//
// protobuf's JSON parser (util::converter) costs about a tenth of the
// gateway's CPU per request on a small body. Most bodies are an object of
// strings, integers, bools, enums and nested such objects; those are encoded
// here directly. Anything else (a well-known type, a map, a repeated or oneof
// field, bytes, a float, an escape in a string, null, an unknown or repeated
// name, a number that is not a plain integer) makes it give up, and the
// caller lets protobuf's parser do the whole body, with its checks and
// messages. Measured alone (bench/gateway/plain_json_benchmark): 30-60x
// cheaper than protobuf's parser on bodies it takes. fuzz/plain_json_fuzzer.cc
// checks that what it takes, protobuf reads the same way.
//
// Example:
//   if (!EncodePlainJson(body, method->input_type(), &bytes)) {
//     bytes.clear();
//     ... JsonToBinaryString(...) ...
//   }
#ifndef TASKMESH_API_GATEWAY_PLAIN_JSON_H_
#define TASKMESH_API_GATEWAY_PLAIN_JSON_H_

#include <string>

#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"

namespace taskmesh::gateway {

// `json` must have passed ScanJson (valid JSON and UTF-8). Appends the
// encoding of `type` to `out` and returns true, or returns false (`out` may
// then hold a partial encoding: the caller cuts it back).
bool EncodePlainJson(absl::string_view json, const google::protobuf::Descriptor* type,
                     std::string* out);

}  // namespace taskmesh::gateway

#endif  // TASKMESH_API_GATEWAY_PLAIN_JSON_H_
