// The fault tests' worker: the real worker process (WorkerMain) with the
// ledger handlers added to the built-in ones.
#include "tests/fault/ledger_handlers.h"
#include "workers/worker_main.h"

int main(int argc, char** argv) {
  return taskmesh::workers::WorkerMain(argc, argv,
                                       taskmesh::workers::RegisterLedgerWorkerHandlers);
}
