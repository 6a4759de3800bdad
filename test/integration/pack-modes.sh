#!/usr/bin/env bash
# pack-modes.sh: pack modes between real clients. An exclusive pack is held by one identity
# (here: one uid on the Unix socket) from its first I/O until its last connection closes: another
# uid is refused with a message naming the pack, the holder and its mode, and is granted the pack
# after the release; the holder's own extra connections (nbdcopy -C 4) are fine. A writable open
# of a pack someone holds read-only is refused. @ro refuses writes. nbdinfo --list neither takes
# nor breaks a hold. Shared packs take many writers. Two nbdkit processes on one backing agree,
# and the refusal names the other process's holder from the holds records.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir
chmod 755 "$tmpdir" # the unprivileged uid below must reach the sockets
truncate -s $((32 * M)) "$tmpdir/disk.img"
printf '%s\n' \
  "a disk.img 0   8M shared    root root 0666" \
  "c disk.img 16M 8M exclusive root root 0666" >"$tmpdir/packtab"
holds=$tmpdir/holds
start_nbdkit "$tmpdir/s1.sock" "$VVM_PLUGIN" packtab="$tmpdir/packtab" holds="$holds"
log1=$nbdkit_log
chmod 777 "$tmpdir/s1.sock"
uri() { echo "nbd+unix:///$1?socket=$tmpdir/${2:-s1}.sock"; }
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
nobody_uid=$(id -u nobody)

# expect_io OK|REFUSED LABEL CMD...: CMD (a qemu-io) succeeds, or fails with EPERM.
expect_io() {
  local want=$1 label=$2 out status=0
  shift 2
  out=$("$@" 2>&1) || status=$?
  if [[ $want == OK ]]; then
    ((status == 0)) && ! grep -q 'failed' <<<"$out" || die "$label: refused: $out"
  else
    grep -q 'Operation not permitted' <<<"$out" || die "$label: not refused ($status): $out"
  fi
  echo "ok: $label"
}

# hold NAME URI [PREFIX...]: a client that keeps a connection open after one read, so holds it;
# release NAME ends it and waits until nbdkit has dropped the hold records.
hold() { connect_client "$@"; }
release() {
  disconnect_client "$1"
  wait_no_holds
}
# wait_no_holds: nbdkit ends a hold when it notices the client has gone, a moment after the
# client exits; wait (up to 5 s) until no record is left, else fail.
wait_no_holds() {
  for ((i = 0; i < 50; i++)); do
    [[ -z $(ls "$holds" 2>/dev/null) ]] && return 0
    sleep 0.1
  done
  die "hold records left after every client left: $(ls "$holds")"
}

# 1. Exclusive: root holds pack/c; nobody is refused, by name, even after a listing.
hold root_c "$(uri pack/c)"
grep -q "kind=exclusive.holder=uid 0" "$holds"/c.*.hold || die "no hold record: $(cat "$holds"/*)"
expect_io REFUSED "nobody refused pack/c held by root" as_nobody qemu-io -f raw -c 'read 0 4k' "$(uri pack/c)"
grep -q "pack 'c' is held exclusive by uid 0 since .*: uid $nobody_uid cannot have it" "$log1" ||
  die "nbdkit's log does not name the pack and the holder"
expect_io REFUSED "nobody refused pack/c@ro too" as_nobody qemu-io -f raw -r -c 'read 0 4k' "$(uri pack/c@ro)"
names=$(as_nobody nbdinfo --list --json "nbd+unix://?socket=$tmpdir/s1.sock" | jq -r '.exports[]."export-name"' | tr '\n' ' ')
[[ $names == *"pack/c "* ]] || die "a held pack is not listed: $names"
expect_io REFUSED "still refused after the listing" as_nobody qemu-io -f raw -c 'read 0 4k' "$(uri pack/c)"
# The holder's own extra connections: multi-conn copy in and out.
head -c $((8 * M)) /dev/urandom >"$tmpdir/in8"
nbdcopy --connections=4 "$tmpdir/in8" "$(uri pack/c)" || die "the holder's nbdcopy -C 4 failed"
nbdcopy --connections=4 "$(uri pack/c)" "$tmpdir/out8" && cmp "$tmpdir/in8" "$tmpdir/out8" ||
  die "the holder's copy did not round-trip"
release root_c
expect_io OK "nobody granted pack/c after the release" as_nobody qemu-io -f raw -c 'write -P 7 0 4k' "$(uri pack/c)"
wait_no_holds

# 1b. Only data takes a hold. A connection of nobody that has sent no command yet, a listing and
# an nbdinfo (handshake only) leave pack/c free, and root holds it. nobody's first command is then
# refused, and so is its next, even once root has let go: a connection keeps the answer it got.
# A new connection of nobody is granted.
mkfifo "$tmpdir/idle.fifo"
as_nobody nbdsh -u "$(uri pack/c)" -c '
import errno, sys
print("connected", flush=True)
for line in sys.stdin:
    try:
        h.pread(512, 0)
        print("granted", flush=True)
    except nbd.Error as e:
        print("refused", e.errnum == errno.EPERM, flush=True)
