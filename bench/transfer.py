#!/usr/bin/env python3
"""Images and files in and out: save, load, export, import and commit, berth vs docker vs tar.

Builds (once, cached in --cache, default /var/cache/berth-bench) a ~550 MB rootfs: a
`debootstrap --variant=minbase bookworm` plus ~350 MB of deterministic generated files under
/opt/bench (four big random files, ~3000 small ones, and a 100 MB `new/` tree), and a tar of it.
Starts a private berth daemon and a private dockerd, imports the tar into both as `big:1`, then
times, N runs each (after one untimed warm-up round, page cache warm for everybody):

  save    `save -o FILE big:1`                     vs  tar -cf of the rootfs
  load    `load -i FILE` (after `rmi big:1`)       vs  tar -xf of the rootfs tar into an empty dir
  export  `export -o FILE C` (C created from big:1) vs tar -cf of the rootfs
  import  `import ROOTFS.tar big:imp` (no image holds the layer)  vs  tar -xf
  commit  `commit C big:c`, C a stopped container that copied 100 MB of new files
                                                   vs  tar -cf of those 100 MB

Output files go to the same filesystem as the data roots; with --loop-ext4, tar's `-c`
baselines read a copy of the rootfs on that file system too (as the engines read their image
there), each after one untimed pass (as the engines' export). Everything (containers, images,
output files) is removed between runs, so each run does the full work; `sync` runs (untimed)
before every timed command so that no run pays for an earlier one's writeback, and the ops that
create many files wait --settle seconds after the last mass deletion (see `Settle`). Each op
runs on every engine in turn; the engines' order alternates between runs. Prints medians,
docker/berth and berth/tar ratios.

Usage: bench/transfer.py [--runs N] [--berth PATH] [--engines berth,docker] [--ops save,...]
  [--loop-ext4 GiB] [--settle SECONDS] [--no-tar] [--profile 'CMD'] [--profile-cli 'CMD']
  [--json FILE]
The numbers in docs/PERFORMANCE.md come from `--runs 5 --loop-ext4 12`: a journaled ext4, since
the ext4 of the VM it was written on has no journal (see `Settle`).
--profile starts CMD (with {pid} the daemon's pid, {op}, {engine}) before each timed op of the
first run and stops it with SIGINT after, e.g. --profile 'strace -c -f -o /tmp/s-{op} -p {pid}'
or 'perf record -g -o /tmp/p-{op}.data -p {pid}'; --profile-cli prefixes the client command.
"""
import argparse, json, os, random, shlex, shutil, signal, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Daemons, check, raise_on_sigterm, repo_berth, need_berth, sh, time_once

OPS = ["save", "load", "export", "import", "commit"]
BASELINE = {"save": "tar -c rootfs", "export": "tar -c rootfs", "load": "tar -x rootfs",
            "import": "tar -x rootfs", "commit": "tar -c new/"}
MiB = 1 << 20


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the rootfs and its tar

def write_random(path, size, rng):
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 * MiB)
            f.write(rng.randbytes(n))
            left -= n


def generate(dest):
    """~355 MB of deterministic files: big/ (160 MB), small/ (~3000 files, ~95 MB) and
    new/ (the files the commit container copies: 2 x 25 MB + 1000 files, ~100 MB)."""
    rng = random.Random(20261128)
    os.makedirs(os.path.join(dest, "big"))
    for i, mb in enumerate([64, 48, 32, 16]):
        write_random(os.path.join(dest, "big", f"blob{i}.bin"), mb * MiB, rng)
    for i in range(3000):
        d = os.path.join(dest, "small", f"d{i % 50:02d}")
        os.makedirs(d, exist_ok=True)
        write_random(os.path.join(d, f"f{i:04d}"), rng.randint(1024, 64 * 1024), rng)
    os.makedirs(os.path.join(dest, "new", "big"))
    for i in range(2):
        write_random(os.path.join(dest, "new", "big", f"blob{i}.bin"), 25 * MiB, rng)
    for i in range(1000):
        d = os.path.join(dest, "new", "small", f"d{i % 20:02d}")
        os.makedirs(d, exist_ok=True)
        write_random(os.path.join(d, f"f{i:04d}"), rng.randint(1024, 100 * 1024), rng)


