#!/usr/bin/env bash
# pack-permissions.sh: who may open a pack. On a Unix socket the table's owner, group and mode
# bits decide against the client's uid, gid and supplementary groups (clients run as another uid
# through setpriv), with root allowed everything; @ro needs only r. Over TCP with conf=, only the
# hosts in vvm.conf's [vvmd] allow-host may connect.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir
chmod 755 "$tmpdir"
truncate -s $((16 * M)) "$tmpdir/disk.img"
printf '%s\n' \
  "rootonly disk.img 0  1M shared root   root    0600" \
  "grp      disk.img 1M 1M shared root   nogroup 0640" \
  "other    disk.img 2M 1M shared root   root    rw-r--r--" \
  "open     disk.img 3M 1M shared root   root    0666" \
  "mine     disk.img 4M 1M shared nobody root    0600" \
  "disk     disk.img 5M 1M shared root   disk    0660" >"$tmpdir/packtab"
start_nbdkit "$tmpdir/s.sock" "$VVM_PLUGIN" packtab="$tmpdir/packtab" holds="$tmpdir/holds"
chmod 777 "$tmpdir/s.sock"
uri() { echo "nbd+unix:///$1?socket=$tmpdir/s.sock"; }
nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
daemon=(setpriv --reuid=daemon --regid=daemon --clear-groups)

# can WHO... -- rw|ro|no EXPORT: WHO may open EXPORT read-write, only read it, or not at all.
can() {
  local who=() want export out
  while [[ $1 != -- ]]; do who+=("$1"); shift; done
  want=$2 export=$3
  out=$("${who[@]}" qemu-io -f raw -c 'write 0 512' "$(uri "pack/$export")" 2>&1) && got=rw || got=
  if [[ -z $got ]]; then
    out=$("${who[@]}" qemu-io -f raw -r -c 'read 0 512' "$(uri "pack/$export")" 2>&1) && got=ro || got=no
  fi
  [[ $got == "$want" ]] || die "${who[*]:-root} on $export: got $got, wanted $want: $out"
  echo "ok: ${who[*]:-root} -> $export: $got"
}

can -- rw rootonly                                # root passes every check
can "${nobody[@]}" -- no rootonly                 # other bits ---
grep -q "pack 'rootonly': uid $(id -u nobody) (gid $(id -g nobody)) may not open it read-write: its mode is rw------- for root:root" \
  "$nbdkit_log" || die "the refusal does not say who, how and why"
# A writable export is opened writable (NBD has no "I only read"): r alone is not enough for it,
# and the refusal points at the @ro name, which needs only r.
can "${nobody[@]}" -- no grp                      # group bits r--
grep -q "(pack/grp@ro reads it)" "$nbdkit_log" || die "no hint about @ro in the refusal"
can "${nobody[@]}" -- ro grp@ro
can "${nobody[@]}" -- no grp@ro@                  # not a name at all
can "${nobody[@]}" -- no other                    # other bits r--
can "${nobody[@]}" -- ro other@ro
can "${nobody[@]}" -- rw open
can "${nobody[@]}" -- rw mine                     # owner bits rw-
can "${daemon[@]}" -- no mine
can "${nobody[@]}" -- no disk
can setpriv --reuid=nobody --regid=nogroup --groups="$(getent group disk | cut -d: -f3)" -- rw disk

# TCP with conf=: the allow-host list decides.
port=$(pick_unused_port)
vvm_conf file="$tmpdir/deny.conf" vvmd.allow-host=127.0.0.2 plugin.packtab="$tmpdir/packtab"
start_nbdkit - -i 127.0.0.1 -p "$port" "$VVM_PLUGIN" conf="$tmpdir/deny.conf"
if out=$(qemu-io -f raw -r -c 'read 0 512' "nbd://127.0.0.1:$port/pack/open" 2>&1); then
  die "a host not in allow-host read a pack: $out"
fi
grep -q "host 127.0.0.1 is not in vvm.conf's \[vvmd\] allow-host list" "$nbdkit_log" ||
  die "the TCP refusal does not name the host"
echo "ok: 127.0.0.1 refused by allow-host = 127.0.0.2"
port2=$(pick_unused_port)
vvm_conf file="$tmpdir/allow.conf" vvmd.allow-host=127.0.0.0/8 plugin.packtab="$tmpdir/packtab"
start_nbdkit - -i 127.0.0.1 -p "$port2" "$VVM_PLUGIN" conf="$tmpdir/allow.conf"
qemu-io -f raw -c 'write -P 3 0 512' "nbd://127.0.0.1:$port2/pack/open" >/dev/null ||
  die "a host in allow-host was refused"
echo "ok: 127.0.0.1 admitted by allow-host = 127.0.0.0/8"
echo "pack-permissions: all checks passed"
