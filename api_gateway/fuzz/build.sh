#!/usr/bin/env bash
# Builds the api_gateway's libFuzzer targets with clang 14 and
# -fsanitize=fuzzer,address,undefined, outside Bazel, against Debian's
# protobuf and Abseil (generated code comes from /usr/bin/protoc).
#
#   api_gateway/fuzz/build.sh [OUT_DIR]     (default: /tmp/taskmesh-fuzz)
#
# Produces OUT_DIR/path_template_fuzzer, OUT_DIR/json_request_fuzzer and
# OUT_DIR/plain_json_fuzzer.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-/tmp/taskmesh-fuzz}
gen="$out/gen"
mkdir -p "$gen/api_gateway/testdata"

CXX=${CXX:-clang++-14}
command -v "$CXX" >/dev/null || { echo "build.sh: $CXX not found (scripts/install_deps.sh installs clang-14)"; exit 1; }

# Generated code for the test API and the google/api + google/rpc protos.
protoc -Iprotos -Iapi_gateway/testdata -I/usr/include --cpp_out="$gen" \
  google/api/http.proto google/api/annotations.proto google/rpc/status.proto
protoc -Iprotos -Iapi_gateway/testdata -I/usr/include --cpp_out="$gen" \
  --include_imports --include_source_info --descriptor_set_out="$gen/transcoding.pb" \
  gatewaytest/v1/transcoding.proto
protoc -Iprotos -I/usr/include --include_imports --include_source_info \
  --descriptor_set_out="$gen/taskmesh.pb" \
  taskmesh/v1/task.proto taskmesh/v1/queue.proto taskmesh/v1/task_service.proto taskmesh/v1/periodic.proto
# The descriptor sets compiled in, as Bazel's embed_file does: embed FILE NAME SYMBOL.
embed() {
  {
    echo "#include \"api_gateway/$2.h\""
    echo 'namespace taskmesh::embedded { namespace { alignas(8) const unsigned char kData[] = {'
    od -An -v -tx1 "$1" | sed -e 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g'
    echo '}; }'
    echo "const absl::string_view $3(reinterpret_cast<const char*>(kData), sizeof(kData)); }"
  } >"$gen/$(basename "$2").cc"
  {
    echo '#pragma once'
    echo '#include "absl/strings/string_view.h"'
    echo "namespace taskmesh::embedded { extern const absl::string_view $3; }"
  } >"$gen/api_gateway/$2.h"
}
embed "$gen/transcoding.pb" testdata/transcoding_descriptor_set kTranscodingDescriptorSet
embed "$gen/taskmesh.pb" taskmesh_descriptor_set kTaskmeshDescriptorSet

flags=(-std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I. -I"$gen" -Wno-deprecated-declarations)
absl=$(pkg-config --libs absl_status absl_statusor absl_strings absl_synchronization absl_str_format absl_time absl_flat_hash_map)
libs=(-lprotobuf $absl -lpthread)
common=(api_gateway/url_codec.cc api_gateway/path_template.cc api_gateway/path_matcher.cc)
translation=(api_gateway/json_scan.cc api_gateway/descriptors.cc api_gateway/route_table.cc
             api_gateway/request_translator.cc api_gateway/plain_json.cc api_gateway/response_translator.cc
             "$gen/google/api/http.pb.cc" "$gen/google/api/annotations.pb.cc"
             "$gen/google/rpc/status.pb.cc" "$gen/gatewaytest/v1/transcoding.pb.cc"
             "$gen/transcoding_descriptor_set.cc")

echo "build.sh: path_template_fuzzer"
"$CXX" "${flags[@]}" api_gateway/fuzz/path_template_fuzzer.cc "${common[@]}" "${libs[@]}" \
  -o "$out/path_template_fuzzer"
echo "build.sh: json_request_fuzzer"
"$CXX" "${flags[@]}" api_gateway/fuzz/json_request_fuzzer.cc "${common[@]}" "${translation[@]}" \
  "${libs[@]}" -o "$out/json_request_fuzzer"
echo "build.sh: plain_json_fuzzer"
"$CXX" "${flags[@]}" api_gateway/fuzz/plain_json_fuzzer.cc api_gateway/json_scan.cc \
  api_gateway/plain_json.cc api_gateway/descriptors.cc "$gen/google/rpc/status.pb.cc" \
  "$gen/transcoding_descriptor_set.cc" "$gen/taskmesh_descriptor_set.cc" "${libs[@]}" \
  -o "$out/plain_json_fuzzer"
echo "build.sh: built $out/path_template_fuzzer $out/json_request_fuzzer $out/plain_json_fuzzer"
