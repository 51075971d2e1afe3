#pragma once
// The MPI side of ProcessGroup::send_receive (dist/point_to_point.h), run as one task on the
// communication thread (MpiBackend::send_receive queues it): every send is posted at once
// (MPI_Isend), every receive is matched as its message arrives, then everything is waited for
// together (MPI_Waitall) — so a ring exchange, where every rank sends before anyone receives,
// completes whichever rank starts first.
//
// Receives are matched by probing (MPI_Improbe, then MPI_Imrecv into the tensor) rather than
// posted up front: a message of another size than its receive is then received whole into a
// scratch buffer and reported — the receiver raises, naming both sizes, and nothing is left in
// the channel to confuse the next exchange — instead of being MPI's truncation error, after which
// Open MPI 4.1 was seen to leave MPI_Waitall waiting for ever (tests/dist/test_point_to_point.cpp).
#include <mpi.h>

#include <vector>

#include "dist/point_to_point.h"

namespace dtrain::dist {

// Blocking: returns once every operation has completed; raises on an MPI error or a message whose
// size differs from its receive's (after the rest has completed). Peers are ranks of comm, whose
// size is group_size. Tensors over 2^30 elements travel as several messages, in order.
void exchange_point_to_point(const std::vector<PointToPoint>& operations, MPI_Comm comm, int group_size);

}  // namespace dtrain::dist
