#!/usr/bin/env python3
"""Builds: `berth build` vs docker 20.10's legacy builder (and BuildKit, where it works).

Starts a private berth daemon and a private dockerd 20.10 (talked to with the 20.10 CLI,
/usr/bin/docker by default), imports the same busybox rootfs into both as `busybox`, and
times the whole `build` command (wall clock of the CLI), N runs each after one untimed
warm-up round, engines in alternating order, `sync` (untimed) before every timed build:

  cached    the 10-step Dockerfile below (FROM busybox + 10 instructions: ENV, ARG, LABEL,
            WORKDIR, 2 COPY, 3 RUN, CMD) rebuilt with every step cached (an untimed identical
            build right before makes sure of that)
  cached-notag  the same without `-t` (berth's CLI compiles docker's reference regex for -t)
  cold      the same with --no-cache
  run10     cold (--no-cache) FROM busybox + 10 x `RUN true`
  run0      cold (--no-cache) FROM busybox alone (same context)
            -> per RUN step = (run10 - run0) / 10; `true` itself takes ~0 ms
  run-rm    `run --rm busybox true`, for reference (what one container costs outside a build)
  copy200   cold (--no-cache) `FROM busybox` + `COPY . /ctx` of a 200 MiB context
  send200   `FROM busybox` alone with the same 200 MiB context: sending the context
            (not with BuildKit: it only asks for the context when a step reads it)

The 200 MiB context (4 x 25 MiB, 50 x 1 MiB and 1,600 x 32 KiB of deterministic random data,
1,654 files) is made once and cached in --cache (default /var/cache/berth-bench). Images made
by the cold builds are removed (untimed) after each build. BuildKit's local-context cache is
pruned (`builder prune --filter type=source.local`, untimed) before each of its 200 MiB builds,
so that it sends the whole context like the others (it otherwise sends only what changed).

By default the data roots live on a fresh journaled ext4 on a loop device (--loop-ext4 8;
0 = the host disk; see docs/PERFORMANCE.md, "Why a loop device"). The berth daemon logs its
per-RUN-step timings (`build RUN step create=… run=… commit=…`, debug level of
berth_daemon::build); their medians are printed too.

Usage: bench/build.py [--runs N] [--berth PATH] [--docker-cli PATH] [--no-buildkit]
  [--cases cached,cold,...] [--loop-ext4 GiB] [--keep-logs DIR] [--json FILE]
"""
import argparse, json, os, random, re, shutil, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Daemons, check, raise_on_sigterm, repo_berth, need_berth, sh, time_once
from bench import busybox_tar
from transfer import LoopFs, write_random

MiB = 1 << 20
CASES = ["cached", "cached-notag", "cold", "run10", "run0", "run-rm", "copy200", "send200"]
# Not measured with BuildKit: run-rm is the same daemon and command as docker's, and BuildKit
# only fetches the context when a step reads it, so send200 (FROM alone) sends nothing.
BUILDKIT_SKIPS = {"run-rm", "send200"}

DOCKERFILE_10 = """\
FROM busybox
ENV APP=bench MODE=release
ARG VERSION=1.0
LABEL org.example.bench=build org.example.version=$VERSION
WORKDIR /app
COPY a.txt b.txt ./
COPY conf/ /etc/bench/
RUN echo "$APP $VERSION $MODE" > /app/version
RUN mkdir -p /data && cp /app/a.txt /data/ && ls /etc/bench > /data/conf.list
RUN true
CMD ["cat", "/app/version"]
"""


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def uptime():
    return sh(["uptime"]).stdout.decode().strip()


def small_context(dest):
    """The contexts of the cached/cold/run10/run0 cases (a few KiB)."""
    rng = random.Random(4)
    os.makedirs(os.path.join(dest, "conf"))
    for name, size in [("a.txt", 3000), ("b.txt", 12000), ("conf/x.conf", 500), ("conf/y.conf", 800)]:
        with open(os.path.join(dest, name), "w") as f:
            f.write("".join(rng.choice("abcdefghij \n") for _ in range(size)))
    with open(os.path.join(dest, "Dockerfile"), "w") as f:
        f.write(DOCKERFILE_10)
    with open(os.path.join(dest, "Dockerfile.run10"), "w") as f:
        f.write("FROM busybox\n" + "RUN true\n" * 10)
    with open(os.path.join(dest, "Dockerfile.run0"), "w") as f:
        f.write("FROM busybox\n")


