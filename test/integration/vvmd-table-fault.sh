#!/usr/bin/env bash
# vvmd-table-fault.sh: vvmd whose VV table file stops taking writes while its journal is good.
# The real vvmd runs with faultfs (harness/faultfs.c) preloaded, which, once the test arms it,
# fails every write to vv.tab with EIO. A change's journal frame is its commit point, so:
#  - the change whose table write fails is acknowledged (its frame is durable: a restart replays
#    it), and every later change is refused, naming the table and the error;
#  - reads (show, ls, status) still answer, and agree with what a restart will find: the table's
#    file with the journal's frames put over it, so the acknowledged change is there;
#  - started again on a good disk, vvmd has every acknowledged change and takes changes again.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

[[ -n ${VVM_FAULTFS:-} && -f $VVM_FAULTFS ]] || die "VVM_FAULTFS (harness/faultfs.c, built) not found"
make_tmpdir
armed=$tmpdir/fault-armed
vvm_conf
LD_PRELOAD=$VVM_FAULTFS VVM_FAULT_PATH=/db/vv.tab VVM_FAULT_OPS=write VVM_FAULT_ARMED=$armed \
  start_vvmd

# state_is VV STATE: vvmd answers `show VV` with that state.
state_is() { check .state "$2" "$(ctl show --json "$1")"; }

vvtab=$tmpdir/state/db/vv.tab
[[ -f $vvtab ]] || die "$vvtab: no VV table there"

kept=()
for i in 1 2 3; do kept+=("$(ctl create --class A --size 1M)"); done
ctl finish "${kept[2]}" >/dev/null
echo "acknowledged before the fault: ${kept[*]}"

touch "$armed"
# The frame reaches the journal, the table write fails: the change is acknowledged all the same.
late=$(ctl create --class A --size 1M) || die "a create whose frame is durable was refused"
kept+=("$late")
wait_log "$vvmd_log" 'faultfs: write of .*/db/vv.tab'
wait_log "$vvmd_log" 'vv.tab.*every change is refused from now on'
echo "acknowledged while vv.tab failed: $late"
# Every later change is refused, naming the table and the error.
expect 1 'unusable.*vv.tab.*Input/output error' -- ctl create --class A --size 1M
expect 1 'unusable.*vv.tab.*Input/output error' -- ctl finish "${kept[0]}"
expect 1 'unusable.*vv.tab.*Input/output error' -- ctl rm "${kept[1]}"
# Reads agree with what a restart will find: the acknowledged create is there, nothing else new.
expect 0 'vvmd' -- ctl ping
state_is "${kept[0]}" hot
state_is "${kept[2]}" finished
state_is "$late" hot
listed=$(ctl ls --json)
check 'length' 4 "$listed"
for vv in "${kept[@]}"; do
  check "map(select(.name == \"$vv\")) | length" 1 "$listed"
done
check 'map(select(.state == "hot")) | length' 3 "$listed"
expect 0 'vvmd: up' -- ctl status
# The table file itself lacks the acknowledged VV: only the journal has it.
grep -q "$late" "$vvtab" && die "vv.tab holds $late although its writes failed"

stop_daemon "$vvmd_pid" vvmd
rm -f "$armed"

# A restart on a good disk replays the journal: every acknowledged change is there.
start_vvmd
names=$(ctl ls --json | jq -r '.[].name' | sort)
[[ $names == "$(printf '%s\n' "${kept[@]}" | sort)" ]] ||
  die "after the restart vvmd lists $(tr '\n' ' ' <<<"$names"), wanted ${kept[*]}"
state_is "$late" hot
state_is "${kept[2]}" finished
grep -q "$late" "$vvtab" || die "the restart did not write $late into vv.tab"
new=$(ctl create --class A --size 1M)
ctl finish "$late" >/dev/null
state_is "$late" finished
expect 0 'sound' -- ctl db check
echo "after the restart: created $new, finished $late"
echo "PASS"
