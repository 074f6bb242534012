#!/usr/bin/env python3
"""Side-by-side benchmark: berth vs docker vs podman (whichever are installed).

Measures `run --rm busybox true` and `ps`, prints medians and ratios, and berth's idle
daemon memory. Each engine gets its own temporary data root and a busybox image made from
Debian's busybox-static. Usage: bench/bench.py [--runs N] [--berth PATH]
"""
import argparse, os, shutil, signal, statistics, subprocess, sys, tempfile, time

def sh(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)

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

def wait_sock(cli, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        if sh(cli + ["version"]).returncode == 0:
            return True
        time.sleep(0.1)
    return False

def timed(cmd, runs):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        r = sh(cmd)
        times.append((time.perf_counter() - t) * 1000)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr.decode()}")
    return statistics.median(times)

def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--berth", default=shutil.which("berth") or "target/release/berth")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="berth-bench-")
    tar = busybox_tar(tmp)
    engines, procs, results = [], [], {}
    cgroup_parent = None
    try:
        # berth
        bsock = os.path.join(tmp, "berth/run/berth.sock")
        cgroup_parent = "berth-bench-%d" % os.getpid()
        p = subprocess.Popen([a.berth, "daemon", "--data-root", os.path.join(tmp, "berth/data"),
                              "--exec-root", os.path.join(tmp, "berth/run"),
                              "--cgroup-parent", cgroup_parent,
                              "--config-file", "/nonexistent"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p)
        bcli = [a.berth, "-H", "unix://" + bsock]
        if wait_sock(bcli):
            sh(bcli + ["import", tar, "busybox"])
            engines.append(("berth", bcli))
            time.sleep(1)
            results["berth idle RSS (MiB)"] = rss_kib(p.pid) / 1024
        # docker
        if shutil.which("dockerd") and shutil.which("docker"):
            dsock = os.path.join(tmp, "docker.sock")
            p = subprocess.Popen(["dockerd", "--data-root", os.path.join(tmp, "docker"),
                                  "--exec-root", os.path.join(tmp, "docker-exec"),
                                  "-H", "unix://" + dsock, "--pidfile", os.path.join(tmp, "docker.pid"),
                                  "--iptables=false", "--bridge=none"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(p)
            dcli = ["docker", "-H", "unix://" + dsock]
            if wait_sock(dcli):
                sh(dcli + ["import", tar, "busybox"])
                engines.append(("docker", dcli))
        # podman
        if shutil.which("podman"):
            pcli = ["podman", "--root", os.path.join(tmp, "podman"), "--runroot", os.path.join(tmp, "podman-run")]
            if sh(pcli + ["import", tar, "busybox"]).returncode == 0:
                engines.append(("podman", pcli))
        net = {"berth": [], "docker": ["--network", "none"], "podman": ["--network", "none"]}
        table = []
        for name, cli in engines:
            sh(cli + ["run", "--rm"] + net[name] + ["busybox", "true"])  # warm up
            run = timed(cli + ["run", "--rm"] + net[name] + ["busybox", "true"], a.runs)
            ps = timed(cli + ["ps"], a.runs)
            table.append((name, run, ps))
        base = {n: (r, p) for n, r, p in table}
        print(f"{'engine':<8} {'run --rm true (ms)':>20} {'ps (ms)':>10} {'run vs berth':>14} {'ps vs berth':>12}")
        for name, run, ps in table:
            br, bp = base.get("berth", (run, ps))
            print(f"{name:<8} {run:>20.1f} {ps:>10.1f} {run / br:>13.1f}x {ps / bp:>11.1f}x")
        for k, v in results.items():
            print(f"{k}: {v:.1f}")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        sh(["sh", "-c", f"grep -o ' {tmp}[^ ]*' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l"])
        shutil.rmtree(tmp, ignore_errors=True)
        if cgroup_parent:
            for root in ["/sys/fs/cgroup"] + [os.path.join("/sys/fs/cgroup", d) for d in os.listdir("/sys/fs/cgroup")]:
                try:
                    os.rmdir(os.path.join(root, cgroup_parent))
                except OSError:
                    pass

if __name__ == "__main__":
    sys.exit(main())
