#pragma once
// Agreement on failure across ranks: a step that may fail on some ranks only (a shard file that
// one rank reads is missing or damaged) must fail on every rank, or the ranks that succeeded
// would wait forever in the next collective for the ones that raised.
//
//   agree_on_errors(group, "loading the ZeRO shards", [&] {
//     for (...) staged.push_back(checkpoint.read(name, begin, end));  // may raise on one rank
//   });
//   // reached on every rank, or on none: every rank raised a dtrain::Error with each failing
//   // rank's message (the file and the tensor it names)
#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include "dist/process_group.h"

namespace dtrain::dist {

// The message of an exception without the "dtrain [rank 3]: " that dtrain::Error puts in
// front, to be quoted inside another error's message.
std::string error_text(const std::exception& error);

// In all of these a null group stands for this process alone (no dist::init needed).

// Every rank's value, gathered to every rank (rank order).
std::vector<int64_t> all_gather_int64(ProcessGroup* group, int64_t value);

// Every rank's text, gathered to every rank (rank order). Two all-gathers: the lengths, then the
// texts padded to the longest.
std::vector<std::string> all_gather_text(ProcessGroup* group, const std::string& text);

// Runs body on this rank and then takes part in one agreement (a one-word all-gather, and the
// messages only when something failed), whether body returned or raised. If body raised on any
// rank, every rank raises one dtrain::Error, "<what> failed on rank 2: <its message> (4 ranks
// took part)", naming each failing rank (ranks with the same message together); in a group of
// one (or none) it is "<what>: <message>". dtrain::Error and any std::exception are caught. body
// must not use group's collectives (a rank that raised would skip them).
void agree_on_errors(ProcessGroup* group, const std::string& what, const std::function<void()>& body);

// The agreement alone: error is this rank's failure (empty when it succeeded). Raises on every
// rank when any rank's error is non-empty ("<what>: <error>" in a group of one).
void raise_if_any_rank_failed(ProcessGroup* group, const std::string& what, const std::string& error);

}  // namespace dtrain::dist
