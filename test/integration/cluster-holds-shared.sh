#!/usr/bin/env bash
# cluster-holds-shared.sh: readers and shared writers are recorded in etcd
# (PREFIX/users/PACK/KIND/NODE, under their node's lease), so that the rules between holders hold
# across nodes as on one host; a real etcd, three real nodes on 127.0.0.2-4 sharing one disk file,
# real clients (nbdsh kept open, qemu-io). Pack x is exclusive (a writer holds it exclusive),
# pack a shared; both served by n2 (secondary n3), n1 forwards them:
#   - n3's client reads x: n3's users key names it; n1's client asking for x exclusive (a
#     writer) is refused, n1's log naming n3 and its reader; the reader closes: the key goes, and
#     n1's client holds x; a new reader of n3 is refused, naming n1's client;
#   - shared writers of pack a on n1 and n2 both get in (and write); a reader on n3 is refused,
#     naming one of them;
#   - n3's reader holds x again and n3 is SIGKILLed: n1's writer is still refused while n3's lease
#     lives, and holds x once it has expired.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"
make_tmpdir
requires nbdsh --version
requires qemu-io --version
requires jq --version

ttl=3
start_three_nodes
echo "x disk.img 64M 16M exclusive root root 0666" >"$tmpdir/x.tab"
ctl cluster import "$tmpdir/x.tab" --primary n2 --secondary n3 --disk d0 >/dev/null
wait_listed "nbd://127.0.0.2:$port" pack/x || die "n1 does not forward the imported pack x"
wait_listed "nbd://127.0.0.4:$port" pack/x || die "n3 does not list the imported pack x"
x() { echo "nbd://127.0.0.$1:$port/pack/x"; }
a() { echo "nbd://127.0.0.$1:$port/pack/a"; }
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }
hold_of() { etcdctl_ get /vvm/hold/x --print-value-only; }
users_of() { etcdctl_ get "/vvm/users/$1" --print-value-only; } # PACK/KIND/NODE
wait_gone() {                                                  # KEY WHAT: the key goes within 5 s
  local i
  for ((i = 0; i < 50; i++)); do
    [[ -z $(etcdctl_ get "$1" --print-value-only) ]] && return 0
    sleep 0.1
  done
  die "$2: $(etcdctl_ get "$1")"
}

# --- n3's reader of x refuses n1's writer (exclusive), naming it; gone, n1's writer holds x ---
connect_client reader "$(x 4)@ro"
u=$(users_of x/read/n3)
[[ -n $u ]] || die "no users key in etcd for n3's reader of x: $(etcdctl_ get --prefix /vvm/users/)"
check '.clients[0].client' "host 127.0.0.1" "$u"
check .node n3 "$u"
since=$(jq -r '.clients[0].since' <<<"$u")
io_fails "$(x 2)" -c 'write -P 0x11 0 4K'
wait_log "${node_log[n1]}" "pack 'x' is held read by host 127\.0\.0\.1 on node n3 \(etcd key /vvm/users/x/read/n3, since $since\): host 127\.0\.0\.1 on node n1 cannot have it exclusive"
[[ -z $(hold_of) ]] || die "n1's refused writer left a hold on x: $(hold_of)"
client_read reader # the reader goes on
# vvctl cluster map shows the reader as x's holder, in the table and in --json.
map=$(ctl cluster map --json)
check '[.[] | select(.name == "x") | .users[] | "\(.client) \(.node) \(.kind) \(.since)"] | join(",")' \
  "host 127.0.0.1 n3 read $since" "$map"
check '.[] | select(.name == "x") | .holder' null "$map"
grep -Eq '^x .* host 127\.0\.0\.1 on n3 \(read\)$' <<<"$(ctl cluster map)" ||
  die "cluster map does not show n3's reader of x: $(ctl cluster map)"
