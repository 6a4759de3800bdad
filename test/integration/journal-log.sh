#!/usr/bin/env bash
# journal-log.sh: the daemons' log lines as systemd's journal wants them. vvmd is started as a
# unit starts it, its stderr a stream whose device and inode $JOURNAL_STREAM names: each line is
# "<N>LEVEL: message", N the level's syslog priority (sd-daemon(3)), with no time or pid of its
# own (journald adds them). The mover, started without it, writes today's lines: a UTC time to
# the millisecond, "vvmover[PID] LEVEL: message". A VV archived through both shows that the lines
# name the VV, the VSN, the drive and the mover as vvctl does.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir
vvm_conf drives="LTO9"
# As systemd does: JOURNAL_STREAM names the file that stderr is (the log start_daemon opens).
start_daemon vvmd "$vvctl" --conf "$conf" ping --timeout 1 -- \
  sh -c 'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec "$@"' sh "$vvmd" --conf "$conf"
vvmd_log=$daemon_log
start_mover m1
expect 0 L90001 -- ctl vsn add L90001 --media LTO9 --class A
vv=$(ctl create --class A --size 1M)
expect 0 "^$vv: archived" -- ctl finish "$vv" --wait --timeout 60

# Every line of vvmd's: a priority, a level word that matches it, no time.
declare -A priority=([debug]=7 [info]=6 [notice]=5 [warning]=4 [error]=3)
n=0
while IFS= read -r line; do
  [[ $line =~ ^\<([0-7])\>(debug|info|notice|warning|error):\ . ]] ||
    die "vvmd's line is not '<N>LEVEL: message': $line"
  [[ ${BASH_REMATCH[1]} == "${priority[${BASH_REMATCH[2]}]}" ]] ||
    die "vvmd's line has priority ${BASH_REMATCH[1]} for ${BASH_REMATCH[2]}: $line"
  n=$((n + 1))
done <"$vvmd_log"
((n >= 5)) || die "vvmd wrote only $n lines"
echo "ok: vvmd's $n lines are '<N>LEVEL: message', with no time of their own"
grep -qx "<6>info: finished VV $vv for uid 0 gid 0 pid [0-9]*" "$vvmd_log" ||
  die "no '<6>info: finished VV $vv ...' line"
grep -qE "^<6>info: VV $vv: copy 1 on L90001 file 1 \(1048576 bytes, checksum [0-9a-f]{16}\): archived$" \
  "$vvmd_log" || die "no '<6>info: VV $vv: copy 1 on L90001 ...' line"
grep -qE '^<6>info: mount L90001 \(LTO9, blank\) in drive d0 of mover m1 ' "$vvmd_log" ||
  die "no '<6>info: mount L90001 ... in drive d0 of mover m1' line"
echo "ok: vvmd names the VV, the VSN, the drive and the mover as vvctl does"

# The mover's lines, without $JOURNAL_STREAM: as before.
grep -qE "^20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z vvmover\[$mover_pid\] info: job 1 archive started: drive d0, VSN L90001, file 1, " \
  "$mover_log" || die "the mover's lines are not 'TIME vvmover[PID] info: ...': $(head -n 3 "$mover_log")"
! grep -q '^<[0-7]>' "$mover_log" || die "the mover, not on the journal, wrote <N> prefixes"
echo "ok: the mover, not on the journal, writes 'TIME vvmover[PID] LEVEL: message'"
echo "journal-log: PASS"
