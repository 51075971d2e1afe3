#include "core/crash_test_switch.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace dtrain {

namespace {

struct CrashTestSettings {
  int64_t crash_after = 0;  // 0: never
  bool trace = false;
};

const CrashTestSettings& settings() {
  static const CrashTestSettings read = [] {
    CrashTestSettings result;
    if (const char* value = std::getenv("DTRAIN_TEST_CRASH_AFTER_CHECKPOINT_OPERATION")) {
      result.crash_after = std::strtoll(value, nullptr, 10);
    }
    const char* trace = std::getenv("DTRAIN_TEST_TRACE_CHECKPOINT_OPERATIONS");
    result.trace = trace != nullptr && std::string(trace) == "1";
    return result;
  }();
  return read;
}

std::atomic<int64_t> operations_done{0};

}  // namespace

void checkpoint_file_operation(const char* kind, const std::filesystem::path& path) {
  const CrashTestSettings& test = settings();
  if (test.crash_after <= 0 && !test.trace) return;
  const int64_t number = ++operations_done;
  if (test.trace) {
    std::fprintf(stderr, "dtrain checkpoint operation %lld (pid %ld): %s '%s'\n", static_cast<long long>(number),
                 static_cast<long>(::getpid()), kind, path.c_str());
    std::fflush(stderr);
  }
  if (number == test.crash_after) {
    ::kill(::getpid(), SIGKILL);
    ::_exit(137);  // not reached: SIGKILL cannot be caught
  }
}

}  // namespace dtrain
