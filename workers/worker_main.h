// WorkerMain: a whole worker process — flags (with TASKMESH_* environment
// variables), Redis, the runtime, the periodic scheduler, grpc.health.v1,
// drain on SIGTERM — around the handlers that the caller registers.
//
// Users with handlers of their own build their worker binary like this:
//
//   #include "workers/builtin_handlers.h"
//   #include "workers/worker_main.h"
//
//   int main(int argc, char** argv) {
//     return taskmesh::workers::WorkerMain(argc, argv, [](auto& registry) {
//       taskmesh::workers::RegisterBuiltinHandlers(registry);  // optional
//       registry.Register("resize", Resize);
//     });
//   }
//
// and link `//workers:worker_main`. `--help` lists the flags.
#ifndef TASKMESH_WORKERS_WORKER_MAIN_H_
#define TASKMESH_WORKERS_WORKER_MAIN_H_

#include <functional>

#include "workers/handler.h"

namespace taskmesh::workers {

// Returns the process's exit status.
int WorkerMain(int argc, char** argv,
               const std::function<void(HandlerRegistry&)>& register_handlers);

}  // namespace taskmesh::workers

#endif  // TASKMESH_WORKERS_WORKER_MAIN_H_
