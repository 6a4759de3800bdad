#!/usr/bin/env bash
# cluster-forward-blockdev.sh: block sizes through a forwarding node, with a real etcd and three
# real nodes on 127.0.0.2-4 whose disk d0 is a loop device of 4096-byte sectors. Pack a: n2
# primary, n3 secondary; n1 reaches no copy and forwards it.
#   - n1 advertises the primary's block sizes (minimum 4096, the sector size), not the
#     1-byte minimum it gives a pack on a file: a client that honours them does read-modify-write
#     of whole sectors for a small write;
#   - a 512-byte write through n1 (qemu-io, which honours the minimum) lands in its sector, the
#     rest of the sector untouched, read back from n2 directly.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"
make_tmpdir
requires losetup --version
requires nbdinfo --version
requires qemu-io --version
requires jq --version
quiet() { "$@" >"$tmpdir/out" 2>&1 || { cat "$tmpdir/out" >&2; die "'$*' failed"; }; }

truncate -s $((64 * M)) "$tmpdir/dev.img"
disk=$(losetup -f --show --sector-size 4096 "$tmpdir/dev.img" 2>"$tmpdir/losetup.err") ||
  { echo "$0: SKIP: no loop device here: $(cat "$tmpdir/losetup.err")"; exit 77; }
cleanup_fn losetup -d "$disk"
[[ $(blockdev --getss "$disk") == 4096 ]] || die "$disk has sectors of $(blockdev --getss "$disk") bytes"

start_etcd
conf=$tmpdir/admin.conf
printf '[cluster]\netcd = %s\n' "$etcd_endpoint" >"$conf"
port=$(pick_unused_port)
echo "a $disk 0 32M shared root root 0666" >"$tmpdir/a.tab"
ctl cluster import "$tmpdir/a.tab" --primary n2 --secondary n3 --disk d0 >/dev/null
start_node 3 n2
start_node 4 n3
start_node 2 n1
n1=nbd://127.0.0.2:$port/pack/a
n2=nbd://127.0.0.3:$port/pack/a
wait_log "${node_log[n1]}" "cluster state read at etcd revision [0-9]+: serving 0 packs from this node's disks, forwarding 1"

sizes='.exports[0] | [.block_size_minimum, .block_size_preferred, .block_size_maximum] | @json'
quiet nbdinfo --json "$n2"
want=$(jq -r "$sizes" "$tmpdir/out")
[[ $want == "[4096,"* ]] || die "n2 does not advertise the sector size as its minimum: $want"
quiet nbdinfo --json "$n1"
check "$sizes" "$want" "$(cat "$tmpdir/out")"
echo "ok: n1 advertises the primary's block sizes $want"

# A small write through n1, read from the primary directly: only its 512 bytes changed.
io "$n2" -c "write -P 0x33 0 8k"
io "$n1" -c "write -P 0x5a 512 512"
io "$n2" -r -c "read -P 0x33 0 512" -c "read -P 0x5a 512 512" -c "read -P 0x33 1k 7k"
echo "ok: a 512-byte write through n1 landed in its sector"