def big_context(cache):
    """The cached 200 MiB context: big/ 4 x 25 MiB, mid/ 50 x 1 MiB, small/ 1,600 x 32 KiB,
    plus the two Dockerfiles of the copy200 and send200 cases."""
    ctx = os.path.join(cache, "build-context-200m")
    if not os.path.isdir(ctx):
        log(f"generating {ctx} ...")
        tmp = ctx + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        rng = random.Random(20261128 + 4)
        os.makedirs(os.path.join(tmp, "big"))
        for i in range(4):
            write_random(os.path.join(tmp, "big", f"blob{i}.bin"), 25 * MiB, rng)
        os.makedirs(os.path.join(tmp, "mid"))
        for i in range(50):
            write_random(os.path.join(tmp, "mid", f"m{i:02d}.bin"), MiB, rng)
        for i in range(1600):
            d = os.path.join(tmp, "small", f"d{i % 40:02d}")
            os.makedirs(d, exist_ok=True)
            write_random(os.path.join(d, f"f{i:04d}"), 32 * 1024, rng)
        with open(os.path.join(tmp, "Dockerfile.copy"), "w") as f:
            f.write("FROM busybox\nCOPY . /ctx\n")
        with open(os.path.join(tmp, "Dockerfile.from"), "w") as f:
            f.write("FROM busybox\n")
        os.rename(tmp, ctx)
    return ctx


def dir_bytes(path):
    n = files = 0
    for dp, _, fs in os.walk(path):
        for f in fs:
            n += os.path.getsize(os.path.join(dp, f))
            files += 1
    return n, files


class Engine:
    def __init__(self, name, cli, env=None, net=()):
        self.name, self.cli, self.env, self.net = name, cli, env, list(net)

    def run(self, args, **kw):
        return sh(self.cli + args, env=self.env, **kw)

    def check(self, args):
        r = self.run(args)
        if r.returncode != 0:
            raise RuntimeError(f"{self.name}: {' '.join(args)} failed ({r.returncode}): "
                               f"{(r.stderr or r.stdout).decode().strip()[-2000:]}")
        return r

    def build_cmd(self, ctx, dockerfile, tag, no_cache):
        return self.cli + ["build"] + (["-t", tag] if tag else []) + ["-f", os.path.join(ctx, dockerfile)] + \
            (["--no-cache"] if no_cache else []) + self.net + [ctx]

    def time(self, cmd):
        sh(["sync"])
        return time_once(cmd, env=self.env)


def run_case(case, e, ctxs, timed, results):
    """One build (or run) of `case` on engine `e`; the time goes into results if `timed`."""
    small, big = ctxs
    cleanup = []
    if case == "cached":
        cmd = e.build_cmd(small, "Dockerfile", "bench-cached", False)
    elif case == "cached-notag":
        cmd = e.build_cmd(small, "Dockerfile", None, False)
    elif case == "cold":
        cmd = e.build_cmd(small, "Dockerfile", "bench-cold", True)
        cleanup = ["bench-cold"]
    elif case in ("run10", "run0"):
        cmd = e.build_cmd(small, f"Dockerfile.{case}", f"bench-{case}", True)
        cleanup = [f"bench-{case}"]
    elif case == "run-rm":
        cmd = e.cli + ["run", "--rm"] + e.net + ["busybox", "true"]
    elif case in ("copy200", "send200"):
        if e.name == "buildkit":
            e.check(["builder", "prune", "-f", "--filter", "type=source.local"])
        df = "Dockerfile.copy" if case == "copy200" else "Dockerfile.from"
        cmd = e.build_cmd(big, df, f"bench-{case}", True)
        cleanup = [f"bench-{case}"]
    else:
        raise SystemExit(f"unknown case {case}")
    if case in ("cached", "cached-notag"):
        # Prime (untimed): every step must be cached. Needed for berth at 895bc0e: a
        # --no-cache build of the same Dockerfile re-points its cache at the new images, and
        # once those are removed the next build misses every step.
        sh(cmd, env=e.env)
    try:
        ms = e.time(cmd)
    except RuntimeError as err:
        raise RuntimeError(f"{e.name} {case}: {err}") from None
    if timed:
        results.setdefault((e.name, case), []).append(ms)
    for tag in cleanup:
        e.check(["rmi", tag])
    return ms


