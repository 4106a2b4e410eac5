# Driver of tests/mount/corruption.sh (not a test by itself): damages chunks,
# indexes and manifests of a private copy of the fixture store and checks
# what a fresh mount.dsfs and `dsfs verify` make of it.
#
# Expected bytes never come from dsfs alone: images and streams read through
# a clean mount must have the size and SHA-256 of pbs-store-a.expect.json
# (written by PBS's own code) before their chunks are used as reference; pxar
# streams (from `dsfs cat`) must have the expect file's SHA-256, and the
# payload offsets found in them by the walker below must give every file the
# expect file's SHA-256.
#
# Environment: DSFS, MOUNT_DSFS, FIX, STORE (the copy), KEY, T (temp dir),
# DSFS_CORRUPTION_TRIALS (default 300), DSFS_CORRUPTION_SEED (default:
# random, printed),
# DSFS_MOUNT_TIMEOUT (seconds, default 10), DSFS_READ_GRAIN (default 4096).
import errno
import hashlib
import json
import os
import random
import re
import shutil
import stat
import struct
import subprocess
import sys
import time
import zlib

DSFS, MOUNT_DSFS = os.environ["DSFS"], os.environ["MOUNT_DSFS"]
FIX, STORE, KEY, T = os.environ["FIX"], os.environ["STORE"], os.environ["KEY"], os.environ["T"]
TRIALS = int(os.environ.get("DSFS_CORRUPTION_TRIALS") or 300)
SEED = int(os.environ.get("DSFS_CORRUPTION_SEED") or random.SystemRandom().randrange(1 << 32))
MOUNT_TIMEOUT = float(os.environ.get("DSFS_MOUNT_TIMEOUT") or 10)
# A read fails for whole pages (the kernel reads a file through its page
# cache): good bytes sharing a page with a damaged chunk may fail too.
GRAIN = int(os.environ.get("DSFS_READ_GRAIN") or 4096)
M = os.path.join(T, "m")
MLOG = os.path.join(T, "mount.log")
ZSTD = shutil.which("zstd")

PLAIN_MAGICS = {bytes.fromhex("42ab3807be8370a1"): "plain", bytes.fromhex("31b958426fb6a37f"): "zstd"}
ENC_MAGICS = {bytes.fromhex("7b6785be222d4cf0"): "enc", bytes.fromhex("e6591bbf0bbfd80b"): "enc-zstd"}


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def sha(b):
    return hashlib.sha256(b).hexdigest()


def raw_path(e, key="path"):
    return bytes.fromhex(e[key + "_hex"]) if key + "_hex" in e else e[key].encode()


# --- pxar: where each entry and each file's data is in the streams ---------

ENTRY, FILENAME, PAYLOAD, PREF = 0xd5956474e588acef, 0x16701121063917b3, 0x28147a1b0b7c1a25, 0x419d3d6bc4ba977e
GOODBYE, HARDLINK = 0x2fec4fa642d5731d, 0x51269c8422bd7275


def pxar_walk(b):
    """path -> {'item': (start, end) of its FILENAME and ENTRY (or HARDLINK)
    items in the metadata stream, 'data': (start, end) of its file data,
    'in': 'm' (same stream, v1) or 'p' (payload stream, v2), 'goodbye':
    (start, end) of a directory's goodbye table}; sequential decoding per
    the grammar of spec/pxar-format.md §2.1."""
    out, stack, name, cur, off, fn_off = {}, [], None, None, 0, 0
    while off < len(b):
        ty, size = struct.unpack_from("<QQ", b, off)
        check(size >= 16 and off + size <= len(b), f"pxar walk: bad item at {off}")
        c0 = off + 16
        if ty == FILENAME:
            name, fn_off = b[c0:off + size - 1], off
        elif ty == ENTRY:
            mode = struct.unpack_from("<Q", b, c0)[0]
            path = b"/" if not stack else stack[-1].rstrip(b"/") + b"/" + name
            out[path] = cur = {"item": (fn_off if stack else off, off + size), "data": None, "in": None}
            if stat.S_ISDIR(mode):
                stack.append(path)
        elif ty == PAYLOAD:
            cur["data"], cur["in"] = (c0, off + size), "m"
        elif ty == PREF:
            q, n = struct.unpack_from("<QQ", b, c0)
            cur["data"], cur["in"] = (q + 16, q + 16 + n), "p"
        elif ty == HARDLINK:
            out[stack[-1].rstrip(b"/") + b"/" + name] = {"item": (fn_off, off + size), "data": None, "in": None}
        elif ty == GOODBYE:
            out[stack.pop()]["goodbye"] = (off, off + size)
        off += size
    return out


# --- the store as the expect file describes it -------------------------------

exp = json.load(open(f"{FIX}/pbs-store-a.expect.json"))
chunk_data = {}  # digest -> decoded bytes, from verified reads


