// worker: runs taskmesh tasks with the built-in handlers (echo, sleep,
// sha256, fail). A worker with handlers of its own is the same two lines
// with another registration function: see worker_main.h.
#include "workers/builtin_handlers.h"
#include "workers/worker_main.h"

int main(int argc, char** argv) {
  return taskmesh::workers::WorkerMain(argc, argv, taskmesh::workers::RegisterBuiltinHandlers);
}