' <"$tmpdir/idle.fifo" >"$tmpdir/idle.out" 2>&1 &
idle_pid=$!
exec {idle_fd}>"$tmpdir/idle.fifo"
end_idle() {
  [[ -n ${idle_fd:-} ]] && exec {idle_fd}>&-
  idle_fd=
  wait "$idle_pid" 2>/dev/null || true
}
cleanup_fn end_idle
# idle_says N TEXT: the idle client's Nth line of output is TEXT.
idle_says() {
  for ((i = 0; i < 100; i++)); do
    [[ $(sed -n "$1p" "$tmpdir/idle.out") == "$2" ]] && return 0
    kill -0 "$idle_pid" 2>/dev/null || break
    sleep 0.1
  done
  die "the idle client's line $1 is not '$2': $(cat "$tmpdir/idle.out")"
}
idle_says 1 connected
as_nobody nbdinfo --list "nbd+unix://?socket=$tmpdir/s1.sock" >/dev/null
# --no-content: nbdinfo otherwise reads the first sectors to guess what the disk holds.
as_nobody nbdinfo --no-content "$(uri pack/c)" >/dev/null
[[ -z $(ls "$holds") ]] || die "a connection without data took a hold: $(cat "$holds"/*)"
hold root_c_1b "$(uri pack/c)"
echo >&"$idle_fd"
idle_says 2 "refused True"
release root_c_1b
echo >&"$idle_fd"
idle_says 3 "refused True"
expect_io OK "a new connection of nobody is granted pack/c" \
  as_nobody qemu-io -f raw -c 'read 0 4k' "$(uri pack/c)"
end_idle
wait_no_holds
echo "ok: only data takes a hold, and a refused connection stays refused"

# 2. A writable open of a pack someone holds read-only is refused; readers share.
hold root_a_ro "$(uri pack/a@ro)"
expect_io REFUSED "nobody may not write pack/a while root reads pack/a@ro" \
  as_nobody qemu-io -f raw -c 'write 0 4k' "$(uri pack/a)"
expect_io OK "nobody may read pack/a@ro beside root" as_nobody qemu-io -f raw -r -c 'read 0 4k' "$(uri pack/a@ro)"
release root_a_ro

# 3. @ro refuses writes.
out=$(qemu-io -f raw -c 'write 0 4k' "$(uri pack/a@ro)" 2>&1) && die "pack/a@ro took a write: $out"
grep -qi 'read-only\|permission denied\|not permitted' <<<"$out" || die "pack/a@ro write: $out"
echo "ok: pack/a@ro refuses writes"

# 4. Shared: two identities write at once.
hold root_a "$(uri pack/a)"
expect_io OK "nobody writes shared pack/a beside root" as_nobody qemu-io -f raw -c 'write -P 9 4M 4k' "$(uri pack/a)"
release root_a

# 5. A second nbdkit on the same backing honours the first one's holds, and names the holder.
start_nbdkit "$tmpdir/s2.sock" "$VVM_PLUGIN" packtab="$tmpdir/packtab" holds="$holds"
log2=$nbdkit_log
pid1=$(cat "$tmpdir"/nbdkit1.pid)
hold root_c2 "$(uri pack/c)"
expect_io REFUSED "pack/c through the second nbdkit while the first holds it" \
  qemu-io -f raw -c 'read 0 4k' "$(uri pack/c s2)"
grep -q "pack 'c' is held exclusive by uid 0 since .* (nbdkit pid $pid1 on " "$log2" ||
  die "the second nbdkit does not name the first one's holder: $(grep error "$log2")"
expect_io OK "pack/a through the second nbdkit is free" qemu-io -f raw -c 'read 0 4k' "$(uri pack/a s2)"
release root_c2
expect_io OK "pack/c through the second nbdkit after the release" \
  qemu-io -f raw -c 'write -P 5 0 4k' "$(uri pack/c s2)"
# 6. Over TCP a client is its host: a second host is refused while the first holds pack/c, and
# the first host's several connections are one holder. The second host is 127.0.0.2, a source
# address the client binds before handing the socket to libnbd.
port=$(pick_unused_port)
start_nbdkit - -i 127.0.0.1 -p "$port" "$VVM_PLUGIN" packtab="$tmpdir/packtab" holds="$holds"
log3=$nbdkit_log
connect_client tcp_holder "nbd://127.0.0.1:$port/pack/c"
qemu-io -f raw -c 'read 0 4k' "nbd://127.0.0.1:$port/pack/c" >/dev/null ||
  die "a second connection from the holding host was refused"
out=$(/usr/bin/python3 - "$port" <<'PY' 2>&1
import errno, nbd, socket, sys
s = socket.socket()
s.bind(("127.0.0.2", 0))
s.connect(("127.0.0.1", int(sys.argv[1])))
h = nbd.NBD()
h.set_export_name("pack/c")
h.connect_socket(s.detach())
try:
    h.pread(512, 0)
    print("granted")
except nbd.Error as e:
    print("refused", e.errnum == errno.EPERM)
PY
)
[[ $out == "refused True" ]] || die "host 127.0.0.2 while 127.0.0.1 holds pack/c: $out"
grep -q "pack 'c' is held exclusive by host 127.0.0.1 since .*: host 127.0.0.2 cannot have it" \
  "$log3" || die "the TCP refusal does not name both hosts"
disconnect_client tcp_holder
echo "ok: over TCP the holder is the host"
echo "pack-modes: all checks passed"
