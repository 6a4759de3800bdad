#!/usr/bin/env bash
# vvmd-journal-fault.sh: vvmd whose journal stops being durable. The real vvmd runs with faultfs
# (harness/faultfs.c) preloaded, which, once the test arms it, fails every durable write and
# fdatasync of the database's journal with EIO, as a dying disk would. Then:
#  - the change under way is refused, naming the journal and the error, and so is every later
#    change (create, finish, remove), each saying why, while reads (ping, show, ls, status) are
#    still answered, from what is durable;
#  - vvmd stops on SIGTERM;
#  - started again on a good disk (without the fault), it has every VV acknowledged before the
#    fault, none of the refused ones, and takes changes again.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

[[ -n ${VVM_FAULTFS:-} && -f $VVM_FAULTFS ]] || die "VVM_FAULTFS (harness/faultfs.c, built) not found"
make_tmpdir
armed=$tmpdir/fault-armed
vvm_conf
LD_PRELOAD=$VVM_FAULTFS VVM_FAULT_PATH=/db/journal VVM_FAULT_ARMED=$armed start_vvmd

# state_is VV STATE: vvmd answers `show VV` with that state.
state_is() { check .state "$2" "$(ctl show --json "$1")"; }

# Before the fault: changes are acknowledged as usual.
kept=()
for i in 1 2 3; do kept+=("$(ctl create --class A --size 1M)"); done
ctl finish "${kept[2]}" >/dev/null
echo "acknowledged before the fault: ${kept[*]}"

touch "$armed"
expect 1 'journal.*Input/output error' -- ctl create --class A --size 1M
wait_log "$vvmd_log" 'faultfs: (durable write|fdatasync) of .*/db/journal'
wait_log "$vvmd_log" 'every change is refused from now on'
# Every later change is refused too, with the reason: a journal that failed once is not trusted
# again until a restart.
expect 1 'unusable.*journal.*Input/output error' -- ctl create --class A --size 1M
expect 1 'unusable.*journal.*Input/output error' -- ctl finish "${kept[0]}"
expect 1 'unusable.*journal.*Input/output error' -- ctl rm "${kept[1]}"
# Reads are still answered, and show only what is durable: not the refused create.
expect 0 'vvmd' -- ctl ping
state_is "${kept[0]}" hot
state_is "${kept[2]}" finished
listed=$(ctl ls --json)
check 'length' 3 "$listed"
for vv in "${kept[@]}"; do
  check "map(select(.name == \"$vv\")) | length" 1 "$listed"
done
expect 0 'vvmd: up' -- ctl status

stop_daemon "$vvmd_pid" vvmd
rm -f "$armed"

# A restart on a good disk: what was acknowledged is there, what was refused is not.
start_vvmd
state_is "${kept[0]}" hot
state_is "${kept[1]}" hot
state_is "${kept[2]}" finished
names=$(ctl ls --json | jq -r '.[].name' | sort)
[[ $names == "$(printf '%s\n' "${kept[@]}" | sort)" ]] ||
  die "after the restart vvmd lists $(tr '\n' ' ' <<<"$names"), wanted ${kept[*]}"
new=$(ctl create --class A --size 1M)
ctl finish "${kept[0]}" >/dev/null
state_is "${kept[0]}" finished
echo "after the restart: created $new, finished ${kept[0]}"
echo "PASS"