class Obj:
    """An image or stream file (kind 'file') or a pxar archive ('pxar') as
    the mount shows it."""

    def __init__(self, kind, rel, **kw):
        self.kind, self.rel = kind, rel
        self.__dict__.update(kw)

    def digests(self):
        if self.kind == "file":
            return {c["digest"] for c in self.chunks}
        return {c["digest"] for s in self.streams.values() for c in s}


def shown(name):
    for ext in (".pxar.didx", ".mpxar.didx"):
        if name.endswith(ext):
            return name[:-len(ext)] + ".pxar"
    return name.rsplit(".", 1)[0]


objs = []
uses = {}  # digest -> [(snapshot/archive, chunk index)]
for s in exp["snapshots"]:
    arch = {a["name"]: a for a in s["archives"]}
    for a in s["archives"]:
        for i, c in enumerate(a.get("chunks") or []):
            uses.setdefault(c["digest"], []).append((f"{s['path']}/{a['name']}", i))
        rel = f"{s['path']}/{shown(a['name'])}"
        if a["name"].endswith(".blob") or a["name"].endswith(".ppxar.didx"):
            continue
        enc = a["crypt_mode"] == "encrypt"
        if a["name"].endswith(".pxar.didx"):
            objs.append(Obj("pxar", rel, snap=s["path"], streams={"m": a["chunks"]}, archives=[a["name"]],
                            entries=a["pxar"]["entries"], split=False, enc=enc))
        elif a["name"].endswith(".mpxar.didx"):
            p = arch[a["name"].replace(".mpxar.", ".ppxar.")]
            objs.append(Obj("pxar", rel, snap=s["path"], streams={"m": a["chunks"], "p": p["chunks"]},
                            archives=[a["name"], p["name"]], entries=a["pxar"]["entries"], split=True,
                            enc=enc))
        else:
            objs.append(Obj("file", rel, size=a["size"], sha256=a["sha256"], chunks=a["chunks"], enc=enc,
                            image=a["name"].endswith(".img.fidx"), chunk_size=a.get("chunk_size")))
archive_of = {(s["path"], a["name"]): a for s in exp["snapshots"] for a in s["archives"]}


def zero_chunk(o, d):
    """A full-size zero chunk of an image (plain or encrypted): its digest
    names its bytes, so the mount serves zeros without loading it, damaged
    or not. Known from the bytes a clean read gave, which matched the
    expect file's SHA-256 (baseline), not from dsfs's own idea of it."""
    cd = chunk_data.get(d)
    return o.kind == "file" and o.image and cd is not None and len(cd) == o.chunk_size and not any(cd)


def intervals(chunks, d):
    return [(c["start"], c["end"]) for c in chunks if c["digest"] == d]


# --- mounting -----------------------------------------------------------------

class Mount:
    def __init__(self, store=STORE):
        os.makedirs(M, exist_ok=True)
        self.log_start = os.path.getsize(MLOG) if os.path.exists(MLOG) else 0
        with open(MLOG, "ab") as log:
            self.p = subprocess.Popen([MOUNT_DSFS, store, M, "-f", "-o", f"keyfile={KEY}"],
                                      stdout=log, stderr=log)
        end = time.monotonic() + MOUNT_TIMEOUT
        while not os.path.ismount(M):
            if self.p.poll() is not None:
                raise Fail(f"mount.dsfs exited {self.p.returncode} before mounting:\n{self.log()}")
            if time.monotonic() > end:
                self.p.kill()
                raise Fail("mount not ready in time")
            time.sleep(0.01)

    def log(self):
        with open(MLOG, "rb") as f:
            f.seek(self.log_start)
            return f.read().decode(errors="replace")

    def close(self):
        """Unmounts; the daemon must still be running and exit 0."""
        alive = self.p.poll() is None
        if os.path.ismount(M):
            subprocess.run(["fusermount3", "-u", M], check=False)
        try:
            rc = self.p.wait(timeout=max(30, MOUNT_TIMEOUT))
        except subprocess.TimeoutExpired:
            self.p.kill()
            raise Fail("mount.dsfs did not exit after unmount")
        check(alive, f"mount.dsfs died while mounted (exit {rc}):\n{self.log()[-3000:]}")
        check(rc == 0, f"mount.dsfs exited {rc}:\n{self.log()[-3000:]}")


