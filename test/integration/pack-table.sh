#!/usr/bin/env bash
# pack-table.sh: the pack table changes under a running nbdkit: a new pack is served at once, a
# removed ("spun down") pack refuses new connections while a connection already open keeps
# working, a bad new table keeps the old one and is reported once. Every kind of bad table stops
# nbdkit at start with the file, the line and the reason, and `vvctl pack check` reports exactly
# the same. `vvctl pack ls` shows each pack and who holds it now.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

vvctl=$VVM_BUILD_DIR/client/vvctl
make_tmpdir
truncate -s $((32 * M)) "$tmpdir/disk.img"
tab=$tmpdir/packtab
holds=$tmpdir/holds
# put_table LINE...: replace the table the way an administrator should: write, then rename.
put_table() {
  printf '%s\n' "$@" >"$tab.new"
  mv "$tab.new" "$tab"
}
uri() { echo "nbd+unix:///$1?socket=$tmpdir/s.sock"; }
list() { nbdinfo --list --json "nbd+unix://?socket=$tmpdir/s.sock" | jq -r '[.exports[]."export-name"] | join(" ")'; }

put_table "a disk.img 0  8M shared    root root 0666" \
  "b disk.img 8M 8M exclusive root root 0666"
start_nbdkit "$tmpdir/s.sock" "$VVM_PLUGIN" packtab="$tab" holds="$holds"
[[ $(list) == "pack/a pack/a@ro pack/b pack/b@ro" ]] || die "first listing: $(list)"

# 1. vvctl pack ls: nobody holds anything; then a client holds b exclusively.
out=$("$vvctl" pack ls "$tab" --holds "$holds")
grep -Eq '^b +8M +exclusive +'"$tmpdir"'/disk.img:8M +root:root 0666 +-$' <<<"$out" ||
  die "pack ls, nobody holding: $out"
connect_client holder "$(uri pack/b)"
out=$("$vvctl" pack ls "$tab" --holds "$holds")
grep -Eq "^b .* exclusive by uid 0 since [0-9T:-]+Z \(nbdkit pid $nbdkit_pid on " <<<"$out" ||
  die "pack ls does not show the holder of b: $out"
grep -Eq '^a .* -$' <<<"$out" || die "pack ls shows a holder of a: $out"
echo "ok: vvctl pack ls shows the holder"

# 2. A new table: c added, b removed. New connections see it; the open one keeps b.
put_table "a disk.img 0   8M shared root root 0666" \
  "c disk.img 16M 8M shared root root 0666"
[[ $(list) == "pack/a pack/a@ro pack/c pack/c@ro" ]] || die "listing after the change: $(list)"
qemu-io -f raw -c 'write -P 0x3c 0 1M' -c 'read -P 0x3c 0 1M' "$(uri pack/c)" >/dev/null ||
  die "the added pack c does not take writes"
if out=$(qemu-io -f raw -r -c 'read 0 512' "$(uri pack/b)" 2>&1); then
  die "the removed pack b still opens: $out"
fi
grep -qF "unknown export 'pack/b': no such pack in $tab (spun down?)" "$nbdkit_log" ||
  die "nbdkit does not say why pack/b was refused"
client_read holder # the connection opened before the change still reads b
disconnect_client holder
echo "ok: reload adds c, spins b down, the open connection to b keeps working"

# 3. A bad table keeps the old one, and the error is logged once however often it is met.
printf '%s\n' "a disk.img 0 8M shared root root" >"$tab.new"
mv "$tab.new" "$tab"
for _ in 1 2 3; do
  qemu-io -f raw -r -c 'read 0 512' "$(uri pack/c@ro)" >/dev/null || die "the old table is gone"
done
errors=$(grep -c "$tab:1: pack 'a': 7 fields where 8 belong" "$nbdkit_log" || true)
[[ $errors == 1 ]] || die "the bad table was reported $errors times, not once"
grep -q "still serving the previous table" "$nbdkit_log" || die "the log does not say the old table stays"
put_table "a disk.img 0 8M shared root root 0666"
[[ $(list) == "pack/a pack/a@ro" ]] || die "the fixed table is not served: $(list)"
echo "ok: a bad table keeps the old one, reported once"

# A table whose backing is too short is bad too; so is a table that is gone. Each keeps the
# table served before, and each is reported once.
put_table "a disk.img 0 8M shared root root 0666" "d disk.img 30M 4M shared root root 0666"
list >/dev/null
list >/dev/null
errors=$(grep -c "$tab:2: pack 'd': ends past the end of its backing" "$nbdkit_log" || true)
[[ $errors == 1 ]] || die "the pack past the end was reported $errors times, not once"
mv "$tab" "$tab.away"
[[ $(list) == "pack/a pack/a@ro" ]] || die "the table went with the file: $(list)"
list >/dev/null
errors=$(grep -c "$tab: cannot read: No such file or directory (still serving the previous table)" \
  "$nbdkit_log" || true)
[[ $errors == 1 ]] || die "the missing packtab was reported $errors times, not once"
put_table "a disk.img 0 8M shared root root 0666" "e disk.img 8M 8M ro root root 0644"
[[ $(list) == "pack/a pack/a@ro pack/e pack/e@ro" ]] || die "the table put back is not served: $(list)"
echo "ok: a pack past the end and a missing packtab keep the old table, reported once"

