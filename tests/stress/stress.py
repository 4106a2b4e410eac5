# Driver of tests/mount/stress.sh: 16 readers checking bytes, writers in own
# groups, maintenance toggled every 200-500 ms. Env: DSFS, STORE, KEY, CFG,
# NAME, M, T, MOUNT_PID, DSFS_STRESS_SECONDS, DSFS_STRESS_LAG.
import errno, hashlib, json, os, random, subprocess, sys, threading, time
E = os.environ
DSFS, STORE, KEY, CFG, NAME, M, T = (E[k] for k in ("DSFS", "STORE", "KEY", "CFG", "NAME", "M", "T"))
SECS = float(E.get("DSFS_STRESS_SECONDS") or 20)
LAG = float(E.get("DSFS_STRESS_LAG") or 2.0)
FIX = E["FIX"]
exp = json.load(open(os.path.join(FIX, "pbs-store-a.expect.json")))
fails, lk = [], threading.Lock()
st = {"reads": 0, "bytes": 0, "ENXIO": 0, "EROFS": 0, "w_ok": 0, "w_refused": 0, "toggles": 0}
def bump(k, n=1):
    with lk: st[k] = st.get(k, 0) + n
def fail(msg):
    with lk: fails.append(msg)
sha = lambda b: hashlib.sha256(b).hexdigest()
# --- references: archives by `dsfs cat` (checked against the PBS oracle's sha256),
# pxar files read through the clean mount (checked against the oracle's sha256)
ref = os.path.join(T, "ref"); os.makedirs(ref, exist_ok=True)
targets = []  # (mount path bytes, ref file)
for s in exp["snapshots"]:
    for a in s["archives"]:
        n = a["name"]
        if n.endswith(".ppxar.didx"): continue
        if "pxar" in a:
            base = n.split(".")[0] + ".pxar"
            fs = [e for e in a["pxar"]["entries"] if e.get("type") == "file" and "sha256" in e]
            random.shuffle(fs)
            for e in fs[:150]:
                p = bytes.fromhex(e["path_hex"]) if "path_hex" in e else e["path"].encode()
                mp = os.fsencode(M) + b"/" + s["path"].encode() + b"/" + base.encode() + p
                rf = os.path.join(ref, e["sha256"])
                if not os.path.exists(rf):
                    b = open(mp, "rb").read()
                    if sha(b) != e["sha256"]: raise SystemExit(f"pxar ref {mp}: sha mismatch")
                    open(rf, "wb").write(b)
                targets.append((mp, rf))
            continue  # the archive itself is a directory
        name = n.rsplit(".", 1)[0]
        rf = os.path.join(ref, a["sha256"])
        if not os.path.exists(rf):
            b = subprocess.run([DSFS, "cat", "--keyfile", KEY, STORE, s["path"], n], check=True,
                               stdout=subprocess.PIPE).stdout
            if sha(b) != a["sha256"]: raise SystemExit(f"dsfs cat {s['path']} {n}: sha mismatch")
            open(rf, "wb").write(b)
        targets.append(((M + "/" + s["path"] + "/" + name).encode(), rf))
refs = {}
CORRUPT = bool(E.get("DSFS_STRESS_CORRUPT_REF"))  # proves the test can fail
def refdata(rf):
    if rf not in refs:
        b = bytearray(open(rf, "rb").read())
        if CORRUPT and b:
            b[0] ^= 1  # every reference is wrong in its first byte
        refs[rf] = bytes(b)
    return refs[rf]
print(f"stress: {len(targets)} read targets", flush=True)
fd_before = len(os.listdir(f"/proc/{E['MOUNT_PID']}/fd"))
# --- maintenance timeline: (t_set, mode); mode m seen from t_set until the next t_set + LAG
tl, stop = [(time.monotonic(), "none")], threading.Event()
def allowed(want, t0, t1):
    with lk: ev = list(tl)
    for i, (ts, m) in enumerate(ev):
        end = ev[i + 1][0] + LAG if i + 1 < len(ev) else float("inf")
        if m == want and ts <= t1 and end >= t0: return True
    return False
def check_err(e, t0, what, kinds):
    name = errno.errorcode.get(e.errno, str(e.errno))
    mode = {"ENXIO": "offline", "EROFS": "read-only"}.get(name)
    if name in kinds and allowed(mode, t0, time.monotonic()):
        bump(name); return
    fail(f"{what}: {name} ({e}) outside a matching maintenance window")
def toggler():
    while not stop.is_set():
        m = random.choice(["none", "read-only", "offline"])
        t = time.monotonic()
        arg = ["clear"] if m == "none" else [m]
        # on the timeline before the command runs: the mount may act on
        # the new mode before the command returns
        with lk: tl.append((t, m))
        subprocess.run([DSFS, "maintenance", "--config", CFG, NAME] + arg, check=True, stdout=subprocess.DEVNULL)
        bump("toggles")
        stop.wait(random.uniform(0.2, 0.5))
