#include "dist/terminal_output.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

#include "core/error.h"
#include "dist/init.h"

namespace dtrain::dist {

namespace {

// Whether the parent process's stdout is a terminal device (a pseudo-terminal or a console).
bool parent_stdout_is_terminal() {
  std::error_code error;
  std::filesystem::path target =
      std::filesystem::read_symlink("/proc/" + std::to_string(::getppid()) + "/fd/1", error);
  if (error) return false;
  const std::string text = target.string();
  return text.rfind("/dev/pts/", 0) == 0 || text.rfind("/dev/tty", 0) == 0 || text == "/dev/console";
}

}  // namespace

bool stdout_redraws_in_place() {
  if (const char* forced = std::getenv("DTRAIN_PROGRESS"); forced != nullptr && *forced != '\0') {
    std::string value = forced;
    if (value == "lines") return false;
    if (value == "in-place") return true;
    fail("DTRAIN_PROGRESS: expected lines or in-place, got '", value, "'");
  }
  if (::isatty(::fileno(stdout)) != 1) return false;
  if (!is_initialized() || !uses_mpi()) return true;
  return parent_stdout_is_terminal();
}

}  // namespace dtrain::dist
