// Graceful shutdown on SIGTERM and SIGINT, without async-signal hazards.
//
// BlockShutdownSignals() must run in main() before any thread starts, so
// that every thread inherits the blocked mask; WaitForShutdownSignal() then
// receives the signal synchronously (sigwait) on the calling thread.
//
// Example:
//   int main(...) {
//     taskmesh::BlockShutdownSignals();
//     StartServers();
//     int sig = taskmesh::WaitForShutdownSignal();
//     StopServers();
//   }
#ifndef TASKMESH_COMMON_SHUTDOWN_H_
#define TASKMESH_COMMON_SHUTDOWN_H_

#include "absl/time/time.h"

namespace taskmesh {

void BlockShutdownSignals();

// Blocks until SIGTERM or SIGINT arrives; returns the signal number.
int WaitForShutdownSignal();

// Waits up to `timeout` for SIGTERM or SIGINT; the signal number, or 0 when
// none came.
int PollShutdownSignal(absl::Duration timeout);

}  // namespace taskmesh

#endif  // TASKMESH_COMMON_SHUTDOWN_H_
