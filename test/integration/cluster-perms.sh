#!/usr/bin/env bash
# cluster-perms.sh: permissions and exclusive holds across the nodes of a cluster, with a real
# etcd, two real nodes (nbdkit with the vvm plugin, clients on their Unix sockets, run as other
# uids through setpriv) and real clients:
#   - vvctl pack chmod and pack chown, run with one node's vvm.conf, apply on the other node: a
#     client refused there is let in, and the other way round;
#   - an exclusive hold taken by a client of n1 refuses a client of n2, naming the holder (node
#     and client), until the holder closes; a holder whose node is killed loses its hold when
#     the node's lease ends; vvctl cluster map shows the holder while it holds.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"
make_tmpdir
chmod 755 "$tmpdir"
requires qemu-io --version
requires nbdsh --version
ttl=2

start_etcd
truncate -s 64M "$tmpdir/disk.img"
# node NAME ADDRESS: a node serving on $tmpdir/NAME.sock; $pid_NAME, $log_NAME.
node() {
  local name=$1
  mkdir -p "$tmpdir/$name"
  cat >"$tmpdir/$name.conf" <<EOF
[global]
state-dir = $tmpdir/$name
[cluster]
etcd = $etcd_endpoint
node = $name
advertise = $2:$(pick_unused_port)
lease-ttl = ${ttl}s
disk = d0:$tmpdir/disk.img
EOF
  start_nbdkit "$tmpdir/$name.sock" "$VVM_PLUGIN" conf="$tmpdir/$name.conf"
  chmod 777 "$tmpdir/$name.sock"
  printf -v "pid_$name" %s "$nbdkit_pid"
  printf -v "log_$name" %s "$nbdkit_log"
}
conf=$tmpdir/n1.conf # vvctl runs with n1's vvm.conf: "a change made on n1"
cat >"$tmpdir/p.tab" <<'EOF'
p  /x  0    16M  shared     root root 0600
x  /x  16M  16M  exclusive  root root 0666
EOF
node n1 127.0.0.2
node n2 127.0.0.3
ctl cluster import "$tmpdir/p.tab" --primary n1 --secondary n2 --disk d0 >/dev/null
uri() { echo "nbd+unix:///pack/$1?socket=$tmpdir/$2.sock"; }
# served PACK NODE: NODE lists PACK (the import reached it).
for n in n1 n2; do
  for ((i = 0; i < 50; i++)); do
    nbdinfo --list "nbd+unix://?socket=$tmpdir/$n.sock" 2>/dev/null | grep -q 'pack/x' && break
    sleep 0.1
  done
  ((i < 50)) || die "$n does not serve the imported packs"
done

# can_write WHO NODE PACK: WHO (a setpriv prefix, or "root") writes PACK through NODE; within
# two seconds, as a node serves a change as it resumes.
can_write() {
  local who=$1 node=$2 pack=$3 i prefix=()
  [[ $who == root ]] || prefix=("${nobody[@]}")
  for ((i = 0; i < 20; i++)); do
    "${prefix[@]}" qemu-io -f raw -c 'write 0 512' "$(uri "$pack" "$node")" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}
cannot_write() {
  local who=$1 node=$2 pack=$3 i prefix=()
  [[ $who == root ]] || prefix=("${nobody[@]}")
  for ((i = 0; i < 20; i++)); do
    "${prefix[@]}" qemu-io -f raw -c 'write 0 512' "$(uri "$pack" "$node")" >/dev/null 2>&1 || return 0
    sleep 0.1
  done
  return 1
}

# --- permissions, changed with n1's configuration, applied by n2 ---
cannot_write nobody n2 p || die "nobody wrote pack p (0600 root) through n2"
grep -q "pack 'p': uid 65534 (gid 65534) may not open it read-write" "$log_n2" ||
  die "n2 did not say why nobody was refused"
