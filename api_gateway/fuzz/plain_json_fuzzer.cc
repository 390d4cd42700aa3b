// libFuzzer target: the gateway's JSON fast path (plain_json) checked against
// protobuf's JSON parser, on every message type of the test API
// (gatewaytest.v1) and of taskmesh.v1. Input: a JSON request body.
//
// The fast path may give up on anything (the gateway then hands the body to
// protobuf); when it does not, what it encoded must be exactly what protobuf
// makes of the same body. For each body that passes the gateway's pre-scan
// (ScanJson) and that the fast path takes, the target aborts when
//   - protobuf rejects the body (JsonStringToMessage, or JsonToBinaryString as
//     the gateway calls it, with ignore_unknown_fields off and on), or
//   - the fast path's bytes do not parse, or
//   - the messages differ (MessageDifferencer, and their deterministic
//     serializations).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "api_gateway/descriptors.h"
#include "api_gateway/json_scan.h"
#include "api_gateway/plain_json.h"
#include "api_gateway/taskmesh_descriptor_set.h"
#include "api_gateway/testdata/transcoding_descriptor_set.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"

using namespace taskmesh::gateway;  // NOLINT

namespace {

namespace pb = ::google::protobuf;

// The gateway's own limit (RequestTranslatorOptions::max_json_depth).
constexpr int kMaxJsonDepth = 64;

struct Api {
  std::unique_ptr<ApiDescriptors> descriptors;
  std::vector<const pb::Descriptor*> types;  // every message type of its own files
};

void AddTypes(const pb::Descriptor* d, std::vector<const pb::Descriptor*>* out) {
  if (d->options().map_entry()) return;
  out->push_back(d);
  for (int i = 0; i < d->nested_type_count(); ++i) AddTypes(d->nested_type(i), out);
}

Api Load(absl::string_view descriptor_set, const std::vector<const char*>& files) {
  Api api{ApiDescriptors::Load({descriptor_set}).value(), {}};
  for (const char* name : files) {
    const pb::FileDescriptor* file = api.descriptors->pool().FindFileByName(name);
    if (file == nullptr) {
      std::fprintf(stderr, "plain_json_fuzzer: no %s in the descriptor set\n", name);
      std::abort();
    }
    for (int i = 0; i < file->message_type_count(); ++i) AddTypes(file->message_type(i), &api.types);
  }
  return api;
}

std::string Deterministic(const pb::Message& m) {
  std::string out;
  pb::io::StringOutputStream stream(&out);
  pb::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  m.SerializeToCodedStream(&coded);
  coded.Trim();
  return out;
}

[[noreturn]] void Fail(const pb::Descriptor* type, const std::string& body, const std::string& what,
                       const pb::Message* fast, const pb::Message* protobuf) {
  std::fprintf(stderr, "plain_json_fuzzer: %s\n  type: %s\n  body: \"%s\"\n", what.c_str(),
               type->full_name().c_str(), absl::CEscape(body).c_str());
  if (fast != nullptr) std::fprintf(stderr, "  fast path: %s\n", fast->ShortDebugString().c_str());
  if (protobuf != nullptr) {
    std::fprintf(stderr, "  protobuf:  %s\n", protobuf->ShortDebugString().c_str());
  }
  std::abort();
}

void CheckSame(const pb::Descriptor* type, const std::string& body, const std::string& parser,
               const pb::Message& fast, const pb::Message& protobuf) {
  if (!pb::util::MessageDifferencer::Equals(fast, protobuf) ||
      Deterministic(fast) != Deterministic(protobuf)) {
    Fail(type, body, "the fast path's message differs from " + parser + "'s", &fast, &protobuf);
  }
}

void Check(const ApiDescriptors& api, const pb::Descriptor* type, const std::string& body) {
  std::string fast_bytes;
  if (!EncodePlainJson(body, type, &fast_bytes)) return;  // the gateway asks protobuf
  const pb::Message* prototype = api.factory()->GetPrototype(type);
  std::unique_ptr<pb::Message> fast(prototype->New());
  if (!fast->ParseFromString(fast_bytes)) {
    Fail(type, body, "the fast path's bytes do not parse: " + absl::CEscape(fast_bytes), nullptr,
         nullptr);
  }
  for (const bool ignore_unknown_fields : {false, true}) {
    pb::util::JsonParseOptions options;
    options.ignore_unknown_fields = ignore_unknown_fields;
    const std::string flag = ignore_unknown_fields ? " (ignore_unknown_fields)" : "";

    std::unique_ptr<pb::Message> parsed(prototype->New());
    pb::util::Status s = pb::util::JsonStringToMessage(body, parsed.get(), options);
    if (!s.ok()) {
      Fail(type, body, "the fast path took a body that JsonStringToMessage rejects" + flag + ": " +
                           std::string(s.message()),
           fast.get(), nullptr);
    }
    CheckSame(type, body, "JsonStringToMessage" + flag, *fast, *parsed);

    std::string bytes;
    s = pb::util::JsonToBinaryString(api.resolver(), ApiDescriptors::TypeUrl(type), body, &bytes,
                                     options);
    std::unique_ptr<pb::Message> binary(prototype->New());
    if (!s.ok() || !binary->ParseFromString(bytes)) {
      Fail(type, body, "the fast path took a body that JsonToBinaryString rejects" + flag + ": " +
                           std::string(s.message()),
           fast.get(), nullptr);
    }
    CheckSame(type, body, "JsonToBinaryString" + flag, *fast, *binary);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<Api>* apis = new std::vector<Api>([] {
    std::vector<Api> v;
    v.push_back(Load(taskmesh::embedded::kTranscodingDescriptorSet,
                     {"gatewaytest/v1/transcoding.proto"}));
    v.push_back(Load(taskmesh::embedded::kTaskmeshDescriptorSet,
                     {"taskmesh/v1/task.proto", "taskmesh/v1/queue.proto",
                      "taskmesh/v1/task_service.proto", "taskmesh/v1/periodic.proto"}));
    return v;
  }());
  const std::string body(reinterpret_cast<const char*>(data), size);
  // The gateway runs the fast path only on bodies that pass this scan.
  if (!ScanJson(body, kMaxJsonDepth).ok()) return 0;
  for (const Api& api : *apis) {
    for (const pb::Descriptor* type : api.types) Check(*api.descriptors, type, body);
  }
  return 0;
}
