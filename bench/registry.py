#!/usr/bin/env python3
"""Side-by-side benchmark of registries: berth's (`berth registry serve`) and Debian's
`docker-registry` (distribution 2.8), on loopback, same data, same load generators.

(a) blob GET throughput of a 100 MB blob (curl, one stream, medians of N);
(b) small-manifest GETs per second and their p99 latency at 64 connections (wrk -t2 -c64);
(c) a push of a 300 MB, 5-layer image with skopeo (from an OCI layout; fresh storage each run).

Both registries use filesystem storage in a temporary directory, with their request logs off.
Usage: bench/registry.py [--runs N] [--berth PATH] [--duration SECS]
"""
import argparse, hashlib, json, os, re, shutil, signal, statistics, subprocess, sys, tempfile, time
import urllib.request

from common import raise_on_sigterm, repo_berth, need_berth

BERTH_PORT, DIST_PORT = 5100, 5200


def start(kind, binary, root, port):
    os.makedirs(root, exist_ok=True)
    cfg = os.path.join(root, "config.yml")
    data = os.path.join(root, "data")
    if kind == "berth":
        text = f"common:\n  loglevel: warn\n  storage: local\n  storage_path: {data}\n  http:\n    addr: 127.0.0.1:{port}\n"
        cmd = [binary, "registry", "serve", cfg]
    else:
        text = (f"version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"
                f"storage:\n  filesystem:\n    rootdirectory: {data}\n"
                f"http:\n  addr: 127.0.0.1:{port}\n")
        cmd = ["docker-registry", "serve", cfg]
    with open(cfg, "w") as f:
        f.write(text)
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(root, "log"), "w"),
                         start_new_session=True)
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
            return p
        except Exception:
            time.sleep(0.05)
    p.kill()
    raise RuntimeError(f"{kind} registry did not start: {open(os.path.join(root, 'log')).read()}")


