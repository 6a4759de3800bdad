#!/usr/bin/env bash
# cluster-pool.sh: a request pool, with a real etcd, four real nodes on 127.0.0.2-5 and real
# clients. Pack a's disk (a shared file on this host standing in for a shared block device) is
# reached by n2 (primary), n3 (secondary) and n4 (its mapping's pool); n1 reaches none and
# forwards:
#   - n1 offers pack a as forwarded to the pool of the three;
#   - under fio verify through n1 every server gets writes (counted in each server's log: nbdkit
#     -v logs every request), since n1 sends each request to the server with the fewest
#     outstanding;
#   - n3 is SIGKILLed in the middle of fio: its requests are taken by the others, fio ends with no
#     error, and the two left go on taking writes.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"
make_tmpdir
requires nbdinfo --version
requires fio --version
requires jq --version

start_etcd
conf=$tmpdir/admin.conf
printf '[cluster]\netcd = %s\n' "$etcd_endpoint" >"$conf"
disk=$tmpdir/disk.img
truncate -s 128M "$disk"
port=$(pick_unused_port)
echo "a disk.img 0 64M shared root root 0666" >"$tmpdir/a.tab"
ctl cluster import "$tmpdir/a.tab" --primary n2 --secondary n3 --disk d0 >/dev/null
# vvctl writes no pool yet: the mapping's record, with n4's disk d0 added as its pool.
etcdctl_ put /vvm/pack/a "$(etcdctl_ get /vvm/pack/a --print-value-only |
  jq -c '.pool = [{"node": "n4", "disk": "d0"}]')" >/dev/null
check '.[0].name' a "$(ctl cluster map --json)" # the record with a pool still reads
start_node 3 n2
start_node 4 n3
start_node 5 n4
start_node 2 n1
n1=nbd://127.0.0.2:$port/pack/a
wait_log "${node_log[n4]}" "serving 1 pack from this node's disks"
nbdinfo --json "$n1" >"$tmpdir/info" || die "nbdinfo $n1: $(cat "$tmpdir/info")"
check '.exports[0].description' "pack a, forwarded to the pool n2, n3, n4 (epoch 1)" "$(cat "$tmpdir/info")"

writes() { grep -c "vvm: pwrite count=" "${node_log[$1]}" || true; }
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
grep -q "127.0.0.4:$port/pack/a@local is down: connection lost" "${node_log[n1]}" ||
  die "n1 does not say that n3's connection was lost"
echo "ok: n3 killed under fio through the pool: no client error"
echo "writes served when n3 was killed: ${at_kill[*]}; at the end: n2 $(writes n2) n4 $(writes n4)"
for n in n2 n4; do
  (($(writes $n) >= 100)) || die "$n took fewer than 100 of fio's writes: $(writes $n)"
done
(($(writes n2) > at_kill[1] && $(writes n4) > at_kill[5])) ||
  die "n2 and n4 did not both go on taking writes after n3 was killed"
echo "ok: the load was spread over n2, n3 and n4, and over n2 and n4 after the kill"