def read_all(path, off=0, end=None, step=1 << 20):
    """Reads [off, end) (end None: to EOF) in step-sized reads. Returns the
    bytes served and None, "EOF" (ended early) or the errno that stopped it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return read_fd(fd, off, end, step)
    finally:
        os.close(fd)


def read_fd(fd, off, end, step=1 << 20):
    got = bytearray()
    while end is None or off + len(got) < end:
        n = step if end is None else min(step, end - off - len(got))
        try:
            b = os.pread(fd, n, off + len(got))
        except OSError as e:
            return bytes(got), e.errno
        if not b:
            return bytes(got), (None if end is None else "EOF")
        got += b
    return bytes(got), None


class Stats:
    eio = 0
    reads = 0
    must_fail = 0
    zero_served = 0  # reads of a damaged zero chunk that had to succeed


def judge(what, want, s, e, got, err, bad, stats):
    """A read of [s, e) of a file whose correct bytes are want(a, b) and
    whose damaged ranges are bad served got, then stopped with err."""
    q = s + len(got)
    stats.reads += 1
    check(got == want(s, q), f"{what}: WRONG BYTES in [{s}, {q})")
    for ds, de in bad:
        check(not (s < de and ds < q), f"{what}: served bytes of the damaged range [{ds}, {de})")
    if err is None:
        check(q == e or e is None, f"{what}: short read")
        return
    check(err != "EOF", f"{what}: end of file at {q}, want {e} (silent truncation)")
    check(err == errno.EIO, f"{what}: read at {q}: {errno.errorcode.get(err, err)}, want EIO")
    g = q // GRAIN * GRAIN
    check(any(de > q and ds < g + GRAIN for ds, de in bad),
          f"{what}: EIO at {q}, outside every damaged range {bad}")
    stats.eio += 1


def check_file(o, d, rng, stats, benign=False):
    """Every chunk's range, in random order, then the whole file front to
    back (as cat does); the size must not change."""
    path = f"{M}/{o.rel}"
    bad = [] if benign else intervals(o.chunks, d)
    loose = intervals(o.chunks, d) if benign else []
    if zero_chunk(o, d):
        # Served as zeros whatever its file holds: no EIO allowed.
        full = [(s, e) for s, e in intervals(o.chunks, d) if e - s == o.chunk_size]
        check(len(full) == len(intervals(o.chunks, d)), f"{o.rel}: a short chunk has the zero digest")
        bad, loose = [], []
        stats.zero_served += len(full)
    st = os.stat(path)
    check(st.st_size == o.size, f"{o.rel}: size {st.st_size}, want {o.size}")

    def want(a, b):
        out = bytearray()
        for c in o.chunks:
            if c["end"] > a and c["start"] < b:
                cd = chunk_data[c["digest"]]
                out += cd[max(a, c["start"]) - c["start"]:min(b, c["end"]) - c["start"]]
        return bytes(out)

    def run(s, e, got, err):
        # benign: the damage left the chunk decodable to the right bytes;
        # EIO is still allowed there (a stricter decoder), wrong bytes not.
        judge(o.rel, want, s, e, got, err, bad or (loose if err == errno.EIO else []), stats)

    fd = os.open(path, os.O_RDONLY)
    try:
        ranges = [(c["start"], c["end"]) for c in o.chunks]
        rng.shuffle(ranges)
        for s, e in ranges:
            if (s, e) in bad:
                stats.must_fail += 1
            run(s, e, *read_fd(fd, s, e))
    finally:
        os.close(fd)
    # Front to back; past a failure, go on after the damaged range.
    fd = os.open(path, os.O_RDONLY)
    try:
        pos = 0
        while pos < o.size:
            got, err = read_fd(fd, pos, o.size, 128 << 10)
            run(pos, o.size, got, err)
            if err is None:
                break
            q = pos + len(got)
            pos = min([de for ds, de in bad + loose if de > q] + [o.size])
            pos = -(-pos // GRAIN) * GRAIN
        check(os.fstat(fd).st_size == o.size, f"{o.rel}: size changed to {os.fstat(fd).st_size}")
    finally:
        os.close(fd)


TYPES = {"dir": stat.S_ISDIR, "file": stat.S_ISREG, "symlink": stat.S_ISLNK, "chardev": stat.S_ISCHR,
         "blockdev": stat.S_ISBLK, "fifo": stat.S_ISFIFO, "socket": stat.S_ISSOCK, "hardlink": stat.S_ISREG}


def check_pxar(o, d, rng, stats, nsample=20, benign=False):
    """Samples entries: those whose own item or data is in the damaged chunk
    (must fail), others at random (must be right, or EIO for a lookup when
    the metadata stream is the damaged one)."""
    base = f"{M}/{o.rel}".encode()
    bad = {k: ([] if benign else intervals(c, d)) for k, c in o.streams.items()}
    meta_bad = bool(bad["m"]) or benign
    ents = o.entries_by_path

    def hit(iv, rs):
        return iv is not None and any(iv[0] < de and ds < iv[1] for ds, de in rs)

    def data_of(p):
        e = ents[p]
        if e["type"] == "hardlink":
            return o.walk[b"/" + raw_path(e, "target")]
        return o.walk[p]

    paths = list(ents)
    files = [p for p in paths if ents[p]["type"] in ("file", "hardlink")]
    hit_items = [p for p in paths if hit(o.walk[p]["item"], bad["m"])]
    hit_files = [p for p in files if hit(data_of(p)["data"], bad[data_of(p)["in"]])]
    sample_stat = set(rng.sample(hit_items, min(nsample, len(hit_items))))
    sample_stat |= set(rng.sample(paths, min(nsample, len(paths))))
    sample_read = set(rng.sample(hit_files, min(nsample, len(hit_files))))
    sample_read |= set(rng.sample(files, min(nsample, len(files))))
    dirs = [p for p in paths if ents[p]["type"] == "dir"]
    hit_dirs = [p for p in dirs if hit(o.walk[p]["goodbye"], bad["m"])]
    # An archive whose root cannot be read still shows as a directory
    # (mode 0555), so that the snapshot lists; using it fails.
    root_bad = b"/" in hit_items
    if root_bad:
        hit_items.remove(b"/")
        hit_dirs.append(b"/")
    sample_dirs = set(rng.sample(dirs, min(5, len(dirs)))) | set(hit_dirs)

    def lstat(p):
        try:
            return os.lstat(base + (p if p != b"/" else b""))
        except OSError as e:
            check(e.errno == errno.EIO, f"{o.rel}{p!r}: lstat: {errno.errorcode.get(e.errno)}, want EIO")
            check(meta_bad, f"{o.rel}{p!r}: lstat EIO, but the metadata stream is intact")
            stats.eio += 1
            return None

    for p in sorted(sample_stat | sample_read):
        e = ents[p]
        must = p in hit_items and not benign
        stats.must_fail += must
        st = lstat(p)
        if st is None:
            continue
        check(not must, f"{o.rel}{p!r}: lstat succeeded, but its entry is in the damaged chunk")
        if p == b"/" and meta_bad and st.st_mode == stat.S_IFDIR | 0o555:
            continue
        check(TYPES[e["type"]](st.st_mode), f"{o.rel}{p!r}: wrong type {oct(st.st_mode)}")
        if e["type"] != "hardlink":
            check((st.st_mode, st.st_uid, st.st_gid) == (e["st_mode"], e["uid"], e["gid"]),
                  f"{o.rel}{p!r}: wrong mode/owner")
            check(st.st_mtime_ns == e["mtime"]["sec"] * 10**9 + e["mtime"]["nsec"], f"{o.rel}{p!r}: wrong mtime")
        if p not in sample_read:
            continue
        w = data_of(p)
        lo, hi = w["data"]
        check(st.st_size == hi - lo, f"{o.rel}{p!r}: size {st.st_size}, want {hi - lo}")
        stream = o.raw[w["in"]]
        fbad = [(max(ds, lo) - lo, min(de, hi) - lo) for ds, de in bad[w["in"]] if ds < hi and de > lo]
        floose = [(max(ds, lo) - lo, min(de, hi) - lo) for ds, de in intervals(o.streams[w["in"]], d)
                  if ds < hi and de > lo] if benign else []
        if fbad:
            stats.must_fail += 1
        try:
            fd = os.open(base + p, os.O_RDONLY)
        except OSError as ex:
            raise Fail(f"{o.rel}{p!r}: open: {errno.errorcode.get(ex.errno)} (open reads no chunk)")
        try:
            got, err = read_fd(fd, 0, None, 128 << 10)
        finally:
            os.close(fd)
        judge(f"{o.rel}{p!r}", lambda a, b: stream[lo + a:lo + b], 0, hi - lo, got,
              "EOF" if err is None and len(got) < hi - lo else err,
              fbad or (floose if err == errno.EIO else []), stats)
    for p in sorted(sample_dirs):
        must = p in hit_dirs
        stats.must_fail += must
        try:
            names = sorted(os.listdir(base + (p if p != b"/" else b"")))
            check(not must, f"{o.rel}{p!r}: listing succeeded, but its goodbye table is damaged")
        except OSError as ex:
            check(ex.errno == errno.EIO and meta_bad,
                  f"{o.rel}{p!r}: listdir: {errno.errorcode.get(ex.errno)}")
            stats.eio += 1
            continue
        check(names == o.children[p], f"{o.rel}{p!r}: listing differs")


def check_obj(o, d, rng, stats, benign=False, nsample=20):
    if o.kind == "file":
        check_file(o, d, rng, stats, benign)
    else:
        check_pxar(o, d, rng, stats, nsample, benign)


# --- the reference, from a clean mount ----------------------------------------

def baseline():
    m = Mount()
    try:
        for o in objs:
            if o.kind != "file":
                continue
            got, err = read_all(f"{M}/{o.rel}")
            check(err is None and len(got) == o.size and sha(got) == o.sha256,
                  f"{o.rel}: clean read does not match the expect file")
            for c in o.chunks:
                chunk_data[c["digest"]] = got[c["start"]:c["end"]]
    finally:
        m.close()
    for o in objs:
        if o.kind != "pxar":
            continue
        o.raw = {}
        for k, name in zip("mp", o.archives):
            a = archive_of[(o.snap, name)]
            args = [DSFS, "cat"] + (["--keyfile", KEY] if o.enc else []) + [STORE, o.snap, name]
            b = subprocess.run(args, check=True, stdout=subprocess.PIPE).stdout
            check(len(b) == a["size"] and sha(b) == a["sha256"], f"{o.snap}/{name}: stream differs from expect")
            o.raw[k] = b
        o.walk = pxar_walk(o.raw["m"])
        o.entries_by_path = {raw_path(e): e for e in o.entries}
        check(set(o.walk) == set(o.entries_by_path), f"{o.rel}: walker and expect file disagree on paths")
        o.children = {}
        for p, e in o.entries_by_path.items():
            if p != b"/":
                o.children.setdefault(p.rsplit(b"/", 1)[0] or b"/", []).append(p.rsplit(b"/", 1)[1])
        for p, e in o.entries_by_path.items():
            if e["type"] == "dir":
                o.children.setdefault(p, [])
            if e["type"] == "file":
                w = o.walk[p]
                check(sha(o.raw[w["in"]][w["data"][0]:w["data"][1]]) == e["sha256"],
                      f"{o.rel}{p!r}: walker's data range does not hold the file")
        for v in o.children.values():
            v.sort()


# --- damage --------------------------------------------------------------------

def chunk_file(d):
    return f"{STORE}/.chunks/{d[:4]}/{d}"


def blob_class(b):
    if b[:8] in PLAIN_MAGICS:
        return PLAIN_MAGICS[b[:8]], 12
    return ENC_MAGICS[b[:8]], 44


def still_good(raw, d):
    """A zstd chunk whose frame was changed but still decodes to the chunk
    (zstd -d as the independent decoder)."""
    if raw[:8] != bytes.fromhex("31b958426fb6a37f") or not ZSTD:
        return False
    r = subprocess.run([ZSTD, "-d", "-q", "-c"], input=raw[12:], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL)
    return r.returncode == 0 and sha(r.stdout) == d


KINDS = [("flip", 40), ("flip-crc", 20), ("truncate", 8), ("empty", 4), ("append", 4), ("swap", 12),
         ("missing", 12)]


def damage(d, kind, rng, all_digests):
    """Damages chunk d; returns (restore function, description, benign)."""
    f = chunk_file(d)
    orig = open(f, "rb").read()
    cls, hl = blob_class(orig)
    b = bytearray(orig)
    desc = kind
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(b))
            b[i] ^= rng.randint(1, 255)
        desc += f" ({cls})"
    elif kind == "flip-crc":
        if len(b) <= hl:
            kind = "append"
        else:
            for _ in range(rng.randint(1, 4)):
                i = rng.randrange(hl, len(b))
                b[i] ^= rng.randint(1, 255)
            struct.pack_into("<I", b, 8, zlib.crc32(bytes(b[hl:])))
            desc += f" ({cls}, CRC recomputed)"
    if kind == "truncate":
        b = b[:rng.randrange(1, len(b))]
        desc = f"truncate to {len(b)} of {len(orig)} ({cls})"
    elif kind == "empty":
        b = bytearray()
    elif kind == "append":
        b += rng.randbytes(rng.randint(1, 64))
    elif kind == "swap":
        # Another chunk of the same encryption: a valid blob of the wrong
        # content (only the digest check can tell).
        same = [x for x in all_digests if x != d and blob_class(open(chunk_file(x), "rb").read(8))[1] == hl]
        x = rng.choice(same)
        b = bytearray(open(chunk_file(x), "rb").read())
        desc = f"swap with {x[:12]} ({cls})"
    if kind == "missing":
        os.unlink(f)
    else:
        with open(f, "wb") as out:
            out.write(b)

    def restore():
        with open(f, "wb") as out:
            out.write(orig)
    benign = kind == "flip-crc" and still_good(bytes(b), d)
    return restore, desc, benign


VERIFY_LINE = re.compile(r"^dsfs: verify: (.*): chunk (\d+) \(([0-9a-f]{64}), bytes (\d+)\.\.(\d+)\): (.*)$")


def verify(want_lines, want_rc, what, why=None, paths=("",)):
    """Runs dsfs verify --keyfile on the whole store (or once on each of
    paths): its exit status must be want_rc and its problem lines exactly
    want_lines (a set of regexes for non-chunk problems, or of (archive,
    index, digest) for chunks)."""
    lines = []
    for path in paths:
        r = subprocess.run([DSFS, "verify", "--keyfile", KEY, STORE] + ([path] if path else []),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        check(r.returncode == want_rc, f"verify {path} exited {r.returncode}, want {want_rc}:\n{r.stderr}")
        ll = [l for l in r.stderr.splitlines() if l.startswith("dsfs: verify: ")]
        m = re.search(r": (\d+) errors$", r.stdout.strip())
        check(m and int(m.group(1)) == len(ll), f"summary {r.stdout!r} vs {len(ll)} lines")
        lines += ll
    if all(isinstance(w, tuple) for w in want_lines):
        got, whys = set(), set()
        for l in lines:
            mm = VERIFY_LINE.match(l)
            check(mm, f"unexpected verify line: {l}")
            got.add((mm.group(1), int(mm.group(2)), mm.group(3)))
            whys.add(mm.group(6))
        if why:  # said once, then "marked bad earlier in this run"
            check(whys - {"marked bad earlier in this run"} == {why}, f"verify says {whys}, want {why!r}")
        check(got == set(want_lines) and len(lines) == len(want_lines),
              f"verify named {sorted(got)}, want {sorted(want_lines)}")
    else:
        for w in want_lines:
            check(any(re.search(w, l) for l in lines), f"verify did not report /{w}/:\n{r.stderr}")
    return lines


def trials():
    rng = random.Random(SEED)
    all_digests = sorted(n for sub in os.listdir(f"{STORE}/.chunks")
                         for n in os.listdir(f"{STORE}/.chunks/{sub}"))
    check(set(all_digests) == set(uses), "chunk files and expect file disagree")
    counts, benign_n, weak, t0 = {}, 0, 0, time.monotonic()
    stats = Stats()
    for t in range(TRIALS):
        d = rng.choice(all_digests)
        kind = rng.choices([k for k, _ in KINDS], [w for _, w in KINDS])[0]
        restore, desc, benign = damage(d, kind, rng, all_digests)
        what = f"trial {t} (seed {SEED}): chunk {d} {desc}"
        counts[kind] = counts.get(kind, 0) + 1
        benign_n += benign
        try:
            users = [o for o in objs if d in o.digests()]
            others = [o for o in objs if d not in o.digests()]
            before = (stats.eio, stats.must_fail)
            m = Mount()
            try:
                for o in users:
                    check_obj(o, d, rng, stats, benign)
                check_obj(rng.choice(others), d, rng, stats, nsample=5)  # untouched
            finally:
                m.close()
            eio = stats.eio - before[0]
            if stats.must_fail > before[1]:
                check(eio > 0, "nothing failed")
            elif not benign:
                weak += 1  # no item this test knows must fail is in the chunk
            if eio and not benign:
                check(d in m.log(), f"the damaged chunk's digest is not in the mount log:\n{m.log()[-2000:]}")
            if benign:
                verify([], 0, what)
            else:
                # The groups using the chunk (quicker); the whole store
                # every tenth trial (nothing else may be reported).
                groups = sorted({a.rsplit("/", 2)[0] for a, _ in uses[d]}) if t % 10 else [""]
                verify({(a, i, d) for a, i in uses[d]}, 3, what, "missing" if kind == "missing" else None,
                       groups)
        except Fail as e:
            raise Fail(f"{what}: {e} (repeat with DSFS_CORRUPTION_SEED={SEED})") from None
        finally:
            restore()
    el = time.monotonic() - t0
    print(f"{TRIALS} chunk trials in {el:.1f} s (seed {SEED}): " +
          ", ".join(f"{k} {counts.get(k, 0)}" for k, _ in KINDS) +
          f"; {stats.reads} reads checked, {stats.eio} EIO, {stats.must_fail} must-fail checks, "
          f"{benign_n} damages left the chunk intact, {weak} trials without a must-fail check, "
          f"{stats.zero_served} damaged zero-chunk ranges served as zeros")


# --- whole-file faults: an encrypted chunk in a plain index, indexes, manifests ---

def fault(what, path, mutate, checks, want_verify):
    orig = open(path, "rb").read()
    try:
        mutate(path, orig)
        m = Mount()
        try:
            checks()
        finally:
            m.close()
        verify(want_verify, 3, what)
    except Fail as e:
        raise Fail(f"{what}: {e}") from None
    finally:
        with open(path, "wb") as f:
            f.write(orig)


def expect_errno(path, errs, what, read=True):
    """Opening (and reading all of) path fails with one of errs; nothing
    wrong is served before the failure."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            if read:
                got, err = read_fd(fd, 0, None)
                check(err in errs, f"{what}: read ended with {errno.errorcode.get(err, err)} after "
                                   f"{len(got)} bytes, want {[errno.errorcode[e] for e in errs]}")
        finally:
            os.close(fd)
    except OSError as e:
        check(e.errno in errs, f"{what}: {errno.errorcode.get(e.errno)}, want {[errno.errorcode[e] for e in errs]}")


