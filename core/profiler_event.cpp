#include "core/profiler_event.h"

namespace dtrain::profiler {

const char* event_kind_name(EventKind kind) {
  switch (kind) {
    case EventKind::Op: return "op";
    case EventKind::Backward: return "backward";
    case EventKind::Collective: return "collective";
    case EventKind::CollectiveWait: return "collective wait";
    case EventKind::Range: return "range";
  }
  return "event";
}

std::string Event::label() const {
  switch (kind) {
    case EventKind::Backward: return name + " (backward)";
    case EventKind::CollectiveWait: return name + " (wait)";
    default: return name;
  }
}

}  // namespace dtrain::profiler
