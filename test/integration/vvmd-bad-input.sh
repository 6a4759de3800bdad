#!/usr/bin/env bash
# vvmd-bad-input.sh: the real vvmd fed bad bytes on its control sockets, Unix and TCP, by a raw
# client (/usr/bin/python3, plain sockets, the record marking and XDR of client/proto/vvm_proto.x
# written by hand): random bytes, a record cut short, records over the 1 MiB limit (in one
# fragment and in several), a wrong magic, a header too short, an empty record, protocol version
# 2, an unknown operation, a VV_CREATE cut short or with a string length of 4 GiB, left-over bytes,
# an unknown enum value, and peers that hang up before their reply. Each gets an error reply with
# the right code (where the framing allows one: a record never received in full cannot be
# answered), the connection stays usable when the framing is intact, and after each vvmd is still
# up: `vvctl ping` and `vvctl ls` work. A well-formed VV_CREATE from the same raw client works,
# so the bad messages are bad only where they mean to be.
# Then the allow-list: vvmd listens on 127.0.0.1 and allows only the host 127.0.0.2 (the raw
# client above binds 127.0.0.2 as its source): a TCP client from 127.0.0.1 is refused with
# PermissionDenied naming its address (the code checked with the raw client; `vvctl ping` and
# `vvctl ls` exit 1 and print the reason), and the
# nbdkit plugin with conf= refuses an NBD client from 127.0.0.1, its log saying why.
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir
port=$(pick_unused_port)
nport=$(pick_unused_port)
# vvctl talks to the first listen address: the Unix socket in $conf, TCP from 127.0.0.1 in
# $tcp_conf, for the same vvmd.
common=(vvmd.allow-host=127.0.0.2 plugin.stage-timeout=5s)
vvm_conf "${common[@]}" vvmd.listen+="127.0.0.1:$port"
tcp_conf=$tmpdir/tcp.conf
vvm_conf file="$tcp_conf" "${common[@]}" vvmd.listen="127.0.0.1:$port" \
  vvmd.listen+="unix:$tmpdir/run/vvmd.sock"

# The raw client. `raw.py TARGET CASE` sends CASE's bytes to TARGET (unix:PATH or HOST:PORT,
# from source address 127.0.0.2) and prints one JSON line: the reply (xid, code, message, the
# body's op), whether the server then hung up, and whether a ping on the same connection works.
cat >"$tmpdir/raw.py" <<'PY'
import json, os, socket, struct, sys

MAGIC, LIMIT = 0x56564D31, 1 << 20
OP_PING, OP_VV_CREATE, OP_VV_LIST = 1, 5, 7

def u32(v): return struct.pack(">I", v)
def u64(v): return struct.pack(">Q", v)
def opaque(b): return u32(len(b)) + b + b"\0" * (-len(b) % 4)
def mark(n, last=True): return u32(n | (0x80000000 if last else 0))
def record(body): return mark(len(body)) + body
def preamble(xid, version=1): return u32(MAGIC) + u32(version) + u32(xid)
def ping(xid, version=1): return preamble(xid, version) + u32(OP_PING) + opaque(b"hello")
def create(xid, cls=b"A", size=1 << 20):
    # A TCP peer must name the owner and group: vvmd cannot tell who it is.
    return (preamble(xid) + u32(OP_VV_CREATE) + opaque(cls) + u64(size) + u64(7)
            + opaque(b"root") + opaque(b"root") + opaque(b""))

def connect(target):
    if target.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX)
        s.connect(target[5:])
    else:
        host, port = target.rsplit(":", 1)
        s = socket.socket()
        s.bind((os.environ.get("SOURCE", "127.0.0.2"), 0))
        s.connect((host, int(port)))
    s.settimeout(10)
    return s

def recv_exact(s, n):
    out = b""
    while len(out) < n:
        try:
            chunk = s.recv(n - len(out))
        except socket.timeout:
            raise
        except OSError:  # a reset or the like: the server hung up
            return None
        if not chunk:
            return None
        out += chunk
    return out

def read_reply(s):
    """The next reply as a dict, or None when the server hung up first."""
    data, last = b"", False
    while not last:
        m = recv_exact(s, 4)
        if m is None:
            return None
        (v,) = struct.unpack(">I", m)
        last, n = bool(v & 0x80000000), v & 0x7FFFFFFF
        assert n <= LIMIT, f"reply of {n} bytes"
        frag = recv_exact(s, n)
        if frag is None:
            return None
        data += frag
    magic, version, xid, code, mlen = struct.unpack(">IIIII", data[:20])
    assert magic == MAGIC and version == 1, (magic, version)
    msg = data[20:20 + mlen].decode()
    (op,) = struct.unpack(">I", data[20 + mlen + (-mlen % 4):][:4])
    return {"xid": xid, "code": code, "message": msg, "op": op}

