#!/usr/bin/env python3
"""Networking, berth vs Docker 20.10: what the default bridge adds to a start, and what
published ports cost on the host.

Both daemons run in their own private network namespace (common.NETNS): berth creates berth0
and its `table ip berth` nftables rules there, dockerd its docker0 and iptables rules (it runs
with its default bridge and iptables here, and its default userland proxy), so nothing touches
the host's interfaces or rules. The namespaces go away with the daemons.

(1) `run --rm busybox true`, median of --runs runs, on the default bridge and with
    `--network none`, for each engine (runs interleaved between the four cases, after one
    warm-up each). The bridge's cost is the difference of the two medians.
(2) --containers containers (default 50), each `run -d -p H1:80 -p H2:81 busybox sleep 1000`,
    then removed. Before and after (after a --settle second pause): the host-side processes of
    the engine, i.e. every process in the daemon's network namespace (daemon, containerd,
    shims, docker-proxy; the containers have namespaces of their own and are not counted), their
    number, the sums of their RSS and of their PSS, and the daemon's own RSS (+daemon, MiB) (smaps_rollup; RSS counts shared pages
    once per process, PSS splits them). The same is done with the same containers without -p,
    so the per-port cost is (with ports) - (without ports).

Usage: bench/net.py [--runs N] [--containers N] [--berth PATH] [--docker CLI]
"""
import argparse, os, shutil, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Daemons, check, raise_on_sigterm, repo_berth, need_berth, sh, time_once
from bench import busybox_tar


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def netns_of(pid):
    return os.readlink(f"/proc/{pid}/ns/net")


def host_side(ns):
    """[(pid, comm, rss KiB, pss KiB)] of the processes in network namespace `ns`."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{d}/ns/net") != ns:
                continue
            comm = open(f"/proc/{d}/comm").read().strip()
            rss = pss = 0
            with open(f"/proc/{d}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss = int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss = int(line.split()[1])
            out.append((int(d), comm, rss, pss))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass
    return out


def summary(procs, daemon):
    comms = {}
    for _, c, _, _ in procs:
        comms[c] = comms.get(c, 0) + 1
    return {"n": len(procs), "rss": sum(p[2] for p in procs) / 1024,
            "pss": sum(p[3] for p in procs) / 1024, "comms": comms,
            "daemon": sum(p[2] for p in procs if p[0] == daemon) / 1024}


def fleet(cli, daemon, n, ports, base, settle):
    """Start n containers (with 2 published ports each if `ports`), measure, remove them.
    Returns (before, after) summaries."""
    ns = netns_of(daemon)
    before = summary(host_side(ns), daemon)
    names = []
    try:
        for i in range(n):
            name = f"netbench-{i}"
            p = ["-p", f"{base + i}:80", "-p", f"{base + 1000 + i}:81"] if ports else []
            check(cli + ["run", "-d", "--name", name] + p + ["busybox", "sleep", "1000"])
            names.append(name)
        time.sleep(settle)
        after = summary(host_side(ns), daemon)
    finally:
        for i in range(0, len(names), 25):
            sh(cli + ["rm", "-f"] + names[i:i + 25])
    if sh(cli + ["ps", "-aq"]).stdout.strip():
        raise RuntimeError("containers left after rm -f")
    return before, after


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--containers", type=int, default=50)
    ap.add_argument("--settle", type=float, default=3.0)
    ap.add_argument("--berth", default=shutil.which("berth") or repo_berth())
    ap.add_argument("--docker", default="/usr/bin/docker" if os.path.exists("/usr/bin/docker")
                    else "docker")
    a = ap.parse_args()
    a.berth = need_berth(a.berth)
    raise_on_sigterm()
    print("load before:", open("/proc/loadavg").read().strip())
    d = Daemons(prefix="berth-bench-net-")
    try:
        tar = busybox_tar(d.tmp)
        engines = []
        bp, bcli = d.start_berth(a.berth, netns=True)
        if not bcli:
            raise RuntimeError("berth daemon did not answer; see " + d.path("berth.log"))
        check(bcli + ["import", tar, "busybox"])
        engines.append(("berth", bp, bcli))
        dp, dcli = d.start_docker(a.docker, bridge=True, netns=True)
        if dcli:
            check(dcli + ["import", tar, "busybox"])
            engines.append(("docker", dp, dcli))
        else:
            log("no docker: berth only")
        for name, p, _ in engines:
            assert netns_of(p.pid) != netns_of(os.getpid()), f"{name} is in the host's netns"

        # (1) run --rm true, bridge vs none, interleaved.
        cases = []
        for name, _, cli in engines:
            for net in ["bridge", "none"]:
                cmd = cli + ["run", "--rm"] + (["--network", "none"] if net == "none" else []) \
                    + ["busybox", "true"]
                time_once(cmd)  # warm up
                cases.append((name, net, cmd, []))
        for _ in range(a.runs):
            for _, _, cmd, ts in cases:
                ts.append(time_once(cmd))
        med = {(n, net): statistics.median(ts) for n, net, _, ts in cases}
        print(f"\n(1) run --rm busybox true, median of {a.runs} (ms)")
        print(f"{'engine':<8} {'bridge':>8} {'none':>8} {'bridge adds':>12} {'min bridge':>11} {'min none':>9}")
        mins = {(n, net): min(ts) for n, net, _, ts in cases}
        for name, _, _ in engines:
            b, nn = med[(name, "bridge")], med[(name, "none")]
            print(f"{name:<8} {b:>8.1f} {nn:>8.1f} {b - nn:>12.1f} {mins[(name, 'bridge')]:>11.1f}"
                  f" {mins[(name, 'none')]:>9.1f}")
        if "docker" in [e[0] for e in engines]:
            print(f"docker/berth on the bridge: {med[('docker', 'bridge')] / med[('berth', 'bridge')]:.1f}x")

        # (2) n containers with and without 2 published ports each.
        print(f"\n(2) {a.containers} containers `run -d busybox sleep 1000`, host-side processes"
              " (all processes in the daemon's network namespace)")
        print(f"{'engine':<8} {'ports':>5} {'procs':>6} {'+procs':>7} {'+RSS MiB':>9} {'+PSS MiB':>9}"
              f" {'+daemon':>8}  processes after")
        res = {}
        for name, p, cli in engines:
            for ports in [False, True]:
                before, after = fleet(cli, p.pid, a.containers, ports, 20000, a.settle)
                res[(name, ports)] = (after["n"] - before["n"], after["rss"] - before["rss"],
                                      after["pss"] - before["pss"],
                                      after["daemon"] - before["daemon"])
                comms = ", ".join(f"{c} x{k}" for c, k in sorted(after["comms"].items()))
                print(f"{name:<8} {2 * a.containers if ports else 0:>5} {after['n']:>6} "
                      f"{res[(name, ports)][0]:>7} {res[(name, ports)][1]:>9.1f} "
                      f"{res[(name, ports)][2]:>9.1f} {res[(name, ports)][3]:>8.1f}  {comms}", flush=True)
        print(f"\nper published port ((with ports) - (without)) / {2 * a.containers} ports:")
        for name, _, _ in engines:
            w, wo = res[(name, True)], res[(name, False)]
            np_ = 2 * a.containers
            print(f"{name:<8} {(w[0] - wo[0]) / np_:+.2f} processes, {(w[1] - wo[1]) * 1024 / np_:+.0f} KiB RSS,"
                  f" {(w[2] - wo[2]) * 1024 / np_:+.0f} KiB PSS")
        print("\nload after:", open("/proc/loadavg").read().strip())
    finally:
        d.close()


if __name__ == "__main__":
    sys.exit(main())
