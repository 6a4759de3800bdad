#!/usr/bin/env bash
# cluster-pool.sh: a request pool, with a real etcd, four real nodes on 127.0.0.2-5 and real
# clients. Pack a's disk (a shared file on this host standing in for a shared block device) is
# reached by n2 (primary), n3 (secondary) and n4 (its mapping's pool); n1 reaches none and
# forwards:
#   - vvctl cluster import --pool and vvctl pack set-pool refuse a bad pool, naming the mistake
#     (an unknown node, a disk the node lacks, an entry twice, a node twice, a node that is the
#     primary or the secondary already); set-pool gives pack a its pool through the barrier, and
#     cluster map shows it (POOL column, pool in --json, the pool node's path);
#   - a client of n2 (itself in the pool: fio, eight connections at queue depth 32, verify) has its
#     requests spread over n2, n3 and n4 by load (n2 counting its own outstanding requests as
#     one server's), each counted taking writes, with no error;
#   - a flush through n2 goes to n3 and n4 while they hold unflushed writes of n2's clients, and
#     not once they have flushed them (counted in their logs);
#   - cluster drain n3 (the secondary) under fio through n1: a keeps its pool without n3, cluster
#     map shows it, and n3 takes no more requests; fio ends with no error;
#   - n4 SIGSTOPped past its lease under fio through n1: once its key is gone n1 neither sends it
#     requests nor connects to it until it has rejoined; fio ends with no error;
#   - n1 offers pack a as forwarded to the pool of the three;
#   - under fio verify through n1 every server gets writes (counted in each server's log: nbdkit
#     -v logs every request), since n1 sends each request to the server with the fewest
#     outstanding;
#   - n3 is SIGKILLed in the middle of fio: its requests are taken by the others, fio ends with no
#     error, and the two left go on taking writes;
#   - a client that wrote through n1 without a flush and left is not replayed over a later
#     client's flushed writes when its server (n4) dies.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"
make_tmpdir
requires nbdinfo --version
requires fio --version
requires jq --version

start_cluster_disk
# --- the pool's mistakes, named; nothing written ---
tab=$tmpdir/a.tab
expect 1 "pack 'a': pool entry n2:d0 is listed twice \(it is the pack's primary already\)" -- \
  ctl cluster import "$tab" --primary n2 --secondary n3 --disk d0 --pool n2
expect 1 "pool entry n4:d0 is listed twice \(it is the pack's pool entry n4:d0 already\)" -- \
  ctl cluster import "$tab" --primary n2 --disk d0 --pool n4,n4:d0
expect 1 "pool entry n3:d1: node n3 is named twice \(it is the pack's secondary on disk d0\)" -- \
  ctl cluster import "$tab" --primary n2 --secondary n3 --disk d0 --pool n3:d1
expect 2 "vvctl cluster import: --pool 'n4,': entry 2 is empty" -- \
  ctl cluster import "$tab" --primary n2 --disk d0 --pool n4,
expect 2 "--pool entry 1: node 'n/4'" -- ctl cluster import "$tab" --primary n2 --disk d0 --pool n/4
[[ -z $(etcdctl_ get --prefix /vvm/pack/ --keys-only) ]] || die "a refused import wrote a mapping"
ctl cluster import "$tab" --primary n2 --secondary n3 --disk d0 >/dev/null
start_node 3 n2
start_node 4 n3
start_node 5 n4
start_node 2 n1
for ((i = 0; i < 50; i++)); do # a node listens before it has joined
  [[ $(ctl cluster nodes --json | jq 'map(select(.live)) | length') == 4 ]] && break
  sleep 0.1
done
((i < 50)) || die "four nodes not registered: $(ctl cluster nodes)"
expect 1 "pack 'a': node n9 cannot be its pool server: it is not a live member of the cluster \(live: n1, n2, n3, n4\)" -- \
  ctl pack set-pool a n9:d0
expect 1 "pack 'a': node n4 cannot be its pool server: it has no disk 'd9' \(its disks: d0\)" -- \
  ctl pack set-pool a n4:d9
expect 1 "pack 'a': pool entry n4:d0 is listed twice \(it is the pack's pool entry n4:d0 already\)" -- \
  ctl pack set-pool a n4:d0,n4
expect 1 "pack 'a': pool entry n4:d1: node n4 is named twice \(it is the pack's pool entry n4:d0 on disk d0\)" -- \
  ctl pack set-pool a n4,n4:d1
expect 1 "pack 'a': pool entry n3:d0 is listed twice \(it is the pack's secondary already\)" -- \
  ctl pack set-pool a n3