DUR = re.compile(r"(create|run|commit|teardown)=([0-9.]+)(ns|µs|us|ms|s)\b")
UNIT = {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1000.0}


def step_timings(logfile, start_offset):
    """Medians (ms) of the berth daemon's `build RUN step` debug lines after start_offset."""
    vals = {"create": [], "run": [], "commit": [], "teardown": []}
    with open(logfile, "rb") as f:
        f.seek(start_offset)
        text = f.read().decode(errors="replace")
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    n = 0
    for line in text.splitlines():
        if "build RUN step" not in line:
            continue
        n += 1
        for k, v, u in DUR.findall(line):
            vals[k].append(float(v) * UNIT[u])
    return n, {k: statistics.median(v) for k, v in vals.items() if v}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--berth", default=repo_berth() or shutil.which("berth"),
                    help="default: this repository's target/<host triple>/release/berth")
    ap.add_argument("--docker-cli", default="/usr/bin/docker",
                    help="the docker CLI for the private dockerd (its version should match)")
    ap.add_argument("--no-buildkit", action="store_true", help="skip the BuildKit column")
    ap.add_argument("--engines", default="berth,docker", help="berth,docker (buildkit follows docker)")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--cache", default="/var/cache/berth-bench")
    ap.add_argument("--tmpdir", default="/var/tmp")
    ap.add_argument("--loop-ext4", type=int, metavar="GiB", default=8,
                    help="data roots on a fresh journaled ext4 of this size on a loop device "
                         "(a sparse file in --tmpdir); 0: on --tmpdir directly")
    ap.add_argument("--keep-logs", metavar="DIR", help="copy the daemons' logs here at the end")
    ap.add_argument("--json", help="write all the times (ms) here")
    a = ap.parse_args()
    a.berth = need_berth(a.berth)
    a.cases = [c for c in a.cases.split(",") if c]
    for c in a.cases:
        if c not in CASES:
            raise SystemExit(f"unknown case {c}; cases: {','.join(CASES)}")
    a.berth = os.path.abspath(a.berth)
    raise_on_sigterm()

    load_before = uptime()
    log(f"load before: {load_before}")
    big = big_context(a.cache) if {"copy200", "send200"} & set(a.cases) else None
    results, notes, loads = {}, [], []
    loop = LoopFs(a.tmpdir, a.loop_ext4) if a.loop_ext4 else None
    try:
        d = Daemons(prefix="bb-" if loop else "berth-bench-build-", dir=loop.mnt if loop else a.tmpdir)
    except BaseException:
        if loop:
            loop.close()
        raise
    berth_log_offset = 0
    try:
        small = d.path("ctx-small")
        small_context(small)
        tar = busybox_tar(d.tmp)
        engines = []
        for name in a.engines.split(","):
            if name == "berth":
                _, cli = d.start_berth(a.berth, extra=["-l", "info,berth_daemon::build=debug"])
                if not cli:
                    log("berth: the daemon did not start, skipped")
                    continue
                # As docker's steps below: a RUN step's container with no network.
                e = Engine("berth", cli, None, ["--network", "none"])
                e.check(["import", tar, "busybox"])
                engines.append(e)
            elif name == "docker":
                _, cli = d.start_docker(a.docker_cli)
                if not cli:
                    log("docker: the daemon did not start, skipped")
                    continue
                env0 = dict(os.environ, DOCKER_BUILDKIT="0")
                e = Engine("docker", cli, env0, ["--network", "none"])
                e.check(["import", tar, "busybox"])
                engines.append(e)
                if not a.no_buildkit:
                    bk = Engine("buildkit", cli, dict(os.environ, DOCKER_BUILDKIT="1"), ["--network", "none"])
                    # Probe: a tiny build with RUN steps, offline (it needs --network none here:
                    # the daemon has no bridge).
                    r = sh(bk.build_cmd(small, "Dockerfile.run10", "bench-probe", True), env=bk.env)
                    if r.returncode == 0:
                        bk.run(["rmi", "bench-probe"])
                        engines.append(bk)
                    else:
                        msg = (r.stderr or r.stdout).decode().strip().splitlines()[-3:]
                        notes.append("BuildKit skipped: " + " | ".join(msg))
                        log(notes[-1])
            else:
                raise SystemExit(f"unknown engine {name}")
        if not engines:
            raise SystemExit("no engine started")
        ctxs = (small, big)
        for r in range(a.runs + 1):
            timed = r > 0
            if r == 1 and any(e.name == "berth" for e in engines):
                berth_log_offset = os.path.getsize(d.path("berth.log"))
            order = engines if r % 2 == 0 else engines[::-1]
            loads.append(float(open("/proc/loadavg").read().split()[0]))
            log(f"run {r}{'' if timed else ' (warm-up)'}: {', '.join(e.name for e in order)} "
                f"(load {loads[-1]:.2f})")
            for case in a.cases:
                for e in order:
                    if e.name == "buildkit" and case in BUILDKIT_SKIPS:
                        continue
                    ms = run_case(case, e, ctxs, timed, results)
                    log(f"  {case:<8} {e.name:<8} {ms:9.1f} ms")
        steps = None
        if any(e.name == "berth" for e in engines):
            steps = step_timings(d.path("berth.log"), berth_log_offset)
        if a.keep_logs:
            os.makedirs(a.keep_logs, exist_ok=True)
            for f in ("berth.log", "docker.log"):
                if os.path.exists(d.path(f)):
                    shutil.copy(d.path(f), os.path.join(a.keep_logs, f))
    finally:
        d.close()
        if loop:
            loop.close()
    load_after = uptime()

    # ------------------------------------------------------------ report
    names = [n for n in ("berth", "docker", "buildkit") if any(k[0] == n for k in results)]
    med = {k: statistics.median(v) for k, v in results.items()}
    label = {"cached": "10-step build, all cached", "cached-notag": "  the same without -t",
             "cold": "10-step build, --no-cache",
             "run10": "FROM + 10x RUN true, cold", "run0": "FROM only, cold",
             "run-rm": "run --rm busybox true", "copy200": "COPY 200 MiB context, cold",
             "send200": "FROM only + 200 MiB context"}
    print(f"berth build benchmark: {a.runs} runs, medians in ms; ratio = engine / berth")
    print(f"load before: {load_before}")
    print(f"load after:  {load_after}")
    print("1-min load at the start of each round: " + " ".join(f"{x:.2f}" for x in loads))
    if big:
        size, files = dir_bytes(big)
        print(f"200 MiB context: {size / MiB:.0f} MiB in {files} files ({big})")
    hdr = f"{'case':<30}" + "".join(f"{n:>10}" for n in names) + \
        "".join(f"{n + '/berth':>16}" for n in names if n != "berth")
    print(hdr)
    rows = list(a.cases)
    for c in rows:
        line = f"{label[c]:<30}"
        for n in names:
            v = med.get((n, c))
            line += f"{v:>10.1f}" if v is not None else f"{'-':>10}"
        for n in names:
            if n == "berth":
                continue
            v, b = med.get((n, c)), med.get(("berth", c))
            line += f"{v / b:>15.1f}x" if v is not None and b else f"{'-':>16}"
        print(line)
    per_step = {}
    if "run10" in a.cases and "run0" in a.cases:
        for n in names:
            if (n, "run10") in med and (n, "run0") in med:
                per_step[n] = (med[(n, "run10")] - med[(n, "run0")]) / 10
        line = f"{'per RUN step (run10-run0)/10':<30}" + "".join(
            f"{per_step[n]:>10.1f}" if n in per_step else f"{'-':>10}" for n in names)
        for n in names:
            if n != "berth":
                line += f"{per_step[n] / per_step['berth']:>15.1f}x" \
                    if n in per_step and per_step.get("berth") else f"{'-':>16}"
        print(line)
        print("per RUN step over its command: `true` runs in ~0 ms, so the line above is the "
              "overhead (goal for berth: < 15 ms)")
    if steps:
        n, m = steps
        print(f"berth daemon, {n} timed RUN steps (debug log), medians: " +
              ", ".join(f"{k} {v:.1f} ms" for k, v in m.items()))
    for note in notes:
        print(note)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"runs": a.runs, "load_before": load_before, "load_after": load_after,
                       "round_loads": loads,
                       "times_ms": {" ".join(k): v for k, v in results.items()},
                       "per_step_ms": per_step, "berth_steps": steps, "notes": notes}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
