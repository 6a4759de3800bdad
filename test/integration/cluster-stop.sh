#!/usr/bin/env bash
# cluster-stop.sh: a node told to stop (SIGTERM, as systemd does) stops while the other nodes run,
# with a real etcd, three real nodes on 127.0.0.2-4 sharing one disk file and a real client.
# nbdkit 1.32 waits for its open connections before it exits, and a node that forwarded a
# client's requests to the primary n2 must not keep its connections to n2 once the client has
# gone, or n2 would never stop: n1 closes an idle forwarder's connections after 2 s.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"
make_tmpdir
requires qemu-io --version

start_three_nodes
io "$n1" -c "write -P 0x42 0 1M" -c "read -P 0x42 0 1M"
wait_log "${node_log[n1]}" "pack/a: no client and no request for 2000 ms: its connections to its servers are closed"
stop_node n2 10
echo "ok: the primary n2 stopped on SIGTERM in $stopped_in s, n1 and n3 running"
io "$n1" -r -c "read -P 0x42 0 1M"
echo "ok: n1 goes on, on n3"
