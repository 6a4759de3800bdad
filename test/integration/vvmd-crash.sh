#!/usr/bin/env bash
# vvmd-crash.sh: vvmd killed with SIGKILL three times in the middle of a workload, and restarted
# each time, with nothing lost. A background workload creates VVs of class A, writes random bytes
# into each (through its cache file, or through NBD with nbdcopy and the plugin), and finishes
# two in three, while the real vvmover copies them onto two slow emulated drives; the test kills
# vvmd while a copy is in flight, after 6, 12 and 18 creates, and starts it again. Afterwards:
#  - every VV whose name `vvctl create` printed exists, with its size;
#  - every VV whose `vvctl finish` succeeded is finished or archived, and `finish --wait`
#    archives it (a copy whose report a kill lost is written again over itself, and no tape is
#    taken out of service for it); each of its copies is a tape file (`vvtape ls`, `vvtape cat`) with its serial,
#    its size and exactly the bytes the workload wrote;
#  - the catalogue is consistent: no two VVs share a name, a serial or a tape file; no VSN's next
#    file is one a copy already uses; vvmd's tables, read with awk as DESIGN.md says anyone can,
#    agree with `vvctl ls`;
#  - no serial is reused: the serials `create` printed only grow, and a create after the last
#    restart gets a serial above every one in the catalogue.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir
data=$tmpdir/data # what the workload wrote into each VV
work=$tmpdir/work # the workload's record: what vvctl told it
mkdir -p "$data" "$work"
touch "$work/created" "$work/finished" "$work/written"
kills=(6 12 18) # kill vvmd once this many creates have succeeded
total=24        # the workload stops after this many creates

# Slow drives: a VV of 4 MiB takes 2 s a copy, more than the workload takes to finish the next
# one, so that a backlog builds up and copies are in flight when vvmd is killed.
vvm_conf drives="LTO9 LTO8" rate=2M vvmd.request-timeout=10s cache.size=1G \
  plugin.stage-timeout=30s

# The workload, in the background: it only records what vvctl and the clients told it.
workload() {
  local i=0 n=0 vv out try
  while ((n < total && i < 10 * total)); do
    i=$((i + 1))
    if ! out=$(ctl create --class A --size 4M 2>&1); then
      echo "create $i failed: $out"
      sleep 0.2
      continue
    fi
    vv=$out
    n=$((n + 1))
    echo "$vv" >>"$work/created"
    head -c $((4 << 20)) /dev/urandom >"$data/$vv"
    if ((n % 2)); then
      cat "$data/$vv" >"$cache/$vv"
    elif ! out=$(nbdcopy "$data/$vv" "nbd+unix:///vv/$vv?socket=$tmpdir/nbd.sock" 2>&1); then
      echo "nbdcopy into $vv failed: $out"
      continue # not written: not finished either
    fi
    echo "$vv" >>"$work/written"
    sleep 0.3             # a steady pace, so that the kills land in the middle of the work
    ((n % 3)) || continue # every third VV stays hot
    # A few tries: vvmd may be down for a moment, or the NBD client's close not yet told.
    for try in 1 2 3 4 5; do
      if out=$(ctl finish "$vv" 2>&1); then
        echo "$vv" >>"$work/finished"
        break
      fi
      echo "finish $vv, try $try, failed: $out"
      sleep 0.3
    done
  done
  echo "workload done: $n creates in $i tries"
}

start_vvmd
start_mover m1
# nbdcopy hangs up with requests in flight when vvmd dies under its writes: the plugin's default
# parallel=auto serves one connection's requests one at a time on nbdkit 1.32, which keeps that
# from aborting nbdkit (abrupt-client.sh tests it).
start_plugin "$tmpdir/nbd.sock"
ctl vsn add L90001 --media LTO9 --class A >/dev/null
ctl vsn add L80001 --media LTO8 --class A >/dev/null

workload >"$tmpdir/workload.log" 2>&1 &
workload_pid=$!
_vvm_logs+=("workload=$tmpdir/workload.log")
cleanup_fn kill_quietly "$workload_pid"

# --- three kills, each after N creates and while a copy runs ---
for k in "${kills[@]}"; do
  for ((i = 0; i < 1200; i++)); do
    (($(wc -l <"$work/created") >= k)) && break
    kill -0 "$workload_pid" 2>/dev/null || die "the workload ended before $k creates"
    sleep 0.1
  done
  (($(wc -l <"$work/created") >= k)) || die "the workload did not reach $k creates in 120 s"
  # A copy in flight, if one comes within 15 s: the drives are busy with a backlog by now.
  copying=
  for ((i = 0; i < 150; i++)); do
    copying=$(ctl status --json 2>/dev/null | jq -r '[.drives[].copying | select(. != "")] | join("; ")') || copying=
    [[ -n $copying ]] && break
    sleep 0.1
  done
  kill_vvmd
  echo "ok: vvmd killed after $(wc -l <"$work/created") creates, copying: ${copying:-nothing}"
  [[ -n $copying ]] && in_flight=$((${in_flight:-0} + 1))
  sleep 0.$((RANDOM % 10)) # the workload meets a dead vvmd for a moment
  start_vvmd
  grep -q "vvmd ready" "$vvmd_log" || die "vvmd $vvmd_log did not start"
