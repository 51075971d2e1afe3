#pragma once
// dtrain::Error — the one exception type. Every message says what was expected and what came;
// a process-wide context (set by dist::init to "rank N") prefixes it so a distributed failure
// names the rank that raised.
#include <sstream>
#include <stdexcept>
#include <string>

namespace dtrain {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message);
};

// "rank 3" once dist is initialised; empty on a single process.
void set_error_context(const std::string& context);
const std::string& error_context();

namespace detail {
template <typename... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream stream;
  (stream << ... << parts);
  return stream.str();
}
}  // namespace detail

// Throws dtrain::Error with the parts streamed together: fail("matmul: expected ", a, " got ", b).
template <typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  throw Error(detail::concat(parts...));
}

}  // namespace dtrain
