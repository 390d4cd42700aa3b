// WatchTaskReactor: the server stream of WatchTask.
//
// Subscribe first, then read: the reactor registers with the WatchHub, then
// reads the task and sends it; from then on every event of the task (in
// order, each tagged with the record's version) produces one snapshot,
// whose state and attempt are the event's, so that no transition is skipped
// even when a later read is already ahead. The stream ends OK after the
// terminal snapshot, NOT_FOUND if the task is deleted, CANCELLED when the
// client goes away.
//
// Owns itself: deletes itself in OnDone().
#ifndef TASKMESH_TASK_SERVICE_WATCH_TASK_H_
#define TASKMESH_TASK_SERVICE_WATCH_TASK_H_

#include <string>

#include "broker/broker.h"
#include "grpcpp/grpcpp.h"
#include "broker/watch_hub.h"
#include "taskmesh/v1/task.pb.h"

namespace taskmesh::task_service {

// Starts a WatchTask stream for `name` (`queues/Q/tasks/ID`).
grpc::ServerWriteReactor<taskmesh::v1::Task>* StartWatch(broker::Broker* broker, broker::WatchHub* hub,
                                                         const std::string& name);

}  // namespace taskmesh::task_service

#endif  // TASKMESH_TASK_SERVICE_WATCH_TASK_H_
