# etcd.sh: a real etcd for the shell integration tests of the cluster: Debian's etcd, a single
# member on 127.0.0.1 with two free ports and its data in $tmpdir, or a cluster of three members;
# and the cluster's nodes. functions.sh sources it.
#
#   start_etcd                 # $etcd_endpoint (127.0.0.1:PORT), $etcd_pid; stopped at exit
#   etcdctl_ put /vvm/x y      # etcdctl against it
#   kill_daemon "$etcd_pid"    # etcd down, on purpose
#   start_etcd --again         # the same member back, on the same ports and data
#   start_node 2 n1            # a cluster node (nbdkit and the plugin) on 127.0.0.2:$port
#   start_etcd_cluster         # three members on 127.0.0.11-13 instead; $etcd_endpoint lists them
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

# --- a real three-member etcd cluster ---

declare -A etcd_member_pid

# start_etcd_cluster: etcd members m1, m2 and m3 on 127.0.0.11, .12 and .13 (one client port and
# one peer port picked for all), their data in $tmpdir, with a 50 ms heartbeat and a 500 ms
# election timeout so that a lost leader is replaced within a second. $etcd_endpoint lists the
# three client endpoints, comma-separated (as vvm.conf and etcdctl take them); the pids are in
# ${etcd_member_pid[mK]}. Returns once every member answers.
start_etcd_cluster() {
  _vvm_need_tmpdir
  _vvm_etcd3_client=$(pick_unused_port)
  _vvm_etcd3_peer=$(pick_unused_port)
  while [[ $_vvm_etcd3_peer == "$_vvm_etcd3_client" ]]; do _vvm_etcd3_peer=$(pick_unused_port); done
  etcd_endpoint=127.0.0.11:$_vvm_etcd3_client,127.0.0.12:$_vvm_etcd3_client,127.0.0.13:$_vvm_etcd3_client
  start_etcd_member m1 m2 m3
}

# start_etcd_member mK...: start these members (again, after a kill: same ports and data), all at
# once since a member of a new cluster answers only once a majority is up, and wait until each
# answers a read.
start_etcd_member() {
  local m n i initial=""
  for n in 1 2 3; do
    initial+="${initial:+,}m$n=http://127.0.0.1$n:$_vvm_etcd3_peer"
  done
  for m in "$@"; do
    n=${m#m}
    start_daemon "etcd-$m" true -- \
      etcd --name "$m" --data-dir "$tmpdir/etcd-$m" \
      --listen-client-urls "http://127.0.0.1$n:$_vvm_etcd3_client" \
      --advertise-client-urls "http://127.0.0.1$n:$_vvm_etcd3_client" \
      --listen-peer-urls "http://127.0.0.1$n:$_vvm_etcd3_peer" \
      --initial-advertise-peer-urls "http://127.0.0.1$n:$_vvm_etcd3_peer" \
      --initial-cluster "$initial" --initial-cluster-token "vvm-test-$$" \
      --heartbeat-interval 50 --election-timeout 500 --log-level warn --logger zap
    etcd_member_pid[$m]=$daemon_pid
  done
  for m in "$@"; do
    n=${m#m}
    for ((i = 0; i < 150; i++)); do
      ETCDCTL_API=3 etcdctl --endpoints="127.0.0.1$n:$_vvm_etcd3_client" --command-timeout=1s \
        get /ready >/dev/null 2>&1 && break
      sleep 0.1
    done
    ((i < 150)) || die "etcd member $m does not answer after 15 s"
  done
}

# etcd_leader: the member that leads now (mK), as the members that answer say; nothing if none.
etcd_leader() {
  local endpoint
  # Short timeouts: a dead member must not hold up the answer of the others.
  endpoint=$(ETCDCTL_API=3 etcdctl --endpoints="$etcd_endpoint" --dial-timeout=300ms \
    --command-timeout=1s endpoint status 2>/dev/null | awk -F', ' '$5 == "true" {print $1; exit}')
  [[ -z $endpoint ]] || echo "m${endpoint:9:1}"
}

# etcd_make_leader mK: move the leadership to member mK.
etcd_make_leader() {
  local leader id
  leader=$(etcd_leader)
  [[ -n $leader ]] || die "etcd has no leader"
  [[ $leader != "$1" ]] || return 0
  id=$(etcdctl_ member list | awk -F', ' -v m="$1" '$3 == m {print $1}')
  ETCDCTL_API=3 etcdctl --endpoints="127.0.0.1${leader#m}:$_vvm_etcd3_client" move-leader "$id" >/dev/null ||
    die "cannot move etcd's leadership from $leader to $1"
  [[ $(etcd_leader) == "$1" ]] || die "etcd's leader is $(etcd_leader), not $1"
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

# start_cluster_disk: what a cluster's nodes share, before any is started or any pack mapped:
# etcd, an admin vvm.conf ($conf) naming it, one shared disk file ($disk, 128M; twice $pack_mib
# MiB when set), a port for the nodes ($port) and $tmpdir/a.tab, the packtab line of pack a
# (64M, shared, 0666; $pack_mib MiB when set). An etcd started before (start_etcd_cluster) is
# used instead of a new one.
start_cluster_disk() {
  [[ -n ${etcd_endpoint:-} ]] || start_etcd # or the one already started (start_etcd_cluster)
  conf=$tmpdir/admin.conf
  printf '[cluster]\netcd = %s\n' "$etcd_endpoint" >"$conf"
  disk=$tmpdir/disk.img
  truncate -s $((2 * ${pack_mib:-64}))M "$disk"
  port=$(pick_unused_port)
  echo "a disk.img 0 ${pack_mib:-64}M shared root root 0666" >"$tmpdir/a.tab"
}

# start_three_nodes [VAR=VALUE...]: the cluster most tests need: start_cluster_disk, pack a
# mapped to n2 (primary, 127.0.0.3, with these variables in its environment) and n3 (secondary,
# .4) on disk d0, and n1 (.2), which forwards it; all on $port. $n1 is pack a's URI through n1.
start_three_nodes() {
  start_cluster_disk
  ctl cluster import "$tmpdir/a.tab" --primary n2 --secondary n3 --disk d0 >/dev/null
  start_node 3 n2 "$@"
  start_node 4 n3
  start_node 2 n1
  n1=nbd://127.0.0.2:$port/pack/a
}
