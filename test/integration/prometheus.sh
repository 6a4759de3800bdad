#!/usr/bin/env bash
# prometheus.sh: the example Prometheus files of conf/prometheus/ (doc/admin.md, "Watching it"):
# the scrape configuration passes `promtool check config` (which reads the rule file it names),
# the alert rules pass `promtool check rules`, and each alert fires on made-up series that should
# raise it and only after its `for:` (`promtool test rules`, test/data/prometheus/). That their
# metric names are the ones vvmd serves is checked against a real vvmd by metrics.sh.
set -euo pipefail
: "${VVM_SOURCE_DIR:?run me from meson test}"
export PATH=/usr/bin:$PATH
command -v promtool >/dev/null || { echo "SKIP: no promtool (Debian's prometheus package)"; exit 77; }
dir=$VVM_SOURCE_DIR/conf/prometheus
run() {
  local out
  out=$("$@" 2>&1) || { echo "$out"; echo "FAIL: $*"; exit 1; }
  echo "ok: $*"
}
run promtool check config "$dir/prometheus.yml"
run promtool check rules "$dir/vvm-alerts.yml"
run promtool test rules "$VVM_SOURCE_DIR/test/data/prometheus/vvm-alerts-test.yml"
# Three alerts, by name: the ones the admin guide describes.
alerts=$(sed -n 's/^ *- alert: //p' "$dir/vvm-alerts.yml" | sort | tr '\n' ' ')
[[ $alerts == "VvmCacheAboveHighWatermark VvmDriveDown VvmQueueNotDraining " ]] ||
  { echo "FAIL: the alerts are $alerts"; exit 1; }
echo "prometheus: PASS"
