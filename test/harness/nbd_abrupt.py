#!/usr/bin/python3
# nbd_abrupt.py: an NBD client that hangs up with requests in flight, to check that one such
# client cannot take a server down (nbdkit 1.32.4 and 1.32.5 abort with "raw_send_socket:
# Assertion `sock >= 0' failed" when several worker threads of one connection have replies to
# send after the client has gone).
#
# Each try: connect, fixed-newstyle handshake (NBD_OPT_GO, optionally structured replies), send
# --requests reads (or writes) of --size bytes back to back, read at most --read-bytes of the
# replies, then close the socket, with SO_LINGER 0 so the server sees a reset at once. The
# server is checked between tries: with --pid, the process must still exist; otherwise a new
# connection must complete its handshake. Stops at the first try after which the server is down
# (exit 3), after --tries tries or --seconds seconds (exit 0), or on a handshake the server
# refuses (exit 1). Prints one line: "tries=N server=alive|down seconds=S".
#
#   nbd_abrupt.py --unix SOCK --export pack/a --tries 50 --pid PID
#   nbd_abrupt.py --tcp 127.0.0.1:10809 --export vv/A0000000001 --seconds 20 --keep-going

import argparse
import os
import socket
import struct
import sys
import time

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
OPT_REPLY_MAGIC = 0x3E889045565A9
REQUEST_MAGIC = 0x25609513
FLAG_FIXED_NEWSTYLE = 1
FLAG_NO_ZEROES = 2
OPT_ABORT = 2
OPT_GO = 7
OPT_STRUCTURED_REPLY = 8
REP_ACK = 1
REP_INFO = 3
INFO_EXPORT = 0
CMD_READ = 0
CMD_WRITE = 1


class Refused(Exception):
    """The server refused the handshake: a wrong export name, say."""


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("server closed the connection during the handshake")
        buf += chunk
    return bytes(buf)


def send_option(sock, opt, data=b""):
    sock.sendall(struct.pack(">QII", IHAVEOPT, opt, len(data)) + data)


def read_option_reply(sock, opt):
    magic, ropt, rtype, length = struct.unpack(">QIII", recv_exact(sock, 20))
    if magic != OPT_REPLY_MAGIC or ropt != opt:
        raise ConnectionError(f"bad option reply: magic {magic:#x} option {ropt}")
    return rtype, recv_exact(sock, length)


def connect(args):
    if args.unix:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(args.unix)
    else:
        host, port = args.tcp.rsplit(":", 1)
        sock = socket.create_connection((host, int(port)))
    sock.settimeout(args.timeout)
    return sock


def handshake(sock, args):
    """Fixed newstyle up to NBD_OPT_GO; returns (export size, transmission flags)."""
    magic, opt_magic, hflags = struct.unpack(">QQH", recv_exact(sock, 18))
    if magic != NBDMAGIC or opt_magic != IHAVEOPT or not hflags & FLAG_FIXED_NEWSTYLE:
        raise ConnectionError("not a fixed-newstyle NBD server")
    sock.sendall(struct.pack(">I", FLAG_FIXED_NEWSTYLE | (hflags & FLAG_NO_ZEROES)))
    if args.structured:
        send_option(sock, OPT_STRUCTURED_REPLY)
        rtype, _ = read_option_reply(sock, OPT_STRUCTURED_REPLY)
        if rtype != REP_ACK:
            raise Refused("structured replies refused")
    name = args.export.encode()
    send_option(sock, OPT_GO, struct.pack(">I", len(name)) + name + struct.pack(">H", 0))
    size = flags = None
    while True:
        rtype, data = read_option_reply(sock, OPT_GO)
        if rtype == REP_ACK:
            break
        if rtype & 0x80000000:
            raise Refused(f"export {args.export!r} refused: reply {rtype:#x} {data!r}")
        if rtype == REP_INFO and len(data) >= 12:
            (info,) = struct.unpack(">H", data[:2])
            if info == INFO_EXPORT:
                size, flags = struct.unpack(">QH", data[2:12])
    if size is None:
        raise ConnectionError("NBD_OPT_GO gave no export size")
    return size, flags


def one_try(args, payload):
    sock = connect(args)
    try:
        size, _ = handshake(sock, args)
        count = min(args.size, size)
        cmd = CMD_WRITE if args.write else CMD_READ
        reqs = bytearray()
        for i in range(args.requests):
            offset = (i * count) % max(size - count + 1, 1)
            offset -= offset % 512
            reqs += struct.pack(">IHHQQI", REQUEST_MAGIC, 0, cmd, i + 1, offset, count)
            if args.write:
                reqs += payload[:count]
        # Requests whose writes the server does not take in time are simply cut off too.
        try:
            sock.sendall(reqs)
            sock.settimeout(0.5)  # writes' replies may be fewer bytes than asked for
            left = args.read_bytes
            while left > 0:
                got = sock.recv(min(left, 65536))
                if not got:
                    break
                left -= len(got)
        except (socket.timeout, OSError):
            pass
    finally:
        # SO_LINGER 0: close sends a reset, whatever the server still has to send.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


def server_alive(args):
    if args.pid:
        time.sleep(args.settle)
        try:
            os.kill(args.pid, 0)
        except ProcessLookupError:
            return False
        try:  # a zombie is dead too
            with open(f"/proc/{args.pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False
    try:
        sock = connect(args)
        try:
            handshake(sock, args)
            send_option(sock, OPT_ABORT)
        finally:
            sock.close()
        return True
    except (ConnectionError, OSError):
        return False


def main():
    p = argparse.ArgumentParser(description="NBD client that hangs up with requests in flight")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--unix", metavar="SOCK")
    where.add_argument("--tcp", metavar="HOST:PORT")
    p.add_argument("--export", default="")
    p.add_argument("--requests", type=int, default=16, help="requests in flight (16)")
    p.add_argument("--size", type=int, default=4 << 20, help="bytes a request (4 MiB)")
    p.add_argument("--write", action="store_true", help="writes instead of reads")
    p.add_argument("--read-bytes", type=int, default=4096,
                   help="bytes of the replies read before hanging up (4096)")
    p.add_argument("--structured", action="store_true", help="negotiate structured replies")
    p.add_argument("--tries", type=int, default=20)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--pid", type=int, help="the server's pid, checked between tries")
    p.add_argument("--settle", type=float, default=0.05,
                   help="seconds between a try and the check of --pid (0.05)")
    p.add_argument("--keep-going", action="store_true",
                   help="go on after the server went down (a supervisor restarts it)")
    p.add_argument("--timeout", type=float, default=10, help="socket timeout in seconds (10)")
    args = p.parse_args()

    payload = bytes([0xA5]) * args.size if args.write else b""
    start = time.monotonic()
    tries = downs = 0
    while tries < args.tries and time.monotonic() - start < args.seconds:
        tries += 1
        try:
            one_try(args, payload)
        except Refused as e:
            print(f"nbd_abrupt: try {tries}: {e}", file=sys.stderr)
            return 1
        except (ConnectionError, OSError) as e:
            print(f"nbd_abrupt: try {tries}: {e}", file=sys.stderr)
        if not server_alive(args):
            downs += 1
            if not args.keep_going:
                break
            time.sleep(0.2)
    seconds = time.monotonic() - start
    state = "down" if downs and not args.keep_going else "alive"
    print(f"tries={tries} server={state} downs={downs} seconds={seconds:.1f}")
    return 3 if state == "down" else 0


if __name__ == "__main__":
    sys.exit(main())
