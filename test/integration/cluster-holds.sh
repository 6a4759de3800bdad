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
