// Handlers for the fault tests' worker (//tests/fault:ledger_worker): the
// built-in ones plus handlers that write every execution to a ledger file
// (tests/support/ledger.h) named by the environment variable FAULT_LEDGER.
//
//   record  {"ms": N, "ignore_cancel": false}: writes `start`, sleeps N ms
//           (stopping early, as `cancelled`, when asked to, unless
//           ignore_cancel), writes `done` and returns
//           {"task": NAME, "attempt": A, "consumer": C}.
//   crash   writes `start`, then aborts the whole worker process: a poison
//           task.
//
// The ledger_worker binary is the real worker process (WorkerMain) with
// these handlers registered.
#ifndef TASKMESH_TESTS_FAULT_LEDGER_HANDLERS_H_
#define TASKMESH_TESTS_FAULT_LEDGER_HANDLERS_H_

#include "workers/handler.h"

namespace taskmesh::workers {

// The built-in handlers plus `record` and `crash`.
void RegisterLedgerWorkerHandlers(HandlerRegistry& registry);

}  // namespace taskmesh::workers

#endif  // TASKMESH_TESTS_FAULT_LEDGER_HANDLERS_H_