def hung_up(s):
    """True when the server has closed the connection (waits up to 1 s for it)."""
    s.settimeout(1)
    try:
        return s.recv(1) == b""
    except socket.timeout:
        return False
    except OSError:  # a reset: closed as well
        return True
    finally:
        s.settimeout(10)

def send(s, data):
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may hang up before it has read everything: that is its right

CASES = {
    # Bytes with no framing at all: the first four make a mark of any length.
    "random": lambda: os.urandom(4096),
    # Framed garbage, then the same with the right magic but nonsense after it.
    "random-record": lambda: record(os.urandom(200)),
    "bad-magic": lambda: record(b"GET / HTTP/1.1\r\nHost: vvmd\r\n\r\n"),
    "short-header": lambda: record(u32(MAGIC) + u32(1)),
    "empty-record": lambda: record(b""),
    "garbage-after-preamble": lambda: record(preamble(41) + os.urandom(64)),
    # The record mark announces more than will ever come.
    "cut-short": lambda: mark(1000) + preamble(42) + u32(OP_PING),
    "over-limit": lambda: mark(2 * LIMIT),
    "over-limit-fragments": lambda: (mark(LIMIT // 2 + 8, last=False) + b"x" * (LIMIT // 2 + 8)
                                     + mark(LIMIT // 2 + 8)),
    "version-2": lambda: record(ping(77, version=2)),
    "unknown-op": lambda: record(preamble(78) + u32(999) + os.urandom(16)),
    "op-none": lambda: record(preamble(79) + u32(0)),
    "truncated-create": lambda: record(create(80)[:24]),
    "create-huge-string": lambda: record(preamble(81) + u32(OP_VV_CREATE) + u32(0xFFFFFFF0) + b"A"),
    "left-over": lambda: record(ping(82) + b"\0" * 8),
    "bad-enum": lambda: record(preamble(83) + u32(OP_VV_LIST) + u32(99) + opaque(b"") + u32(0)
                               + u64(0) + opaque(b"") + u32(0)),
    "good-ping": lambda: record(ping(84)),
    "good-create": lambda: record(create(85)),
}

target, case = sys.argv[1], sys.argv[2]
if case == "hang-ups":
    # 50 peers that send and go at once: the replies are written to closed sockets.
    for i in range(50):
        s = connect(target)
        send(s, record(ping(i)) if i % 2 else CASES["bad-magic"]())
        s.close()
    print(json.dumps({"reply": None, "hung_up": True, "next": None}))
    sys.exit(0)
s = connect(target)
send(s, CASES[case]())
if case in ("random", "cut-short"):
    try:
        s.shutdown(socket.SHUT_WR)  # no more is coming: the server sees the end of the stream
    except OSError:
        pass  # the server has hung up already (a TCP reset): nothing left to tell it
reply = read_reply(s)
closed = reply is None or hung_up(s)
nxt = None
if not closed:
    # The framing is intact: the same connection still serves a good request.
    send(s, record(ping(99)))
    nxt = read_reply(s)
print(json.dumps({"reply": reply, "hung_up": closed, "next": nxt}))
PY
raw() { /usr/bin/python3 "$tmpdir/raw.py" "$@"; }

# alive WHAT: vvmd is still running and serving.
alive() {
  kill -0 "$vvmd_pid" 2>/dev/null || die "vvmd died after $1"
  ctl ping --timeout 5 >/dev/null || die "vvctl ping fails after $1"
  ctl ls >/dev/null || die "vvctl ls fails after $1"
}
# case_expect TARGET CASE JQ_FILTER: the raw client's result for CASE passes JQ_FILTER.
case_expect() {
  local out
  out=$(raw "$1" "$2") || die "raw client, $2 on $1: $out"
  jq -e "$3" <<<"$out" >/dev/null || die "$2 on $1: $out (wanted $3)"
  alive "$2 on $1"
  echo "ok: $2 on $1: $(jq -c '[.reply.code, .reply.message, .hung_up]' <<<"$out")"
}

start_vvmd

# vvm_code values (client/proto/vvm_proto.x).
INVALID=1 PERMISSION=4 PROTOCOL=7 VERSION=8
# An error reply and the hang-up: the framing or the header is lost.
refused_and_closed() { echo "(.reply.code == $1) and (.reply.op == 0) and .hung_up"; }
# An error reply naming the request's xid, and the connection still serves a ping.
refused_kept() {
  echo "(.reply.code == $1) and (.reply.xid == $2) and (.reply.op == 0) and (.hung_up | not)
    and .next.code == 0 and .next.xid == 99 and .next.op == 1"
}
for target in "unix:$tmpdir/run/vvmd.sock" "127.0.0.1:$port"; do
  case_expect "$target" good-ping '.reply.code == 0 and .reply.xid == 84 and .reply.op == 1'
  # A record mark of 2^31 - 1 bytes at most: over the limit but for 1 in 2048, when the end of
  # the stream comes first. Either way nothing is left to answer a request with.
  case_expect "$target" random '.hung_up and (.reply == null or .reply.code == 7)'
  case_expect "$target" random-record "$(refused_and_closed $PROTOCOL) and
    (.reply.message | test(\"not a vvm control message\"))"
  case_expect "$target" bad-magic "$(refused_and_closed $PROTOCOL)"
  case_expect "$target" short-header "$(refused_and_closed $PROTOCOL) and
    (.reply.message | test(\"too short\"))"
  case_expect "$target" empty-record "$(refused_and_closed $PROTOCOL)"
  case_expect "$target" cut-short '.reply == null and .hung_up'
  case_expect "$target" over-limit "$(refused_and_closed $PROTOCOL) and .reply.xid == 0 and
    (.reply.message | test(\"limit is 1048576 bytes\"))"
  case_expect "$target" over-limit-fragments "$(refused_and_closed $PROTOCOL)"
  case_expect "$target" version-2 "$(refused_kept $VERSION 77) and
    (.reply.message | test(\"version 2\"))"
  case_expect "$target" unknown-op "$(refused_kept $INVALID 78) and
    (.reply.message | test(\"unknown operation 999\"))"
  case_expect "$target" op-none "$(refused_kept $INVALID 79)"
  case_expect "$target" garbage-after-preamble '.reply.code != 0 and .reply.xid == 41'
  case_expect "$target" truncated-create "$(refused_kept $PROTOCOL 80) and
    (.reply.message | test(\"malformed request\"))"
  case_expect "$target" create-huge-string "$(refused_kept $PROTOCOL 81)"
  case_expect "$target" left-over "$(refused_kept $PROTOCOL 82) and
    (.reply.message | test(\"left over\"))"
  case_expect "$target" bad-enum "(.reply.code != 0) and (.reply.xid == 83) and (.hung_up | not)"
  case_expect "$target" hang-ups '.hung_up'
  case_expect "$target" good-create '.reply.code == 0 and .reply.xid == 85 and .reply.op == 5'
done
# A record cut short by a peer that stays connected holds nothing up.
raw "unix:$tmpdir/run/vvmd.sock" cut-short >/dev/null &
cut=$!
/usr/bin/python3 - "$tmpdir/run/vvmd.sock" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"\x80\x00\x01\x00" + b"\x56\x56\x4d\x31")  # 256 bytes announced, 4 sent
time.sleep(4)
PY
holder=$!
sleep 0.5
alive "a peer holding half a record"
wait "$holder" "$cut"
echo "ok: a peer holding half a record does not hold vvmd up"
[[ $(ctl ls --json | jq '[.[] | select(.class == "A" and .client_id == 7)] | length') == 2 ]] ||
  die "the raw client's two good creates are not both listed: $(ctl ls)"
grep -q "limit is 1048576 bytes" "$vvmd_log" || die "vvmd did not log the record over the limit"
grep -q "not a vvm control message" "$vvmd_log" || die "vvmd did not log the bad magic"
echo "ok: vvmd logged what it refused"

# --- the allow-list: 127.0.0.1 is not allowed ---
out=$(SOURCE=127.0.0.1 raw "127.0.0.1:$port" good-ping)
jq -e ".reply.code == $PERMISSION and .reply.xid == 84 and .hung_up and
  (.reply.message | test(\"vvmd refuses 127.0.0.1:[0-9]+: the host is not in the allow-host list\"))" \
  <<<"$out" >/dev/null || die "a raw client from 127.0.0.1: $out"
echo "ok: a raw client from 127.0.0.1 is refused: $(jq -r .reply.message <<<"$out")"
for cmd in ping ls; do
  status=0
  out=$("$vvctl" --conf "$tcp_conf" "$cmd" 2>&1) || status=$?
  ((status == 1)) || die "vvctl $cmd from 127.0.0.1 exited $status: $out"
  grep -Eq "vvmd refuses 127\.0\.0\.1:[0-9]+: the host is not in the allow-host list" <<<"$out" ||
    die "vvctl $cmd from 127.0.0.1 printed: $out"
  echo "ok: vvctl $cmd over TCP from 127.0.0.1: $out"
done
grep -Eq "refused 127\.0\.0\.1:[0-9]+: the host is not in the allow-host list" "$vvmd_log" ||
  die "vvmd did not log the refusal"
alive "the refusals"

# The nbdkit plugin applies the same list to NBD clients over TCP.
vv=$(ctl ls --json | jq -r '.[0].name')
start_plugin "tcp:$nport"
status=0
out=$(nbdinfo "nbd://127.0.0.1:$nport/vv/$vv" 2>&1) || status=$?
((status != 0)) || die "nbdinfo from 127.0.0.1 was served: $out"
grep -q "host 127.0.0.1 is not in vvm.conf's \[vvmd\] allow-host list" "$nbdkit_log" ||
  die "the nbdkit log does not say why it refused: $(tail -n 5 "$nbdkit_log")"
echo "ok: nbdkit refuses an NBD client from 127.0.0.1: $(grep -m1 'allow-host list' "$nbdkit_log")"
echo "vvmd-bad-input: all checks passed"