expect 1 "pack 'a' has no pool already" -- ctl pack set-pool a --none
expect 2 "give NODE\[:DISK\]\[,NODE\[:DISK\]...\], or --none" -- ctl pack set-pool a
check '.[0].epoch' 1 "$(ctl cluster map --json)" # nothing changed
out=$(ctl pack set-pool a n4) || die "pack set-pool a n4: $out"
grep -q "committed: 4 nodes acknowledged (n1, n2, n3, n4)" <<<"$out" || die "set-pool: $out"
grep -Eq '^a +n2:d0 +n3:d0 +n4:d0 ' <<<"$out" || die "set-pool did not print the pool: $out"
expect 1 "pack 'a': its pool is n4:d0 already" -- ctl pack set-pool a n4:d0
map=$(ctl cluster map)
grep -Eq '^PACK +PRIMARY +SECONDARY +POOL +OFFSET ' <<<"$map" || die "cluster map header: $map"
grep -Eq '^a +n2:d0 +n3:d0 +n4:d0 +0 +64M .* 2 +n2 up, n3 up, n4 up +-$' <<<"$map" ||
  die "cluster map does not show the pool: $map"
json=$(ctl cluster map --json)
check '.[0].pool | map(.node + ":" + .disk) | join(",")' n4:d0 "$json"
check '.[0].paths.n4.up' true "$json"
check '.[0].epoch' 2 "$json"
echo "ok: the pool's mistakes named, the pool set through the barrier and shown"
n1=nbd://127.0.0.2:$port/pack/a
wait_log "${node_log[n4]}" "serving 1 pack from this node's disks"
# A pool seeded by import, and removed.
echo "b disk.img 64M 16M shared root root 0666" >"$tmpdir/b.tab"
expect 0 "imported 1 pack \(0 replaced\): primary n3, pool n2, n4$" -- \
  ctl cluster import "$tmpdir/b.tab" --primary n3 --pool n2,n4 --disk d0
check '.[] | select(.name == "b") | .pool | map(.node + ":" + .disk) | join(",")' n2:d0,n4:d0 \
  "$(ctl cluster map --json)"
expect 0 "^b +n3:d0 +- +- +root:root +0666 +2$" -- ctl pack set-pool b --none
check '.[] | select(.name == "b") | has("pool")' false "$(ctl cluster map --json)"
# With --json: the object of pack move, the new mapping with its pool.
out=$(ctl pack set-pool b n2,n4:d0 --json) || die "pack set-pool b n2,n4:d0 --json: $out"
check '.packs[0].pool | map(.node + ":" + .disk) | join(",")' n2:d0,n4:d0 "$out"
check '.packs[0].name + " " + (.packs[0].epoch | tostring)' "b 3" "$out"
check '.acked | join(",")' n1,n2,n3,n4 "$out"
check '(.id | length > 0) and .total_us >= .barrier_us and .revision > 0' true "$out"
out=$(ctl pack set-pool b --none --json) || die "pack set-pool b --none --json: $out"
check '.packs[0] | has("pool")' false "$out"
check '.packs[0].epoch' 4 "$out"
check '.[] | select(.name == "b") | has("pool")' false "$(ctl cluster map --json)"
echo "ok: pack set-pool --json prints the new mapping and the barrier's figures"
nbdinfo --json "$n1" >"$tmpdir/info" || die "nbdinfo $n1: $(cat "$tmpdir/info")"
check '.exports[0].description' "pack a, forwarded to the pool n2, n3, n4 (epoch 2)" "$(cat "$tmpdir/info")"

writes() { grep -c "vvm: pwrite count=" "${node_log[$1]}" || true; }

# --- a client of a pool node: its requests spread over itself and the others by load ---
# Eight connections (nbdkit 1.32 serves each connection's requests one at a time, parallel=no),
# queue depth 32 each, every block verified; n2 sends a request to n3 or n4 only when one of
# them has fewer outstanding than n2 has serving its own clients. Its first requests are all
# served on n2 while n2 connects to the others, in the background.
before=(n3 "$(writes n3)" n4 "$(writes n4)")
n2=nbd://127.0.0.3:$port/pack/a
fio --name=local --ioengine=nbd --uri="$n2" --numjobs=8 --size=$((8 * M)) \
  --offset_increment=$((8 * M)) --rw=randwrite --bs=4k --iodepth=32 --verify=crc32c \
  --do_verify=1 --verify_fatal=1 --group_reporting >"$tmpdir/fio-local.out" 2>&1 ||
  die "fio through n2 failed: $(cat "$tmpdir/fio-local.out")"
