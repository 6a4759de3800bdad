#!/usr/bin/env bash
# vv-stage-cache-full.sh: the cache filesystem fills while a VV is staged into it. The real
# vvmover runs with faultfs (harness/faultfs.c) preloaded, which, once the test arms it in the
# middle of a stage, fails every write to the stage's temporary file with ENOSPC, as a full
# filesystem does (the copy child inherits it). Then:
#  - the stage fails with the reason (the cache is full, the file, ENOSPC), and vvctl stage
#    --wait says so and exits 1; an NBD client reading the VV gets an error, not a hang;
#  - nothing half-staged is taken for whole: no temporary file is left, the VV is not in the
#    cache and stays evicted;
#  - the tape is not blamed: no error counted on its VSN, no other copy tried;
#  - once there is room again, a stage works and brings the VV's bytes back whole.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

[[ -n ${VVM_FAULTFS:-} && -f $VVM_FAULTFS ]] || die "VVM_FAULTFS (harness/faultfs.c, built) not found"
make_tmpdir
armed=$tmpdir/fault-armed
# A slow drive (4 MiB/s), so that an 8 MiB stage lasts long enough to fill the cache in its middle.
vvm_conf drives="LTO9" drive.d0.emulated-rate=4M plugin.stage-timeout=30s
start_vvmd
LD_PRELOAD=$VVM_FAULTFS VVM_FAULT_PATH=/.stage. VVM_FAULT_OPS=write,fsync VVM_FAULT_ERRNO=ENOSPC \
  VVM_FAULT_ARMED=$armed start_mover m1
ctl vsn add L90001 --media LTO9 >/dev/null
errors_of() { ctl vsn ls --json | jq -r --arg t "$1" '.[] | select(.name == $t) | .errors'; }
cache_state() { ctl show "$1" --json | jq -r .cache; }

vv=$(ctl create --class A --size 8M --perms 0666)
head -c $((8 * M)) /dev/urandom >"$cache/$vv"
cp "$cache/$vv" "$tmpdir/original"
ctl finish "$vv" --wait --timeout 60 >/dev/null
ctl evict "$vv" >/dev/null

# The stage starts; once its temporary file has taken some of the data, the cache "fills".
ctl stage "$vv" >/dev/null
for ((i = 0; i < 200; i++)); do
  part=$(compgen -G "$cache/.stage.$vv.*" | head -n1) || true
  [[ -n $part && $(stat -c %s "$part" 2>/dev/null || echo 0) -gt 0 ]] && break
  sleep 0.05
done
[[ -n $part ]] || die "no stage of $vv under way"
touch "$armed"
expect 1 "$vv.*the cache is full.*No space left on device" -- ctl stage "$vv" --wait --timeout 60
wait_log "$mover_log" "faultfs: write of .*/\.stage\.$vv\."
wait_log "$vvmd_log" "stage of VV $vv from L90001 file 1 failed: the cache is full"
compgen -G "$cache/.stage.$vv.*" >/dev/null && die "the partial stage file is left: $(ls -a "$cache")"
[[ -e $cache/$vv ]] && die "$cache/$vv exists after a stage that failed"
[[ $(cache_state "$vv") == evicted ]] || die "$vv is $(cache_state "$vv") after the failed stage"
[[ $(errors_of L90001) == 0 ]] || die "L90001 was blamed for the full cache: $(errors_of L90001) errors"
grep -q "copy 1 set aside" "$vvmd_log" && die "vvmd set the copy aside for a full cache"
echo "ok: the full cache failed the stage cleanly; nothing half-staged, the tape not blamed"

# An NBD client that reads the VV while the cache is still full gets an error.
start_plugin "$tmpdir/nbd.sock"
status=0
out=$(timeout 60 qemu-io -f raw -r -c 'read 0 64k' "nbd+unix:///vv/$vv?socket=$tmpdir/nbd.sock" 2>&1) ||
  status=$?
((status != 0 && status != 124)) || [[ $out == *"error"* || $out == *"failed"* ]] ||
  die "an NBD read of $vv with the cache full: status $status: $out"
((status != 124)) || die "an NBD read of $vv with the cache full hung: $out"
grep -Eq "$vv.*(cache is full|No space left)" "$nbdkit_log" ||
  die "nbdkit's log does not say why $vv could not be read: $(grep "$vv" "$nbdkit_log" | tail -3)"
echo "ok: an NBD read of $vv with the cache full fails: $(head -n1 <<<"$out")"

# Room again: a stage works (once the failure's news has gone stale, in a few seconds).
rm -f "$armed"
staged=0
for ((i = 0; i < 30; i++)); do
  if ctl stage "$vv" --wait --timeout 60 >/dev/null 2>&1; then staged=1; break; fi
  sleep 1
done
((staged)) || die "no stage of $vv worked once the cache had room"
cmp -s "$cache/$vv" "$tmpdir/original" || die "$vv came back different"
[[ $(errors_of L90001) == 0 ]] || die "L90001 has $(errors_of L90001) errors"
echo "ok: with room again, $vv staged back whole"
echo "PASS"
