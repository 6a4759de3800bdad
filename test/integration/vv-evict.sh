#!/usr/bin/env bash
# vv-evict.sh: the cache manager with the real vvmd, a real vvmover with two emulated drives,
# nbdkit and NBD clients, over a 100 MiB cache ([cache] size). Four VVs are written through their
# cache files and archived, one hot and one finished that cannot be archived (its class's media
# has no VSN); one archived VV is read through NBD (the most recently used now) and another is
# held open by a client. The hot VV then grows past the high watermark: vvmd evicts the least
# recently used archived, closed VVs until the cache is below the low watermark, and leaves the
# hot, unarchived, open and recently read ones. vvctl evict refuses a hot, a finished and an open
# VV and another user, evicts an archived one and then says it is already evicted. Filled past
# what may be evicted, vvmd warns once, saying what holds the space.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir
chmod 755 "$tmpdir" # the unprivileged user below must reach the socket and vvm.conf
# Class B's media type has no VSN: its VVs are never archived.
vvm_conf drives="LTO9 LTO8" vvmd.allow-uid=65534 cache.size=100M cache.high-watermark=60% \
  cache.low-watermark=50% plugin.stage-timeout=5s class.B.media=LTO7

uri() { echo "nbd+unix:///vv/$1?socket=$tmpdir/nbd.sock"; }

# fill VV FROM_MIB MIB: MIB MiB of random data into VV's cache file at FROM_MIB MiB, on disk.
fill() {
  dd if=/dev/urandom of="$cache/$1" bs=1M seek="$2" count="$3" conv=notrunc,fsync status=none
}
field() { ctl show "$1" --json | jq -r ".$2"; }
# residency VV WANT: VV's record says cache WANT, and its cache file is there or gone to match.
residency() {
  local got
  got=$(field "$1" cache)
  [[ $got == "$2" ]] || die "$1 is $got, wanted $2: $(ctl show "$1" --json)"
  if [[ $2 == evicted ]]; then
    [[ ! -e $cache/$1 ]] || die "$1 is evicted but its cache file is still there"
  else
    [[ -e $cache/$1 ]] || die "$1 is $2 but its cache file is gone"
  fi
  echo "ok: $1 $2"
}
start_vvmd
start_mover m1
start_plugin "$tmpdir/nbd.sock"
grep -q "cache $cache: 0.0% used (0 of 104857600 bytes, \[cache\] size); evicts above 60%, down" \
  "$vvmd_log" || die "vvmd did not log the cache's use at start"
expect 0 "L90001" -- ctl vsn add L90001 --media LTO9 --class A
expect 0 "L80001" -- ctl vsn add L80001 --media LTO8 --class A

# --- a hot VV, a finished one that cannot be archived, four archived ones ---
hot=$(ctl create --class A --size 64M)
fill "$hot" 0 10
unarchived=$(ctl create --class B --size 10M)
fill "$unarchived" 0 10
ctl finish "$unarchived" >/dev/null
archived=()
for i in 1 2 3 4; do
  vv=$(ctl create --class A --size 8M)
  fill "$vv" 0 8
  archived+=("$vv")
  sleep 1.1 # last accesses count seconds: one apart, in creation order
done
a1=${archived[0]} a2=${archived[1]} a3=${archived[2]} a4=${archived[3]}
for vv in "${archived[@]}"; do ctl finish "$vv" >/dev/null; done
for vv in "${archived[@]}"; do
  expect 0 "^$vv: archived$" -- ctl finish "$vv" --wait --timeout 60
done
[[ $(field "$unarchived" state) == finished ]] ||
  die "$unarchived: $(ctl show "$unarchived" --json)"
echo "ok: $unarchived stays finished: class B's media has no VSN"

# 52 MiB of 100: below the high watermark, nothing goes.
sleep 6
for vv in "$hot" "$unarchived" "${archived[@]}"; do residency "$vv" cached; done
! grep -q "evicted VV" "$vvmd_log" || die "vvmd evicted below the high watermark"

# --- a1, the oldest, is read through NBD and so used most recently; a4 is held open ---
before=$(field "$a1" accessed)
qemu-img compare -f raw -F raw "$(uri "$a1")" "$cache/$a1" >/dev/null || die "$a1 reads wrong"
after=$(field "$a1" accessed)
((after > before)) || die "reading $a1 through NBD did not move its last access ($before)"
connect_client holder "$(uri "$a4")"
echo "ok: $a1 read through NBD (last access $before -> $after), $a4 held open"

# --- the hot VV grows to 20 MiB: 62%, over the high watermark ---
fill "$hot" 10 10
wait_log "$vvmd_log" \
  "cache: from 62.0% to 46.0% of 104857600 bytes: evicted 2 VV\(s\), 16777216 bytes" 20
# Each VV's own line comes once its eviction is durable, which can be after that summary.
for vv in "$a2" "$a3"; do wait_log "$vvmd_log" "evicted VV $vv \(" 10; done
order=$(grep -o "evicted VV A[0-9]* (8388608 bytes, 2 copies on tape, last access [^)]*) to make" \
  "$vvmd_log" | awk '{print $3}' | paste -sd' ')
[[ $order == "$a2 $a3" ]] ||
  die "vvmd evicted '$order', wanted '$a2 $a3' (least recently used first)"
echo "ok: evicted $order, least recently used first"
residency "$a2" evicted
residency "$a3" evicted
residency "$a1" cached    # read most recently
residency "$a4" cached    # open
residency "$hot" cached
residency "$unarchived" cached
[[ $(field "$a2" state) == archived ]] || die "$a2 lost its state"

# --- vvctl evict ---
expect 1 "VV $hot is hot: only an archived VV can be evicted" -- ctl evict "$hot"
expect 1 "VV $unarchived is finished but not yet archived" -- ctl evict "$unarchived"
expect 1 "VV $a4 is open \(1 open: .*\): it can be evicted once it is closed" -- ctl evict "$a4"
expect 1 "$nobody_name may not evict VV $a1: it belongs to root" -- \
  "${nobody[@]}" "$vvctl" --conf "$conf" evict "$a1"
residency "$a1" cached
expect 0 "^$a1: evicted \(8388608 bytes freed\)$" -- ctl evict "$a1"
residency "$a1" evicted
expect 0 "^$a1: already evicted$" -- ctl evict "$a1"
expect 1 "no VV A0000000999" -- ctl evict A0000000999
expect 2 "a VV name is required" -- ctl evict
ctl evict --help | grep -q "Only an archived" || die "vvctl evict --help says nothing useful"

# --- past what may be evicted: a4 closed and evicted, then a warning, once ---
disconnect_client holder
fill "$hot" 20 30 # hot 50 MiB + unarchived 10 + a4 8: 68%
wait_log "$vvmd_log" \
  "cache: from 68.0% to 60.0% of 104857600 bytes: evicted 1 VV\(s\), 8388608 bytes" 20
residency "$a4" evicted
stuck="cache at 60.0% .* stays above its low watermark \(50%\): nothing left may be evicted; "
stuck+="it holds 1 hot VV\(s\) \(52[0-9]{6} bytes\), 1 finished VV\(s\) not yet archived "
stuck+="\(10485760 bytes\), 0 open VV\(s\)" # the hot VV's extent tree takes a block or so
wait_log "$vvmd_log" "$stuck" 5
sleep 11 # two more checks
warnings=$(grep -c "stays above its low watermark" "$vvmd_log")
((warnings == 1)) || die "vvmd warned $warnings times, wanted once"
echo "ok: one warning while nothing more may go"
residency "$hot" cached
residency "$unarchived" cached
echo "ok: vv-evict"
