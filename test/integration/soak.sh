#!/usr/bin/env bash
# soak.sh: bench/soak's 60-second form. The whole single-host system (vvmd, two movers with four
# emulated drives on small tapes, nbdkit with the plugin) under two clients going round the VV
# lifecycle and a pack, while the chaos SIGKILLs and SIGSTOPs daemons, copy children and clients
# and injects faults (ENOSPC in the cache, EIO on tape reads and writes, torn cache writes, end of
# medium); then every invariant bench/soak checks (acknowledged writes read back, one good copy per
# media type that parses and matches its checksum, no VV lost or duplicated or serial reused, db
# check sound, no orphan files, no stuck queue, every daemon answers and exits cleanly, no process
# leaked). The test fails on any violation; the driver's final table is its output.
#
# VVM_SOAK_SEED picks the seed (default: a fixed one, so that a failure can be run again);
# VVM_SOAK_SECONDS the duration (default 60).
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir
status=0
nice /usr/bin/python3 "$VVM_SOURCE_DIR/bench/soak" --build "$VVM_BUILD_DIR" \
  --duration "${VVM_SOAK_SECONDS:-60}" --seed "${VVM_SOAK_SEED:-1717}" --clients 2 \
  --dir "$tmpdir/soak" --quiet >"$tmpdir/soak.out" 2>&1 || status=$?
cat "$tmpdir/soak.out"
if ((status != 0)); then
  # The daemons' logs around the violations.
  for log in "$tmpdir"/soak/log/*.log; do
    grep -Eq 'ERROR|runtime error|AddressSanitizer|faultfs' "$log" || continue
    echo "--- $log (errors, last 30) ---"
    grep -E 'error|ERROR|runtime error|AddressSanitizer' "$log" | tail -n 30
  done
  die "bench/soak found violations (exit $status): see the table above"
fi
grep -Eq '^violations +0$' "$tmpdir/soak.out" || die "bench/soak printed no clean table"
for kind in 'SIGKILL vvmd' 'SIGKILL mover' 'SIGKILL nbdkit'; do
  grep -Eq "^  $kind +[1-9]" "$tmpdir/soak.out" || echo "note: no '$kind' in this run"
done
echo "PASS"
