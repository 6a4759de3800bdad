#!/usr/bin/env bash
# run-nodes.sh: `./vvm-dev run --nodes 3` starts a cluster on this host: one etcd and three nodes
# on 127.0.0.2-4, each with its own state folder, the sample packs mapped with primaries and
# secondaries spread over them. n1 serves every pack (forwarding those it does not hold); the
# printed kill command stops the demo pack's primary and a client of n1 carries on, reading what
# it wrote before; SIGTERM stops every process quickly; a second run keeps the mappings.
set -euo pipefail
set -m # job control: the run command gets its own process group, like a terminal's foreground job
source "$VVM_SOURCE_DIR/test/harness/functions.sh"
make_tmpdir
requires etcd --version
var=$tmpdir/var
port=$(pick_unused_port)
# etcd takes ETCD_PORT and ETCD_PORT + 1: find a pair that is free.
port_free() {
  /usr/bin/python3 -c 'import socket, sys; s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
}
for ((i = 0; i < 20; i++)); do
  etcd_port=$(pick_unused_port)
  port_free $((etcd_port + 1)) && break
done
conf=$var/cluster/vvm.conf # written by the run command

run_pid=
kill_run() { [[ -z $run_pid ]] || kill -KILL -- "-$run_pid" 2>/dev/null || true; }
cleanup_fn kill_run

# start_run N: ./vvm-dev run --nodes 3 in the background, output in $tmpdir/run-N.out; returns
# once it says it is ready.
start_run() {
  local out=$tmpdir/run-$1.out
  "$VVM_SOURCE_DIR/vvm-dev" run --nodes 3 --no-install --no-build --build-dir "$VVM_BUILD_DIR" \
    --var "$var" --port "$port" --etcd-port "$etcd_port" </dev/null >"$out" 2>&1 &
  run_pid=$!
  _vvm_logs+=("run=$out" "n1=$var/log/node-n1.log" "n2=$var/log/node-n2.log"
    "n3=$var/log/node-n3.log" "etcd=$var/log/etcd.log")
  wait_run_ready "$out" "$run_pid"
  run_out=$out
}

# stop_run: SIGTERM to the run command; every process it listed ends within 20 s.
stop_run() {
  local started i p
  started=$(grep -Eo '^  [a-z0-9-]+ +pid [0-9]+$' "$run_out" | awk '{ print $3 }')
  kill -TERM "$run_pid"
  for ((i = 0; i < 200; i++)); do
    kill -0 "$run_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$run_pid" 2>/dev/null && die "the run command ignored SIGTERM for 20 s"
  wait "$run_pid" || true
  run_pid=
  for p in $started; do
    kill -0 "$p" 2>/dev/null && die "pid $p outlived the run command"
  done
  grep -q 'stopped; state kept in' "$run_out" || die "the run command did not say it stopped"
  ! grep -q 'ignored SIGTERM' "$run_out" || die "a process had to be killed: $(cat "$run_out")"
}

start_run 1
for n in 1 2 3; do
  grep -Eq "^  node-n$n +pid [0-9]+$" "$run_out" || die "node n$n is not listed: $(cat "$run_out")"
  [[ -s $var/nodes/n$n/vvm.conf ]] || die "n$n has no vvm.conf of its own"
done
map=$("$VVM_BUILD_DIR/client/vvctl" --conf "$conf" cluster map --json)
check 'length' 3 "$map"
check '[.[].primary.node] | sort | join(" ")' "n1 n2 n3" "$map"
check '[.[].secondary.node] | sort | join(" ")' "n1 n2 n3" "$map"
check '[.[] | select(.primary.node == .secondary.node)] | length' 0 "$map"
list=$(nbdinfo --list --json "nbd://127.0.0.2:$port")
check '[.exports[]."export-name" | select(endswith("@ro") | not)] | sort | join(" ")' \
  "pack/home pack/scratch pack/tools" "$list"

# The demo: a writable pack n1 forwards, and the command that kills its primary.
uri=$(grep -Eo "nbd://127\.0\.0\.2:$port/pack/[a-z]+" "$run_out" | head -n1)
[[ -n $uri ]] || die "the run command names no URI on n1 to attach to"
kill_line=$(grep -E '^  kill -9 [0-9]+ ' "$run_out") || die "the run command prints no kill command"
primary_pid=$(awk '{ print $3 }' <<<"$kill_line")
io "$uri" -c "write -P 0x3c 0 2M" -c "read -P 0x3c 0 2M"
kill -KILL "$primary_pid"
io "$uri" -c "read -P 0x3c 0 2M" -c "write -P 0x3d 2M 1M" -c "read -P 0x3d 2M 1M"
grep -q "is down: connection lost" "$var/log/node-n1.log" || die "n1 did not go to the secondary"
wait_log "$run_out" "node pid $primary_pid exited; the other nodes carry on"
echo "ok: the primary killed, a client of n1 carries on"
stop_run
echo "ok: SIGTERM stopped the cluster"

start_run 2
! grep -q "mapped pack" "$run_out" || die "the second run mapped the packs again: $(cat "$run_out")"
io "$uri" -r -c "read -P 0x3c 0 2M" -c "read -P 0x3d 2M 1M"
stop_run
echo "ok: a second run keeps the mappings and the data"