def prepare(cache, mirror):
    """The cached rootfs and its tar: (rootfs dir, rootfs tar)."""
    os.makedirs(cache, exist_ok=True)
    boot, rootfs, tar = (os.path.join(cache, n) for n in ("debootstrap", "rootfs", "rootfs.tar"))
    if not os.path.isdir(boot):
        if not shutil.which("debootstrap"):
            raise SystemExit("debootstrap is missing: apt-get install -y debootstrap")
        log(f"debootstrap --variant=minbase bookworm {boot} ...")
        shutil.rmtree(boot + ".tmp", ignore_errors=True)
        subprocess.check_call(["debootstrap", "--variant=minbase", "bookworm", boot + ".tmp", mirror],
                              stdout=subprocess.DEVNULL)
        os.rename(boot + ".tmp", boot)
    if not os.path.isdir(rootfs):
        log(f"building {rootfs} ...")
        shutil.rmtree(rootfs + ".tmp", ignore_errors=True)
        check(["cp", "-a", boot, rootfs + ".tmp"])
        generate(os.path.join(rootfs + ".tmp", "opt/bench"))
        os.rename(rootfs + ".tmp", rootfs)
        if os.path.exists(tar):
            os.unlink(tar)
    if not os.path.exists(tar):
        log(f"building {tar} ...")
        check(["tar", "--sort=name", "-C", rootfs, "-cf", tar + ".tmp", "."])
        os.rename(tar + ".tmp", tar)
    return rootfs, tar


# ---------------------------------------------------------------- timing with optional profiling

class Timer:
    def __init__(self, a, results):
        self.a, self.results, self.profiling = a, results, False

    def run(self, key, cmd, engine=None, pid=None, op=None, timed=True):
        """Time one command (after a sync); record it under `key` if `timed`."""
        sh(["sync"])
        prof, profiled = None, False
        if self.profiling and engine and (self.a.profile or self.a.profile_cli):
            fmt = dict(pid=pid, op=op, engine=engine)
            profiled = True  # a profiled time is not a measurement
            if self.a.profile_cli:
                cmd = shlex.split(self.a.profile_cli.format(**fmt)) + cmd
            if self.a.profile:
                prof = subprocess.Popen(shlex.split(self.a.profile.format(**fmt)),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1.0)  # let it attach
        try:
            ms = time_once(cmd)
        finally:
            if prof:
                prof.send_signal(signal.SIGINT)
                prof.wait()
        if timed and not profiled:
            self.results.setdefault(key, []).append(ms)
        return ms


# ---------------------------------------------------------------- the operations

class Settle:
    """The VM disk this was written on is ext4 without a journal, and without a journal ext4
    does not reuse an inode deleted less than 60 s ago (300 s more while its inode table block
    is dirty; `recently_deleted()` in fs/ext4/ialloc.c): every allocation soon after a mass
    deletion scans past the dead inodes, which made a 10k-file extraction up to 3x slower and
    very noisy. On such a disk, a timed op that creates many files waits until the last
    untimed deletion (followed by a sync) is `seconds` old; everybody (berth, docker, tar) gets
    the same treatment. With --loop-ext4 (a journaled ext4) this is not needed."""

    def __init__(self, seconds):
        self.seconds, self.last = seconds, 0.0

    def deleted(self):
        sh(["sync"])
        self.last = time.time()

    def wait(self):
        left = self.last + self.seconds - time.time()
        if left > 0:
            time.sleep(left)


def warm(path):
    """Reads a file (untimed) so that it is in the page cache."""
    with open(path, "rb") as f:
        while f.read(8 << 20):
            pass


