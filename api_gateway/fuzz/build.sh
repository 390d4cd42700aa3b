#!/usr/bin/env bash
# Builds the api_gateway's libFuzzer targets with clang 14 and
# -fsanitize=fuzzer,address,undefined, outside Bazel, against Debian's
# protobuf and Abseil (generated code comes from /usr/bin/protoc).
#
#   api_gateway/fuzz/build.sh [OUT_DIR]     (default: /tmp/taskmesh-fuzz)
#
# Produces OUT_DIR/path_template_fuzzer and OUT_DIR/json_request_fuzzer.
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
# The descriptor set compiled in, as Bazel's embed_file does.
{
  echo '#include "api_gateway/testdata/transcoding_descriptor_set.h"'
  echo 'namespace taskmesh::embedded { namespace { alignas(8) const unsigned char kData[] = {'
  od -An -v -tx1 "$gen/transcoding.pb" | sed -e 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g'
  echo '}; }'
  echo 'const absl::string_view kTranscodingDescriptorSet(reinterpret_cast<const char*>(kData), sizeof(kData)); }'
} >"$gen/transcoding_descriptor_set.cc"
{
  echo '#pragma once'
  echo '#include "absl/strings/string_view.h"'
  echo 'namespace taskmesh::embedded { extern const absl::string_view kTranscodingDescriptorSet; }'
} >"$gen/api_gateway/testdata/transcoding_descriptor_set.h"

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
echo "build.sh: built $out/path_template_fuzzer $out/json_request_fuzzer"
