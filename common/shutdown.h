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

namespace taskmesh {

void BlockShutdownSignals();

// Blocks until SIGTERM or SIGINT arrives; returns the signal number.
int WaitForShutdownSignal();

}  // namespace taskmesh

#endif  // TASKMESH_COMMON_SHUTDOWN_H_
