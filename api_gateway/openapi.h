// BuildOpenApi: an OpenAPI 3.1 document for the gateway's routes, generated
// at start-up from the same descriptors and http rules as the RouteTable, so
// it cannot drift from what is served (`GET /openapi.json`).
//
// - Paths: each route's template, a multi-segment variable expanded into
//   its segments (`/v1/{name=queues/*/tasks/*}` -> `/v1/queues/{queue}/tasks/{task}`,
//   the same URLs), a custom verb kept (`...:cancel`), custom methods as
//   `x-http-method` extensions (OpenAPI knows only the standard ones).
// - Parameters: path segments, and query parameters for every scalar field
//   the path and body leave free (dotted, lowerCamelCase names).
// - Schemas: proto3 JSON mapping (int64 as string, enums by name, well-known
//   types in their JSON forms), proto comments as descriptions, "Output
//   only." fields as readOnly.
// - Errors: every operation's `default` response is a google.rpc.Status.
//
// Thread-safe (a pure function).
//
// Example:
//   std::string doc = BuildOpenApi(*table, {"taskmesh API", "v1"});
#ifndef TASKMESH_API_GATEWAY_OPENAPI_H_
#define TASKMESH_API_GATEWAY_OPENAPI_H_

#include <string>

#include "api_gateway/route_table.h"

namespace taskmesh::gateway {

struct OpenApiInfo {
  std::string title = "taskmesh API";
  std::string version = "v1";
};

std::string BuildOpenApi(const RouteTable& table, const OpenApiInfo& info);

}  // namespace taskmesh::gateway

#endif  // TASKMESH_API_GATEWAY_OPENAPI_H_
