#!/usr/bin/env bash
# vv-drive-share.sh: two storage classes with archive backlogs share three emulated drives by
# their [class] write-max-drives (A 1, B 2), with the real vvmd and vvmover: A's backlog, queued
# first, never holds more than one drive and B's never more than two, both write side by side
# while both have copies waiting, and every VV ends archived.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir

# 2 MiB/s a drive: a 4 MiB VV takes 2 s to write, so the copies overlap.
vvm_conf drives="LTO9 LTO9 LTO9" rate=2M class.A.media=LTO9 class.A.write-max-drives=1 \
  class.B.media=LTO9 class.B.write-max-drives=2
grep -q '^write-max-drives = 2$' "$conf" || die "vvm.conf: $(cat "$conf")"
start_vvmd
start_mover m1
for i in 1 2 3; do
  expect 0 "L9000$i" -- ctl vsn add "L9000$i" --media LTO9 --class A
  expect 0 "L9100$i" -- ctl vsn add "L9100$i" --media LTO9 --class B
done

# new_vv CLASS: a finished VV of CLASS, 4 MiB of random data; its name appended to $vvs.
vvs=()
new_vv() {
  local vv
  vv=$(ctl create --class "$1" --size 4M)
  head -c $((4 << 20)) /dev/urandom >"$cache/$vv"
  vvs+=("$vv")
}
for i in 1 2 3 4; do new_vv A; done
for i in 1 2 3 4; do new_vv B; done
for vv in "${vvs[@]}"; do ctl finish "$vv" >/dev/null; done # A's backlog first

# Watch the drives until no copy runs or waits (at most 600 looks and 120 s): how many of each
# class's copies run at once.
most_a=0 most_b=0 together=0 idle=0 deadline=$((SECONDS + 120))
for ((i = 0; i < 600 && SECONDS < deadline; i++)); do
  status=$(ctl status --json)
  a=$(jq '[.drives[].copying | select(startswith("archive A"))] | length' <<<"$status")
  b=$(jq '[.drives[].copying | select(startswith("archive B"))] | length' <<<"$status")
  ((a <= 1)) || die "class A writes on $a drives, its limit is 1: $status"
  ((b <= 2)) || die "class B writes on $b drives, its limit is 2: $status"
  ((a > most_a)) && most_a=$a
  ((b > most_b)) && most_b=$b
  ((a == 1 && b == 2)) && together=1
  if jq -e '(.queues | length) == 0 and all(.drives[]; .copying == "")' <<<"$status" >/dev/null; then
    idle=1
    break
  fi
  sleep 0.1
done
((idle)) || die "copies still running or queued after $i looks: $(ctl status)"
for vv in "${vvs[@]}"; do
  ctl show "$vv" --json | jq -e '.state == "archived"' >/dev/null ||
    die "$vv is not archived: $(ctl show "$vv")"
done
((most_a == 1 && most_b == 2)) || die "at most $most_a A and $most_b B copies at once, wanted 1 and 2"
((together)) || die "A and B never wrote side by side on 1 and 2 drives"
echo "ok: A wrote on at most 1 drive, B on at most 2, side by side; all ${#vvs[@]} VVs archived"

# Each class's copies went to its own tapes.
for vv in "${vvs[@]}"; do
  vsn=$(ctl show "$vv" --json | jq -r '.copies[0].vsn')
  case $vv:$vsn in
    A*:L900* | B*:L910*) ;;
    *) die "$vv went to $vsn" ;;
  esac
done
echo "ok: A's copies on L900xx, B's on L910xx"
