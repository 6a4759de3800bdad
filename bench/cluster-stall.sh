#!/usr/bin/env bash
# bench/cluster-stall.sh: the stall a client of a forwarding node sees when the primary of its
# pack fails, in a real cluster: one etcd, three nodes (nbdkit with the vvm plugin, each its own
# vvm.conf [cluster]) on 127.0.0.2 (n1, forwarding), .3 (n2, the primary) and .4 (n3, the
# secondary) sharing one disk file. A client of n1 writes 4 KiB at a time (nbdsh, one request in
# flight, never a flush, so the replay buffer is as full as it gets) for 6 s + the TTL, and the
# primary fails 1 s in: it answers the NAK (its path fails, through the test fault hook
# VVM_TEST_PATH_FAULT), it is SIGKILLed, or it is SIGSTOPped (then only its lease running out
# takes it away). Printed: the client's slowest write in each case, beside the slowest with
# nothing failing.
#
#   bench/cluster-stall.sh [BUILD_DIR] [TTL_SECONDS]     default: build/rel 3
#
# Uses the test harness (test/harness/functions.sh) to start and stop etcd and the nodes; needs
# etcd, nbdkit and python3-libnbd.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export VVM_SOURCE_DIR=$here
export VVM_BUILD_DIR=${1:-$here/build/rel}
ttl=${2:-3}
[[ -f $VVM_BUILD_DIR/nbdkit-plugin/nbdkit-vvm-plugin.so ]] || {
  echo "bench/cluster-stall.sh: no plugin in $VVM_BUILD_DIR: build it (meson setup build/rel" \
    "-Dbuildtype=release && ninja -C build/rel)" >&2
  exit 2
}
source "$here/test/harness/functions.sh"
make_tmpdir

# cluster: etcd and the three nodes, pack a on n2 then n3; $n1 is the client's URI.
cluster() {
  start_three_nodes VVM_TEST_PATH_FAULT="a:$tmpdir/fault"
}

# measure CASE ACTION: the client's writes through n1, ACTION run 1 s in; prints the slowest.
measure() {
  nbdsh -u "$n1" -c "
import time
buf = b'x' * 4096
worst = n = 0
end = time.monotonic() + 6 + $ttl
while time.monotonic() < end:
    t = time.monotonic()
    h.pwrite(buf, (n % 4096) * 4096)
    worst = max(worst, time.monotonic() - t)
    n += 1
print('  %-28s %8d writes   slowest %8.1f ms' % ('$1', n, worst * 1000))
" &
  local client=$!
  sleep 1
  eval "$2"
  wait "$client"
}

echo "bench/cluster-stall.sh: lease TTL ${ttl}s, plugin from $VVM_BUILD_DIR"
cluster
measure "nothing fails" ":"
measure "primary answers the NAK" "touch $tmpdir/fault"
rm "$tmpdir/fault"
# n1 has closed the idle forwarder of the last client by now: the next one opens on n2 once up.
wait_log "${node_log[n2]}" "pack/a: the path to disk 'd0' works again" 30
measure "primary SIGKILLed" "kill_daemon ${node_pid[n2]}"
# n2 back (once its old key has gone with its lease), then paused.
wait_log "${node_log[n1]}" "node n2 has left the cluster" $((ttl + 10))
start_node 3 n2
wait_log "${node_log[n1]}" "node n2 is in the cluster" 30
cleanup_fn kill -CONT "${node_pid[n2]}"
measure "primary SIGSTOPped" "kill -STOP ${node_pid[n2]}"