def one_round(engines, a, d, rootfs, tar, t, timed, settle, src):
    """One full round of the five operations, phase by phase, on every engine, then tar.
    `engines` is in this round's order."""
    out = d.path("out")
    os.makedirs(out, exist_ok=True)
    ops = set(a.ops)
    wait = settle.wait if timed else (lambda: None)

    def run(e, op, cmd):
        name, cli, pid, net = e
        t.run((name, op), cli + cmd, engine=name, pid=pid, op=op, timed=timed)

    if "export" in ops:
        for e in engines:
            name, cli, _, net = e
            check(cli + ["create", "--name", "bench-export"] + net + ["big:1", "true"])
            f = os.path.join(out, f"{name}-export.tar")
            # Warm the image's files first (untimed, the same read for every engine): this VM
            # pages out page cache idle for a minute (DAMON pageout), and the image was last
            # read by the previous round's load.
            check(cli + ["export", "-o", f, "bench-export"])
            os.unlink(f)
            run(e, "export", ["export", "-o", f, "bench-export"])
            os.unlink(f)
            check(cli + ["rm", "bench-export"])

    for e in engines:
        f = os.path.join(out, f"{e[0]}-save.tar")
        if "save" in ops:
            run(e, "save", ["save", "-o", f, "big:1"])
        else:
            check(e[1] + ["save", "-o", f, "big:1"])
    # Now no image holds the rootfs layer: import and load both do the full work.
    for e in engines:
        check(e[1] + ["rmi", "big:1"])
    settle.deleted()
    if "import" in ops:
        wait()
        for e in engines:
            warm(tar)  # see the export's note: a file idle for a minute is paged out
            run(e, "import", ["import", tar, "big:imp"])
        for e in engines:
            check(e[1] + ["rmi", "big:imp"])
        settle.deleted()
    wait()
    for e in engines:
        f = os.path.join(out, f"{e[0]}-save.tar")
        if "load" in ops:
            run(e, "load", ["load", "-q", "-i", f])
        else:
            check(e[1] + ["load", "-q", "-i", f])
        os.unlink(f)

    if "commit" in ops:
        for e in engines:
            name, cli, _, net = e
            check(cli + ["run", "--name", "bench-commit"] + net +
                  ["big:1", "cp", "-a", "/opt/bench/new", "/written"])
        wait()
        for e in engines:
            run(e, "commit", ["commit", "bench-commit", "big:c"])
        for e in engines:
            check(e[1] + ["rm", "bench-commit"])
            check(e[1] + ["rmi", "big:c"])
        settle.deleted()

    if not a.no_tar:
        f = os.path.join(out, "tar-c.tar")
        # Like the engines' export: one untimed pass first (same reads, same writes), then the
        # timed one, reading the copy of the rootfs on the engines' file system (`src`).
        check(["tar", "-C", src, "-cf", f, "."])
        os.unlink(f)
        t.run(("tar", "tar -c rootfs"), ["tar", "-C", src, "-cf", f, "."], timed=timed)
        os.unlink(f)
        x = os.path.join(out, "x")
        os.mkdir(x)
        wait()
        warm(tar)
        t.run(("tar", "tar -x rootfs"), ["tar", "-C", x, "-xf", tar], timed=timed)
        shutil.rmtree(x)
        settle.deleted()
        t.run(("tar", "tar -c new/"), ["tar", "-C", os.path.join(src, "opt/bench"), "-cf", f, "new"],
              timed=timed)
        os.unlink(f)


