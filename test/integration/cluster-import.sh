#!/usr/bin/env bash
# cluster-import.sh: vvctl cluster import --replace with a real etcd and three real nodes
# (harness/etcd.sh's start_three_nodes: pack a on n2, secondary n3, forwarded by n1):
#   - replacing pack a's mapping while a client writes a pattern through n1 with flushes goes
#     through the reconfiguration barrier (every node acknowledges): no acknowledged write is
#     lost or overtaken (every block checked through another node); a new pack of the same table
#     is simply created, with epoch 1;
#   - a node that never acknowledges (SIGSTOP): the import fails naming it, and nothing changes:
#     no mapping replaced, no new pack written, no intent left.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"
make_tmpdir
requires jq --version
writer=$VVM_SOURCE_DIR/test/integration/pattern-writer.py
ttl=10 # a stopped node stays a member (and is waited for) for the whole test
start_three_nodes
for ((i = 0; i < 50; i++)); do
  [[ $(ctl cluster nodes --json | jq 'map(select(.live)) | length') == 3 ]] && break
  sleep 0.1
done
((i < 50)) || die "three nodes not registered: $(ctl cluster nodes)"
map() { ctl cluster map --json | jq -c ".[] | select(.name == \"$1\")"; }

# --- a replacing import during writes ---
cat >"$tmpdir/n3.tab" <<'EOF'
a  disk.img  0    64M  shared  root root 0666
b  disk.img  64M  16M  shared  root root 0644
EOF
echo "a disk.img 0 64M shared root root 0666" >"$tmpdir/n2.tab"
/usr/bin/python3 "$writer" write "$n1" 6 256 >"$tmpdir/w.json" &
writer_pid=$!
cleanup_fn kill_quietly "$writer_pid"
sleep 1
out=$(ctl cluster import "$tmpdir/n3.tab" --primary n3 --secondary n2 --disk d0 --replace) ||
  die "import --replace: $out"
grep -q "committed: 3 nodes acknowledged (n1, n2, n3); requests held" <<<"$out" ||
  die "the replacement did not go through the barrier: $out"
grep -q "imported 2 packs (1 replaced): primary n3, secondary n2" <<<"$out" || die "import said: $out"
# The mappings written, in pack move's table: the replaced one first.
grep -Eq '^PACK +PRIMARY +SECONDARY +POOL +OWNER:GROUP +PERMS +EPOCH$' <<<"$out" || die "no table: $out"
[[ $(grep -E '^[ab] ' <<<"$out" | awk '{print $1, $2, $3, $5, $6, $7}' | tr '\n' ';') == \
  "a n3:d0 n2:d0 root:root 0666 2;b n3:d0 n2:d0 root:root 0644 1;" ]] || die "import's table: $out"
aligned "$(grep -E '^(PACK|a|b) ' <<<"$out")" PRIMARY SECONDARY POOL OWNER:GROUP PERMS EPOCH
check .primary.node n3 "$(map a)"
check .epoch 2 "$(map a)"
check .epoch 1 "$(map b)"
check .perms 0644 "$(map b)"
sleep 1
out=$(ctl cluster import "$tmpdir/n2.tab" --primary n2 --secondary n3 --disk d0 --replace) ||
  die "import --replace back: $out"
grep -q "committed: 3 nodes acknowledged" <<<"$out" || die "second replacement: $out"
wait "$writer_pid" || die "the writer failed during the replacements: $(cat "$tmpdir/w.json")"
check .primary.node n2 "$(map a)"
check .epoch 3 "$(map a)"
# Every block holds its last acknowledged write, read through n3 (its own disk) and n1.
/usr/bin/python3 "$writer" check "nbd://127.0.0.4:$port/pack/a" "$tmpdir/w.json" ||
  die "acknowledged writes lost"
/usr/bin/python3 "$writer" check "$n1" "$tmpdir/w.json" || die "acknowledged writes lost (n1)"
grep -Eq "reconfiguration /vvm/reconf/.* by vvctl on .*: a held, drained in [0-9]+ us, acknowledged" \
  "${node_log[n1]}" || die "n1 did not log its acknowledgement of the import"
jq -r '"ok: two replacing imports during \(.writes) writes, none lost; slowest request \(.max_ms) ms"' \
  "$tmpdir/w.json"

# --- a node that never acknowledges: nothing changes ---
before=$(ctl cluster map --json)
cat >"$tmpdir/c.tab" <<'EOF'
a  disk.img  0    64M  shared  root root 0600
c  disk.img  80M  16M  shared  root root 0666
EOF
kill -STOP "${node_pid[n3]}"
expect 1 "vvctl cluster import: reconfiguration of pack a: node n3 did not acknowledge within 2000 ms \(2 of 3 did\); nothing changed and every node resumed" -- \
  ctl cluster import "$tmpdir/c.tab" --primary n2 --secondary n3 --disk d0 --replace --timeout 2
kill -CONT "${node_pid[n3]}"
[[ $(ctl cluster map --json) == "$before" ]] ||
  die "the failed import changed the mappings: $(ctl cluster map)"
[[ -z $(etcdctl_ get /vvm/pack/c) ]] || die "the failed import wrote pack c"
[[ -z $(etcdctl_ get --prefix /vvm/reconf/ --keys-only) ]] || die "the intent is still there"
io "$n1" -c 'write -P 0x5a 0 4K' # n1 resumed
echo "ok: a node that never acknowledged failed the import, naming it, with nothing changed"

# Without --replace an existing mapping is refused; --timeout is checked.
expect 1 "pack 'a' is already mapped" -- ctl cluster import "$tmpdir/c.tab" --primary n2 --disk d0
expect 2 "--timeout 0: give seconds" -- \
  ctl cluster import "$tmpdir/c.tab" --primary n2 --disk d0 --replace --timeout 0

# --- --json: one object, the mappings written and each barrier run ---
echo "d disk.img 96M 16M shared root root 0640" >"$tmpdir/d.tab"
out=$(ctl cluster import "$tmpdir/d.tab" --primary n2 --secondary n3 --disk d0 --json) ||
  die "import --json: $out"
check '.packtab' "$tmpdir/d.tab" "$out"
check '"\(.imported) \(.replaced) \(.reconfigurations | length) \(.acked | length)"' "1 0 0 0" "$out"
check '.packs | map("\(.name) \(.primary.node) \(.secondary.node) \(.perms) \(.epoch)") | join(";")' \
  "d n2 n3 0640 1" "$out"
check .primary.node n2 "$(map d)"
out=$(ctl cluster import "$tmpdir/d.tab" --primary n3 --secondary n2 --disk d0 --replace --json) ||
  die "import --replace --json: $out"
check '"\(.imported) \(.replaced) \(.reconfigurations | length)"' "1 1 1" "$out"
check '.acked | join(",")' n1,n2,n3 "$out"
check '.reconfigurations[0].acked | join(",")' n1,n2,n3 "$out"
check '.reconfigurations[0] | (.id | length > 0) and .total_us >= .barrier_us and .revision > 0' true "$out"
check '.packs[0].primary.node + " " + (.packs[0].epoch | tostring)' "n3 2" "$out"
check .epoch 2 "$(map d)"
echo "ok: cluster import --json, new and replacing"
