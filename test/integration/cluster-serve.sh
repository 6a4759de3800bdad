#!/usr/bin/env bash
# cluster-serve.sh: the plugin as a cluster node (vvm.conf with [cluster] naming it), with a real
# etcd and real clients:
#   - nbdkit joins the cluster when it starts (vvctl cluster nodes lists it) and serves, from its
#     own disk, the packs whose primary or secondary is this node, and no other;
#   - data written through pack/NAME lands at the mapping's offset in the node's disk;
#   - a mapping imported while it runs is served at once (the watch), without a restart;
#   - a mapping naming a disk the node lacks, a backing too short, and garbage under the prefix
#     are each named in nbdkit's log, and the other packs are served as before;
#   - a second nbdkit with the same node name does not start, naming the key and the holder;
#   - nbdkit killed with SIGKILL: its node turns DOWN in cluster nodes after the lease's TTL;
#   - etcd gone: the node reports its lease lost before the TTL is out and fences itself: writes
#     are refused (ESHUTDOWN), reads still served.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"
make_tmpdir
requires nbdinfo --version
requires qemu-io --version
requires jq --version
ttl=2

start_etcd
conf=$tmpdir/admin.conf
printf '[cluster]\netcd = %s\n' "$etcd_endpoint" >"$conf"
truncate -s 64M "$tmpdir/disk.img"
mkdir -p "$tmpdir/state"
node_conf() { # node_conf FILE NAME: the node's vvm.conf
  cat >"$1" <<EOF
[global]
state-dir = $tmpdir/state
[cluster]
etcd = $etcd_endpoint
node = $2
advertise = 127.0.0.1:$(pick_unused_port)
lease-ttl = ${ttl}s
disk = d0:$tmpdir/disk.img
EOF
}
node_conf "$tmpdir/n1.conf" n1

# Mappings: a and b on n1 (b as secondary), z on n2 alone.
cat >"$tmpdir/n1.tab" <<'EOF'
a  /x  0    16M  shared  root root 0666
EOF
cat >"$tmpdir/b.tab" <<'EOF'
b  /x  16M  16M  ro      root root 0644
EOF
cat >"$tmpdir/z.tab" <<'EOF'
z  /x  32M  16M  shared  root root 0666
EOF
ctl cluster import "$tmpdir/n1.tab" --primary n1 --disk d0 >/dev/null
ctl cluster import "$tmpdir/b.tab" --primary n2 --secondary n1 --disk d0 >/dev/null
ctl cluster import "$tmpdir/z.tab" --primary n2 --disk d0 >/dev/null

start_nbdkit "$tmpdir/nbd.sock" "$VVM_PLUGIN" conf="$tmpdir/n1.conf"
n1_pid=$nbdkit_pid
n1_log=$nbdkit_log
uri="nbd+unix:///pack/a?socket=$tmpdir/nbd.sock"
check '.[0].name' n1 "$(ctl cluster nodes --json)"
grep -q 'joined the cluster as /vvm/node/n1' "$n1_log" || die "nbdkit did not say it joined"

# --- the packs mapped to n1, and only those ---
list=$(nbdinfo --list --json "nbd+unix://?socket=$tmpdir/nbd.sock")
names=$(jq -r '[.exports[]."export-name"] | sort | join(" ")' <<<"$list")
[[ $names == "pack/a pack/a@ro pack/b pack/b@ro" ]] || die "n1 serves '$names'"
check '[.exports[] | select(."export-name" == "pack/a")][0]."export-size"' $((16 * M)) "$list"

# --- data at the mapping's offset in the node's disk ---
io "$uri" -c "write -P 0x5a 0 1M" -c "read -P 0x5a 0 1M"
cmp -n $M <(head -c $M /dev/zero | tr '\0' '\132') "$tmpdir/disk.img" ||
  die "pack a's data is not at offset 0 of disk.img"
printf '\x42%.0s' $(seq 512) | dd of="$tmpdir/disk.img" bs=512 seek=$((16 * M / 512)) conv=notrunc status=none
io "nbd+unix:///pack/b?socket=$tmpdir/nbd.sock" -r -c "read -P 0x42 0 512"

# --- a mapping imported while it runs is served at once ---
echo "c /x 48M 8M shared root root 0666" >"$tmpdir/c.tab"
ctl cluster import "$tmpdir/c.tab" --primary n1 --disk d0 >/dev/null
wait_listed "nbd+unix://?socket=$tmpdir/nbd.sock" pack/c ||
  die "pack c not served 5 s after its import"
