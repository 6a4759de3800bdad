#!/usr/bin/env bash
# cluster-pool-gate.sh: a pool node's own clients and the reconfiguration barrier, with a real
# etcd, three real nodes on 127.0.0.2-4 reaching pack a's disk (a shared file on this host standing
# in for a shared block device) as primary (n1), secondary (n2) and pool (n3), and fio:
#   - fio writes through n1, with a flush every few writes (a flush is slow, so n1 counts more
#     requests of its own and sends more to n2 and n3), while pack a is reconfigured again and
#     again (pack move back and forth, pack chmod): every barrier ends well under its 10 s timeout
#     (under 3 s, from the command's --json barrier_us), every node acknowledges each, and fio
#     ends with no error. A request n1 had sent to n2 or n3 used to count in n1's drain while n2 or
#     n3 held it for the same barrier: the two waited on each other until the timeout.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"
make_tmpdir
requires fio --version
requires jq --version

start_etcd
conf=$tmpdir/admin.conf
printf '[cluster]\netcd = %s\n' "$etcd_endpoint" >"$conf"
disk=$tmpdir/disk.img
truncate -s 128M "$disk"
port=$(pick_unused_port)
echo "a disk.img 0 64M shared root root 0666" >"$tmpdir/a.tab"
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
for ((i = 0; i < 100; i++)); do
  (($(writes n2) + $(writes n3) > before[1] + before[3])) && break
  sleep 0.1
done
((i < 100)) || die "n1 sent none of its clients' writes to n2 or n3 in 10 s"
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