grep -q 'err= 0' "$tmpdir/fio-local.out" || die "fio reported errors: $(cat "$tmpdir/fio-local.out")"
spread=(n3 $(($(writes n3) - before[1])) n4 $(($(writes n4) - before[3])))
# n2's log counts every write of its clients, those it sent on included.
spread=(n2 $(($(writes n2) - spread[1] - spread[3])) "${spread[@]}")
echo "writes of n2's own clients (16384) served by: ${spread[*]}"
((spread[3] > 0 && spread[5] > 0)) ||
  die "n2 served its own clients alone: n3 took ${spread[3]}, n4 ${spread[5]} of fio's writes"
((spread[1] > 0)) || die "n2 served none of its own clients' writes itself"
echo "ok: a pool node's own client was spread over n2, n3 and n4; fio verified every block"

# --- a flush of a pool node's client goes to the servers holding unflushed writes, only ---
# Eight connections to n2 write at once (n2 spreads them by load) until n3 and n4 have each taken
# some; a flush on one connection then reaches both (it covers every connection's writes, as
# multi-conn promises); a second flush, and a flush on another connection, with no write since,
# reach neither (n2 used to flush a server of the pool at every flush once one had taken a write).
# nbdkit -v logs every request a node serves: "vvm: flush" counts its flushes.
/usr/bin/python3 - "$n2" "${node_log[n3]}" "${node_log[n4]}" >"$tmpdir/flush.out" 2>&1 <<'PY' ||
import os, sys
sys.path.insert(0, os.path.join(os.environ["VVM_SOURCE_DIR"], "test/harness"))
from pool_writes import count, spread_writes
uri, log3, log4 = sys.argv[1:4]
logs = (log3, log4)
hs, took = spread_writes(uri, logs, ("n3", "n4"), 48 << 20, 16 << 20)
print("writes taken by n3, n4:", took)
f0 = count(logs, "vvm: flush")
hs[0].flush()
f1 = count(logs, "vvm: flush")
print("flushes on n3, n4 before:", f0, "after the first:", f1)
if not all(b > a for a, b in zip(f0, f1)):
    sys.exit(f"the flush did not reach every server holding unflushed writes: {f0} -> {f1}")
hs[0].flush()
hs[3].flush()
f2 = count(logs, "vvm: flush")
print("after two more, no write between:", f2)
if f2 != f1:
    sys.exit(f"flushes with no write since went to the pool's other servers: {f1} -> {f2}")
for h in hs:
    h.shutdown()
PY
  die "$(cat "$tmpdir/flush.out")"
cat "$tmpdir/flush.out"
echo "ok: a flush through n2 went to n3 and n4 while they held its writes, and not after"

# --- a drained node leaves the pool, through the barrier, under a client's writes ---
# fio writes through n1 (spread over n2, n3, n4; 4 s of writes, then their check); n3, the
# secondary, is drained in the middle: a keeps its pool (n2, n4) without n3, which cluster map
# shows, and n3 takes no more of n1's requests while fio goes on; pack b (primary n3, no pool)
# swaps with its secondary n2 and keeps n3 as its secondary. Then n3 is undrained and made a's
# secondary again.
ctl pack set-secondary b n2 >/dev/null || die "pack set-secondary b n2 failed"
fio --name=drain --ioengine=nbd --uri="$n1" --size=$((16 * M)) --offset=$((40 * M)) \
  --rw=randwrite --bs=4k --iodepth=8 --rate_iops=1000 --verify=crc32c --do_verify=1 --verify_fatal=1 \
  >"$tmpdir/fio-drain.out" 2>&1 &
fio_pid=$!
cleanup_fn kill_quietly "$fio_pid"
n3_before=$(writes n3)
for ((i = 0; i < 50; i++)); do
  (($(writes n3) >= n3_before + 50)) && break
  sleep 0.1
done
((i < 50)) || die "n3 took fewer than 50 of fio's writes through n1 in 5 s"
out=$(ctl cluster drain n3) || die "cluster drain n3: $out"
grep -q "committed: 4 nodes acknowledged (n1, n2, n3, n4)" <<<"$out" || die "drain: $out"
grep -Eq '^a +n2:d0 +- +n4:d0 ' <<<"$out" || die "drain did not print a without n3: $out"
grep -Eq '^b +n2:d0 +n3:d0 +- ' <<<"$out" || die "drain did not swap b's primary: $out"
# fio, a shared writer through n1, is a's holder meanwhile.
grep -Eq '^a +n2:d0 +- +n4:d0 +0 +64M .* 3 +n2 up, n4 up +host 127\.0\.0\.1 on n1 \(shared\)$' \
  <<<"$(ctl cluster map)" ||
  die "cluster map still shows n3 serving a: $(ctl cluster map)"
