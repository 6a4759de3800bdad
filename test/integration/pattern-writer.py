#!/usr/bin/python3
# pattern-writer.py: a client for the reconfiguration tests and benchmark. It writes, through NBD
# (libnbd), 4 KiB blocks over a ring of BLOCKS blocks, each block carrying its write's sequence
# number, flushing every 16 writes, for SECONDS; then flushes and prints, as JSON, the sequence
# each block must hold now (the last acknowledged write to it) and the request latencies. A
# second mode checks that an export holds what the first printed:
#
#   pattern-writer.py write URI SECONDS BLOCKS > state.json
#   pattern-writer.py check URI state.json      # exit 1, naming the block, on a lost or older write
import json
import struct
import sys
import time

import nbd

BLOCK = 4096


def block_data(seq, block):
    return struct.pack("<QQ", seq, block) * (BLOCK // 16)


def write(uri, seconds, blocks):
    h = nbd.NBD()
    h.connect_uri(uri)
    last = {}
    latencies = []  # (start, seconds) of every request
    seq = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        block = seq % blocks
        t0 = time.monotonic()
        h.pwrite(block_data(seq, block), block * BLOCK)
        latencies.append((t0, time.monotonic() - t0))
        last[block] = seq
        seq += 1
        if seq % 16 == 0:
            t0 = time.monotonic()
            h.flush()
            latencies.append((t0, time.monotonic() - t0))
    h.flush()
    h.shutdown()
    lat = sorted(d for _, d in latencies)
    worst = max(latencies, key=lambda x: x[1])
    json.dump({
        "writes": seq,
        "blocks": {str(b): s for b, s in last.items()},
        "p50_ms": lat[len(lat) // 2] * 1000,
        "p99_ms": lat[len(lat) * 99 // 100] * 1000,
        "max_ms": worst[1] * 1000,
        "max_at": worst[0],
        # requests slower than 5 ms, to see each pause: [start (monotonic), ms]
        "slow": [[t, d * 1000] for t, d in latencies if d > 0.005],
    }, sys.stdout)
    print()


def check(uri, state_file):
    with open(state_file) as f:
        state = json.load(f)
    h = nbd.NBD()
    h.connect_uri(uri)
    bad = 0
    for block, seq in state["blocks"].items():
        block = int(block)
        got = h.pread(BLOCK, block * BLOCK)
        if got != block_data(seq, block):
            got_seq, got_block = struct.unpack("<QQ", got[:16])
            print(f"block {block}: holds write {got_seq} (block {got_block}), "
                  f"wanted the acknowledged write {seq}")
            bad += 1
    h.shutdown()
    if bad:
        sys.exit(1)
    print(f"ok: {len(state['blocks'])} blocks hold their last acknowledged write "
          f"({state['writes']} writes)")


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
    else:
        check(sys.argv[2], sys.argv[3])
