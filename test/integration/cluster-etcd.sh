#!/usr/bin/env bash
# cluster-etcd.sh: the cluster's records in a real etcd, through vvctl and two stand-in nodes
# (test/harness/cluster_node.cc, which joins as vvm.conf's [cluster] says and acknowledges every
# reconfiguration):
#   - vvctl cluster import seeds mappings from a packtab, each node's disk found by the backing's
#     path among its registered disks; cluster map shows them (table and --json); a second
#     import is refused unless --replace, which bumps the epoch through the barrier;
#   - a second node of one name is refused, naming the key and the holder's address;
#   - a node killed with SIGKILL turns DOWN in cluster nodes once its lease's TTL has passed, not
#     before;
#   - garbage under the prefix is reported naming the key, and the rest is listed as before;
#   - a bad [cluster] section is named by file, line and key; vvctl cluster --help lists the
#     group's commands;
#   - etcd down: vvctl names the endpoint it could not reach, and a node reports its lease lost
#     (exit 3) before the TTL is out.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"
make_tmpdir
requires jq --version
node=$VVM_BUILD_DIR/test/cluster-node
ttl=2

start_etcd

# cluster_conf FILE [NODE ADDRESS [DISK...]]: a vvm.conf with a [cluster] section alone.
cluster_conf() {
  local file=$1 d
  {
    echo "[cluster]"
    echo "etcd = http://$etcd_endpoint"
    echo "lease-ttl = ${ttl}s"
    echo "etcd-timeout = 2s"
    if (($# > 1)); then
      echo "node = $2"
      echo "advertise = $3"
      for d in "${@:4}"; do echo "disk = $d"; done
    fi
  } >"$file"
}
conf=$tmpdir/admin.conf
cluster_conf "$conf"

# start_node NAME CONF: a stand-in node; $node_pid.
start_node() {
  start_daemon "$1" grep -q '^joined ' "$(_vvm_new_log "$1")" -- "$node" --conf "$2"
  node_pid=$daemon_pid
}

port1=$(pick_unused_port)
port2=$(pick_unused_port)
cluster_conf "$tmpdir/n1.conf" n1 "127.0.0.1:$port1" "d0:$tmpdir/disk.img" "spare:/dev/null"
cluster_conf "$tmpdir/n2.conf" n2 "127.0.0.1:$port2" "d0:$tmpdir/disk.img"
start_node n1 "$tmpdir/n1.conf"
n1_pid=$node_pid
start_node n2 "$tmpdir/n2.conf"
n2_pid=$node_pid

# --- cluster nodes ---
nodes=$(ctl cluster nodes)
echo "$nodes"
grep -Eq '^NODE +STATE +ADDRESS +DISKS +LEASE LEFT +STARTED +DRAINED$' <<<"$nodes" || die "cluster nodes header: $nodes"
grep -Eq "^n1 +live +127\.0\.0\.1:$port1 +d0=$tmpdir/disk.img,spare=/dev/null +[12]s " <<<"$nodes" ||
  die "cluster nodes lacks n1: $nodes"
grep -Eq "^n2 +live +127\.0\.0\.1:$port2 " <<<"$nodes" || die "cluster nodes lacks n2: $nodes"
aligned "$nodes" STATE ADDRESS DISKS
json=$(ctl cluster nodes --json)
check 'length' 2 "$json"
check '.[0].name' n1 "$json"
check '.[0].address' "127.0.0.1:$port1" "$json"
check '.[0].disks.d0' "$tmpdir/disk.img" "$json"
check '.[0].lease_ttl_left <= 2 and .[0].lease_ttl_left >= 0' true "$json"
check '.[0].drained' false "$json"
check 'map("\(.name) \(.live) \(.packs | length)") | join(",")' "n1 true 0,n2 true 0" "$json"
check '.[1].name' n2 "$json"

# --- cluster import and cluster map ---
cat >"$tmpdir/packtab" <<'EOF'
# name  backing   offset size mode      owner group perms
a       disk.img  0      10M  exclusive root  root  0660
b       disk.img  10M    20M  ro        0     0     rw-r--r--
EOF
expect 0 "packtab: imported 2 packs \(0 replaced\): primary n1, secondary n2" -- \
  ctl cluster import "$tmpdir/packtab" --primary n1 --secondary n2
map=$(ctl cluster map)
echo "$map"
grep -Eq '^PACK +PRIMARY +SECONDARY +POOL +OFFSET +SIZE +MODE +OWNER:GROUP +PERMS +EPOCH +PATHS +HOLDERS$' <<<"$map" ||
  die "cluster map header: $map"
grep -Eq '^a +n1:d0 +n2:d0 +- +0 +10M +exclusive +root:root +0660 +1 +n1 up, n2 up +-$' <<<"$map" || die "map a: $map"
grep -Eq '^b +n1:d0 +n2:d0 +- +10M +20M +ro +root:root +0644 +1 +n1 up, n2 up +-$' <<<"$map" || die "map b: $map"
aligned "$map" PRIMARY SECONDARY POOL SIZE MODE EPOCH PATHS
json=$(ctl cluster map --json)
check 'length' 2 "$json"
check '.[0].name' a "$json"
check '.[0].primary.node + ":" + .[0].primary.disk' n1:d0 "$json"
check '.[0].secondary.node' n2 "$json"
check '.[0].size' $((10 * M)) "$json"
check '.[0].mode' exclusive "$json"
check '.[0].perms' 0660 "$json"
check '.[0].epoch' 1 "$json"
check '.[0].paths.n1.up' true "$json"
check '.[1].offset' $((10 * M)) "$json"
check '.[1].owner' 0 "$json"
# What etcd holds is the record, key by key.
check '.name' b "$(etcdctl_ get --print-value-only /vvm/pack/b)"

# Imported again: refused whole, naming the packs; with --replace, the next epoch.
expect 1 "pack 'a' is already mapped \(/vvm/pack/a, n1:d0 epoch 1\)" -- \
  ctl cluster import "$tmpdir/packtab" --primary n2
expect 1 "nothing imported; give --replace" -- ctl cluster import "$tmpdir/packtab" --primary n2
check '.[0].primary.node' n1 "$(ctl cluster map --json)"
out=$(ctl cluster import "$tmpdir/packtab" --primary n2 --replace) || die "import --replace: $out"
grep -Eq "imported 2 packs \(2 replaced\): primary n2$" <<<"$out" || die "import --replace: $out"
# The replacement went through the barrier: the (stand-in) nodes acknowledged it.
grep -q "committed: 2 nodes acknowledged (n1, n2)" <<<"$out" || die "import --replace: $out"
json=$(ctl cluster map --json)
check '.[0].primary.node' n2 "$json"
check '.[0].secondary' null "$json"
check '.[0].epoch' 2 "$json"

# A disk is found among the node's registered disks by the backing's path, or named.
echo "c /elsewhere/disk 0 1M ro root root 0444" >"$tmpdir/other.tab"
expect 1 "pack 'c': backing /elsewhere/disk is none of node n1's disks \(d0=.*, spare=/dev/null\)" \
  -- ctl cluster import "$tmpdir/other.tab" --primary n1
expect 1 "pack 'c': node n9 is not registered in etcd.*give --disk NAME" -- \
  ctl cluster import "$tmpdir/other.tab" --primary n9
expect 0 "imported 1 pack " -- ctl cluster import "$tmpdir/other.tab" --primary n9 --disk big
check '.[2].primary.disk' big "$(ctl cluster map --json)"
expect 2 "cluster import: --primary NODE is required" -- ctl cluster import "$tmpdir/other.tab"
expect 2 "--secondary must be another node" -- \
  ctl cluster import "$tmpdir/other.tab" --primary n1 --secondary n1

# --- one name, one node ---
cluster_conf "$tmpdir/n1-again.conf" n1 127.0.0.1:1 "d0:$tmpdir/disk.img"
expect 1 "etcd key /vvm/node/n1 is held by node n1 at 127\.0\.0\.1:$port1, whose lease expires in [0-9]+s: two nodes may not share the name 'n1'" \
  -- "$node" --conf "$tmpdir/n1-again.conf"
check '.[0].address' "127.0.0.1:$port1" "$(ctl cluster nodes --json)"

# --- a node killed is DOWN after its lease's TTL, not before ---
# n2 is the primary of a and b: it stays listed, DOWN, with what names it; so is n9, pack c's
# primary, which never registered.
kill_daemon "$n2_pid"
killed=$(date +%s%N)
grep -Eq '^n2 +live ' <(ctl cluster nodes) || die "n2 DOWN at once: its lease should outlive it"
for ((i = 0; i < 100; i++)); do
  grep -Eq '^n2 +live ' <(ctl cluster nodes) || break
  sleep 0.1
done
gone_ms=$((($(date +%s%N) - killed) / 1000000))
((i < 100)) || die "n2 still live 10 s after it was killed: $(ctl cluster nodes)"
nodes=$(ctl cluster nodes)
echo "$nodes"
grep -Eq '^n2 +DOWN +- +- +- +- +-$' <<<"$nodes" || die "n2 is not listed DOWN: $nodes"
grep -Eq '^n9 +DOWN ' <<<"$nodes" || die "n9 (pack c's primary, never registered) is not DOWN: $nodes"
grep -Eq '^n1 +live ' <<<"$nodes" || die "n1 went with n2: $nodes"
aligned "$nodes" STATE ADDRESS DRAINED
json=$(ctl cluster nodes --json)
check 'map("\(.name) \(.live) \(.packs | join("+"))") | join(",")' "n1 true ,n2 false a+b,n9 false c" "$json"
check '.[] | select(.name == "n2") | has("address") or has("lease")' false "$json"
echo "ok: n2 DOWN ${gone_ms} ms after SIGKILL (TTL ${ttl}s), listed while mappings name it"

# --- garbage under the prefix: named, skipped, nothing else spoilt ---
etcdctl_ put /vvm/pack/junk '{{{' >/dev/null
etcdctl_ put /vvm/pack/zero '{"name":"zero","primary":{"node":"n1","disk":"d0"},"offset":0,"size":0,"mode":"ro","owner":0,"group":0,"perms":"0644","epoch":1}' >/dev/null
etcdctl_ put /vvm/node/ghost 'not a node' >/dev/null
status=0
out=$(ctl cluster map 2>"$tmpdir/map.err") || status=$?
((status == 1)) || die "cluster map with garbage exited $status, wanted 1"
grep -q "^vvctl cluster map: etcd key /vvm/pack/junk: not JSON: '{{{' (skipped)$" "$tmpdir/map.err" ||
  die "garbage not named: $(cat "$tmpdir/map.err")"
grep -q "etcd key /vvm/pack/zero: field 'size': 0 is not a size" "$tmpdir/map.err" ||
  die "bad size not named: $(cat "$tmpdir/map.err")"
grep -Eq '^a +n2:d0 ' <<<"$out" || die "pack a not listed beside the garbage: $out"
(($(grep -c . <<<"$out") == 4)) || die "cluster map should list a, b and c: $out"
expect 1 "etcd key /vvm/node/ghost: not JSON" -- ctl cluster nodes
kill -0 "$n1_pid" || die "node n1 died of the garbage"
expect 1 "pack 'zero': /vvm/pack/zero holds a record that does not decode" -- \
  ctl cluster import <(echo "zero /x 0 1M ro 0 0 0644") --primary n1 --disk d0

# --- configuration mistakes, named ---
printf '[cluster]\netcd = %s\nlease-ttl = 1s\n' "$etcd_endpoint" >"$tmpdir/bad.conf"
expect 2 "bad.conf:3: cluster.lease-ttl: '1s' is shorter than 2s" -- \
  "$vvctl" --conf "$tmpdir/bad.conf" cluster map
printf '[global]\nstate-dir = %s\n' "$tmpdir" >"$tmpdir/single.conf"
expect 2 "single.conf: no \[cluster\] section" -- "$vvctl" --conf "$tmpdir/single.conf" cluster nodes

# --- the group: vvctl cluster --help lists the cluster commands of vvctl --help ---
out=$("$vvctl" cluster --help) || die "vvctl cluster --help failed: $out"
grep -qx "Commands of vvctl cluster:" <<<"$out" || die "vvctl cluster --help: $out"
want=$("$vvctl" --help | sed -nE 's/^  (cluster [a-z]+) .*/\1/p')
got=$(sed -nE 's/^  (cluster [a-z]+) .*/\1/p' <<<"$out")
[[ $(wc -l <<<"$want") -ge 5 && $got == "$want" ]] ||
  die "vvctl cluster --help lists '$got'; vvctl --help: '$want'"
expect 2 "^vvctl cluster: give one of its commands:$" -- "$vvctl" cluster
expect 2 "unknown command 'cluster bogus'; the commands of vvctl cluster are:" -- "$vvctl" cluster bogus
echo "ok: vvctl cluster --help lists the group's commands"

# --- etcd down ---
kill_daemon "$etcd_pid"
down=$(date +%s%N)
expect 1 "^vvctl cluster map: etcd $etcd_endpoint: cannot connect: Connection refused" -- \
  ctl cluster map
expect 1 "etcd $etcd_endpoint: cannot connect" -- ctl cluster import "$tmpdir/packtab" --primary n1
# The node cannot renew its lease and says so before the lease can have expired.
status=0
_vvm_killed[$n1_pid]=1 # its exit is the test's business now
wait "$n1_pid" || status=$?
lost_ms=$((($(date +%s%N) - down) / 1000000))
((status == 3)) || die "node n1 exited $status when etcd went, wanted 3 (lease lost)"
grep -q "lease lost: /vvm/node/n1: the lease could not be renewed before it expires" \
  "$tmpdir/n1.log" || die "n1 did not say why: $(cat "$tmpdir/n1.log")"
((lost_ms < ttl * 1000)) || die "n1 reported its lease lost after ${lost_ms} ms, past the TTL"
echo "ok: n1 reported its lease lost ${lost_ms} ms after etcd went (TTL ${ttl}s)"
