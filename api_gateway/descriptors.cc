#include "api_gateway/descriptors.h"

#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/any.pb.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/rpc/status.pb.h"
#include "google/protobuf/type.pb.h"
#include "google/protobuf/util/type_resolver_util.h"

namespace taskmesh::gateway {
namespace {

namespace pb = ::google::protobuf;

// protobuf's DescriptorPoolTypeResolver rebuilds a google.protobuf.Type from
// the descriptor on every lookup, and the JSON converter looks types up on
// every call. Copying a cached Type is several times cheaper.
class CachingTypeResolver : public pb::util::TypeResolver {
 public:
  explicit CachingTypeResolver(pb::util::TypeResolver* inner) : inner_(inner) {}

  pb::util::Status ResolveMessageType(const std::string& type_url, pb::Type* type) override {
    {
      absl::ReaderMutexLock lock(&mu_);
      auto it = types_.find(type_url);
      if (it != types_.end()) {
        *type = *it->second;
        return pb::util::Status();
      }
    }
    auto resolved = std::make_unique<pb::Type>();
    pb::util::Status s = inner_->ResolveMessageType(type_url, resolved.get());
    if (!s.ok()) return s;
    *type = *resolved;
    absl::MutexLock lock(&mu_);
    types_.try_emplace(type_url, std::move(resolved));
    return s;
  }

  pb::util::Status ResolveEnumType(const std::string& type_url, pb::Enum* enum_type) override {
    {
      absl::ReaderMutexLock lock(&mu_);
      auto it = enums_.find(type_url);
      if (it != enums_.end()) {
        *enum_type = *it->second;
        return pb::util::Status();
      }
    }
    auto resolved = std::make_unique<pb::Enum>();
    pb::util::Status s = inner_->ResolveEnumType(type_url, resolved.get());
    if (!s.ok()) return s;
    *enum_type = *resolved;
    absl::MutexLock lock(&mu_);
    enums_.try_emplace(type_url, std::move(resolved));
    return s;
  }

 private:
  std::unique_ptr<pb::util::TypeResolver> inner_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<pb::Type>> types_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::unique_ptr<pb::Enum>> enums_ ABSL_GUARDED_BY(mu_);
};

// Compares two descriptions of one file, ignoring comments and positions.
bool SameFile(pb::FileDescriptorProto a, pb::FileDescriptorProto b) {
  a.clear_source_code_info();
  b.clear_source_code_info();
  return a.SerializeAsString() == b.SerializeAsString();
}

}  // namespace

absl::StatusOr<std::unique_ptr<ApiDescriptors>> ApiDescriptors::Load(
    const std::vector<absl::string_view>& descriptor_sets) {
  std::unique_ptr<ApiDescriptors> api(new ApiDescriptors());
  api->database_ = std::make_unique<pb::SimpleDescriptorDatabase>();
  absl::flat_hash_map<std::string, pb::FileDescriptorProto> files;
  std::vector<std::string> order;
  for (size_t i = 0; i < descriptor_sets.size(); ++i) {
    pb::FileDescriptorSet set;
    if (!set.ParseFromArray(descriptor_sets[i].data(), static_cast<int>(descriptor_sets[i].size()))) {
      return absl::InvalidArgumentError(
          absl::StrCat("descriptor set #", i + 1, " is not a serialized FileDescriptorSet"));
    }
    for (pb::FileDescriptorProto& file : *set.mutable_file()) {
      auto it = files.find(file.name());
      if (it != files.end()) {
        if (!SameFile(it->second, file)) {
          return absl::InvalidArgumentError(absl::StrCat(
              "two different versions of ", file.name(), " in the descriptor sets"));
        }
        continue;
      }
      order.push_back(file.name());
      files.emplace(file.name(), std::move(file));
    }
  }
  // Error details (google.rpc.Status, Any) render through the pool too, so
  // their files are always there.
  for (const pb::FileDescriptor* base : {pb::Any::descriptor()->file(),
                                          google::rpc::Status::descriptor()->file()}) {
    if (files.contains(base->name())) continue;
    base->CopyTo(&files[base->name()]);
    order.push_back(base->name());
  }
  for (const std::string& name : order) {
    if (!api->database_->Add(files[name])) {
      return absl::InvalidArgumentError(absl::StrCat("cannot add ", name, " to the pool"));
    }
  }
  api->pool_ = std::make_unique<pb::DescriptorPool>(api->database_.get());
  for (const std::string& name : order) {
    const pb::FileDescriptor* file = api->pool_->FindFileByName(name);
    if (file == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " does not build (a missing import? use protoc --include_imports)"));
    }
    for (int s = 0; s < file->service_count(); ++s) api->services_.push_back(file->service(s));
  }
  api->resolver_ = std::make_unique<CachingTypeResolver>(
      pb::util::NewTypeResolverForDescriptorPool(std::string(kTypeUrlPrefix), api->pool_.get()));
  api->factory_ = std::make_unique<pb::DynamicMessageFactory>(api->pool_.get());
  return api;
}

}  // namespace taskmesh::gateway
