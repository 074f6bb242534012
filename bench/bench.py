#!/usr/bin/env python3
"""Side-by-side benchmark: berth vs docker vs podman (whichever are installed).

Measures `run --rm busybox true` (the goal's command: each engine's default network, a bridge
and a veth per container), the same with `--network none` (no network device but the
loopback), and `ps`; prints medians and ratios, and berth's idle daemon memory. Each engine
gets its own temporary data root and a busybox image made from Debian's busybox-static; the
berth and docker daemons run in private network namespaces, each with its default bridge.
Usage: bench/bench.py [--runs N] [--berth PATH]
"""
import argparse, os, shutil, subprocess, sys, time

from common import Daemons, raise_on_sigterm, repo_berth, need_berth, rss_kib, sh, timed, wait_sock

def busybox_tar(tmp):
    root = os.path.join(tmp, "rootfs")
    for d in ["bin", "etc", "tmp", "proc", "sys", "dev"]:
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy("/bin/busybox", os.path.join(root, "bin/busybox"))
    for a in sh(["/bin/busybox", "--list"]).stdout.decode().split():
        if a != "busybox":
            os.symlink("busybox", os.path.join(root, "bin", a))
    with open(os.path.join(root, "etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n")
    tar = os.path.join(tmp, "busybox.tar")
    subprocess.check_call(["tar", "-C", root, "-cf", tar, "."])
    return tar

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--berth", default=shutil.which("berth") or repo_berth())
    a = ap.parse_args()
    a.berth = need_berth(a.berth)
    raise_on_sigterm()
    d = Daemons()
    engines, results = [], {}
    try:
        tar = busybox_tar(d.tmp)
        # berth
        p, bcli = d.start_berth(a.berth)
        if bcli:
            sh(bcli + ["import", tar, "busybox"])
            engines.append(("berth", bcli))
            time.sleep(1)
            results["berth idle RSS (MiB)"] = rss_kib(p.pid) / 1024
        # docker
        # With its default bridge (docker0 and its iptables rules in a private namespace).
        _, dcli = d.start_docker(bridge=True, netns=True)
        if dcli:
            sh(dcli + ["import", tar, "busybox"])
            engines.append(("docker", dcli))
        # podman
        if shutil.which("podman"):
            pcli = ["podman", "--root", d.path("podman"), "--runroot", d.run_path("podman-run")]
            if sh(pcli + ["import", tar, "busybox"]).returncode == 0:
                engines.append(("podman", pcli))
        none = ["--network", "none"]
        # The engines' start-ups and imports leave work behind (dirty pages, dockerd's and
        # containerd's own start-up tasks): let it finish before the first engine is timed.
        sh(["sync"])
        time.sleep(3)
        table = []
        for i, (name, cli) in enumerate(engines):
            if i > 0:
                # The previous engine's writes out of the way too.
                sh(["sync"])
                time.sleep(3)
            # Warm-up, then the two forms one after the other, then ps. Podman runs in the
            # host's network namespace: its default network would make a bridge and firewall
            # rules there, so only its `--network none` form is measured.
            sh(cli + ["run", "--rm"] + none + ["busybox", "true"])
            if name == "podman":
                run = float("nan")
            else:
                sh(cli + ["run", "--rm", "busybox", "true"])
                run = timed(cli + ["run", "--rm", "busybox", "true"], a.runs)
            run_none = timed(cli + ["run", "--rm"] + none + ["busybox", "true"], a.runs)
            ps = timed(cli + ["ps"], a.runs)
            table.append((name, run, run_none, ps))
        base = {n: (r, rn, p) for n, r, rn, p in table}
        print(f"{'engine':<8} {'run --rm true':>14} {'--network none':>15} {'ps':>8}"
              f" {'run vs berth':>13} {'none vs berth':>14} {'ps vs berth':>12}   (ms)")
        for name, run, run_none, ps in table:
            br, brn, bp = base.get("berth", (run, run_none, ps))
            print(f"{name:<8} {run:>14.1f} {run_none:>15.1f} {ps:>8.1f}"
                  f" {run / br:>12.1f}x {run_none / brn:>13.1f}x {ps / bp:>11.1f}x")
        for k, v in results.items():
            print(f"{k}: {v:.1f}")
    finally:
        d.close()

if __name__ == "__main__":
    sys.exit(main())
