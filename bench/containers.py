#!/usr/bin/env python3
"""Many containers, berth vs Docker 20.10 (issue 6): host memory per running container (shim
included) and the time to start and to stop them all.

For each engine (its daemon in a private network namespace, on its default bridge, as a
user would run it): --containers `run -d busybox sleep 1000` issued by --parallel clients
at once (wall time to have them all running), a --settle pause, then the drop in the host's
MemAvailable divided by the number of containers (what each costs the host: shim or
containerd-shim, the container's process, its cgroups, mounts, namespaces and network
endpoint), and the RSS/PSS of the engine's host-side processes (those in the daemon's
network namespace: daemon, containerd, shims). Then `stop -t 0` of them all in one command
(wall time), and `rm`. The engines run one after the other; MemAvailable is read with
nothing else of the bench running.

Usage: bench/containers.py [--containers N] [--parallel N] [--berth PATH] [--docker CLI]
                          [--engines berth,docker] [--network none]
"""
import argparse, os, shutil, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Daemons, check, raise_on_sigterm, repo_berth, need_berth, sh
from bench import busybox_tar
from net import host_side, netns_of, summary


def mem_available_kib():
    for line in open("/proc/meminfo"):
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    raise RuntimeError("no MemAvailable")


def settle_mem(seconds):
    """MemAvailable after a pause (the median of 5 reads over a second)."""
    time.sleep(seconds)
    reads = []
    for _ in range(5):
        reads.append(mem_available_kib())
        time.sleep(0.2)
    return sorted(reads)[2]


def run_fleet(name, daemon, cli, n, parallel, settle, run_args=()):
    ns = netns_of(daemon)
    names = [f"many-{i}" for i in range(n)]
    before_mem = settle_mem(settle)
    before = summary(host_side(ns), daemon)
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=parallel) as ex:
        results = list(ex.map(lambda c: subprocess.run(
            cli + ["run", "-d", "--name", c, *run_args, "busybox", "sleep", "1000"],
            capture_output=True, text=True), names))
    start_s = time.monotonic() - t0
    bad = [r for r in results if r.returncode != 0]
    if bad:
        raise RuntimeError(f"{name}: {len(bad)} starts failed: {bad[0].stderr}")
    running = sh(cli + ["ps", "-q"]).stdout.split()
    if len(running) != n:
        raise RuntimeError(f"{name}: {len(running)} running, not {n}")
    after_mem = settle_mem(settle)
    after = summary(host_side(ns), daemon)
    t0 = time.monotonic()
    check(cli + ["stop", "-t", "0"] + names)
    stop_s = time.monotonic() - t0
    for i in range(0, n, 50):
        check(cli + ["rm"] + names[i:i + 50])
    return {
        "start": start_s, "stop": stop_s,
        "per_mem": (before_mem - after_mem) / n / 1024,
        "procs": after["n"] - before["n"],
        "rss": (after["rss"] - before["rss"]) / n,
        "pss": (after["pss"] - before["pss"]) / n,
        "daemon": after["daemon"] - before["daemon"],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--containers", type=int, default=200)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--settle", type=float, default=3.0)
    ap.add_argument("--engines", default="berth,docker", help="which engines, in order")
    ap.add_argument("--network", default="", help="run's --network (default: the bridge)")
    ap.add_argument("--berth", default=shutil.which("berth") or repo_berth())
    ap.add_argument("--docker", default="/usr/bin/docker" if os.path.exists("/usr/bin/docker")
                    else "docker")
    a = ap.parse_args()
    a.berth = need_berth(a.berth)
    raise_on_sigterm()
    print("load before:", open("/proc/loadavg").read().strip())
    rows = []
    run_args = ["--network", a.network] if a.network else []
    for engine in a.engines.split(","):
        d = Daemons(prefix="berth-bench-many-")
        try:
            tar = busybox_tar(d.tmp)
            if engine == "berth":
                p, cli = d.start_berth(a.berth, netns=True)
            else:
                p, cli = d.start_docker(a.docker, bridge=True, netns=True)
                if not cli:
                    print("no docker: berth only")
                    break
            if not cli:
                raise RuntimeError(f"{engine} did not answer")
            check(cli + ["import", tar, "busybox"])
            # Warm up: one container, and the image's pages.
            check(cli + ["run", "--rm", "busybox", "true"])
            r = run_fleet(engine, p.pid, cli, a.containers, a.parallel, a.settle, run_args)
            rows.append((engine, r))
            print(f"{engine}: started {a.containers} in {r['start']:.2f} s, stopped in "
                  f"{r['stop']:.2f} s, {r['per_mem']:.2f} MiB MemAvailable per container",
                  flush=True)
        finally:
            d.close()
    print(f"\n{a.containers} containers `run -d busybox sleep 1000`, {a.parallel} clients at once")
    print(f"{'engine':<8} {'start all s':>11} {'stop all s':>10} {'MiB/container':>14} "
          f"{'+procs':>7} {'RSS MiB/c':>10} {'PSS MiB/c':>10} {'+daemon MiB':>12}")
    for engine, r in rows:
        print(f"{engine:<8} {r['start']:>11.2f} {r['stop']:>10.2f} {r['per_mem']:>14.2f} "
              f"{r['procs']:>7} {r['rss']:>10.2f} {r['pss']:>10.2f} {r['daemon']:>12.1f}")
    if len(rows) == 2:
        b, dk = rows[0][1], rows[1][1]
        print(f"docker/berth: start {dk['start'] / b['start']:.1f}x, stop {dk['stop'] / b['stop']:.1f}x, "
              f"memory {dk['per_mem'] / max(b['per_mem'], 0.001):.1f}x")
    print("\nload after:", open("/proc/loadavg").read().strip())


if __name__ == "__main__":
    sys.exit(main())
