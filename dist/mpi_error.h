#pragma once
// MPI return codes as dtrain::Error. dtrain sets MPI_ERRORS_RETURN on its communicators, so a
// failing MPI call returns here instead of aborting the job, and the error names the call.
namespace dtrain::dist {

// Raises "<call> failed: <MPI's error string> (MPI error class N)" unless code is MPI_SUCCESS.
void check_mpi(int code, const char* call);

}  // namespace dtrain::dist
