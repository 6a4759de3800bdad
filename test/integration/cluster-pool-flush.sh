#!/usr/bin/env bash
# cluster-pool-flush.sh: a pool node's own client flushes after every other server of the pool,
# each holding writes it acknowledged and has not flushed, has died; with a real etcd, three real
# nodes on 127.0.0.2-4 sharing one disk file (pack a: n2 primary, n3 secondary, n1 its pool) and
# nbdsh attached to n2 itself:
#   - eight connections to n2 write until n3 and n1 have each taken some of the writes (n2 sends
#     a request to the server with fewer outstanding); n3 and n1 are SIGKILLed; the flush then
#     fails with EIO: n2's disk is flushed, but what n3 and n1 acknowledged may be lost and no
#     server is left to write it again on, so the flush must not claim it durable;
#   - that failure is not a failure of n2's path to its disk: n2 neither says its path is down
#     nor records it down in etcd (cluster map shows n2's path up), and it serves a new client
#     from its own disk. It used to mark its path down and send its clients to the dead others.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"
make_tmpdir
requires nbdsh --version
requires jq --version

start_three_nodes
for ((i = 0; i < 50; i++)); do # a node listens before it has joined
  [[ $(ctl cluster nodes --json | jq 'map(select(.live)) | length') == 3 ]] && break
  sleep 0.1
done
((i < 50)) || die "three nodes not registered: $(ctl cluster nodes)"
ctl pack set-pool a n1 >/dev/null || die "pack set-pool a n1 failed"
wait_log "${node_log[n1]}" "serving 1 pack from this node's disks"
n2=nbd://127.0.0.3:$port/pack/a

# nbdkit -v logs every request a node serves: "vvm: pwrite count=" counts its writes. The client
# writes, says so, waits until the test has killed n3 and n1, then flushes.
/usr/bin/python3 - "$n2" "${node_log[n3]}" "${node_log[n1]}" "$tmpdir/killed" \
  >"$tmpdir/client.out" 2>&1 <<'PY' &
import os, sys, time
import nbd
sys.path.insert(0, os.path.join(os.environ["VVM_SOURCE_DIR"], "test/harness"))
from pool_writes import spread_writes
uri, log3, log1, killed = sys.argv[1:5]
hs, took = spread_writes(uri, (log3, log1), ("n3", "n1"), 0, 32 << 20)
print("written; taken by n3, n1:", took, flush=True)
deadline = time.monotonic() + 30
while not os.path.exists(killed):
    if time.monotonic() > deadline:
        sys.exit("n3 and n1 were not killed within 30 s")
    time.sleep(0.05)
try:
    hs[0].flush()
    print("flush ok", flush=True)
except nbd.Error as ex:
    print("flush", ex.errno, flush=True)
for h in hs:
    h.shutdown()
PY
client_pid=$!
cleanup_fn kill_quietly "$client_pid"
for ((i = 0; i < 600; i++)); do
  grep -q '^written' "$tmpdir/client.out" && break
  kill -0 "$client_pid" 2>/dev/null || die "the client failed: $(cat "$tmpdir/client.out")"
  sleep 0.1
done
((i < 600)) || die "the client did not write within 60 s: $(cat "$tmpdir/client.out")"
kill_daemon "${node_pid[n3]}"
kill_daemon "${node_pid[n1]}"
touch "$tmpdir/killed"
wait "$client_pid" || die "the client: $(cat "$tmpdir/client.out")"
cat "$tmpdir/client.out"
grep -qx 'flush EIO' "$tmpdir/client.out" ||
  die "the flush after n3 and n1 died holding unflushed writes did not fail with EIO: $(cat "$tmpdir/client.out")"
echo "ok: with every other server dead holding unflushed writes, the flush through n2 failed (EIO)"

# The flush's failure is the others', not n2's path to its disk.
! grep -q "this node's path to its disk is down" "${node_log[n2]}" ||
  die "n2 took the others' failed flush for a failure of its own path: $(grep 'path to its disk' "${node_log[n2]}")"
out=$(nbdsh -u "$n2" -c "
h.pwrite(b'\x3c' * 65536, 40 << 20)
assert h.pread(65536, 40 << 20) == b'\x3c' * 65536
print('served')
" 2>&1) || die "n2 does not serve a new client after the failed flush: $out"
grep -qx served <<<"$out" || die "nbdsh through n2: $out"
cmp -n 65536 <(tail -c +$((40 * M + 1)) "$disk") <(head -c 65536 /dev/zero | tr '\0' '\74') ||
  die "the write through n2 after the failed flush is not on the disk"
# A path failure is recorded in etcd by n2's cluster thread, and probed again each second: watch
# cluster map a while, and n2's log for the record.
for ((i = 0; i < 20; i++)); do
  json=$(ctl cluster map --json)
  [[ $(jq -r '.[0].paths.n2.up' <<<"$json") == true ]] ||
    die "cluster map shows n2's path down after the others' flush failed: $json"
  sleep 0.1
done
! grep -q "pack/a: the path to disk 'd0' failed" "${node_log[n2]}" ||
  die "n2 marked its path down: $(grep "path to disk 'd0'" "${node_log[n2]}")"
echo "ok: n2's path stays up (cluster map), and n2 serves a new client from its own disk"
grep -Eq "pack/a: flush: the pack's other servers did not flush writes they acknowledged \(.*may be lost.*\)" \
  "${node_log[n2]}" || die "n2 does not say why the flush failed"
echo "ok: n2 says why the flush failed"
