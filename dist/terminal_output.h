#pragma once
// Whether a progress line may be redrawn in place (carriage returns, escape codes) or must be
// plain lines, one per report. The rule:
//   - stdout is not a terminal (a file, a pipe): plain lines;
//   - stdout is a terminal and no MPI launcher started the process: redraw in place;
//   - under a launcher: Open MPI gives every rank a pseudo-terminal of its own whatever mpirun's
//     own stdout is, so the rank's isatty says nothing about where the log goes. Redraw in place
//     only when the launcher process (the parent: mpirun, or its daemon on other nodes) writes to
//     a terminal itself, read from /proc/<parent>/fd/1 (Linux). Anything unknown — no /proc,
//     another launcher's daemon whose output goes elsewhere — gives plain lines.
//   - DTRAIN_PROGRESS=lines or DTRAIN_PROGRESS=in-place decides instead (any other value raises).
namespace dtrain::dist {

bool stdout_redraws_in_place();

}  // namespace dtrain::dist
