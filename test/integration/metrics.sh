#!/usr/bin/env bash
# metrics.sh: vvmd's and a mover's Prometheus endpoints ([vvmd] metrics, [mover NAME] metrics)
# with the real daemons, nbdkit and NBD clients. Both are scraped with curl and checked with
# `promtool check metrics` before and after real work: a VV created, written through nbdkit,
# finished and archived to an emulated tape, evicted and staged back through an NBD read; a VV
# of a class whose media type has no VSN waits in its archive queue; a tape whose image is
# spoilt fails its copy (and its drive is down while its mover is). Every counter that work moves must have moved by exactly what was done.
# Then the configuration errors: a malformed address and one already taken stop vvmd and the
# mover with exit 2 and a message naming vvm.conf's line.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"
requires curl --version
requires promtool --version

make_tmpdir
vvmd_metrics=127.0.0.1:$(pick_unused_port)
mover_metrics=127.0.0.1:$(pick_unused_port)
# Class A keeps one copy on LTO9 (drive d0); class B's LTO7 (drive d1) has no VSN at first.
vvm_conf drives="LTO9 LTO7" class.A.media=LTO9 class.B.media=LTO7 cache.size=100M \
  vvmd.metrics="$vvmd_metrics" mover.m1.metrics="$mover_metrics" plugin.stage-timeout=60s
start_vvmd
start_mover m1
start_plugin "$tmpdir/nbd.sock"
grep -q "metrics on http://$vvmd_metrics/metrics" "$vvmd_log" || die "vvmd did not log its metrics"

# scrape NAME ADDRESS: $tmpdir/NAME.prom, the endpoint's exposition, checked by promtool (its
# lint too: names, units, _total on counters).
scrape() {
  curl -fsS --max-time 10 "http://$2/metrics" >"$tmpdir/$1.prom" || die "cannot scrape $2"
  promtool check metrics <"$tmpdir/$1.prom" >"$tmpdir/$1.promtool" 2>&1 ||
    die "promtool check metrics $1: $(cat "$tmpdir/$1.promtool")"
}
# value NAME SERIES: the value of SERIES (a metric name with its labels in the exposition's
# order, as in 'vvm_vvs{state="hot"}') in $tmpdir/NAME.prom; 0 when it is absent.
value() {
  awk -v s="$2" '$1 == s { print $2; found = 1 } END { if (!found) print 0 }' "$tmpdir/$1.prom"
}
# expect_value NAME SERIES WANT: SERIES is WANT (compared as numbers).
expect_value() {
  local got
  got=$(value "$1" "$2")
  awk -v a="$got" -v b="$3" 'BEGIN { exit !(a + 0 == b + 0) }' ||
    die "$1: $2 is $got, wanted $3"
  echo "ok: $1 $2 $got"
}
# scrape_until NAME ADDRESS SERIES WANT: scrape (into NAME) until SERIES is WANT, for at most
# 10 s: for what a daemon counts a moment after the event another one reported.
scrape_until() {
  local i
  for ((i = 0; i < 50; i++)); do
    scrape "$1" "$2"
    awk -v a="$(value "$1" "$3")" -v b="$4" 'BEGIN { exit !(a + 0 == b + 0) }' && break
    sleep 0.2
  done
}
# expect_more NAME SERIES MIN: SERIES is MIN or more.
expect_more() {
  local got
  got=$(value "$1" "$2")
  awk -v a="$got" -v b="$3" 'BEGIN { exit !(a + 0 >= b + 0) }' ||
    die "$1: $2 is $got, wanted at least $3"
  echo "ok: $1 $2 $got"
}

# --- before any work ---
scrape vvmd0 "$vvmd_metrics"
scrape mover0 "$mover_metrics"
version=$("$vvmd" --version | awk '{ print $NF }')
expect_value vvmd0 "vvm_build_info{daemon=\"vvmd\",name=\"$(hostname)\",version=\"$version\"}" 1
expect_value mover0 "vvm_build_info{daemon=\"vvmover\",name=\"m1\",version=\"$version\"}" 1
expect_value vvmd0 'vvm_archive_queue_files{class="A",media="LTO9"}' 0
expect_value vvmd0 'vvm_drives{state="empty"}' 2
expect_value vvmd0 'vvm_cache_capacity_bytes' $((100 * M))
expect_value vvmd0 'vvm_cache_high_watermark_bytes' $((90 * M))
expect_value vvmd0 'vvm_cache_low_watermark_bytes' $((70 * M))
expect_value vvmd0 'vvm_vvs{state="hot"}' 0
expect_value mover0 'vvm_mover_drives{state="idle"}' 2
expect_value mover0 'vvm_mover_drive_busy{drive="d0",media="LTO9"}' 0

