#pragma once
// Collectives in the profiler (core/profiler.h): ProcessGroup records each one it issues (an
// event with its bytes) and, while a profile records, hands out its Work wrapped so that wait()
// is an event too: the time the host spent blocked on the collective.
#include <string>

#include "dist/work.h"

namespace dtrain::dist {

// work whose wait() records a "<collective> (wait)" event.
WorkHandle profiled_work(WorkHandle work, std::string collective);

}  // namespace dtrain::dist
