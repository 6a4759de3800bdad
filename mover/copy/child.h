// copy/child.h: the copy child, the process a mover starts for each archive, stage, verify or
// tape copy.
//
// The mover runs itself again as "vvmover --copy-job ARGS" (copy/jobs.cc) so that the copy runs
// in a fresh process: no Asio, no threads or locks inherited from the daemon, and a crash or a
// kill loses one copy, never the mover. The child finds:
//   argv    --mover NAME --job N --drive NAME --op archive|stage|verify|tape-copy
//           --block-size BYTES [--library DIR | --device /dev/nstN] [--rate BYTES_PER_S]
//           [--from-drive NAME [--from-device /dev/nstN] [--from-rate BYTES_PER_S]]
//           [--log-target stderr|syslog] [--log-level LEVEL]
//           [--tls-psk-file FILE --tls-username NAME | --tls-certificates DIR] (its mover's
//           tls-client-*, for a tls: reply_to)
//           (a tape copy writes in --drive and reads in --from-drive; block size: the written
//           tape's)
//   fd 3    the request, XDR-encoded as on the wire (proto/messages.h), to EOF
//   fd 4    where it writes its events (job_pipe.h): progress as a heartbeat, then its result
// It mounts the VSN (an emulated library: loads DIR/VSN.tap; a real drive: opens the device,
// whose tape the VOL label check must find to be the VSN; a tape copy mounts both of its tapes),
// runs archive(), stage(), verify() or tape_copy() (copy.h),
// sends COPY_REPORTs straight to the request's reply_to (progress at the start and at most once a
// second, then one final report), and exits 0 once the final report is delivered (job_pipe.h
// lists the other exit codes). It dies with its parent (PR_SET_PDEATHSIG) and ignores SIGTERM
// and SIGINT, which reach it with the mover's process group: stopping copies is the mover's job,
// so that it can say why in the report.
#pragma once

namespace vvm::mover {

// The whole of the child: returns its exit code.
int run_copy_child(int argc, char** argv);

}  // namespace vvm::mover