# --- a VV's whole life: written through nbdkit, archived, evicted, staged by an NBD read ---
expect 0 L90001 -- ctl vsn add L90001 --media LTO9 --class A
vv=$(ctl create --class A --size 8M)
uri="nbd+unix:///vv/$vv?socket=$tmpdir/nbd.sock"
io "$uri" -c 'write -P 0xab 0 8M'
scrape vvmd1 "$vvmd_metrics"
expect_value vvmd1 'vvm_vvs{state="hot"}' 1
expect_value vvmd1 'vvm_control_requests_total{code="ok",op="vv-create"}' 1
expect_value vvmd1 'vvm_control_request_duration_seconds_count{op="vv-create"}' 1
expect_more vvmd1 'vvm_control_requests_total{code="ok",op="vv-open"}' 1
expect_more vvmd1 'vvm_db_commit_duration_seconds_count' 2
expect_more vvmd1 'vvm_db_commit_group_size_count' 2
expect_more vvmd1 'vvm_cache_used_bytes' $((8 * M))

expect 0 "^$vv: archived" -- ctl finish "$vv" --wait --timeout 60
expect 0 "$vv: evicted" -- ctl evict "$vv"
scrape vvmd2 "$vvmd_metrics"
expect_value vvmd2 'vvm_vvs{state="archived"}' 1
expect_value vvmd2 'vvm_vvs{state="hot"}' 0
expect_value vvmd2 'vvm_archived_files_total{class="A",media="LTO9"}' 1
expect_value vvmd2 'vvm_archived_bytes_total{class="A",media="LTO9"}' $((8 * M))
expect_value vvmd2 'vvm_mounts_total{drive="d0",media="LTO9"}' 1
expect_value vvmd2 'vvm_evictions_total' 1
expect_value vvmd2 'vvm_evicted_bytes_total' $((8 * M))
expect_value vvmd2 'vvm_control_requests_total{code="ok",op="vv-evict"}' 1
expect_value vvmd2 'vvm_drives{state="loaded"}' 1
expect_value vvmd2 'vvm_open_vvs' 0

# Reading the evicted VV through NBD stages it back. vvmd counts the stage when the copy's final
# report arrives, which may be a moment after the client has its data.
io "$uri" -r -c 'read -P 0xab 0 8M'
scrape_until vvmd3 "$vvmd_metrics" 'vvm_staged_files_total{media="LTO9"}' 1
# The mover counts a copy once its child has exited, a moment after the child's report to vvmd.
scrape_until mover3 "$mover_metrics" 'vvm_mover_copies_total{drive="d0",op="stage",result="done"}' 1
expect_value vvmd3 'vvm_staged_files_total{media="LTO9"}' 1
expect_value vvmd3 'vvm_staged_bytes_total{media="LTO9"}' $((8 * M))
expect_value vvmd3 'vvm_stage_queue_files{media="LTO9"}' 0
expect_value mover3 'vvm_mover_copies_total{drive="d0",op="archive",result="done"}' 1
expect_value mover3 'vvm_mover_copies_total{drive="d0",op="stage",result="done"}' 1
expect_value mover3 'vvm_mover_copied_bytes_total{drive="d0",op="archive"}' $((8 * M))
expect_value mover3 'vvm_mover_copied_bytes_total{drive="d0",op="stage"}' $((8 * M))
expect_value mover3 'vvm_mover_mount_duration_seconds_count{drive="d0"}' 2
expect_value mover3 'vvm_control_requests_total{code="ok",op="archive"}' 1
expect_value mover3 'vvm_control_requests_total{code="ok",op="stage"}' 1
expect_value mover3 'vvm_mover_copies_running{op="archive"}' 0

# --- a queue that does not drain: class B's media type has no VSN ---
b=$(ctl create --class B --size 1M)
ctl finish "$b" >/dev/null
sleep 2
scrape vvmd4 "$vvmd_metrics"
expect_value vvmd4 'vvm_archive_queue_files{class="B",media="LTO7"}' 1
expect_value vvmd4 'vvm_archive_queue_bytes{class="B",media="LTO7"}' $((1 * M))
expect_more vvmd4 'vvm_archive_queue_oldest_age_seconds{class="B",media="LTO7"}' 1
expect_value vvmd4 'vvm_vvs{state="finished"}' 1

