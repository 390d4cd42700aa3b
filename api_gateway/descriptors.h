// ApiDescriptors: the proto descriptors the gateway serves, loaded from
// serialized FileDescriptorSets (`protoc --include_imports
// --descriptor_set_out`), merged into one pool, with a TypeResolver for
// protobuf's JSON utilities and a DynamicMessageFactory.
//
// Files that appear in several sets (google/protobuf/*.proto, google/api/...)
// are taken once; the same file name with different contents is an error.
//
// Immutable after Load() and thread-safe; shared by every request.
//
// Example:
//   auto api = ApiDescriptors::Load({embedded::kTaskmeshDescriptorSet, file_bytes}).value();
//   for (const google::protobuf::ServiceDescriptor* s : api->services()) ...
#ifndef TASKMESH_API_GATEWAY_DESCRIPTORS_H_
#define TASKMESH_API_GATEWAY_DESCRIPTORS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor_database.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/util/type_resolver.h"

namespace taskmesh::gateway {

inline constexpr absl::string_view kTypeUrlPrefix = "type.googleapis.com";

class ApiDescriptors {
 public:
  // Each element is one serialized google.protobuf.FileDescriptorSet.
  static absl::StatusOr<std::unique_ptr<ApiDescriptors>> Load(
      const std::vector<absl::string_view>& descriptor_sets);

  const google::protobuf::DescriptorPool& pool() const { return *pool_; }
  // Thread-safe; caches resolved types.
  google::protobuf::util::TypeResolver* resolver() const { return resolver_.get(); }
  // Thread-safe (the factory locks internally).
  google::protobuf::DynamicMessageFactory* factory() const { return factory_.get(); }
  // Every service of every loaded file, in load order.
  const std::vector<const google::protobuf::ServiceDescriptor*>& services() const {
    return services_;
  }

  static std::string TypeUrl(const google::protobuf::Descriptor* message) {
    return std::string(kTypeUrlPrefix) + "/" + message->full_name();
  }

 private:
  ApiDescriptors() = default;

  std::unique_ptr<google::protobuf::SimpleDescriptorDatabase> database_;
  std::unique_ptr<google::protobuf::DescriptorPool> pool_;
  std::unique_ptr<google::protobuf::util::TypeResolver> resolver_;
  std::unique_ptr<google::protobuf::DynamicMessageFactory> factory_;
  std::vector<const google::protobuf::ServiceDescriptor*> services_;
};

}  // namespace taskmesh::gateway

#endif  // TASKMESH_API_GATEWAY_DESCRIPTORS_H_