def reader(seed):
    rnd = random.Random(seed)
    while not stop.is_set():
        mp, rf = rnd.choice(targets); want = refdata(rf); t0 = time.monotonic()
        try:
            fd = os.open(mp, os.O_RDONLY)
        except OSError as e:
            check_err(e, t0, f"open {mp!r}", ("ENXIO",)); continue
        try:
            for k in range(rnd.randint(1, 6)):
                # a quarter of the opens start at the beginning
                off = 0 if k == 0 and rnd.random() < 0.25 else rnd.randrange(max(1, len(want)))
                ln = rnd.randint(1, 262144)
                t0 = time.monotonic()
                try:
                    got = os.pread(fd, ln, off)
                except OSError as e:
                    fail(f"pread on open fd {mp!r}: {e}"); break  # open files keep working
                if got != want[off:off + ln]:
                    fail(f"WRONG BYTES {mp!r} off {off} len {ln}"); break
                bump("reads"); bump("bytes", len(got))
        finally:
            os.close(fd)
committed, abandoned = [], []
def writer(w):
    rnd = random.Random(w * 7919)
    grp = f"{M}/vm/{9001 + w}"
    k = 0
    while not stop.is_set():
        k += 1
        snap = f"{grp}/2030-01-01T{w:02d}:{k // 60 % 60:02d}:{k % 60:02d}Z"
        t0 = time.monotonic()
        try:
            os.makedirs(snap)
        except FileExistsError:
            pass
        except OSError as e:
            check_err(e, t0, f"mkdir {snap}", ("ENXIO", "EROFS")); time.sleep(0.05); continue
        for j, (nm, size) in enumerate([(f"disk{k}.img", rnd.randint(1, 9) << 20),
                                        (f"conf{k}.conf", rnd.randint(0, 900000)),
                                        (f"data{k}.bin", rnd.randint(1200000, 5000000))]):
            if stop.is_set(): break
            data = bytearray(rnd.randbytes(size))
            if nm.endswith(".img") and size > 2 << 20: data[1 << 20:2 << 20] = bytes(1 << 20)
            data = bytes(data); p = f"{snap}/{nm}"; t0 = time.monotonic()
            try:
                fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except OSError as e:
                check_err(e, t0, f"create {p}", ("ENXIO", "EROFS")); bump("w_refused"); abandoned.append(p); continue
            err = None
            try:
                step = 1 << 18
                offs = list(range(0, size, step))
                if nm.endswith(".img"): rnd.shuffle(offs)
                for o in offs:
                    os.pwrite(fd, data[o:o + step], o) if nm.endswith(".img") else os.write(fd, data[o:o + step])
                if nm.endswith(".img"): os.ftruncate(fd, size)
            except OSError as e:
                err = e
            try:
                os.close(fd)
            except OSError as e:
                err = err or e
            if err:
                check_err(err, t0, f"write {p}", ("ENXIO", "EROFS")); bump("w_refused"); abandoned.append(p)
            else:
                bump("w_ok"); committed.append((p, sha(data)))
def readback(p):
    with open(p, "rb") as f: return sha(f.read())
def guarded(fn, *a):
    # A thread that dies of an exception (a failed `dsfs maintenance`, an
    # unexpected error) is a failure: it used to end only that thread, with
    # a traceback, and the run went on without it and passed.
    def run():
        try:
            fn(*a)
        except BaseException as e:
            fail(f"{fn.__name__}{a}: died: {e!r}")
            stop.set()
    return threading.Thread(target=run)
ths = [guarded(toggler)] + [guarded(reader, i) for i in range(16)] + [guarded(writer, w) for w in range(4)]
for t in ths: t.start()
time.sleep(SECS); stop.set()
for t in ths: t.join()
subprocess.run([DSFS, "maintenance", "--config", CFG, NAME, "clear"], check=True)
time.sleep(LAG)
for p, h in committed:
    try:
        if readback(p) != h: fail(f"WRONG BYTES in written {p}")
    except OSError as e:
        fail(f"committed {p} does not read back: {e}")
for p in abandoned:
    if os.path.exists(p): fail(f"refused archive {p} still present")
time.sleep(1)
st["fd_before"] = fd_before
print("stress: " + json.dumps(st), flush=True)
with open(os.path.join(E["T"], "stress.json"), "w") as f:
    json.dump(st, f)
# Something of each kind happened, or nothing was checked.
for k in ("reads", "toggles", "w_ok"):
    if st[k] == 0: fail(f"no {k} in {SECS} s: nothing of that kind was checked")
for f in fails[:30]: print("FAIL: " + f, file=sys.stderr)
sys.exit(1 if fails else 0)
