# etcd.sh: a real etcd for the shell integration tests of the cluster: Debian's etcd, a single
# member on 127.0.0.1 with two free ports and its data in $tmpdir. functions.sh sources it.
#
#   start_etcd                 # $etcd_endpoint (127.0.0.1:PORT), $etcd_pid; stopped at exit
#   etcdctl_ put /vvm/x y      # etcdctl against it
#   kill_daemon "$etcd_pid"    # etcd down, on purpose
#   start_etcd --again         # the same member back, on the same ports and data
#   start_node 2 n1            # a cluster node (nbdkit and the plugin) on 127.0.0.2:$port
#   stop_node n1 10            # SIGTERM, and it must have exited within 10 s

[[ -n ${_vvm_etcd_loaded:-} ]] && return 0
_vvm_etcd_loaded=1

# etcdctl_ ARGS...: etcdctl (API v3) against the test's etcd.
etcdctl_() { ETCDCTL_API=3 etcdctl --endpoints="$etcd_endpoint" --command-timeout=5s "$@"; }

# start_etcd [--again]: start etcd and wait until it answers a read (it has elected itself
# leader). --again starts the last one again, with its ports and data.
start_etcd() {
  _vvm_need_tmpdir
  if [[ ${1:-} != --again ]]; then
    _vvm_etcd_count=$((${_vvm_etcd_count:-0} + 1))
    _vvm_etcd_client_port=$(pick_unused_port)
    _vvm_etcd_peer_port=$(pick_unused_port)
    while [[ $_vvm_etcd_peer_port == "$_vvm_etcd_client_port" ]]; do
      _vvm_etcd_peer_port=$(pick_unused_port)
    done
    _vvm_etcd_data=$tmpdir/etcd$_vvm_etcd_count
  fi
  etcd_endpoint=127.0.0.1:$_vvm_etcd_client_port
  local client=http://$etcd_endpoint peer=http://127.0.0.1:$_vvm_etcd_peer_port
  start_daemon "etcd$_vvm_etcd_count" etcdctl_ get /ready -- \
    etcd --name test --data-dir "$_vvm_etcd_data" \
    --listen-client-urls "$client" --advertise-client-urls "$client" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
    --initial-cluster "test=$peer" --log-level warn --logger zap
  etcd_pid=$daemon_pid
}

# --- cluster nodes: nbdkit with the plugin, each with a vvm.conf [cluster] of its own ---

declare -A node_pid node_log

# node_conf N NAME: $tmpdir/NAME.conf, the vvm.conf of node NAME advertised on 127.0.0.N:$port,
# in the cluster of $etcd_endpoint, with a lease of $ttl seconds (2 unless set), reaching the disk
# file $disk as d0, and TCP clients admitted from 127.0.0.0/8 (the other nodes and the tests).
node_conf() {
  mkdir -p "$tmpdir/state-$2"
  cat >"$tmpdir/$2.conf" <<EOC
[global]
state-dir = $tmpdir/state-$2
[vvmd]
allow-host = 127.0.0.0/8
[cluster]
etcd = $etcd_endpoint
node = $2
advertise = 127.0.0.$1:$port
lease-ttl = ${ttl:-2}s
disk = d0:$disk
EOC
}

# start_node N NAME [VAR=VALUE...]: nbdkit as node NAME listening on 127.0.0.N:$port (node_conf),
# with these variables in its environment (VVM_TEST_PATH_FAULT=...); ${node_pid[NAME]},
# ${node_log[NAME]}. Returns once it listens (it has joined the cluster by then).
start_node() {
  local n=$1 name=$2
  shift 2
  node_conf "$n" "$name"
  (($# == 0)) || export "$@"
  start_nbdkit - -i "127.0.0.$n" -p "$port" "$VVM_PLUGIN" conf="$tmpdir/$name.conf"
  (($# == 0)) || unset "${@%%=*}"
  node_pid[$name]=$nbdkit_pid
  node_log[$name]=$nbdkit_log
}

# stop_node NAME SECONDS: SIGTERM to node NAME, which must exit, with status 0, within SECONDS;
# else the test dies. How long it took in $stopped_in (seconds, one decimal).
stop_node() {
  local pid=${node_pid[$1]} i status=0
  kill -TERM "$pid"
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && die "node $1 (pid $pid) still runs $2 s after SIGTERM"
  _vvm_killed[$pid]=1 # stopped here: the cleanup only waits for it
  wait "$pid" || status=$?
  ((status == 0)) || die "node $1 exited with status $status on SIGTERM"
  stopped_in=$((i / 10)).$((i % 10))
}

# start_three_nodes [VAR=VALUE...]: the cluster most tests need: etcd, an admin vvm.conf ($conf)
# naming it, one shared disk file ($disk, 128M), pack a (64M, shared, 0666) mapped to n2
# (primary, 127.0.0.3, with these variables in its environment) and n3 (secondary, .4) on disk
# d0, and n1 (.2), which forwards it; all on $port. $n1 is pack a's URI through n1.
start_three_nodes() {
  start_etcd
  conf=$tmpdir/admin.conf
  printf '[cluster]\netcd = %s\n' "$etcd_endpoint" >"$conf"
  disk=$tmpdir/disk.img
  truncate -s 128M "$disk"
  port=$(pick_unused_port)
  echo "a disk.img 0 64M shared root root 0666" >"$tmpdir/a.tab"
  ctl cluster import "$tmpdir/a.tab" --primary n2 --secondary n3 --disk d0 >/dev/null
  start_node 3 n2 "$@"
  start_node 4 n3
  start_node 2 n1
  n1=nbd://127.0.0.2:$port/pack/a
}