check '.[0] | [.primary.node, (.pool | map(.node) | join(","))] | join(" ")' "n2 n4" \
  "$(ctl cluster map --json)"
sleep 0.5 # requests that n3 held during the barrier are answered (refused) by now
n3_drained=$(writes n3)
kill -0 "$fio_pid" 2>/dev/null || die "fio ended before n3 was drained: $(cat "$tmpdir/fio-drain.out")"
wait "$fio_pid" || die "fio through n1 failed across the drain: $(cat "$tmpdir/fio-drain.out")"
grep -q 'err= 0' "$tmpdir/fio-drain.out" || die "fio reported errors: $(cat "$tmpdir/fio-drain.out")"
(($(writes n3) == n3_drained)) ||
  die "n3 took $(($(writes n3) - n3_drained)) writes through n1 after it was drained"
echo "ok: n3 drained under fio through n1: out of a's pool (cluster map: n2, n4), no request since, no client error"
expect 0 "node n3: undrained" -- ctl cluster undrain n3
ctl pack set-secondary a n3 >/dev/null || die "pack set-secondary a n3 after the undrain failed"
grep -Eq '^a +n2:d0 +n3:d0 +n4:d0 ' <<<"$(ctl cluster map)" ||
  die "a is not n2, n3, n4 again: $(ctl cluster map)"

# --- a pool server whose lease is lost is not chosen while it is gone ---
# fio writes through n1; n4 is SIGSTOPped past its lease: once its key is gone n1 marks it down
# and sends it nothing (a request sent to a stopped node would hang fio), nor connects to it
# again, until n4, resumed, has rejoined; fio ends with no error. Three loops of 6144 writes at
# 1000 a second take 18 s: enough for n4's lease to run out and n1 to see it on a loaded machine
# (one loop once ended first). Not a lower rate: n1 sends to the server with the fewest requests
# so far among the idle, and n3, back from its drain, has to catch up with n4 first.
fio --name=gone --ioengine=nbd --uri="$n1" --size=$((24 * M)) --offset=$((40 * M)) --loops=3 \
  --rw=randwrite --bs=4k --iodepth=8 --rate_iops=1000 --verify=crc32c --do_verify=1 --verify_fatal=1 \
  >"$tmpdir/fio-gone.out" 2>&1 &
fio_pid=$!
cleanup_fn kill_quietly "$fio_pid"
n4_before=$(writes n4)
for ((i = 0; i < 50; i++)); do
  (($(writes n4) >= n4_before + 50)) && break
  sleep 0.1
done
((i < 50)) || die "n4 took fewer than 50 of fio's writes through n1 in 5 s"
cleanup_fn kill -CONT "${node_pid[n4]}"
kill -STOP "${node_pid[n4]}"
for ((i = 0; i < 100; i++)); do
  [[ -z $(etcdctl_ get /vvm/node/n4 --print-value-only) ]] && break
  sleep 0.1
done
((i < 100)) || die "n4's key is still in etcd 10 s after it stopped"
n4_uri="nbd://127.0.0.5:$port/pack/a@local"
wait_log "${node_log[n1]}" "pack/a: server $n4_uri is down: marked down: node n4 has left the cluster"
sleep 1 # n4 gone a while: n1 must neither send it requests nor connect to it
kill -0 "$fio_pid" 2>/dev/null || die "fio ended before n4 came back: $(cat "$tmpdir/fio-gone.out")"
! grep -q "pack/a: server $n4_uri is up again" "${node_log[n1]}" ||
  die "n1 connected to n4 again while its key was gone"
kill -CONT "${node_pid[n4]}"
wait_log "${node_log[n4]}" "rejoined the cluster as /vvm/node/n4"
wait_log "${node_log[n1]}" "pack/a: server $n4_uri is up again"
wait "$fio_pid" || die "fio through n1 failed while n4 was gone: $(cat "$tmpdir/fio-gone.out")"
grep -q 'err= 0' "$tmpdir/fio-gone.out" || die "fio reported errors: $(cat "$tmpdir/fio-gone.out")"
echo "ok: n4 stopped past its lease under fio through n1: marked down once its key went, not used until it rejoined"

fio --name=verify --ioengine=nbd --uri="$n1" --size=$((32 * M)) --rw=randwrite --bs=4k \
  --iodepth=32 --rate_iops=4000 --verify=crc32c --do_verify=1 --verify_fatal=1 \
  >"$tmpdir/fio.out" 2>&1 &
