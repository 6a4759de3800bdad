#!/usr/bin/env bash
# vvmd-slow-reader.sh: a control client that sends a request and never reads its reply does not
# block the others. The client sends 400 PINGs, each with a 4000-byte payload that comes back,
# 1.6 MB of replies, far more than a Unix socket buffers, and then neither reads nor closes:
# vvmd's replies to it cannot be written. Meanwhile other clients' ping, create, ls and status
# are each answered within 2 s; then the stuck client reads, and gets every reply (vvmd was
# writing them all along).
set -euo pipefail
source "$VVM_SOURCE_DIR/test/harness/functions.sh"

make_tmpdir
vvm_conf
start_vvmd
sock=$tmpdir/run/vvmd.sock

# The request bytes are vvctl's own ping, recorded through a Unix socket in between, with its
# payload (the last field, an XDR opaque: length, bytes) made 4000 bytes (the most is 4096); 400
# of them, 1.6 MB of replies, more than the socket buffers hold.
/usr/bin/python3 - "$sock" "$tmpdir/stuck.out" <<'PY' &
import os, socket, struct, subprocess, sys, threading, time
vvmd, out = sys.argv[1], sys.argv[2]
proxy = vvmd + ".rec"
ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
ls.bind(proxy)
ls.listen(1)
vvctl = subprocess.Popen([os.environ["VVM_BUILD_DIR"] + "/client/vvctl", "ping", "--target",
                          "unix:" + proxy, "--timeout", "2"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
conn, _ = ls.accept()
rec = b""
while len(rec) < 4 or len(rec) < 4 + (struct.unpack(">I", rec[:4])[0] & 0x7FFFFFFF):
    rec += conn.recv(65536)
conn.close()
vvctl.wait()
payload = b"vvctl ping 1"
assert rec.endswith(struct.pack(">I", len(payload)) + payload), rec
head = rec[4:-(4 + len(payload))]
count = 400
def request(i):
    p = (b"R%05d-" % i) * 571 + b"xxx"  # 4000 bytes, its number all over it
    body = head + struct.pack(">I", len(p)) + p
    return struct.pack(">I", 0x80000000 | len(body)) + body
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(vvmd)
# Sent from a thread: once vvmd stops reading (its replies not read), sendall blocks.
sender = threading.Thread(target=lambda: s.sendall(b"".join(request(i) for i in range(count))),
                          daemon=True)
sender.start()
with open(out, "w") as f:
    f.write("sending %d pings of 4000 bytes; not reading\n" % count)
# Not reading until the test says so (or 60 s), then every reply: each payload echoed.
for _ in range(600):
    if os.path.exists(out + ".go"):
        break
    time.sleep(0.1)
# Still sending: vvmd stopped reading, its replies to this client stuck.
with open(out, "a") as f:
    f.write("vvmd %s reading this client\n" % ("stopped" if sender.is_alive() else "never stopped"))
s.settimeout(20)
reply = b""
last = b"R%05d-" % (count - 1)
while last not in reply:
    data = s.recv(1 << 20)
    if not data:
        break
    reply += data
echoed = sum(1 for i in range(count) if b"R%05d-" % i in reply)
with open(out, "a") as f:
    f.write("read %d bytes: %d of the %d payloads echoed\n" % (len(reply), echoed, count))
PY
stuck=$!
cleanup_fn kill_quietly "$stuck"
for ((i = 0; i < 100; i++)); do
  [[ -s $tmpdir/stuck.out ]] && break
  kill -0 "$stuck" 2>/dev/null || die "the stuck client failed"
  sleep 0.1
done
[[ -s $tmpdir/stuck.out ]] || die "the stuck client did not send its requests"
cat "$tmpdir/stuck.out"
sleep 1 # vvmd has answered what the buffers hold, and is trying to write the next reply

# timed CMD...: CMD succeeds within 2 s.
timed() {
  local start end
  start=$(date +%s%N)
  "$@" >/dev/null || die "'$*' failed while a client does not read its reply"
  end=$(date +%s%N)
  (((end - start) / 1000000 < 2000)) || die "'$*' took $(((end - start) / 1000000)) ms"
  echo "ok: $* answered in $(((end - start) / 1000000)) ms"
}
timed ctl ping --timeout 2
timed ctl create --class A --size 1M
timed ctl ls
timed ctl status
kill -0 "$stuck" || die "the stuck client ended early"
# Now it reads: vvmd had its reply under way all along, and finishes writing it.
touch "$tmpdir/stuck.out.go"
wait "$stuck" || die "the stuck client failed: $(cat "$tmpdir/stuck.out")"
grep -q "vvmd stopped reading this client" "$tmpdir/stuck.out" ||
  die "the stuck client's requests all went through: the test did not stall vvmd's replies"
grep -q ": 400 of the 400 payloads echoed" "$tmpdir/stuck.out" || die "the stuck client: $(cat "$tmpdir/stuck.out")"
tail -n2 "$tmpdir/stuck.out"
timed ctl ping --timeout 2
echo "PASS"
