"""Helpers shared by the benchmarks in bench/: private berth and docker daemons, timing, cleanup.

Every daemon gets its own data root, exec root, socket and cgroup parent under one temporary
directory; `Daemons.close()` stops them and removes their mounts, files and cgroups. The
daemons run in their own sessions, so a Ctrl-C reaches only the benchmark, which then cleans up
in order instead of racing the daemons' own shutdown.
"""
import os, shutil, signal, statistics, subprocess, tempfile, time

CGROUP_ROOT = "/sys/fs/cgroup"


def repo_berth(profile="release"):
    """This repository's berth binary, built by `cargo build --release`: the build targets the
    host's triple (.cargo/config.toml), so it is target/<triple>/release/berth. None if absent."""
    out = subprocess.run(["rustc", "-vV"], stdout=subprocess.PIPE, text=True).stdout
    triple = next((l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("host:")), "")
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", triple,
                        profile, "berth")
    return path if triple and os.path.exists(path) else None


def need_berth(path):
    """Exit with a message when no berth binary was found or given."""
    if not path or not os.path.exists(path):
        raise SystemExit("no berth binary: build one (cargo build --release) or pass --berth PATH")
    return path


# Prefix that runs a command in a new network namespace with its loopback up; `exec` keeps the
# pid, so the daemon's Popen (and its session) is still the daemon. The namespace goes away
# with its last process: nothing to clean up on the host.
NETNS = ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$0" "$@"']


def sh(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def check(cmd, **kw):
    r = sh(cmd, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.decode().strip()}")
    return r


def wait_sock(cli, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        if sh(cli + ["version"]).returncode == 0:
            return True
        time.sleep(0.1)
    return False


def time_once(cmd, **kw):
    """Wall time of one command in ms; raises if it fails. `kw` goes to subprocess.run
    (e.g. env=)."""
    t = time.perf_counter()
    r = sh(cmd, **kw)
    ms = (time.perf_counter() - t) * 1000
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr.decode().strip()}")
    return ms


def timed(cmd, runs):
    """Median wall time of `runs` runs of a command, in ms."""
    return statistics.median(time_once(cmd) for _ in range(runs))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def raise_on_sigterm():
    """Turn SIGTERM into KeyboardInterrupt, so `finally:` cleanups run for both."""
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, handler)


class Daemons:
    """Private berth and docker daemons under one temporary directory."""

    def __init__(self, prefix="berth-bench-", dir=None):
        self.tmp = tempfile.mkdtemp(prefix=prefix, dir=dir)
        # The exec roots (runtime state: bundles, shim and containerd state, sockets) on a
        # tmpfs, as both engines have them by default (/run/berth, /run/docker): on this
        # machine's disk (ext4 mounted with `discard`) every file deleted there would cost a
        # synchronous discard.
        run_is_tmpfs = subprocess.run(["stat", "-f", "-c", "%T", "/run"], capture_output=True,
                                      text=True).stdout.strip() == "tmpfs"
        self.run_tmp = tempfile.mkdtemp(prefix=prefix, dir="/run" if run_is_tmpfs else None)
        if not run_is_tmpfs:
            # A machine whose /run is a directory of its root disk (the development VM's): the
            # exec roots get a tmpfs of their own, unmounted by close() with the rest.
            try:
                check(["mount", "-t", "tmpfs", "-o", "mode=0711", "berth-bench-run", self.run_tmp])
            except Exception:
                shutil.rmtree(self.tmp, ignore_errors=True)
                shutil.rmtree(self.run_tmp, ignore_errors=True)
                raise
        self.procs = []
        self.cgroup_parents = []

    def path(self, *p):
        return os.path.join(self.tmp, *p)

    def run_path(self, *p):
        """A path under the exec roots' tmpfs directory."""
        return os.path.join(self.run_tmp, *p)

    def _spawn(self, cmd, log):
        f = open(self.path(log), "wb")
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        f.close()
        self.procs.append(p)
        return p

    def start_berth(self, berth, extra=(), netns=True):
        """Start `berth daemon`; returns (Popen, cli argv) or (Popen, None) if it never answered.
        It runs in a private network namespace (see NETNS), so its default bridge and nftables
        rules never touch the host's (they would outlive it there, as docker0 does);
        netns=False runs it in the host's."""
        cgroup_parent = "berth-bench-%d" % os.getpid()
        self.cgroup_parents.append(cgroup_parent)
        p = self._spawn((NETNS if netns else []) + [berth, "daemon", "--data-root", self.path("berth/data"),
                         "--exec-root", self.run_path("berth"),
                         "-H", "unix://" + self.path("berth.sock"),
                         "--cgroup-parent", cgroup_parent,
                         "--config-file", "/nonexistent", *extra], "berth.log")
        cli = [berth, "-H", "unix://" + self.path("berth.sock")]
        return p, (cli if wait_sock(cli) else None)

    def start_docker(self, docker="docker", bridge=False, netns=False):
        """Start a private dockerd (with its own containerd); (Popen, cli) or (None, None).
        `docker` is the CLI to talk to it with (e.g. /usr/bin/docker, the one matching
        dockerd's version, where a newer one comes first in PATH). By default it runs with
        --iptables=false --bridge=none; bridge=True gives it its default bridge (docker0) and
        iptables rules, which should come with netns=True (a private network namespace, see
        NETNS) so that they never touch the host's."""
        if not (shutil.which("dockerd") and shutil.which(docker)):
            return None, None
        cgroup_parent = "berth-bench-docker-%d" % os.getpid()
        self.cgroup_parents.append(cgroup_parent)
        p = self._spawn((NETNS if netns else []) + ["dockerd", "--data-root", self.path("docker"),
                         "--exec-root", self.run_path("docker"),
                         "-H", "unix://" + self.path("docker.sock"),
                         "--pidfile", self.path("docker.pid"),
                         "--cgroup-parent", cgroup_parent,
                         *([] if bridge else ["--iptables=false", "--bridge=none"])], "docker.log")
        cli = [docker, "-H", "unix://" + self.path("docker.sock")]
        return p, (cli if wait_sock(cli) else None)

    def close(self):
        # Stop the daemons (they stop their containers, shims and containerd).
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        # Anything still running in their sessions (shims, containerd-shim): kill by session.
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # Mounts under the temporary directory, deepest first.
        for _ in range(3):
            mounts = []
            with open("/proc/self/mountinfo") as f:
                for line in f:
                    mp = line.split()[4].replace("\\040", " ")
                    if any(mp == t or mp.startswith(t + "/") for t in (self.tmp, self.run_tmp)):
                        mounts.append(mp)
            if not mounts:
                break
            for mp in sorted(mounts, reverse=True):
                sh(["umount", "-l", mp])
        shutil.rmtree(self.tmp, ignore_errors=True)
        shutil.rmtree(self.run_tmp, ignore_errors=True)
        # Cgroups: the parents we named, and whatever the engines left under them.
        for parent in self.cgroup_parents:
            roots = [CGROUP_ROOT] + [os.path.join(CGROUP_ROOT, d) for d in os.listdir(CGROUP_ROOT)]
            for root in roots:
                top = os.path.join(root, parent)
                if not os.path.isdir(top):
                    continue
                for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
                    try:
                        os.rmdir(dirpath)
                    except OSError:
                        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