fio_pid=$!
cleanup_fn kill_quietly "$fio_pid"
for ((i = 0; i < 100; i++)); do
  (($(writes n3) >= 100)) && break
  sleep 0.1
done
((i < 100)) || die "n3 took fewer than 100 writes in 10 s (n2 $(writes n2), n4 $(writes n4))"
kill -0 "$fio_pid" 2>/dev/null || die "fio ended before n3 was killed: $(cat "$tmpdir/fio.out")"
at_kill=(n2 "$(writes n2)" n3 "$(writes n3)" n4 "$(writes n4)")
kill_daemon "${node_pid[n3]}"
wait "$fio_pid" || die "fio through n1 failed when n3 was killed: $(cat "$tmpdir/fio.out")"
grep -q 'err= 0' "$tmpdir/fio.out" || die "fio reported errors: $(cat "$tmpdir/fio.out")"
# n1 finds n3 gone on a connection it kept, or on one it opens to n3 after the kill.
grep -Eq "127.0.0.4:$port/pack/a@local is down: (connection lost|connect: .*Connection refused)" \
  "${node_log[n1]}" || die "n1 does not say that n3's connection was lost"
echo "ok: n3 killed under fio through the pool: no client error"
echo "writes served when n3 was killed: ${at_kill[*]}; at the end: n2 $(writes n2) n4 $(writes n4)"
for n in n2 n4; do
  (($(writes $n) >= 100)) || die "$n took fewer than 100 of fio's writes: $(writes $n)"
done
(($(writes n2) > at_kill[1] && $(writes n4) > at_kill[5])) ||
  die "n2 and n4 did not both go on taking writes after n3 was killed"
echo "ok: the load was spread over n2, n3 and n4, and over n2 and n4 after the kill"

# --- a client that leaves without a flush leaves nothing to be written again later ---
# A writes through n1 (acknowledged by n2 and n4, no flush) and disconnects; B then writes the
# same bytes through n2 and flushes; n4 is killed and C, a client of n1 all along (keeping n1's
# forwarder open), reads. n1 used to keep A's unflushed writes to replay them when their server
# died, and wrote A's old bytes over B's: a closing connection now flushes its forwarded writes.
n4_before=$(writes n4)
/usr/bin/python3 - "$n1" "$n2" "$tmpdir/n4-killed" >"$tmpdir/stale.out" 2>&1 <<'PY' &
import os, sys, time
import nbd
n1, n2, killed = sys.argv[1:4]
chunk = 64 * 1024
c = nbd.NBD()
c.connect_uri(n1)
a = nbd.NBD()
a.connect_uri(n1)
for i in range(32):
    a.pwrite(b"\x11" * chunk, i * chunk)
a.shutdown()
b = nbd.NBD()
b.connect_uri(n2)
b.pwrite(b"\x22" * (32 * chunk), 0)
b.flush()
b.shutdown()
print("written", flush=True)
deadline = time.monotonic() + 30
while not os.path.exists(killed):
    if time.monotonic() > deadline:
        sys.exit("n4 was not killed within 30 s")
    time.sleep(0.05)
for i in range(32):
    got = c.pread(chunk, i * chunk)
    if got != b"\x22" * chunk:
        sys.exit(f"C read {got[:1].hex()} at {i * chunk} through n1, not B's 22")
c.flush()
c.shutdown()
print("read", flush=True)
PY
stale_pid=$!
cleanup_fn kill_quietly "$stale_pid"
for ((i = 0; i < 300; i++)); do
  grep -q '^written' "$tmpdir/stale.out" && break
  kill -0 "$stale_pid" 2>/dev/null || die "the clients failed: $(cat "$tmpdir/stale.out")"
  sleep 0.1
done
((i < 300)) || die "A and B did not write within 30 s: $(cat "$tmpdir/stale.out")"
(($(writes n4) > n4_before)) || die "none of A's writes through n1 went to n4"
kill_daemon "${node_pid[n4]}"
touch "$tmpdir/n4-killed"
wait "$stale_pid" || die "stale bytes: $(cat "$tmpdir/stale.out")"
/usr/bin/python3 -c '
import sys, nbd
h = nbd.NBD()
h.connect_uri(sys.argv[1])
got = h.pread(32 * 65536, 0)
bad = [i for i in range(0, len(got), 65536) if got[i:i + 65536] != b"\x22" * 65536]
sys.exit(f"n2 holds stale bytes at {bad[:4]}" if bad else 0)' "$n2" || die "after n4 was killed, A's old writes came back"
echo "ok: A's unflushed writes were not written again over B's when n4 died"
