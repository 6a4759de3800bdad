#!/usr/bin/python3
# tapeimage.py: the emulated tapes (SIMH .tap images) read by DESIGN.md's letter, independently of
# vvm's own tape code (mover/tape/, vvtape), so that a test or a benchmark can check what vvm
# wrote without trusting what wrote it. bench/soak imports it; a shell test runs it:
#
#   tapeimage.py check LIBRARY VVS.json   # every good copy of every VV in VVS.json (`vvctl ls
#                                         # --json`'s list, or `vvctl show --json`'s objects one
#                                         # after another) is a tape file of LIBRARY/VSN.tap with
#                                         # the VV's class, serial, size and data checksum
#   tapeimage.py ls IMAGE                 # the VOL label and each file's HDR fields, as JSON
#
# `check` prints one line a copy and a summary, and exits 1 when a copy fails (or the checksum
# library is missing: nothing is taken on trust), 2 on a usage error.
#
# The format: each record is a 4-byte little-endian length, the data, a pad byte when the length
# is odd and the length again; a zero length is a tape mark, 0xFFFFFFFF the end of medium. File 0
# is one 80-byte VOL label; every later file a HDR label, its data blocks, an EOF label, each label
# 80 ASCII bytes (DESIGN.md, "Labels").

import ctypes
import ctypes.util
import json
import os
import struct
import sys


class TapeError(Exception):
    pass


def parse_tape(path):
    """Reads a SIMH .tap image by DESIGN.md's letter: file 0 a VOL label and a tape mark; each
    later file a HDR label, data blocks, an EOF label and a tape mark. Returns {"vol": text,
    "vsn", "media": the VOL label's VSN and media type, "files": {n: {"hdr", "eof", "data",
    "blocks": each data block's length}}}. Files cut short
    at the end (a torn or unfinished write) are left out; anything else malformed is a
    TapeError."""
    with open(path, "rb") as f:
        img = f.read()
    pos = 0
    records = []  # per file: list of record bytes
    cur = []
    while pos + 4 <= len(img):
        (n,) = struct.unpack_from("<I", img, pos)
        if n == 0xFFFFFFFF:
            break
        if n == 0:
            records.append(cur)
            cur = []
            pos += 4
            continue
        if n & 0x80000000:  # SIMH's bad-record class: a medium error (the data is there)
            n &= 0x7FFFFFFF
        end = pos + 4 + n + (n & 1)
        if end + 4 > len(img):
            break  # torn tail
        (n2,) = struct.unpack_from("<I", img, end)
        if (n2 & 0x7FFFFFFF) != n:
            break  # torn tail: the two lengths disagree
        cur.append(img[pos + 4:pos + 4 + n])
        pos = end + 4
    if not records or len(records[0]) != 1 or len(records[0][0]) != 80:
        raise TapeError("file 0 is not one 80-byte VOL label")
    vol = records[0][0].decode("ascii", errors="replace")
    if not vol.startswith("VOL") or vol[17:27].strip() != "VVM1":
        raise TapeError("VOL label %r" % vol)
    files = {}
    for n, recs in enumerate(records[1:], start=1):
        if len(recs) < 2 or len(recs[0]) != 80 or len(recs[-1]) != 80:
            continue  # an attempt cut short and written again over: the database never names it
        hdr, eof = label(recs[0], "HDR"), label(recs[-1], "EOF")
        if hdr is None or eof is None:
            continue
        files[n] = {"hdr": hdr, "eof": eof, "data": b"".join(recs[1:-1]),
                    "blocks": [len(r) for r in recs[1:-1]]}
    return {"vol": vol, "vsn": vol[3:9].strip(), "media": vol[9:17].strip(), "files": files}


def label(rec, kind):
    """The fields of an 80-byte HDR or EOF label (DESIGN.md, "Labels"), or None."""
    s = rec.decode("ascii", errors="replace")
    if s[:3] != kind or s != s.upper():
        return None
    try:
        return {"class": s[3], "serial": int(s[4:14]), "id": int(s[14:24]),
                "file": int(s[24:34]), "size": int(s[34:50], 16), "finished": int(s[50:60], 16),
                "written": int(s[60:70], 16), "version": s[70:80].strip()}
    except ValueError:
        return None


def load_xxh3():
    """libxxhash's XXH3_64bits, the movers' data checksum, or None without the library."""
    name = ctypes.util.find_library("xxhash") or "libxxhash.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    fn = lib.XXH3_64bits
    fn.restype = ctypes.c_uint64
    fn.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    return fn


def serial_of(vv):
    """A VV's serial: its record's, or its name's digits (vvctl show --json gives the name)."""
    if "serial" in vv:
        return int(vv["serial"])
    return int(vv["name"][1:])