out=$(ctl pack chmod p 0666) || die "pack chmod: $out"
grep -q "committed: 2 nodes acknowledged" <<<"$out" || die "chmod said: $out"
can_write nobody n2 p || die "nobody still refused on n2 after chmod 0666"
can_write nobody n1 p || die "nobody refused on n1 after chmod 0666"
out=$(ctl pack chmod p 0600 --json) || die "pack chmod --json: $out"
check '.packs[0].perms' 0600 "$out"
check '.acked | join(",")' n1,n2 "$out"
cannot_write nobody n2 p || die "nobody still let in on n2 after chmod 0600"
out=$(ctl pack chown p "$nobody_name":nogroup --json) || die "pack chown: $out"
check '.packs[0].owner' 65534 "$out"
check '.packs[0].perms' 0600 "$out"
can_write nobody n2 p || die "nobody refused on n2 after chown to nobody"
check '.[] | select(.name == "p") | .epoch' 4 "$(ctl cluster map --json)"
out=$(ctl pack chown p root) || die "pack chown: $out"
grep -Eq '^PACK +PRIMARY +SECONDARY +POOL +OWNER:GROUP +PERMS +EPOCH$' <<<"$out" || die "chown header: $out"
grep -Eq '^p +n1:d0 +n2:d0 +- +root:nogroup +0600 +5$' <<<"$out" || die "chown row: $out"
grep -q "committed: 2 nodes acknowledged (n1, n2); requests held" <<<"$out" || die "chown said: $out"
cannot_write nobody n2 p || die "nobody still let in on n2 after chown back to root"
expect 2 "no such user 'no-such-user'" -- ctl pack chown p no-such-user
expect 1 "pack 'zz' is not mapped in etcd" -- ctl pack chmod zz 0644
echo "ok: chmod and chown made with n1's configuration apply on n2"

# --- an exclusive hold on n1 refuses n2's client, naming the holder ---
connect_client holder "$(uri x n1)" "${nobody[@]}"
[[ $(etcdctl_ get /vvm/hold/x --print-value-only | jq -r .node) == n1 ]] ||
  die "no hold in etcd: $(etcdctl_ get --prefix /vvm/hold/)"
# vvctl cluster map names the holder, as a column and in --json; pack p has none.
map=$(ctl cluster map --json)
check '.[] | select(.name == "x") | .holder.node' n1 "$map"
check '.[] | select(.name == "x") | .holder.client' "uid 65534" "$map"
since=$(jq -r '.[] | select(.name == "x") | .holder.since' <<<"$map")
(($(date +%s) - since < 60)) || die "the hold's since is $since"
check '.[] | select(.name == "p") | .holder' null "$map"
table=$(ctl cluster map)
grep -Eq "^x .* uid 65534 on n1 since [0-9-]+ [0-9:]+$" <<<"$table" || die "no holder in: $table"
grep -Eq "^p .* -$" <<<"$table" || die "pack p shows a holder: $table"
aligned "$table" PACK EPOCH PATHS
# HOLDERS (after PATHS, whose values have blanks) starts at its header's column on every row.
col=$(head -n1 <<<"$table")
col=${col%%HOLDERS*}
while read -r line; do
  [[ ${line:${#col}} =~ ^(-|uid\ 65534\ on\ n1\ since\ .*)$ ]] || die "HOLDERS not aligned: $line"
done < <(tail -n +2 <<<"$table")
io_fails "$(uri x n2)" -r -c 'read 0 512'
wait_log "$log_n2" "pack 'x' is held exclusive by uid 65534 on node n1 \(etcd key /vvm/hold/x, since [0-9]+\): uid 0 on node n2 cannot have it"
client_read holder # the holder goes on
disconnect_client holder
for ((i = 0; i < 50; i++)); do
  [[ -z $(etcdctl_ get /vvm/hold/x) ]] && break
  sleep 0.1
done
((i < 50)) || die "the hold is still in etcd after its client closed"
check '.[] | select(.name == "x") | .holder' null "$(ctl cluster map --json)"
io "$(uri x n2)" -c 'write -P 0x21 0 4K'
echo "ok: n1's hold refused n2's client, naming it, until it closed"

# --- a holder's node dies: its hold goes with its lease ---
connect_client holder2 "$(uri x n1)" "${nobody[@]}"
kill_daemon "$pid_n1"
io_fails "$(uri x n2)" -r -c 'read 0 512'
for ((i = 0; i < 60; i++)); do
  qemu-io -f raw -c 'read -P 0x21 0 4K' "$(uri x n2)" >/dev/null 2>&1 && break
  sleep 0.1
done
((i < 60)) || die "n2's client still refused 6 s after the holder's node was killed (TTL ${ttl}s)"
echo "ok: the hold went with n1's lease, $((i * 100)) ms (about) after n1 was killed"
