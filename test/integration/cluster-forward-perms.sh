#!/usr/bin/env bash
# cluster-forward-perms.sh: a forwarding node checks a pack's mapped permissions against its own
# clients, and a change made with vvctl applies there, with a real etcd, three real nodes on
# 127.0.0.2-4 (start_three_nodes: pack a, 0666 root, on n2, secondary n3) and n4, which reaches
# no copy of pack a and so forwards it, serving on a Unix socket (its clients' uid known), with
# clients run as nobody through setpriv:
#   - nobody writes pack a through n4;
#   - vvctl pack chmod a 0600: n4 refuses nobody, saying why, and root still writes;
#   - vvctl pack chown a nobody: nobody writes through n4 again, and the data is on the disk.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"
make_tmpdir
chmod 755 "$tmpdir"
requires qemu-io --version
requires setpriv --version

start_three_nodes
node_conf 5 n4
start_nbdkit "$tmpdir/n4.sock" "$VVM_PLUGIN" conf="$tmpdir/n4.conf"
chmod 777 "$tmpdir/n4.sock"
n4_log=$nbdkit_log
uri="nbd+unix:///pack/a?socket=$tmpdir/n4.sock"
wait_log "$n4_log" "cluster state read at etcd revision [0-9]+: serving 0 packs from this node's disks, forwarding 1"

# write_as WHO PATTERN: WHO (nobody or root) writes 512 bytes of PATTERN at 0 through n4.
write_as() {
  local prefix=()
  [[ $1 == root ]] || prefix=("${nobody[@]}")
  "${prefix[@]}" qemu-io -f raw -c "write -P $2 0 512" "$uri" >"$tmpdir/out" 2>&1 &&
    ! grep -qi 'fail' "$tmpdir/out"
}
# A node applies a change as it resumes from the barrier, moments after vvctl returns.
within_2s() {
  local i
  for ((i = 0; i < 20; i++)); do
    "$@" && return 0
    sleep 0.1
  done
  return 1
}
on_disk() { cmp -n 512 "$disk" <(head -c 512 /dev/zero | tr '\0' "\\$(printf '%03o' "$1")"); }

write_as nobody 0x21 || die "nobody cannot write pack a (0666) through n4: $(cat "$tmpdir/out")"
on_disk 0x21 || die "nobody's write through n4 is not on the disk"
out=$(ctl pack chmod a 0600) || die "pack chmod: $out"
grep -q "committed: 4 nodes acknowledged (n1, n2, n3, n4)" <<<"$out" || die "chmod said: $out"
within_2s eval '! write_as nobody 0x22' || die "nobody still writes through n4 after chmod 0600"
grep -q "pack 'a': uid 65534 (gid 65534) may not open it read-write" "$n4_log" ||
  die "n4 did not say why nobody was refused"
on_disk 0x21 || die "the refused write through n4 reached the disk"
write_as root 0x23 || die "root cannot write through n4 after chmod 0600: $(cat "$tmpdir/out")"
out=$(ctl pack chown a "$nobody_name") || die "pack chown: $out"
within_2s write_as nobody 0x24 || die "nobody still refused by n4 after chown: $(cat "$tmpdir/out")"
on_disk 0x24 || die "nobody's write through n4 after chown is not on the disk"
echo "ok: n4, forwarding pack a, applies chmod and chown to its own clients"