def checksum_of(vv):
    c = vv["checksum"]
    return int(c, 16) if isinstance(c, str) else int(c)


def check_copy(images, vv, copy, xxh3):
    """Checks one copy (`copy`, an element of the VV's "copies") against the parsed tapes
    (`images`: VSN -> parse_tape()). Yields (check, ok, problem, detail) for each check made:
    "copies parse" (the tape file is there, with the VV's class, serial, size and file number in
    its HDR, an EOF equal to the HDR and that many data bytes), then "copies checksum" (the data's
    XXH3-64 is the VV's checksum; only when `xxh3` is given)."""
    where = "%s copy %d on %s file %d" % (vv["name"], copy["copy"], copy["vsn"], copy["file"])
    tape = images.get(copy["vsn"])
    if tape is None:
        yield "copies parse", False, "copy on a tape that is not there", where
        return
    f = tape["files"].get(copy["file"])
    if f is None:
        yield "copies parse", False, "copy's tape file missing", where
        return
    want = {"class": vv["class"], "serial": serial_of(vv), "size": vv["size"],
            "file": copy["file"]}
    got = {k: f["hdr"][k] for k in want}
    ok = got == want and f["eof"] == f["hdr"] and len(f["data"]) == vv["size"]
    yield ("copies parse", ok, "copy's labels are not the VV's",
           "%s: HDR %s, EOF %s, %d data bytes; wanted %s" %
           (where, f["hdr"], f["eof"], len(f["data"]), want))
    if xxh3 is not None:
        sum_ = xxh3(f["data"], len(f["data"]))
        yield ("copies checksum", sum_ == checksum_of(vv), "copy's checksum",
               "%s: data XXH3 %016x, vvmd has %016x" % (where, sum_, checksum_of(vv)))


def parse_library(library):
    """Every VSN.tap of `library`, parsed: (VSN -> parse_tape(), [(path, TapeError)])."""
    images, errors = {}, []
    for name in sorted(os.listdir(library)):
        if not name.endswith(".tap"):
            continue
        path = os.path.join(library, name)
        try:
            images[name[:-4]] = parse_tape(path)
        except TapeError as e:
            errors.append((path, e))
    return images, errors


def read_vvs(path):
    """The VVs of `path`: a JSON list of objects, or objects one after another (what `vvctl show
    --json` prints, VV by VV)."""
    with open(path) as f:
        text = f.read()
    decoder = json.JSONDecoder()
    vvs, pos = [], 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            return vvs
        value, pos = decoder.raw_decode(text, pos)
        vvs.extend(value if isinstance(value, list) else [value])


def main(argv):
    if len(argv) == 3 and argv[1] == "ls":
        tape = parse_tape(argv[2])
        out = {"vsn": tape["vsn"], "media": tape["media"],
               "files": [{"file": n, "hdr": f["hdr"], "bytes": len(f["data"]),
                          "largest_block": max(f["blocks"], default=0)}
                         for n, f in sorted(tape["files"].items())]}
        print(json.dumps(out, indent=1))
        return 0
    if len(argv) != 4 or argv[1] != "check":
        print("usage: tapeimage.py check LIBRARY VVS.json | tapeimage.py ls IMAGE",
              file=sys.stderr)
        return 2
    vvs = read_vvs(argv[3])
    images, errors = parse_library(argv[2])
    bad = 0
    for path, e in errors:
        print("FAIL %s does not parse: %s" % (path, e))
        bad += 1
    xxh3 = load_xxh3()
    if xxh3 is None:
        print("FAIL libxxhash (XXH3_64bits) cannot be loaded: checksums not checked")
        bad += 1
    copies = 0
    for vv in vvs:
        for c in vv["copies"]:
            if c.get("state", "good") != "good":
                continue
            copies += 1
            results = list(check_copy(images, vv, c, xxh3))
            for check, ok, problem, detail in results:
                if not ok:
                    print("FAIL %s: %s: %s" % (check, problem, detail))
                    bad += 1
            if all(ok for _, ok, _, _ in results):
                f = images[c["vsn"]]["files"][c["file"]]
                print("ok %s copy %d on %s (%s) file %d: HDR class %s serial %d size %d, "
                      "XXH3 %016x" % (vv["name"], c["copy"], c["vsn"],
                                      images[c["vsn"]]["media"], c["file"], f["hdr"]["class"],
                                      f["hdr"]["serial"], f["hdr"]["size"], checksum_of(vv)))
    print("%d tape(s) parsed, %d cop%s of %d VV(s) checked, %d failure(s)" %
          (len(images), copies, "y" if copies == 1 else "ies", len(vvs), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
