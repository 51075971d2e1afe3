#pragma once
// A test-only fault switch for the crash tests of checkpoint saves (tests/dist/
// run-checkpoint-crash.sh). Every file operation of dtrain's atomic writes and sharded saves —
// create, write (a file's whole contents), fsync (a file or a directory), rename, remove — calls
// checkpoint_file_operation right after it happened, and the operations are numbered from 1 in
// each process:
//   DTRAIN_TEST_CRASH_AFTER_CHECKPOINT_OPERATION=k   the process kills itself with SIGKILL right
//       after operation k: no destructor, no buffered output, no MPI_Finalize, as kill -9 or a
//       power cut would leave things.
//   DTRAIN_TEST_TRACE_CHECKPOINT_OPERATIONS=1        each operation is printed on stderr as
//       "dtrain checkpoint operation <n> (pid <p>): <kind> '<path>'".
// Both are read here and nowhere else, once per process. Never set them outside tests.
#include <filesystem>

namespace dtrain {

// kind: "create", "write", "fsync", "rename" or "remove"; path: the file (for a rename, its new
// name) or the directory.
void checkpoint_file_operation(const char* kind, const std::filesystem::path& path);

}  // namespace dtrain