# --- a drive down, then a copy that fails: L70001's image loses its volume label ---
# With the mover stopped, the copy that the new VSN makes possible finds no mover: vvmd sets its
# drives aside (30 s) and says they are down.
stop_daemon "$mover_pid" mover-m1
expect 0 L70001 -- ctl vsn add L70001 --media LTO7 --class B
for ((i = 0; i < 100; i++)); do
  scrape vvmd5 "$vvmd_metrics"
  [[ $(value vvmd5 'vvm_drive_up{drive="d1",media="LTO7",mover="m1"}') == 0 ]] && break
  sleep 0.2
done
expect_value vvmd5 'vvm_drive_up{drive="d1",media="LTO7",mover="m1"}' 0
expect_value vvmd5 'vvm_drives{state="down"}' 2
size=$(stat -c %s "$library/L70001.tap")
head -c "$size" /dev/urandom >"$library/L70001.tap"
start_mover m1
for ((i = 0; i < 300; i++)); do
  scrape vvmd6 "$vvmd_metrics"
  [[ $(value vvmd6 'vvm_copy_failures_total{drive="d1",op="archive",vsn="L70001"}') != 0 ]] && break
  sleep 0.2
done
expect_more vvmd6 'vvm_copy_failures_total{drive="d1",op="archive",vsn="L70001"}' 1
expect_value vvmd6 'vvm_archived_files_total{class="B",media="LTO7"}' 0
expect_value vvmd6 'vvm_drive_up{drive="d1",media="LTO7",mover="m1"}' 1
# The mover refused it, having found no VOL label: an answer of its own, not a copy it ran.
scrape mover6 "$mover_metrics"
expect_more mover6 'vvm_control_requests_total{code="not_found",op="archive"}' 1
expect_value mover6 'vvm_mover_copies_total{drive="d1",op="archive",result="done"}' 0

# --- the example alert rules use metrics that vvmd serves, by these names ---
for name in $(grep -o 'vvm_[a-z_]*' "$VVM_SOURCE_DIR/conf/prometheus/vvm-alerts.yml" | sort -u); do
  grep -q "^$name[{ ]" "$tmpdir/vvmd6.prom" || die "conf/prometheus/vvm-alerts.yml uses $name, which vvmd does not serve"
done
echo "ok: every metric of conf/prometheus/vvm-alerts.yml is served by vvmd"

# --- configuration errors: a malformed address, an address taken ---
# start_fails NAME WANT CMD...: CMD exits 2, printing a line that matches WANT.
start_fails() {
  local name=$1 want=$2 out status=0
  shift 2
  out=$("$@" 2>&1 </dev/null) || status=$?
  ((status == 2)) || die "$name: exit $status, wanted 2: $out"
  grep -Eq -- "$want" <<<"$out" || die "$name: no /$want/ in: $out"
  echo "ok: $name: $(grep -E -- "$want" <<<"$out")"
}
bad=$tmpdir/bad.conf
sed "s|^metrics = $vvmd_metrics\$|metrics = localhost:9370|" "$conf" >"$bad"
line=$(grep -n '^metrics = localhost' "$bad" | cut -d: -f1)
start_fails "vvmd, metrics = localhost:9370" \
  "^vvmd: $bad:$line: vvmd.metrics: 'localhost:9370': metrics are served over HTTP on an address" \
  "$vvmd" --conf "$bad"
sed "s|^metrics = $mover_metrics\$|metrics = unix:/tmp/x.sock|" "$conf" >"$bad"
line=$(grep -n '^metrics = unix' "$bad" | cut -d: -f1)
start_fails "vvmover, metrics = unix:/tmp/x.sock" \
  "^vvmover: $bad:$line: mover m1.metrics: 'unix:/tmp/x.sock': metrics are served over HTTP" \
  "$vvmover" --conf "$bad" --name m1
# The running mover holds its address: a second vvmd told to use it must not start.
sed "s|^metrics = $vvmd_metrics\$|metrics = $mover_metrics|; s|^listen = unix:.*vvmd.sock|listen = unix:$tmpdir/run/other.sock|" \
  "$conf" >"$bad"
line=$(grep -n "^metrics = $mover_metrics" "$bad" | head -n1 | cut -d: -f1)
start_fails "vvmd, metrics address taken" \
  "^vvmd: $bad:$line: vvmd.metrics: cannot listen on $mover_metrics: Address already in use" \
  "$vvmd" --conf "$bad"
scrape mover7 "$mover_metrics" # and the mover still serves it
echo "metrics: PASS"