def file_faults():
    rng = random.Random(SEED + 1)
    stats = Stats()
    n = 0
    by_rel = {o.rel: o for o in objs}
    # An encrypted chunk file under the name of a plain one: a valid blob,
    # but not what the (unencrypted) index promises.
    img = by_rel["vm/101/2024-03-02T08:02:17Z/drive-scsi0.img"]
    d = img.chunks[2]["digest"]
    enc_chunk = next(c["digest"] for o in objs if o.enc and o.kind == "file" for c in o.chunks)
    fault("encrypted chunk in a plain index", chunk_file(d),
          lambda p, b: shutil.copyfile(chunk_file(enc_chunk), p),
          lambda: check_file(img, d, rng, stats), {(a, i, d) for a, i in uses[d]})
    ct = by_rel["ns/prod/ct/301/2024-03-02T10:02:17Z/root.pxar"]
    d = ct.streams["m"][len(ct.streams["m"]) // 2]["digest"]
    fault("encrypted chunk in a plain pxar archive", chunk_file(d),
          lambda p, b: shutil.copyfile(chunk_file(enc_chunk), p),
          lambda: check_pxar(ct, d, rng, stats, 40), {(a, i, d) for a, i in uses[d]})
    n += 2

    # Truncated indexes: inside the header, inside an entry, and at an
    # entry boundary (one chunk short: only the manifest can tell).
    for rel, name in (("vm/101/2024-03-03T08:02:17Z", "drive-scsi0.img.fidx"),
                      ("ns/prod/vm/201/2024-03-02T11:02:17Z", "drive-scsi0.img.fidx"),
                      ("host/tundra-87/2024-03-02T09:02:17Z", "catalog.pcat1.didx"),
                      ("host/tundra-87/2024-03-02T09:02:17Z", "root.pxar.didx"),
                      ("ns/prod/ct/301/2024-03-02T10:02:17Z", "root.pxar.didx"),
                      ("host/tundra-87/2024-03-04T09:02:17Z", "root.mpxar.didx"),
                      ("host/tundra-87/2024-03-04T09:02:17Z", "root.ppxar.didx")):
        path = f"{STORE}/{rel}/{name}"
        size = os.path.getsize(path)
        ent = 32 if name.endswith(".fidx") else 40
        for cut in (100, size - ent // 2, size - ent):
            mnt = f"{M}/{rel}/{shown(name).replace('.ppxar', '.pxar')}"
            o = by_rel.get(f"{rel}/{shown(name).replace('.ppxar', '.pxar')}")

            def checks():
                # the snapshot still lists; the archive gives EIO, never a
                # short file or wrong bytes
                check(shown(name).replace(".ppxar", ".pxar") in os.listdir(f"{M}/{rel}"), "not listed")
                if o.kind == "file":
                    expect_errno(mnt, (errno.EIO,), f"{rel}/{name}")
                elif name.endswith(".ppxar.didx"):
                    # metadata intact: a file with data at the cut end fails
                    last = max((w for w in o.walk.values() if w["data"] and w["data"][1] > w["data"][0]),
                               key=lambda w: w["data"][1])
                    p = next(k for k, w in o.walk.items() if w is last)
                    expect_errno(mnt.encode() + p, (errno.EIO,), f"{rel}/{name}: {p!r}")
                else:
                    try:
                        os.listdir(mnt)
                        raise Fail(f"{rel}/{name}: listing a truncated archive succeeded")
                    except OSError as e:
                        check(e.errno == errno.EIO, f"{rel}/{name}: listdir: {errno.errorcode.get(e.errno)}")
            fault(f"{rel}/{name} truncated to {cut}", path, lambda p, b, c=cut: open(p, "wb").write(b[:c]),
                  checks, [re.escape(f"{rel}/{name}: ")])
            n += 1

    # Damaged manifests: a flipped byte, cut in half, empty. The snapshot
    # still lists, index.json gives EIO, archives read right (their
    # indexes and chunks are intact) or fail cleanly.
    for rel in ("vm/101/2024-03-04T08:02:17Z", "ns/prod/vm/201/2024-03-02T11:02:17Z",
                "host/tundra-87/2024-03-04T09:02:17Z"):
        path = f"{STORE}/{rel}/index.json.blob"
        for how in ("flip", "half", "empty"):
            def mutate(p, b, how=how):
                b = bytearray(b)
                if how == "flip":
                    b[rng.randrange(len(b))] ^= 0x40
                open(p, "wb").write(b[:len(b) // 2] if how == "half" else b"" if how == "empty" else b)

            def checks(rel=rel):
                names = os.listdir(f"{M}/{rel}")
                expect_errno(f"{M}/{rel}/index.json", (errno.EIO,), f"{rel}/index.json")
                for o in objs:
                    if not o.rel.startswith(rel + "/") or o.rel.rsplit("/", 1)[1] not in names:
                        continue
                    if o.kind == "file" and o.enc:
                        # Which archives are encrypted is in the manifest:
                        # without it dsfs cannot know, and says ENOKEY.
                        expect_errno(f"{M}/{o.rel}", (errno.EIO, errno.ENOKEY), o.rel)
                    elif o.kind == "file":
                        got, err = read_all(f"{M}/{o.rel}")
                        check(err is None and sha(got) == o.sha256, f"{o.rel}: wrong bytes or {err}")
                    else:
                        check_pxar(o, None, rng, stats, 10)
            fault(f"{rel}/index.json.blob {how}", path, mutate, checks,
                  [re.escape(f"{rel}/index.json.blob: cannot load manifest")])
            n += 1
    # An index truncated in place under an open file (an image, a file in
    # a pxar archive): the open file reads right or fails with EIO; the
    # daemon must not die (an index mapped into memory would SIGBUS).
    ct = by_rel["ns/prod/ct/301/2024-03-02T10:02:17Z/root.pxar"]
    big = max((p for p, e in ct.entries_by_path.items() if e["type"] == "file"),
              key=lambda p: ct.entries_by_path[p]["size"])
    for rel, name, mnt, want in (
            ("vm/101/2024-03-02T08:02:17Z", "drive-scsi0.img.fidx",
             f"{M}/vm/101/2024-03-02T08:02:17Z/drive-scsi0.img",
             lambda: b"".join(chunk_data[c["digest"]] for c in img.chunks)),
            ("ns/prod/ct/301/2024-03-02T10:02:17Z", "root.pxar.didx", f"{M}/{ct.rel}".encode() + big,
             lambda: ct.raw["m"][ct.walk[big]["data"][0]:ct.walk[big]["data"][1]])):
        path = f"{STORE}/{rel}/{name}"
        orig = open(path, "rb").read()
        try:
            m = Mount()
            try:
                w = want()
                fd = os.open(mnt, os.O_RDONLY)
                try:
                    got, err = read_fd(fd, 0, 4096)
                    check(err is None and got == w[:4096], f"{rel}/{name}: first page")
                    os.truncate(path, 4096)
                    for off in sorted({len(w) // 2, len(w) - 4096, 1 << 20, 4096} - {0}):
                        off = off // 4096 * 4096
                        got, err = read_fd(fd, off, min(off + (256 << 10), len(w)))
                        check(got == w[off:off + len(got)], f"{rel}/{name}: WRONG BYTES at {off}")
                        check(err in (None, errno.EIO), f"{rel}/{name}: read at {off}: {err}")
                finally:
                    os.close(fd)
            finally:
                m.close()
        except Fail as e:
            raise Fail(f"{rel}/{name} truncated under an open file: {e}") from None
        finally:
            with open(path, "wb") as f:
                f.write(orig)
        n += 1

    # Damaged blobs (a plain, a zstd and an encrypted one): EIO, never the
    # damaged bytes; the snapshot still lists.
    for rel, name in (("vm/101/2024-03-02T08:02:17Z", "qemu-server.conf.blob"),
                      ("ns/prod/ct/301/2024-03-02T10:02:17Z", "pct.conf.blob"),
                      ("ns/prod/vm/201/2024-03-02T11:02:17Z", "qemu-server.conf.blob")):
        path = f"{STORE}/{rel}/{name}"
        for how in ("flip", "half"):
            def mutate(p, b, how=how):
                b = bytearray(b)
                if how == "flip":
                    b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
                open(p, "wb").write(b[:len(b) // 2] if how == "half" else b)

            def checks(rel=rel, name=name):
                check(shown(name) in os.listdir(f"{M}/{rel}"), "not listed")
                expect_errno(f"{M}/{rel}/{shown(name)}", (errno.EIO,), f"{rel}/{name}")
            fault(f"{rel}/{name} {how}", path, mutate, checks, [re.escape(f"{rel}/{name}: ")])
            n += 1
    print(f"{n} index, manifest, blob and crypt-mode faults: clean errno, verify reports each")


try:
    baseline()
except Fail as e:
    sys.exit(f"FAIL: {e}")
print(f"reference: {sum(o.kind == 'file' for o in objs)} images and streams and "
      f"{sum(o.kind == 'pxar' for o in objs)} pxar archives match the expect file")
def zero_chunk_missing():
    """The zero chunk's file removed: every plain image that uses it still
    reads whole and right (the mount never loads a full-size zero chunk),
    while verify reports the missing file."""
    zeros = {(d, o.enc) for o in objs for d in o.digests() if zero_chunk(o, d)}
    check({enc for _, enc in zeros} == {False, True}, f"want a plain and an encrypted zero chunk: {zeros}")
    n = 0
    for d, _ in sorted(zeros):
        imgs = [o for o in objs if d in o.digests()]
        path = chunk_file(d)
        saved = open(path, "rb").read()
        os.unlink(path)
        try:
            m = Mount()
            try:
                for o in imgs:
                    got, err = read_all(f"{M}/{o.rel}")
                    check(err is None and sha(got) == o.sha256,
                          f"{o.rel}: with the zero chunk's file gone: {err}, sha256 {sha(got)}")
                    n += 1
            finally:
                m.close()
            check(d not in m.log(), f"the zero chunk was loaded:\n{m.log()[-2000:]}")
            verify({(a, i, d) for a, i in uses[d]}, 3, "zero chunk missing", "missing", [""])
        finally:
            open(path, "wb").write(saved)
    print(f"zero chunks missing: {n} image reads right without them (plain and encrypted), verify reports them")


try:
    zero_chunk_missing()
    trials()
    file_faults()
except Fail as e:
    sys.exit(f"FAIL: {e}")