# With conf=, vvm.conf is read once at start and the packtab it names is watched.
printf '%s\n' "[global]" "state-dir = $tmpdir/state" "[plugin]" "packtab = $tmpdir/conf-packtab" \
  >"$tmpdir/vvm.conf"
printf '%s\n' "f disk.img 24M 4M shared root root 0666" >"$tmpdir/conf-packtab"
start_nbdkit "$tmpdir/c.sock" "$VVM_PLUGIN" conf="$tmpdir/vvm.conf" holds="$holds"
clist() { nbdinfo --list --json "nbd+unix://?socket=$tmpdir/c.sock" | jq -r '[.exports[]."export-name"] | join(" ")'; }
[[ $(clist) == "pack/f pack/f@ro" ]] || die "conf=: first listing: $(clist)"
# vvctl finds the same packtab through --conf.
out=$("$vvctl" --conf "$tmpdir/vvm.conf" pack check) || die "pack check --conf: $out"
[[ $out == "$tmpdir/conf-packtab: ok: 1 pack in 1 backing" ]] || die "pack check --conf: $out"
out=$("$vvctl" --conf "$tmpdir/vvm.conf" pack ls) || die "pack ls --conf: $out"
grep -Eq '^f +4M +shared +'"$tmpdir"'/disk.img:24M +root:root 0666 +-$' <<<"$out" ||
  die "pack ls --conf: $out"
echo "this is not an ini file" >"$tmpdir/vvm.conf"
printf '%s\n' "f disk.img 24M 4M shared root root 0666" "g disk.img 28M 4M ro root root 0644" \
  >"$tmpdir/conf-packtab.new"
mv "$tmpdir/conf-packtab.new" "$tmpdir/conf-packtab"
[[ $(clist) == "pack/f pack/f@ro pack/g pack/g@ro" ]] || die "conf=: after the change: $(clist)"
! grep -q "error: .*vvm.conf" "$nbdkit_log" || die "conf=: vvm.conf was read again: $(grep vvm.conf "$nbdkit_log")"
echo "ok: conf= watches the packtab, not vvm.conf"

# 4. Every bad table stops nbdkit at start and vvctl pack check says the same.
ln -s disk.img "$tmpdir/link.img"
bad() { # bad LABEL PATTERN LINE...
  local label=$1 pattern=$2 f=$tmpdir/bad-$1.tab status=0 err_nbdkit err_vvctl
  shift 2
  printf '%s\n' "$@" >"$f"
  timeout 20 env ${VVM_NBDKIT_PRELOAD:+LD_PRELOAD=$VVM_NBDKIT_PRELOAD} nbdkit -f \
    -U "$tmpdir/bad.sock" "$VVM_PLUGIN" packtab="$f" >/dev/null 2>"$tmpdir/err" || status=$?
  ((status != 0)) || die "$label: nbdkit started on a bad table"
  err_nbdkit=$(sed -n 's/^nbdkit: error: //p' "$tmpdir/err")
  grep -Eq -- "$pattern" <<<"$err_nbdkit" || die "$label: nbdkit said '$(cat "$tmpdir/err")'"
  status=0
  err_vvctl=$("$vvctl" pack check "$f" 2>&1) || status=$?
  ((status == 2)) || die "$label: vvctl pack check exited $status: $err_vvctl"
  [[ ${err_vvctl#vvctl: } == "$err_nbdkit" ]] ||
    die "$label: vvctl says '$err_vvctl', nbdkit '$err_nbdkit'"
  echo "ok: $label: $err_nbdkit"
}
bad malformed "$tmpdir/bad-malformed.tab:2: pack 'y': 7 fields" \
  "x disk.img 0 1M ro root root 0644" "y disk.img 1M 1M ro root 0644"
bad duplicate "bad-duplicate.tab:2: pack 'x': name already used on line 1" \
  "x disk.img 0 1M ro root root 0644" "x disk.img 1M 1M ro root root 0644"
bad overlap "bad-overlap.tab:2: pack 'y': .*overlap pack 'x'" \
  "x disk.img 0 2M ro root root 0644" "y disk.img 1M 2M ro root root 0644"
bad symlink "bad-symlink.tab:2: pack 'y': .*link.img overlap pack 'x' \(line 1\), whose backing .*disk.img is the same file" \
  "x disk.img 0 2M ro root root 0644" "y link.img 1M 2M ro root root 0644"
bad past-end "bad-past-end.tab:1: pack 'x': ends past the end of its backing: .*disk.img is 33554432 bytes long" \
  "x disk.img 30M 4M ro root root 0644"
bad missing "bad-missing.tab:1: pack 'x': backing .*nope.img: No such file or directory" \
  "x nope.img 0 1M ro root root 0644"
put_table "a disk.img 0 8M shared root root 0666" "l link.img 8M 8M ro root root 0644" \
  "o other.img 0 1M ro root root 0644"
truncate -s 1M "$tmpdir/other.img"
out=$("$vvctl" pack check "$tab") || die "pack check of a good table failed: $out"
[[ $out == "$tab: ok: 3 packs in 2 backings" ]] || die "pack check of a good table: $out"
echo "ok: $out"
echo "pack-table: all checks passed"
