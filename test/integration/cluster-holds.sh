#!/usr/bin/env bash
# cluster-holds.sh: cluster-wide exclusive holds through a forwarding node, and the node-to-node
# name kept to nodes, with a real etcd, three real nodes on 127.0.0.2-4 sharing one disk file and
# real clients (nbdsh, qemu-io). Pack x is exclusive, mapped to n2 (primary) and n3 (secondary);
# n1 forwards it:
#   - a client opening pack/x@local on n2 (the nodes' name, which skips the holds) is refused,
#     n2's log naming the export and why; n1's connections, from its advertised address, are
#     let in as node n1;
#   - a client attached to n1 holds x cluster-wide (PREFIX/hold/x names n1 and the client): a
#     writer of n2 (the serving node) and a reader of n3 are refused, naming the holder on n1, while
#     the holder goes on; once it closes, the key goes and n2's client writes;
#   - a client of n2 holds x: a reader and a writer through n1 are refused, n1's log naming the holder on n2.
#   - n1 paused (SIGSTOP) past its lease while a client through it holds x: the hold goes with the
#     lease and a client of n2 takes x meanwhile; resumed, n1 rejoins: the connection from before
#     is refused writes (its hold went with the old lease), a new client through n1 is refused
#     naming n2's client; once that one leaves, the new client through n1 holds x under n1's new
#     lease (vvctl cluster map's HOLDER), which the old connection's close leaves in place, and n2's
#     client is refused naming it.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"
make_tmpdir
requires nbdsh --version
requires qemu-io --version
requires jq --version

start_three_nodes
echo "x disk.img 64M 16M exclusive root root 0666" >"$tmpdir/x.tab"
ctl cluster import "$tmpdir/x.tab" --primary n2 --secondary n3 --disk d0 >/dev/null
wait_listed "nbd://127.0.0.2:$port" pack/x || die "n1 does not forward the imported pack x"
x() { echo "nbd://127.0.0.$1:$port/pack/x"; }
hold_of() { etcdctl_ get /vvm/hold/x --print-value-only; }

# --- pack/x@local is for nodes only ---
io_fails "$(x 3)@local" -r -c 'read 0 4K'
wait_log "${node_log[n2]}" "error: pack/x@local: refused: 127.0.0.1 is not the advertised address of any live node \(no key under /vvm/node/ advertises it\); this name is for the cluster's nodes only \(a client opens pack/x\)"
echo "ok: a client is refused pack/x@local, naming the export and why"

# --- a client through the forwarding node n1 holds x across the cluster ---
connect_client holder "$(x 2)"
wait_log "${node_log[n2]}" "open pack/x \(read-write\) for node n1 \(host 127.0.0.2\)"
h=$(hold_of)
[[ -n $h ]] || die "no hold in etcd for n1's client: $(etcdctl_ get --prefix /vvm/hold/)"
check .node n1 "$h"
check .client "host 127.0.0.1" "$h"
io_fails "$(x 3)" -c 'write -P 0x11 0 4K'
wait_log "${node_log[n2]}" "pack 'x' is held exclusive by host 127.0.0.1 on node n1 \(etcd key /vvm/hold/x, since [0-9]+\): host 127.0.0.1 on node n2 cannot have it exclusive"
io_fails "$(x 4)@ro" -r -c 'read 0 4K'
wait_log "${node_log[n3]}" "pack 'x' is held exclusive by host 127.0.0.1 on node n1 \(etcd key /vvm/hold/x, since [0-9]+\): host 127.0.0.1 on node n3 cannot have it read"
client_read holder # the holder goes on
disconnect_client holder
for ((i = 0; i < 50; i++)); do
  [[ -z $(hold_of) ]] && break
  sleep 0.1
done
((i < 50)) || die "n1's hold is still in etcd after its client closed: $(hold_of)"
io "$(x 3)" -c 'write -P 0x22 0 4K'
echo "ok: a client through n1 held x across the cluster, named in n2's and n3's refusals"

# --- a client of the serving node n2 holds x: n1's client is refused ---
connect_client holder2 "$(x 3)"
check .node n2 "$(hold_of)"
io_fails "$(x 2)@ro" -r -c 'read 0 4K'
wait_log "${node_log[n1]}" "pack 'x' is held exclusive by host 127.0.0.1 on node n2 \(etcd key /vvm/hold/x, since [0-9]+\): host 127.0.0.1 on node n1 cannot have it read"
io_fails "$(x 2)" -c 'write 0 4K'
wait_log "${node_log[n1]}" "host 127.0.0.1 on node n1 cannot have it exclusive"
client_read holder2
disconnect_client holder2
for ((i = 0; i < 50; i++)); do
  [[ -z $(hold_of) ]] && break
  sleep 0.1
done
((i < 50)) || die "n2's hold is still in etcd after its client closed"
io "$(x 2)" -c 'read -P 0x22 0 4K' -c 'write -P 0x33 4K 4K'
echo "ok: n2's hold refused a client through n1, naming it; released, n1's client writes"

