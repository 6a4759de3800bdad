#!/usr/bin/env bash
# cluster-pool-gate.sh: a pool node's own clients and the reconfiguration barrier, with a real
# etcd, three real nodes on 127.0.0.2-4 reaching pack a's disk (a shared file on this host standing
# in for a shared block device) as primary (n1), secondary (n2) and pool (n3), and fio:
#   - fio writes through n1, with a flush every few writes (a flush is slow, so n1 counts more
#     requests of its own and sends more to n2 and n3), while pack a is reconfigured again and
#     again (pack move back and forth, pack chmod): every barrier ends well under its 10 s timeout
#     (under 3 s, from the command's --json barrier_us), every node acknowledges each, and fio
#     ends with no error. A request n1 had sent to n2 or n3 used to count in n1's drain while n2 or
#     n3 held it for the same barrier: the two waited on each other until the timeout;
#   - n1 cut off etcd (its relay to etcd SIGSTOPped) under fio verify through it: n1 fences
#     itself, sends its clients' writes and reads to n2 and n3 instead (it says so), and fio ends
#     with no error; a second fio through fenced n1: n2 and n3 take every write n1 takes, so n1
#     served none itself, and n2 reads them back.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"
make_tmpdir
requires fio --version
requires jq --version

start_cluster_disk
ctl cluster import "$tmpdir/a.tab" --primary n1 --secondary n2 --disk d0 >/dev/null
# n1 reaches etcd through a TCP relay of its own, which a test can stop (SIGSTOP) to cut n1, and
# n1 alone, off etcd.
relay_port=$(pick_unused_port)
/usr/bin/python3 - "$relay_port" "$etcd_endpoint" >"$tmpdir/relay.out" 2>&1 <<'PY' &
import asyncio, sys
port = int(sys.argv[1])
host, target = sys.argv[2].rsplit(":", 1)
async def pipe(r, w):
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    except OSError:
        pass
    finally:
        w.close()
async def serve(r, w):
    try:
        ur, uw = await asyncio.open_connection(host, int(target))
    except OSError:
        w.close()
        return
    await asyncio.gather(pipe(r, uw), pipe(ur, w))
async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", port)
    print("ready", flush=True)
    await server.serve_forever()
asyncio.run(main())
PY
relay_pid=$!
cleanup_fn kill_quietly "$relay_pid"
for ((i = 0; i < 50; i++)); do
  grep -q ready "$tmpdir/relay.out" && break
  sleep 0.1
done
((i < 50)) || die "the relay to etcd did not start: $(cat "$tmpdir/relay.out")"
etcd_endpoint=127.0.0.1:$relay_port start_node 2 n1
start_node 3 n2
start_node 4 n3
for ((i = 0; i < 50; i++)); do # a node listens before it has joined
  [[ $(ctl cluster nodes --json | jq length) == 3 ]] && break
  sleep 0.1
done
((i < 50)) || die "three nodes not registered: $(ctl cluster nodes)"
ctl pack set-pool a n3 >/dev/null || die "pack set-pool a n3 failed"
n1=nbd://127.0.0.2:$port/pack/a
writes() { grep -c "vvm: pwrite count=" "${node_log[$1]}" || true; }
# wait_sent_on: within 10 s, n2 and n3 have served writes since `before` (n2 N n3 N): n1 sends
# some of its clients' writes on.
wait_sent_on() {
  local i
  for ((i = 0; i < 100; i++)); do
    (($(writes n2) + $(writes n3) > before[1] + before[3])) && return 0
    sleep 0.1
  done
  die "n1 sent none of its clients' writes to n2 or n3 in 10 s"
}

# --- reconfigurations under a pool node's own clients ---
# Eight connections to n1 write at queue depth 32 and flush every 4 writes; the pack is moved to
# n2 and back, and chmodded, while they do. n1 stays a server of the pack throughout (primary or
# secondary, on the same disk), so its clients' connections go on.
before=(n2 "$(writes n2)" n3 "$(writes n3)")
fio --name=gate --ioengine=nbd --uri="$n1" --numjobs=8 --size=$((4 * M)) \
  --offset_increment=$((4 * M)) --rw=randwrite --bs=4k --iodepth=32 --fsync=4 --loops=8 \
  --verify=crc32c --do_verify=1 --verify_fatal=1 --group_reporting >"$tmpdir/fio-gate.out" 2>&1 &
fio_pid=$!
cleanup_fn kill_quietly "$fio_pid"
# The barrier is at stake only once n1 sends some of its clients' requests to the others.
wait_sent_on
barriers=()
steps=(move:n2 move:n1 chmod:0664 chmod:0666 move:n2 move:n1 chmod:0664 chmod:0666)
for step in "${steps[@]}"; do
  kill -0 "$fio_pid" 2>/dev/null || break
  case $step in
  move:*) cmd=(pack move a --primary "${step#move:}") ;;
  chmod:*) cmd=(pack chmod a "${step#chmod:}") ;;
  esac
  out=$(ctl "${cmd[@]}" --json 2>&1) || die "${cmd[*]} under fio through n1: $out"
  [[ $(jq -r '.acked | join(",")' <<<"$out") == n1,n2,n3 ]] || die "not every node acked: $out"
  barrier_ms=$(($(jq -r .barrier_us <<<"$out") / 1000))
  barriers+=("$barrier_ms")
  ((barrier_ms < 3000)) || die "${cmd[*]}: the barrier took $barrier_ms ms under fio through n1"
  sleep 0.2
