#!/usr/bin/env bash
# vv-opens.sh: many VVs open through NBD at once: bench/vv-opens.sh at 5,000, what a 2-core machine
# runs in about a minute with a sanitized build (VVM_VV_OPENS changes it), or fewer when the
# descriptor limit allows fewer (nbdkit takes three a VV, and keeps a sixteenth of its limit free).
# bench_vv_opens creates the VVs, then opens an NBD connection to each and reads a byte (the
# plugin registers the open with vvmd on a control connection of the NBD connection's own), and
# prints vvmd's and nbdkit's descriptors, memory and threads and vvmd's answers as they go:
#  - every VV is open at once and vvmd counts each of them, then none once they are closed;
#  - vvmd answers ping, a listing of every VV and status within 2 s each throughout, with its
#    threads unchanged (one event loop) and one descriptor an open;
#  - nbdkit takes one thread an NBD connection (the plugin's parallel=no on nbdkit 1.32) and three
#    descriptors (the client's socket, the control connection, the cache file), and gives them
#    all back when the connections close.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

count=${VVM_VV_OPENS:-5000}
hard=$(ulimit -Hn)
if [[ $hard != unlimited ]] && ((count > (hard - hard / 16) / 3 - 100)); then
  count=$(((hard - hard / 16) / 3 - 100))
  echo "note: $count VVs, as many as a descriptor limit of $hard lets nbdkit open"
fi
opens=$VVM_BUILD_DIR/bench/bench_vv_opens
make_tmpdir
vvm_conf cache.size=64G
start_vvmd
start_plugin "$tmpdir/nbd.sock"
out=$("$opens" --vvmd "unix:$tmpdir/run/vvmd.sock" --create A --socket "$tmpdir/nbd.sock" \
  --count "$count" --steps 4 --threads 4 --samples 3 --watch vvmd="$vvmd_pid" \
  --watch nbdkit="$nbdkit_pid") || die "bench_vv_opens: $out"
echo "$out"

# col ROW NAME: the value of column NAME in the row whose first field is ROW.
col() {
  awk -v row="$1" -v name="$2" '$1 == "open" { for (i = 1; i <= NF; i++) c[$i] = i; next }
    $1 == row { print $c[name]; exit }' <<<"$out"
}
grep -q "^opened $count of $count .* vvmd counted $count open; .* 0 left open in vvmd$" <<<"$out" ||
  die "not every VV open at once, or not counted: $(tail -n2 <<<"$out")"
[[ $(col "$count" vvmd-opens) == "$count" ]] || die "vvmd's status counted $(col "$count" vvmd-opens) opens"
[[ $(col closed vvmd-opens) == 0 ]] || die "vvmd still counts $(col closed vvmd-opens) opens once closed"
# check WHAT VALUE LOW HIGH
check_range() {
  (($2 >= $3 && $2 <= $4)) || die "$1 is $2, wanted $3 to $4"
  echo "ok: $1 $2 (within $3-$4)"
}
for row in $((count / 2)) "$count" closed; do
  for c in ping-max ls-ms status-ms; do
    v=$(col "$row" "$c")
    awk -v v="$v" 'BEGIN { exit !(v < 2000) }' || die "$c with $row open: $v ms"
  done
done
echo "ok: vvmd answered ping, ls and status within 2 s with up to $count VVs open"
base_fds=$(col 0 vvmd-fds) base_thr=$(col 0 vvmd-thr)
check_range "vvmd's threads with $count open" "$(col "$count" vvmd-thr)" "$base_thr" "$((base_thr + 2))"
check_range "vvmd's descriptors with $count open" "$(col "$count" vvmd-fds)" \
  "$((base_fds + count - 5))" "$((base_fds + count + 20))"
check_range "vvmd's descriptors once closed" "$(col closed vvmd-fds)" "$base_fds" "$((base_fds + 20))"
base_fds=$(col 0 nbdkit-fds) base_thr=$(col 0 nbdkit-thr)
check_range "nbdkit's threads with $count open" "$(col "$count" nbdkit-thr)" \
  "$((base_thr + count))" "$((base_thr + count + 10))"
check_range "nbdkit's descriptors with $count open" "$(col "$count" nbdkit-fds)" \
  "$((base_fds + 3 * count - 5))" "$((base_fds + 3 * count + 20))"
check_range "nbdkit's threads once closed" "$(col closed nbdkit-thr)" "$base_thr" "$((base_thr + 2))"
check_range "nbdkit's descriptors once closed" "$(col closed nbdkit-fds)" "$base_fds" "$((base_fds + 4))"
stop_daemon "$nbdkit_pid" nbdkit

# --- nbdkit near its descriptor limit: the plugin refuses new connections, and recovers ---
# nbdkit 1.32 at its limit retries accept() at once, forever, a log line each time, while new
# clients hang in their handshake. With 256 descriptors, 32 of them kept free, about 70 VVs fit
# (three descriptors each): the 150 asked for stop there, refused with a message, and nbdkit
# neither spins nor stops serving.
small=$tmpdir/nbd-small.sock
start_daemon nbdkit-small nbdinfo --list "nbd+unix:///?socket=$small" -- \
  prlimit --nofile=256:256 env ${VVM_NBDKIT_PRELOAD:+LD_PRELOAD=$VVM_NBDKIT_PRELOAD} \
  nbdkit -f --exit-with-parent -U "$small" "$VVM_PLUGIN" conf="$conf"
small_pid=$daemon_pid small_log=$daemon_log
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
before=$(cpu_ticks "$small_pid")
status=0
out=$(timeout 120 "$opens" --vvmd "unix:$tmpdir/run/vvmd.sock" --socket "$small" --count 150 \
  --steps 1 --threads 2 --samples 1 --watch nbdkit="$small_pid") || status=$?
echo "$out"
spent=$(($(cpu_ticks "$small_pid") - before))
((status == 1)) || die "bench_vv_opens with 150 VVs and 256 descriptors: exit $status, wanted 1 (refused)"
stopped=$(sed -n 's/^stopped at \([0-9]*\) of 150: .*/\1/p' <<<"$out")
[[ -n $stopped ]] || die "no refusal reported: $(tail -n2 <<<"$out")"
check_range "VVs open when nbdkit refused the next" "$stopped" 60 75
grep -q "nbdkit has [0-9]* of its 256 file descriptors open" "$small_log" ||
  die "nbdkit's log does not say why it refused: $(grep -m3 error "$small_log")"
accept_errors=$(grep -c "accept: Too many open files" "$small_log" || true)
echo "nbdkit: $spent ticks of CPU, $accept_errors failed accepts"
((accept_errors == 0)) || die "nbdkit ran out of descriptors: $accept_errors failed accepts"
((spent < 1000)) || die "nbdkit spent $spent ticks (1/100 s) of CPU on $stopped connections"
grep -q "0 left open in vvmd$" <<<"$out" || die "vvmd still counts opens: $(tail -n2 <<<"$out")"
# Once they closed, nbdkit serves again.
out=$(timeout 60 "$opens" --vvmd "unix:$tmpdir/run/vvmd.sock" --socket "$small" --count 20 \
  --steps 1 --threads 2 --samples 1) || die "after the refusals: $out"
echo "ok: 20 VVs open again after the refusals"
echo "PASS"
