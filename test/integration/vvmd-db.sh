#!/usr/bin/env bash
# vvmd-db.sh: vvctl db stats, db check and db backup against the real vvmd and mover:
#  - stats counts the VVs and the VSN the test made;
#  - check finds the database sound after archives (copies recorded against their VSN);
#  - a backup taken while a client keeps creating VVs holds every VV acknowledged before it, and
#    only VVs that existed by its end; a vvmd started on the backup (its database-dir) serves it
#    and finds it sound; a second backup into the same folder is refused, naming why, and so is
#    one asked for by a user who is not root or vvmd's.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir
chmod 755 "$tmpdir" # nobody, below, must reach vvm.conf and vvmd's socket
vvm_conf drives="LTO9" vvmd.allow-uid=65534
start_vvmd
start_mover m1
ctl vsn add L90001 --media LTO9 >/dev/null
vvs=()
for i in 1 2 3 4; do vvs+=("$(ctl create --class A --size 1M)"); done
ctl finish --wait --timeout 60 "${vvs[0]}" >/dev/null
ctl finish --wait --timeout 60 "${vvs[1]}" >/dev/null

stats=$(ctl db stats --json)
check '.tables[] | select(.name == "vv") | .records' 4 "$stats"
check '.tables[] | select(.name == "vsn") | .records' 1 "$stats"
expect 0 'vv .*4 ' -- ctl db stats
expect 0 'sound \(7 records in 6 tables' -- ctl db check
check '.sound' true "$(ctl db check --json)"

# A client creating VVs all along, bounded in count and time.
ctl ls --json | jq -r '.[].name' | sort >"$tmpdir/before"
(
  for ((i = 0; i < 200 && SECONDS < 60; i++)); do ctl create --class A --size 1M >/dev/null; done
) &
creator=$!
cleanup_fn kill_quietly "$creator"
sleep 0.5
ctl ls --json | jq -r '.[].name' | sort >"$tmpdir/acknowledged"
expect 0 "database copied to $tmpdir/backup: 6 files" -- ctl db backup "$tmpdir/backup"
ctl ls --json | jq -r '.[].name' | sort >"$tmpdir/after"
wait "$creator"
expect 1 'holds a database already' -- ctl db backup "$tmpdir/backup"
expect 1 'may not back up the database' -- setpriv --reuid=65534 --regid=65534 --clear-groups \
  "$vvctl" --conf "$conf" db backup "$tmpdir/other"
[[ ! -e $tmpdir/other ]] || die "a refused backup made $tmpdir/other"

stop_daemon "$mover_pid" mover
stop_daemon "$vvmd_pid" vvmd
# vvmd again, on the copy: the same configuration with the backup as its database-dir.
awk -v db="$tmpdir/backup" '{ print } /^\[vvmd\]$/ { print "database-dir = " db }' "$conf" \
  >"$tmpdir/backup.conf"
conf=$tmpdir/backup.conf
start_vvmd
ctl ls --json | jq -r '.[].name' | sort >"$tmpdir/restored"
missing=$(comm -23 "$tmpdir/acknowledged" "$tmpdir/restored")
[[ -z $missing ]] || die "the backup lacks VVs acknowledged before it: $missing"
extra=$(comm -13 "$tmpdir/after" "$tmpdir/restored")
[[ -z $extra ]] || die "the backup holds VVs that did not exist by its end: $extra"
check '.state' archived "$(ctl show --json "${vvs[0]}")"
expect 0 'sound' -- ctl db check
echo "backup: $(wc -l <"$tmpdir/restored") VVs ($(wc -l <"$tmpdir/acknowledged") acknowledged before it, $(wc -l <"$tmpdir/after") by its end)"
echo "PASS"
