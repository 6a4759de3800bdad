"""pool_writes.py: the request-pool tests' client (cluster-pool.sh, cluster-pool-flush.sh).

Eight libnbd connections to a pool node write 4 KiB blocks, 64 each a round, until each of two
other servers of the pool has taken some of them, counted from their nbdkit -v logs ("vvm: pwrite
count=" lines): a pool node sends a request to another server only when it is less loaded, which
takes several connections writing at once. Needs Debian's python3-libnbd (/usr/bin/python3).
"""
import sys
import threading

import nbd


def count(logs, what):
    """How many times `what` is in each of the logs."""
    out = []
    for path in logs:
        with open(path, errors="replace") as f:
            out.append(f.read().count(what))
    return out


def spread_writes(uri, logs, names, start, span):
    """Writes through `uri` until every server of `logs` (called `names`) took a write; the
    blocks go to [start, start + span). Returns the eight handles and the writes each server
    took; exits naming the servers after 40 rounds."""
    hs = []
    for _ in range(8):
        h = nbd.NBD()
        h.connect_uri(uri)
        hs.append(h)
    base = count(logs, "vvm: pwrite count=")
    block = b"\x5a" * 4096

    def writer(i, r):
        for k in range(64):
            hs[i].pwrite(block, start + ((r * 8 + i) * 64 + k) * 4096 % span)

    took = []
    for r in range(40):
        ts = [threading.Thread(target=writer, args=(i, r)) for i in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        took = [a - b for a, b in zip(count(logs, "vvm: pwrite count="), base)]
        if min(took) > 0:
            return hs, took
    sys.exit(f"{' and '.join(names)} took {took} of the writes of 8 connections to {uri} in 40 rounds")