done
((${#barriers[@]} >= 4)) || die "fio ended after ${#barriers[@]} reconfigurations: $(cat "$tmpdir/fio-gate.out")"
wait "$fio_pid" || die "fio through n1 failed across the reconfigurations: $(cat "$tmpdir/fio-gate.out")"
grep -q 'err= 0' "$tmpdir/fio-gate.out" || die "fio reported errors: $(cat "$tmpdir/fio-gate.out")"
echo "n1's clients' writes served by n2, n3: $(($(writes n2) - before[1])), $(($(writes n3) - before[3]))"
echo "ok: ${#barriers[@]} reconfigurations under fio through pool node n1, barriers (ms): ${barriers[*]}"

# --- a fenced pool node's clients go on through the others ---
# n1 reaches etcd only through its relay (started above), which is SIGSTOPped in the middle of fio
# verify through n1: n1 cannot renew its lease and fences itself, while n2 and n3 keep theirs.
# Fenced, n1 must not write to the disk, but n2 and n3 may: n1 sends its clients' writes (and
# reads) to them, and fio ends with no error. It used to refuse its clients' writes (ESHUTDOWN).
# Then, still fenced, a second fio through n1: every write n1 takes is one n2 or n3 takes (nbdkit
# -v logs each request a node receives), so n1 served none itself; and another node reads back
# what it wrote.
# keeper reads through n1 once fenced (from the others), which keeps n1's forwarder to them open
# between the two fio runs.
connect_client keeper "$n1"
before=(n2 "$(writes n2)" n3 "$(writes n3)")
fio --name=fenced --ioengine=nbd --uri="$n1" --numjobs=2 --size=$((8 * M)) \
  --offset_increment=$((8 * M)) --offset=$((32 * M)) --rw=randwrite --bs=4k --iodepth=8 \
  --fsync=4 --rate_iops=400 --verify=crc32c --do_verify=1 --verify_fatal=1 --group_reporting \
  >"$tmpdir/fio-fenced.out" 2>&1 {_vvm_client_fd[keeper]}>&- &
fio_pid=$!
cleanup_fn kill_quietly "$fio_pid"
wait_sent_on
cleanup_fn kill -CONT "$relay_pid"
kill -STOP "$relay_pid"
wait_log "${node_log[n1]}" "error: cluster membership lost: /vvm/node/n1: "
kill -0 "$fio_pid" 2>/dev/null || die "fio ended before n1 fenced itself: $(cat "$tmpdir/fio-fenced.out")"
client_read keeper
wait "$fio_pid" || die "fio through n1 failed when n1 fenced itself: $(cat "$tmpdir/fio-fenced.out")"
grep -q 'err= 0' "$tmpdir/fio-fenced.out" || die "fio reported errors: $(cat "$tmpdir/fio-fenced.out")"
grep -Eq "pack/a: this node's cluster membership lease is lost \(self-fenced\): its own clients' requests go to the pack's other servers \(pack a, .*\); it serves no write itself" "${node_log[n1]}" ||
  die "fenced n1 does not say that it sent its clients' requests to the others"
! grep -Eq "(write|trim|zero) refused: this node's cluster membership lease is lost" "${node_log[n1]}" ||
  die "fenced n1 refused its clients' writes: $(grep refused "${node_log[n1]}")"
echo "ok: n1 fenced itself under fio verify through it; its clients' requests went to n2 and n3, no client error"
at=(n1 "$(writes n1)" n2 "$(writes n2)" n3 "$(writes n3)")
fio --name=after --ioengine=nbd --uri="$n1" --size=$((8 * M)) --offset=$((48 * M)) --rw=randwrite \
  --bs=4k --iodepth=8 --verify=crc32c --do_verify=1 --verify_fatal=1 \
  >"$tmpdir/fio-after.out" 2>&1 {_vvm_client_fd[keeper]}>&- ||
  die "fio through fenced n1 failed: $(cat "$tmpdir/fio-after.out")"
grep -Eq "(membership lost|self-fenced)" "${node_log[n1]}" || die "n1 did not fence itself"
took=(n1 $(($(writes n1) - at[1])) n2 $(($(writes n2) - at[3])) n3 $(($(writes n3) - at[5])))
echo "writes of fenced n1's client (2048) taken by: ${took[*]}"
((took[1] >= 2048)) || die "n1 took ${took[1]} of fio's 2048 writes"
((took[1] == took[3] + took[5])) ||
  die "fenced n1 served $((took[1] - took[3] - took[5])) of its clients' writes itself (n1 took ${took[1]}, n2 ${took[3]}, n3 ${took[5]})"
fio --name=after --ioengine=nbd --uri="nbd://127.0.0.3:$port/pack/a" --size=$((8 * M)) \
  --offset=$((48 * M)) --rw=randwrite --bs=4k --iodepth=8 --verify=crc32c --verify_only \
  >"$tmpdir/fio-check.out" 2>&1 {_vvm_client_fd[keeper]}>&- ||
  die "n2 does not read back what fenced n1's client wrote: $(cat "$tmpdir/fio-check.out")"
kill -CONT "$relay_pid"
echo "ok: fenced n1 served none of its client's writes itself (n2 and n3 took them all); n2 reads them back"