done
((${in_flight:-0} >= 2)) || die "only ${in_flight:-0} of the 3 kills came while a copy ran"
wait "$workload_pid" || die "the workload failed"
cat "$tmpdir/workload.log"
mapfile -t created <"$work/created"
mapfile -t finished <"$work/finished"
((${#created[@]} == total)) || die "the workload created ${#created[@]} VVs, wanted $total"
((${#finished[@]} >= total / 3)) || die "only ${#finished[@]} finishes succeeded"
echo "ok: the workload created ${#created[@]} VVs and finished ${#finished[@]} across 3 kills"

# --- every VV create printed exists; serials only grew ---
last=0
for vv in "${created[@]}"; do
  json=$(ctl show "$vv" --json) || die "$vv, which create printed, is gone: $json"
  jq -e '.size == 4194304 and .class == "A"' <<<"$json" >/dev/null || die "$vv: $json"
  serial=$(jq .serial <<<"$json")
  ((serial > last)) || die "$vv has serial $serial, not above the previous $last: reused"
  last=$serial
done
echo "ok: all ${#created[@]} VVs create printed exist, with growing serials"

# --- every finished VV is finished or archived, and gets archived ---
for vv in "${finished[@]}"; do
  state=$(ctl show "$vv" --json | jq -r .state)
  [[ $state == finished || $state == archived ]] || die "$vv was finished, and is now $state"
done
for vv in "${finished[@]}"; do
  out=$(ctl finish "$vv" --wait --timeout 180) || die "finish --wait $vv: $out"
  [[ $(tail -n1 <<<"$out") == "$vv: archived" ]] || die "finish --wait $vv printed: $out"
done
echo "ok: all ${#finished[@]} finished VVs are archived"
# A copy cut off from its report by a kill is written again over itself on the same tape file,
# which stays in service (before, the mover refused and vvmd marked the tape full).
grep -q "(an earlier attempt whose report was lost): written again over it" "$mover_log" ||
  die "no copy was written again over its earlier attempt"
grep -q "is not as vvmd's database says" "$tmpdir"/vvmd*.log && die "a tape was taken out of service"
echo "ok: copies whose reports the kills lost were written again over themselves"

# --- the copies: each a tape file with the VV's serial, size and bytes ---
ls9=$("$vvtape" ls "$library/L90001.tap" --json)
ls8=$("$vvtape" ls "$library/L80001.tap" --json)
all=$(ctl ls --json)
for vv in "${finished[@]}"; do
  json=$(jq -c --arg vv "$vv" '.[] | select(.name == $vv)' <<<"$all")
  serial=$(jq .serial <<<"$json")
  [[ $(jq '.copies | length' <<<"$json") == 2 ]] || die "$vv does not have 2 copies: $json"
  for c in 0 1; do
    vsn=$(jq -r ".copies[$c].vsn" <<<"$json")
    file=$(jq ".copies[$c].file" <<<"$json")
    tape=$([[ $vsn == L90001 ]] && echo "$ls9" || echo "$ls8")
    jq -e ".files[] | select(.file == $file) | .state == \"ok\" and .hdr.serial == $serial
      and .hdr.size == 4194304 and .eof.serial == $serial" <<<"$tape" >/dev/null ||
      die "$vv copy $((c + 1)): $vsn file $file is not its: $(jq -c ".files[] | select(.file == $file)" <<<"$tape")"
    "$vvtape" cat "$library/$vsn.tap" "$file" | cmp -s - "$data/$vv" ||
      die "$vv copy $((c + 1)) on $vsn file $file is not the bytes the workload wrote"
  done
done
echo "ok: every copy is a tape file with its VV's serial, size and bytes"
# Written hot VVs keep their bytes in the cache.
for vv in $(comm -23 <(sort "$work/written") <(sort "$work/finished")); do
  cmp -s "$cache/$vv" "$data/$vv" || die "the hot $vv lost its bytes"
done

# --- consistency: names, serials and tape files unique; next files beyond the copies ---
[[ $(jq '[.[].name] | length == (unique | length)' <<<"$all") == true ]] || die "names repeat: $all"
[[ $(jq '[.[].serial] | length == (unique | length)' <<<"$all") == true ]] || die "serials repeat"
[[ $(jq '[.[].copies[] | "\(.vsn) \(.file)"] | length == (unique | length)' <<<"$all") == true ]] ||
  die "two copies share a tape file: $(jq -c '[.[] | {name, copies}]' <<<"$all")"
vsns=$(ctl vsn ls --json)
for vsn in L90001 L80001; do
  next=$(jq --arg v "$vsn" '.[] | select(.name == $v) | .next_file' <<<"$vsns")
  top=$(jq --arg v "$vsn" '[.[].copies[] | select(.vsn == $v) | .file] | max // 0' <<<"$all")
  ((next > top)) || die "$vsn's next file is $next, but a copy is file $top"
done
echo "ok: no name, serial or tape file used twice; the next files are beyond every copy"
# vvmd's VV table (a record a line: A for live, its CRC, name, class, serial...) agrees with
# vvctl ls.
stop_vvmd
table_names=$(awk '$1 == "A" { print $3 }' "$tmpdir/state/db/vv.tab" | sort)
[[ $table_names == "$(jq -r '.[].name' <<<"$all" | sort)" ]] ||
  die "vv.tab's live records are not the VVs vvctl ls lists: $table_names"
[[ $(awk '$1 == "A" { print $5 }' "$tmpdir/state/db/vv.tab" | sort | uniq -d) == "" ]] ||
  die "vv.tab has a serial twice"
echo "ok: vv.tab, read with awk, lists the same VVs, each serial once"

# --- a create after the restarts gets a serial above every one ever used ---
start_vvmd
top=$(jq '[.[].serial] | max' <<<"$all")
vv=$(ctl create --class A --size 1M)
serial=$(ctl show "$vv" --json | jq .serial)
((serial > top)) || die "the create after the restarts got serial $serial; $top was already used"
echo "ok: $vv, created after the restarts, has serial $serial > $top"
echo "vvmd-crash: all checks passed"
