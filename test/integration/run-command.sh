#!/usr/bin/env bash
# run-command.sh: the README's run command starts the whole system, serves the sample packs that
# nbdinfo --list and qemu-img info see, and Ctrl-C (SIGINT to its process group, as a terminal
# sends it) stops every process it started.
set -euo pipefail
set -m # job control: the run command gets its own process group, like a terminal's foreground job

src=${VVM_SOURCE_DIR:?run me from meson test}
build=${VVM_BUILD_DIR:?run me from meson test}
export PATH=/usr/bin:$PATH

tmp=$(mktemp -d)
run_pid=
cleanup() {
  [[ -n $run_pid ]] && kill -KILL -- "-$run_pid" 2>/dev/null || true
  pkill -KILL -f -- "$tmp" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# A free port: bind to 0 and read back what the kernel chose.
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

"$src/vvm-dev" run --no-install --no-build --build-dir "$build" --var "$tmp/var" --port "$port" \
  >"$tmp/run.out" 2>&1 &
run_pid=$!

uri=nbd://127.0.0.1:$port
for ((i = 0; i < 300; i++)); do
  grep -q 'Ctrl-C stops everything' "$tmp/run.out" && break
  kill -0 "$run_pid" 2>/dev/null || { cat "$tmp/run.out"; echo "FAIL: the run command exited"; exit 1; }
  sleep 0.1
done
grep -q 'Ctrl-C stops everything' "$tmp/run.out" || { cat "$tmp/run.out"; echo "FAIL: not ready"; exit 1; }

# It prints the URIs and the commands to try.
for want in "$uri/pack/" "nbdinfo --list $uri" "qemu-img info $uri/pack/" "nbd-client -l 127.0.0.1 $port"; do
  grep -qF -- "$want" "$tmp/run.out" || { cat "$tmp/run.out"; echo "FAIL: output lacks '$want'"; exit 1; }
done

# Every pack of the sample table is listed, and qemu-img sees the first one's size.
list=$(nbdinfo --list --json "$uri")
packs=$(awk '/^[ \t]*(#|$)/ { next } { print $1 }' "$tmp/var/packtab")
[[ -n $packs ]] || { echo "FAIL: the sample packtab has no packs"; exit 1; }
for p in $packs; do
  jq -e --arg n "pack/$p" '.exports | map(.["export-name"]) | index($n) != null' <<<"$list" >/dev/null ||
    { echo "$list"; echo "FAIL: pack/$p is not listed"; exit 1; }
done
first=$(head -n1 <<<"$packs")
want_size=$(jq -r --arg n "pack/$first" '.exports[] | select(.["export-name"] == $n) | .["export-size"]' <<<"$list")
got_size=$(qemu-img info --output=json "$uri/pack/$first" | jq -r '.["virtual-size"]')
[[ $got_size == "$want_size" && $got_size -gt 0 ]] ||
  { echo "FAIL: qemu-img info says $got_size bytes, nbdinfo $want_size"; exit 1; }
echo "ok: $(wc -w <<<"$packs") packs listed, qemu-img info sees pack/$first ($got_size bytes)"

# Ctrl-C: SIGINT to the whole process group, then everything it started is gone.
kill -INT -- "-$run_pid"
for ((i = 0; i < 100; i++)); do
  kill -0 "$run_pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$run_pid" 2>/dev/null; then echo "FAIL: the run command ignored SIGINT"; exit 1; fi
wait "$run_pid" || true
run_pid=
sleep 0.2
if pgrep -f -- "$tmp" >/dev/null; then
  pgrep -af -- "$tmp"
  echo "FAIL: processes left running after Ctrl-C"
  exit 1
fi
[[ ! -e $tmp/var/run/vvmd.sock ]] || { echo "FAIL: vvmd left its socket"; exit 1; }
echo "ok: Ctrl-C stopped every process"
