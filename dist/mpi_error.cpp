#include "dist/mpi_error.h"

#include <mpi.h>

#include <string>

#include "core/error.h"

namespace dtrain::dist {

void check_mpi(int code, const char* call) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) length = 0;
  int error_class = code;
  MPI_Error_class(code, &error_class);
  fail(call, " failed: ", length > 0 ? std::string(text, length) : std::string("unknown MPI error"),
       " (MPI error code ", code, ", class ", error_class, ")");
}

}  // namespace dtrain::dist
