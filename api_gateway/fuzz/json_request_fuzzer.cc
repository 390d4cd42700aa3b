// libFuzzer target: the JSON-to-proto request path (route lookup, query
// parameters, the JSON pre-scan, protobuf's JSON parser) and the response
// path (proto bytes to JSON, status bodies), on the test API
// (api_gateway/testdata). Input: "<METHOD> <target>\n<body>".
//
// A slow input here is a finding too: run with -timeout so that super-linear
// parsing (deep nesting) shows up.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "api_gateway/descriptors.h"
#include "api_gateway/json_scan.h"
#include "api_gateway/request_translator.h"
#include "api_gateway/response_translator.h"
#include "api_gateway/route_table.h"
#include "api_gateway/testdata/transcoding_descriptor_set.h"

using namespace taskmesh::gateway;  // NOLINT

namespace {

struct Fixture {
  Fixture()
      : api(ApiDescriptors::Load({taskmesh::embedded::kTranscodingDescriptorSet}).value()),
        table(RouteTable::Build(api->services()).value()),
        request(api.get(), {}),
        response(api.get(), {}) {}
  std::unique_ptr<ApiDescriptors> api;
  std::shared_ptr<const RouteTable> table;
  RequestTranslator request;
  ResponseTranslator response;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture* f = new Fixture();
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t nl = input.find('\n');
  const std::string line = input.substr(0, nl);
  const std::string body = nl == std::string::npos ? "" : input.substr(nl + 1);
  const size_t space = line.find(' ');
  const std::string method = space == std::string::npos ? "PUT" : line.substr(0, space);
  std::string target = space == std::string::npos ? "/v1/things/t" : line.substr(space + 1);
  if (target.empty() || target[0] != '/') target = "/v1/things/t?" + target;
  const size_t q = target.find('?');

  (void)ScanJson(body, 64);
  RouteTable::Match m = f->table->Lookup(method, target.substr(0, q));
  if (m.route == nullptr) {
    // Still exercise the body path on a body:"*" and a body:"field" route.
    m = f->table->Lookup("PUT", "/v1/things/t");
  }
  absl::StatusOr<std::string> bytes = f->request.Translate(
      *m.route, m.variable_values, q == std::string::npos ? "" : target.substr(q + 1), body);
  RouteTable::Match create = f->table->Lookup("POST", "/v1/shelves/s/things");
  (void)f->request.Translate(*create.route, create.variable_values, "", body);

  // The response side: the translated request, and the raw input, as replies.
  RouteTable::Match get = f->table->Lookup("GET", "/v1/things/t");
  RouteTable::Match only = f->table->Lookup("GET", "/v1/things/t/thing");
  std::string json;
  if (bytes.ok()) (void)f->response.ToJson(*get.route, *bytes, &json);
  (void)f->response.ToJson(*get.route, input, &json);
  (void)f->response.ToJson(*only.route, input, &json);
  (void)f->response.StatusJson(3, input, input);
  return 0;
}