io "nbd+unix:///pack/c?socket=$tmpdir/nbd.sock" -c "write -P 0x11 0 64K" -c "read -P 0x11 0 64K"

# --- what n1 cannot serve is named, the rest served as before ---
echo "d /x 56M 4M shared root root 0666" >"$tmpdir/d.tab"
ctl cluster import "$tmpdir/d.tab" --primary n1 --disk d9 >/dev/null
echo "e /x 60M 8M shared root root 0666" >"$tmpdir/e.tab" # past the end of the 64M disk
ctl cluster import "$tmpdir/e.tab" --primary n1 --disk d0 >/dev/null
etcdctl_ put /vvm/pack/junk 'garbage' >/dev/null
wait_log "$n1_log" "etcd key /vvm/pack/d: disk 'd9' of node n1 is not one of this node's disks \(\[cluster\] disk gives: d0\) \(not served\)"
wait_log "$n1_log" "etcd key /vvm/pack/e: pack 'e'.*(not served)"
wait_log "$n1_log" "etcd key /vvm/pack/junk: not JSON: 'garbage' \(not served\)"
list=$(nbdinfo --list --json "nbd+unix://?socket=$tmpdir/nbd.sock")
names=$(jq -r '[.exports[]."export-name" | select(endswith("@ro") | not)] | sort | join(" ")' <<<"$list")
[[ $names == "pack/a pack/b pack/c" ]] || die "with bad mappings n1 serves '$names'"
io "$uri" -r -c "read -P 0x5a 0 1M"

# --- one name, one node ---
expect 1 "etcd key /vvm/node/n1 is held by node n1 at 127\.0\.0\.1:[0-9]+" -- \
  env ${VVM_NBDKIT_PRELOAD:+LD_PRELOAD=$VVM_NBDKIT_PRELOAD} \
  nbdkit -f -U "$tmpdir/nbd2.sock" "$VVM_PLUGIN" conf="$tmpdir/n1.conf"

# --- a cluster node with a packtab as well is refused, saying why ---
printf '[plugin]\npacktab = %s\n' "$tmpdir/n1.tab" >>"$tmpdir/both.conf"
cat "$tmpdir/n1.conf" >>"$tmpdir/both.conf"
expect 1 "\[plugin\] packtab and \[cluster\] node are both given" -- \
  env ${VVM_NBDKIT_PRELOAD:+LD_PRELOAD=$VVM_NBDKIT_PRELOAD} \
  nbdkit -f -U "$tmpdir/nbd3.sock" "$VVM_PLUGIN" conf="$tmpdir/both.conf"

# --- killed, the node is DOWN after its lease's TTL ---
kill_daemon "$n1_pid"
for ((i = 0; i < 100; i++)); do
  [[ $(ctl cluster nodes --json | jq -c 'map(select(.live))') == "[]" ]] && break
  sleep 0.1
done
((i < 100)) || die "n1 still live 10 s after nbdkit was killed: $(ctl cluster nodes)"
# The mappings name it still: listed DOWN, not dropped.
grep -Eq '^n1 +DOWN ' <<<"$(ctl cluster nodes)" || die "n1 is not listed DOWN: $(ctl cluster nodes)"
echo "ok: n1 DOWN $((i * 100)) ms (about) after SIGKILL (TTL ${ttl}s)"

# --- etcd gone: the node fences itself, refusing writes and serving reads ---
start_nbdkit "$tmpdir/nbd4.sock" "$VVM_PLUGIN" conf="$tmpdir/n1.conf"
n1_log=$nbdkit_log
uri="nbd+unix:///pack/a?socket=$tmpdir/nbd4.sock"
io "$uri" -c "write -P 0x33 0 64K"
kill_daemon "$etcd_pid"
wait_log "$n1_log" "cluster membership lost: /vvm/node/n1: the lease could not be renewed before it expires.*self-fencing" $ttl
io_fails "$uri" -c "write -P 0x44 0 64K"
grep -q "write refused: this node's cluster membership lease is lost (self-fenced)" "$n1_log" ||
  die "the refused write is not in nbdkit's log"
io "$uri" -r -c "read -P 0x33 0 64K"
echo "ok: fenced: write refused, read served"
# The watch fails every few seconds while etcd is down: said once, not at every try.
sleep 1
(($(grep -c "error: watching the pack mappings: .*(retrying; serving the mappings read last)" "$n1_log") == 1)) ||
  die "the lost watch is not logged once: $(grep 'watching the pack mappings' "$n1_log")"
(($(grep -c "watching the pack mappings" "$n1_log") > 1)) ||
  die "the watch did not keep retrying: $(grep 'watching the pack mappings' "$n1_log")"