# --- 4. n1 paused past its lease while its client holds x; resumed, it rejoins ---
# A client through n1 that writes once for each line it is sent, and says whether it could.
mkfifo "$tmpdir/old.fifo"
nbdsh -u "$(x 2)" -c '
import sys
for line in sys.stdin:
    try:
        h.pwrite(b"\x44" * 4096, 8 * 1024 * 1024)
        print("wrote", flush=True)
    except nbd.Error as e:
        print("refused:", e, flush=True)
' <"$tmpdir/old.fifo" >"$tmpdir/old.out" 2>&1 &
old_pid=$!
cleanup_fn kill_quietly "$old_pid"
exec {old_fd}>"$tmpdir/old.fifo"
writes=0
old_write() { # the old client writes once more: "wrote" or "refused: ..." in $answer
  local i
  writes=$((writes + 1))
  echo >&"$old_fd"
  for ((i = 0; i < 50; i++)); do
    (($(grep -c . "$tmpdir/old.out" || true) >= writes)) && break
    sleep 0.1
  done
  answer=$(sed -n "${writes}p" "$tmpdir/old.out")
}
# The clients started from now on run without the old client's pipe, which would keep it from
# seeing its end.
no_old_fd() {
  exec {old_fd}>&-
  exec "$@"
}
old_write
[[ $answer == wrote ]] || die "the client through n1 cannot write before n1 stops: $(cat "$tmpdir/old.out")"
check .node n1 "$(hold_of)"
cleanup_fn kill -CONT "${node_pid[n1]}"
kill -STOP "${node_pid[n1]}"
for ((i = 0; i < 100; i++)); do
  [[ -z $(etcdctl_ get /vvm/node/n1 --print-value-only) ]] && break
  sleep 0.1
done
((i < 100)) || die "n1's key is still in etcd 10 s after it stopped"
[[ -z $(hold_of) ]] || die "n1's hold outlived its lease: $(hold_of)"
connect_client meanwhile "$(x 3)" no_old_fd
check .node n2 "$(hold_of)"
started=$(jq -r .since <<<"$(hold_of)")
ctl cluster map | grep -Eq '^x .* host 127\.0\.0\.1 on n2 since ' ||
  die "vvctl cluster map does not show n2's client holding x: $(ctl cluster map)"
kill -CONT "${node_pid[n1]}"
wait_log "${node_log[n1]}" "rejoined the cluster as /vvm/node/n1 \(lease [0-9a-f]+\)"
old_write
[[ $answer == refused:* ]] ||
  die "the connection through n1 from before it rejoined wrote while n2's client holds x: $answer"
wait_log "${node_log[n1]}" "write refused: the connection was opened before this node rejoined the cluster, under the mapping of then; its hold was given up with the old lease"
io_fails "$(x 2)" -c 'write -P 0x45 8M 4K'
wait_log "${node_log[n1]}" "pack 'x' is held exclusive by host 127.0.0.1 on node n2 \(etcd key /vvm/hold/x, since $started\): host 127.0.0.1 on node n1 cannot have it exclusive"
echo "ok: n1 rejoined: its connection from before is refused writes, and a new client through it is refused naming n2's client, which took x meanwhile"
disconnect_client meanwhile
for ((i = 0; i < 50; i++)); do
  [[ -z $(hold_of) ]] && break
  sleep 0.1
done
((i < 50)) || die "n2's hold is still in etcd after its client closed: $(hold_of)"
connect_client again "$(x 2)" no_old_fd
h=$(hold_of)
check .node n1 "$h"
lease_of() { etcdctl_ get "$1" -w json | jq -r '.kvs[0].lease'; }
[[ $(lease_of /vvm/hold/x) == "$(lease_of /vvm/node/n1)" ]] ||
  die "n1's new hold is not bound to its new lease: $(etcdctl_ get /vvm/hold/x -w json)"
ctl cluster map | grep -Eq '^x .* host 127\.0\.0\.1 on n1 since ' ||
  die "vvctl cluster map does not show n1's new client holding x: $(ctl cluster map)"
# The old connection ends: the hold of the new one stays.
exec {old_fd}>&-
wait "$old_pid" 2>/dev/null || true
sleep 1 # nbdkit closes the connection once the client has gone: give its release the time
client_read again
check .node n1 "$(hold_of)"
started=$(jq -r .since <<<"$(hold_of)")
io_fails "$(x 3)" -c 'write -P 0x46 8M 4K'
wait_log "${node_log[n2]}" "pack 'x' is held exclusive by host 127.0.0.1 on node n1 \(etcd key /vvm/hold/x, since $started\): host 127.0.0.1 on node n2 cannot have it exclusive"
disconnect_client again
for ((i = 0; i < 50; i++)); do
  [[ -z $(hold_of) ]] && break
  sleep 0.1
done
((i < 50)) || die "n1's new hold is still in etcd after its client closed: $(hold_of)"
io "$(x 3)" -c 'write -P 0x47 8M 4K' -c 'read -P 0x47 8M 4K'
echo "ok: a new client through the rejoined n1 holds x under its new lease, shown in vvctl cluster map; the old connection's close left it; n2's client is refused naming it"