def stop(p):
    if p and p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def request(method, url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.status, r.headers, r.read()


def push_blob(port, repo, path):
    """Monolithic upload of a file; its digest."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    d = "sha256:" + h.hexdigest()
    # POST for a session, then PUT with the whole blob (what distribution 2.8 takes)
    _, hdrs, _ = request("POST", f"http://127.0.0.1:{port}/v2/{repo}/blobs/uploads/", b"")
    loc = hdrs["Location"]
    if loc.startswith("/"):
        loc = f"http://127.0.0.1:{port}{loc}"
    sep = "&" if "?" in loc else "?"
    subprocess.run(["curl", "-sf", "-X", "PUT", "--data-binary", f"@{path}",
                    "-H", "Content-Type: application/octet-stream", f"{loc}{sep}digest={d}"],
                   check=True, stdout=subprocess.DEVNULL)
    return d


def push_manifest(port, repo, tag, config_digest, config_len):
    m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": config_digest, "size": config_len},
                    "layers": []}).encode()
    request("PUT", f"http://127.0.0.1:{port}/v2/{repo}/manifests/{tag}", m,
            {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})


def blob_throughput(port, repo, digest, runs):
    """MB/s of GETs of a blob (curl to /dev/null), median."""
    speeds = []
    for _ in range(runs):
        r = subprocess.run(["curl", "-sf", "-o", "/dev/null", "-w", "%{speed_download}",
                            f"http://127.0.0.1:{port}/v2/{repo}/blobs/{digest}"],
                           stdout=subprocess.PIPE, check=True)
        speeds.append(float(r.stdout) / 1e6)
    return statistics.median(speeds)


def wrk(url, duration):
    """Requests/s and p99 latency (ms) of small GETs at 64 connections."""
    r = subprocess.run(["wrk", "-t2", "-c64", f"-d{duration}s", "--latency",
                        "-H", "Accept: application/vnd.oci.image.manifest.v1+json", url],
                       stdout=subprocess.PIPE, check=True, text=True)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", r.stdout).group(1))
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", r.stdout)
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", r.stdout)
    if non2xx:
        raise RuntimeError(f"{url}: {non2xx.group(1)} failed requests\n{r.stdout}")
    return rps, p99


def make_oci_layout(dir, layers=5, layer_mb=60):
    """An OCI image layout of `layers` uncompressed layers of random bytes (in a tar each)."""
    blobs = os.path.join(dir, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)

    def put(data):
        d = hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, d), "wb") as f:
            f.write(data)
        return "sha256:" + d, len(data)

    descs = []
    for i in range(layers):
        payload = os.urandom(layer_mb << 20)
        # a tar with one file: 512-byte header, the data, padding, two zero blocks
        name = f"file{i}".encode()
        hdr = bytearray(512)
        hdr[0:len(name)] = name
        hdr[100:108] = b"0000644\0"
        hdr[108:116] = b"0000000\0"
        hdr[116:124] = b"0000000\0"
        hdr[124:136] = ("%011o" % len(payload)).encode() + b"\0"
        hdr[136:148] = b"00000000000\0"
        hdr[156] = ord("0")
        hdr[257:263] = b"ustar\0"
        hdr[263:265] = b"00"
        hdr[148:156] = b"        "
        hdr[148:156] = ("%06o" % sum(hdr)).encode() + b"\0 "
        pad = (-len(payload)) % 512
        tar = bytes(hdr) + payload + b"\0" * pad + b"\0" * 1024
        d, n = put(tar)
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": n})
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [x["digest"] for x in descs]}}).encode()
    cd, cn = put(config)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": cd, "size": cn}, "layers": descs}).encode()
    md, mn = put(manifest)
    with open(os.path.join(dir, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mn,
             "annotations": {"org.opencontainers.image.ref.name": "big"}}]}, f)
    with open(os.path.join(dir, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion": "1.0.0"}')
    return sum(x["size"] for x in descs)


def skopeo_push(layout, port, repo):
    t = time.perf_counter()
    subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", f"oci:{layout}:big",
                    f"docker://127.0.0.1:{port}/{repo}:big"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--berth", default=shutil.which("berth") or repo_berth())
    a = ap.parse_args()
    a.berth = need_berth(a.berth)
    raise_on_sigterm()
    for tool in ["docker-registry", "wrk", "skopeo", "curl"]:
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed: apt-get install docker-registry wrk skopeo curl")
    tmp = tempfile.mkdtemp(prefix="berth-bench-registry-")
    procs = {}
    engines = [("berth", a.berth, BERTH_PORT), ("distribution", None, DIST_PORT)]
    res = {}
    try:
        blob = os.path.join(tmp, "blob")
        with open(blob, "wb") as f:
            for _ in range(100):
                f.write(os.urandom(1 << 20))
        cfg = os.path.join(tmp, "config.json")
        with open(cfg, "wb") as f:
            f.write(b'{"architecture":"amd64","os":"linux"}')
        for name, binary, port in engines:
            procs[name] = start(name, binary, os.path.join(tmp, name), port)
            d = push_blob(port, "bench/blob", blob)
            c = push_blob(port, "bench/small", cfg)
            push_manifest(port, "bench/small", "v1", c, os.path.getsize(cfg))
            blob_throughput(port, "bench/blob", d, 1)  # warm
            res[(name, "a")] = blob_throughput(port, "bench/blob", d, a.runs)
            wrk(f"http://127.0.0.1:{port}/v2/bench/small/manifests/v1", 2)  # warm
            rps, p99 = zip(*[wrk(f"http://127.0.0.1:{port}/v2/bench/small/manifests/v1", a.duration)
                             for _ in range(3)])
            res[(name, "b")] = (statistics.median(rps), statistics.median(p99))
            stop(procs.pop(name))
        layout = os.path.join(tmp, "layout")
        total = make_oci_layout(layout)
        times = {n: [] for n, _, _ in engines}
        for i in range(a.runs):
            order = engines if i % 2 == 0 else engines[::-1]
            for name, binary, port in order:
                root = os.path.join(tmp, f"{name}-push")
                shutil.rmtree(root, ignore_errors=True)
                subprocess.run(["sync"])
                procs[name] = start(name, binary, root, port)
                times[name].append(skopeo_push(layout, port, f"bench/push{i}"))
                stop(procs.pop(name))
        for n in times:
            res[(n, "c")] = statistics.median(times[n])
    finally:
        for p in procs.values():
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)
    b, d = "berth", "distribution"
    print(f"{'':34} {'berth':>12} {'distribution':>14} {'ratio':>8}")
    print(f"{'(a) 100 MB blob GET (MB/s)':34} {res[(b,'a')]:12.0f} {res[(d,'a')]:14.0f} {res[(b,'a')]/res[(d,'a')]:7.2f}x")
    print(f"{'(b) manifest GETs/s, 64 conns':34} {res[(b,'b')][0]:12.0f} {res[(d,'b')][0]:14.0f} {res[(b,'b')][0]/res[(d,'b')][0]:7.2f}x")
    print(f"{'    p99 latency (ms)':34} {res[(b,'b')][1]:12.2f} {res[(d,'b')][1]:14.2f}")
    print(f"{'(c) skopeo push %d MB, 5 layers (s)' % (total >> 20):34} {res[(b,'c')]:12.2f} {res[(d,'c')]:14.2f} {res[(d,'c')]/res[(b,'c')]:7.2f}x")


if __name__ == "__main__":
    main()