echo "ok: n3's reader of x refused n1's writer, n1's log naming n3 and the reader; cluster map shows it"
disconnect_client reader
wait_gone /vvm/users/x/read/n3 "n3's users key of x is still in etcd after its reader closed"
connect_client holder "$(x 2)"
h=$(hold_of)
check .node n1 "$h"
check .client "host 127.0.0.1" "$h"
since=$(jq -r .since <<<"$h")
io_fails "$(x 4)@ro" -r -c 'read 0 4K'
wait_log "${node_log[n3]}" "pack 'x' is held exclusive by host 127\.0\.0\.1 on node n1 \(etcd key /vvm/hold/x, since $since\): host 127\.0\.0\.1 on node n3 cannot have it read"
[[ -z $(users_of x/read/n3) ]] || die "n3's refused reader is recorded: $(users_of x/read/n3)"
client_read holder
disconnect_client holder
wait_gone /vvm/hold/x "n1's hold of x is still in etcd after its client closed"
echo "ok: the reader gone, n1's client held x; n3's new reader refused, naming it"

# --- shared writers of pack a on two nodes share it; a reader of a third is refused ---
connect_client w1 "$(a 2)"
connect_client w2 "$(a 3)"
check .node n1 "$(users_of a/shared/n1)"
check .node n2 "$(users_of a/shared/n2)"
io "$(a 3)" -c 'write -P 0x21 0 4K' # a second client of n2, beside n1's
io "$(a 2)" -c 'write -P 0x22 4K 4K' -c 'read -P 0x21 0 4K'
check '[.[] | select(.name == "a") | .users[] | "\(.node) \(.kind)"] | sort | join(",")' \
  "n1 shared,n2 shared" "$(ctl cluster map --json)"
io_fails "$(a 4)@ro" -r -c 'read 0 4K'
wait_log "${node_log[n3]}" "pack 'a' is held shared by host 127\.0\.0\.1 on node n[12] \(etcd key /vvm/users/a/shared/n[12], since [0-9]+\): host 127\.0\.0\.1 on node n3 cannot have it read"
client_read w1
client_read w2
disconnect_client w2 # first: its nbdsh inherited w1's pipe, and would keep w1 from its end
disconnect_client w1
wait_gone /vvm/users/a/shared/n1 "n1's users key of a is still in etcd after its writers closed"
wait_gone /vvm/users/a/shared/n2 "n2's users key of a is still in etcd after its writers closed"
io "$(a 4)@ro" -r -c 'read -P 0x22 4K 4K'
echo "ok: shared writers of a on n1 and n2 both got in; n3's reader was refused meanwhile, and let in after"

# --- n3 SIGKILLed while its reader holds x: n1's writer gets x once n3's lease has expired ---
connect_client reader2 "$(x 4)@ro"
[[ -n $(users_of x/read/n3) ]] || die "no users key for n3's second reader of x"
refusals() { grep -c "pack 'x' is held read by host 127\.0\.0\.1 on node n3" "${node_log[n1]}" || true; }
before=$(refusals)
kill_daemon "${node_pid[n3]}"
killed=$(date +%s%N)
io_fails "$(x 2)" -c 'write -P 0x31 0 4K' # n3's lease lives on for a while
(($(refusals) > before)) || die "n1's writer was not refused naming n3's reader just after n3 was killed"
disconnect_client reader2
for ((i = 0; i < (ttl + 3) * 10; i++)); do
  [[ -z $(users_of x/read/n3) ]] && break
  sleep 0.1
done
[[ -z $(users_of x/read/n3) ]] || die "n3's users key outlived its lease: $(users_of x/read/n3)"
io "$(x 2)" -c 'write -P 0x31 0 4K' -c 'read -P 0x31 0 4K'
[[ -z $(hold_of) ]] || die "n1's writer left its hold of x: $(hold_of)"
echo "ok: n3 killed: n1's writer was refused while n3's lease lived, and wrote x $(ms_since "$killed") ms after the kill"
