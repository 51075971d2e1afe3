#include "core/error.h"

namespace dtrain {
namespace {
std::string& context_storage() {
  static std::string context;
  return context;
}
std::string with_context(const std::string& message) {
  const std::string& context = context_storage();
  return context.empty() ? "dtrain: " + message : "dtrain [" + context + "]: " + message;
}
}  // namespace

Error::Error(const std::string& message) : std::runtime_error(with_context(message)) {}

void set_error_context(const std::string& context) { context_storage() = context; }
const std::string& error_context() { return context_storage(); }

}  // namespace dtrain