class LoopFs:
    """A fresh journaled ext4 on a loop device over a sparse file; removed by close()."""

    def __init__(self, tmpdir, gib):
        import tempfile
        self.base = tempfile.mkdtemp(prefix="bb-loop-", dir=tmpdir)  # short: unix socket paths
        self.img, self.mnt, self.dev = os.path.join(self.base, "fs.img"), os.path.join(self.base, "m"), None
        try:
            os.mkdir(self.mnt)
            with open(self.img, "wb") as f:
                f.truncate(gib << 30)
            check(["mkfs.ext4", "-q", "-F", self.img])
            self.dev = check(["losetup", "--find", "--show", self.img]).stdout.decode().strip()
            check(["mount", self.dev, self.mnt])
        except BaseException:
            self.close()
            raise

    def close(self):
        if os.path.ismount(self.mnt):
            if sh(["umount", self.mnt]).returncode != 0:
                sh(["umount", "-l", self.mnt])
        if self.dev:
            sh(["losetup", "-d", self.dev])
        shutil.rmtree(self.base, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--berth", default=repo_berth() or shutil.which("berth"),
                    help="default: this repository's target/<host triple>/release/berth")
    ap.add_argument("--cache", default="/var/cache/berth-bench")
    ap.add_argument("--mirror", default="http://deb.debian.org/debian")
    ap.add_argument("--tmpdir", default="/var/tmp", help="where the data roots and outputs go")
    ap.add_argument("--engines", default="berth,docker")
    ap.add_argument("--ops", default=",".join(OPS))
    ap.add_argument("--no-tar", action="store_true", help="skip the tar baselines")
    ap.add_argument("--profile", help="command to run around the first timed run's ops")
    ap.add_argument("--profile-cli", help="prefix for the first timed run's client commands")
    ap.add_argument("--settle", type=float, default=None,
                    help="seconds between a mass deletion and a timed op creating files "
                         "(see Settle; default 61 on the host disk, 0 with --loop-ext4)")
    ap.add_argument("--loop-ext4", type=int, metavar="GiB", default=0,
                    help="run everything (data roots, outputs, tar) on a fresh journaled ext4 "
                         "of this size on a loop device (a sparse file in --tmpdir)")
    ap.add_argument("--json", help="write all the times (ms) here")
    a = ap.parse_args()
    a.berth = need_berth(a.berth)
    a.ops = [o for o in a.ops.split(",") if o]
    a.berth = os.path.abspath(a.berth)
    raise_on_sigterm()

    if a.settle is None:
        a.settle = 0 if a.loop_ext4 else 61

    rootfs, tar = prepare(a.cache, a.mirror)
    size = os.path.getsize(tar)
    results = {}
    t = Timer(a, results)
    loop = LoopFs(a.tmpdir, a.loop_ext4) if a.loop_ext4 else None
    try:
        d = Daemons(prefix="bt-" if loop else "berth-bench-transfer-", dir=loop.mnt if loop else a.tmpdir)
    except BaseException:
        if loop:
            loop.close()
        raise
    try:
        engines = []
        for name in a.engines.split(","):
            if name == "berth":
                p, cli = d.start_berth(a.berth)
                net = []
            elif name == "docker":
                p, cli = d.start_docker()
                net = ["--network", "none"]
            else:
                raise SystemExit(f"unknown engine {name}")
            if not cli:
                log(f"{name}: the daemon did not start, skipped")
                continue
            log(f"{name}: importing {tar} ({size / MiB:.0f} MiB) as big:1")
            check(cli + ["import", tar, "big:1"])
            engines.append((name, cli, p.pid, net))
        # tar's `-c` baselines read a copy of the rootfs on the same file system as the engines'
        # data roots (the engines read their image from there), not the cache's disk.
        src = rootfs
        if loop and not a.no_tar:
            src = os.path.join(loop.mnt, "rootfs")
            check(["cp", "-a", rootfs, src])
        settle = Settle(a.settle)
        for r in range(a.runs + 1):
            timed = r > 0
            t.profiling = r == 1
            order = engines if r % 2 == 0 else engines[::-1]
            log(f"run {r}{'' if timed else ' (warm-up)'}: {', '.join(e[0] for e in order)}")
            one_round(order, a, d, rootfs, tar, t, timed, settle, src)
    finally:
        d.close()
        if loop:
            loop.close()

    med = {k: statistics.median(v) for k, v in results.items()}
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"image_bytes": size, "runs": a.runs,
                       "times_ms": {" ".join(k): v for k, v in results.items()}}, f, indent=1)
    print(f"image: {size / MiB:.0f} MiB ({tar}), {a.runs} runs, medians in seconds")
    print(f"{'op':<8} {'berth':>8} {'docker':>8} {'docker/berth':>13} {'tar':>8} {'berth/tar':>10}  baseline")
    for op in a.ops:
        b, dk = med.get(("berth", op)), med.get(("docker", op))
        tr = med.get(("tar", BASELINE[op]))
        col = lambda v: f"{v / 1000:>8.2f}" if v is not None else f"{'-':>8}"
        ratio = lambda x, y: f"{x / y:.2f}x" if x is not None and y is not None else "-"
        print(f"{op:<8} {col(b)} {col(dk)} {ratio(dk, b):>13} {col(tr)} {ratio(b, tr):>10}  {BASELINE[op]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
