// Task ids: ULIDs in lowercase Crockford base32 (26 characters: 48 bits of
// milliseconds, then 80 random bits), so ids sort by creation time.
//
// Thread-safe.
#ifndef TASKMESH_BROKER_IDS_H_
#define TASKMESH_BROKER_IDS_H_

#include <string>

#include "absl/time/time.h"

namespace taskmesh::broker {

std::string NewTaskId(absl::Time now);

}  // namespace taskmesh::broker

#endif  // TASKMESH_BROKER_IDS_H_
