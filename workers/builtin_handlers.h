// The handlers every worker ships with, for trying taskmesh out and for
// load and fault tests:
//
//   echo    returns its payload unchanged (JSON or bytes).
//   sleep   sleeps payload.ms milliseconds (at most 3,600,000): I/O-bound
//           load. Stops early, failing, when cancelled or past its deadline.
//   sha256  hashes payload.data (a string; default "") payload.rounds times
//           (default 1, at most 10,000,000): CPU-bound load. Returns
//           {"sha256": "<hex>", "rounds": N}.
//   fail    always fails with INTERNAL and payload.message (for tests).
//
// Payloads that do not fit a handler fail at once (SkipRetry): retrying the
// same bad payload cannot succeed.
#ifndef TASKMESH_WORKERS_BUILTIN_HANDLERS_H_
#define TASKMESH_WORKERS_BUILTIN_HANDLERS_H_

#include "workers/handler.h"

namespace taskmesh::workers {

void RegisterBuiltinHandlers(HandlerRegistry& registry);

}  // namespace taskmesh::workers

#endif  // TASKMESH_WORKERS_BUILTIN_HANDLERS_H_
