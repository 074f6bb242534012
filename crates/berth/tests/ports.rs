//! Published ports (issue 5): `-p` in its forms and `-P`, forwarded by the kernel (DNAT rules
//! in `table ip berth`) from the host's addresses, 127.0.0.1 and other containers; `port`,
//! `ps` and `inspect`; taken ports refused; rules gone after stop, rm and a daemon kill. Each
//! test's daemon runs in its own network namespace, where the test adds a "host address"
//! (10.77.0.1 on one end of a veth pair) besides the bridge's.

mod common;
use common::Env;
use serde_json::Value;
use std::time::{Duration, Instant};

const HOST_ADDR: &str = "10.77.0.1";
const WEB: &str = "mkdir -p /www && echo \"hello from $(hostname)\" > /www/index.html && exec httpd -f -p 80 -h /www";

fn setup() -> Env {
    let env = Env::new().with_busybox();
    for cmd in [
        &[
            "ip", "link", "add", "hostif0", "type", "veth", "peer", "name", "hostif1",
        ][..],
        &["ip", "addr", "add", "10.77.0.1/24", "dev", "hostif0"],
        &["ip", "link", "set", "hostif0", "up"],
        &["ip", "link", "set", "hostif1", "up"],
    ] {
        let o = env.in_daemon_netns(cmd).output().unwrap();
        assert!(o.status.success(), "{cmd:?}: {o:?}");
    }
    env
}

/// GET `http://addr/` from the host side (the daemon's namespace) with busybox wget.
fn fetch(env: &Env, addr: &str) -> Option<String> {
    let o = env
        .in_daemon_netns(&[
            "timeout",
            "3",
            "busybox",
            "wget",
            "-q",
            "-O-",
            &format!("http://{addr}/"),
        ])
        .output()
        .unwrap();
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// `fetch`, retried while the server comes up (at most 10 s).
fn fetch_eventually(env: &Env, addr: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = fetch(env, addr) {
            return s;
        }
        if Instant::now() > deadline {
            let o = env
                .in_daemon_netns(&["busybox", "wget", "-O-", &format!("http://{addr}/")])
                .output()
                .unwrap();
            panic!("no answer from {addr}: {o:?}\n{:?}", nft(env));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn inspect(env: &Env, name: &str) -> Value {
    let o = env.berth(&["inspect", name]).ok();
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    v[0].clone()
}

/// `nft list table ip berth` in the daemon's namespace, when nft is installed.
fn nft(env: &Env) -> Option<String> {
    let o = env
        .in_daemon_netns(&["nft", "list", "table", "ip", "berth"])
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Run `f` on a thread inside the namespace of process `pid`.
fn in_netns<T: Send + 'static>(pid: i32, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).unwrap();
        // SAFETY: setns(2) on this thread only, with a valid namespace fd.
        let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap()
}

fn ports_col(env: &Env, name: &str) -> String {
    let o = env
        .berth(&["ps", "-a", "--format", "{{.Names}}|{{.Ports}}"])
        .ok();
    o.stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}|")))
        .unwrap_or_else(|| panic!("{name} not in {o:?}"))
        .to_string()
}

#[test]
fn a_published_port_answers_on_host_addresses_loopback_and_to_containers() {
    let env = setup();
    env.berth(&[
        "run", "-d", "--name", "web", "-p", "8080:80", "busybox", "sh", "-c", WEB,
    ])
    .ok();
    let web_ip = inspect(&env, "web")["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    // From the host: its own address, 127.0.0.1, the bridge's address.
    for addr in ["10.77.0.1:8080", "127.0.0.1:8080", "172.17.0.1:8080"] {
        assert!(
            fetch_eventually(&env, addr).starts_with("hello from"),
            "{addr}"
        );
    }
    // The container itself, through the gateway and the host's address (hairpin mode on
    // its bridge port).
    for addr in ["172.17.0.1:8080", &format!("{HOST_ADDR}:8080")] {
        let got = env
            .berth(&[
                "exec",
                "web",
                "timeout",
                "5",
                "wget",
                "-q",
                "-O-",
                &format!("http://{addr}/"),
            ])
            .ok();
        assert!(
            got.stdout.starts_with("hello from"),
            "self via {addr}: {got:?}"
        );
    }
    // From another container, through the gateway and the host's address.
    for addr in ["172.17.0.1:8080", &format!("{HOST_ADDR}:8080")] {
        let got = env
            .berth(&[
                "run",
                "--rm",
                "busybox",
                "timeout",
                "5",
                "wget",
                "-q",
                "-O-",
                &format!("http://{addr}/"),
            ])
            .ok();
        assert!(got.stdout.starts_with("hello from"), "{addr}: {got:?}");
    }
    // What the user sees.
    let v = inspect(&env, "web");
    assert_eq!(
        v["HostConfig"]["PortBindings"]["80/tcp"][0]["HostPort"],
        "8080"
    );
    assert_eq!(
        v["NetworkSettings"]["Ports"]["80/tcp"],
        serde_json::json!([{"HostIp": "0.0.0.0", "HostPort": "8080"}])
    );
    assert_eq!(
        env.berth(&["port", "web"]).ok().stdout,
        "80/tcp -> 0.0.0.0:8080\n"
    );
    assert_eq!(
        env.berth(&["port", "web", "80"]).ok().stdout,
        "0.0.0.0:8080\n"
    );
    let o = env.berth(&["port", "web", "81"]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr
            .contains("No public port '81/tcp' published for web"),
        "{o:?}"
    );
    assert_eq!(ports_col(&env, "web"), "0.0.0.0:8080->80/tcp");
    if let Some(t) = nft(&env) {
        let rule = format!("fib daddr type local tcp dport 8080 dnat to {web_ip}:80");
        assert_eq!(t.matches(&rule).count(), 2, "{t}");
    }

    // A port another container publishes is refused, and that container does not run.
    let o = env.berth(&[
        "run", "-d", "--name", "web2", "-p", "8080:80", "busybox", "sh", "-c", WEB,
    ]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr
            .contains("driver failed programming external connectivity on endpoint web2")
            && o.stderr
                .contains("Bind for 0.0.0.0:8080 failed: port is already allocated"),
        "{o:?}"
    );
    assert_eq!(inspect(&env, "web2")["State"]["Running"], false);
    assert!(fetch_eventually(&env, "127.0.0.1:8080").starts_with("hello from"));

    // A port a program of the host holds is refused too.
    let pid = env.daemon_pid();
    let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        in_netns(pid, move || {
            let l = std::net::TcpListener::bind("0.0.0.0:9090").unwrap();
            ready_tx.send(()).unwrap();
            let _ = hold_rx.recv();
            drop(l);
        })
    });
    ready_rx.recv().unwrap();
    let o = env.berth(&[
        "run", "-d", "--name", "web3", "-p", "9090:80", "busybox", "sh", "-c", WEB,
    ]);
    assert!(
        o.stderr
            .contains("Bind for 0.0.0.0:9090 failed: port is already allocated"),
        "{o:?}"
    );
    assert_eq!(inspect(&env, "web3")["State"]["Running"], false);
    // Nothing of a failed run is left once the start has answered: its shim has cleaned up
    // and gone (it would otherwise unmount the rootfs or remove the cgroup of the next run).
    let id = inspect(&env, "web3")["Id"].as_str().unwrap().to_string();
    for _ in 0..5 {
        let o = env.berth(&["start", "web3"]);
        assert!(o.stderr.contains("port is already allocated"), "{o:?}");
        // (the daemon's mount namespace: a private one on a cgroup v2 host)
        let mi = std::fs::read_to_string(format!("/proc/{}/mountinfo", env.daemon_pid())).unwrap();
        let mounted: Vec<&str> = mi.lines().filter(|l| l.contains(&id)).collect();
        assert!(mounted.is_empty(), "left mounted: {mounted:?}");
        let cgroups = common::cgroups_named(&id);
        assert!(cgroups.is_empty(), "left cgroups: {cgroups:?}");
        let shims = common::pids_in_dir_of(&id);
        assert!(shims.is_empty(), "left running: {shims:?}");
    }
    // A start whose client hangs up at once still ends as one that was waited for.
    for _ in 0..3 {
        use std::io::Write;
        let mut s = std::os::unix::net::UnixStream::connect(&env.sock).unwrap();
        write!(
            s,
            "POST /containers/web3/start HTTP/1.1\r\nHost: berth\r\nContent-Length: 0\r\n\r\n"
        )
        .unwrap();
        drop(s);
        env.eventually("the hung-up start's shim, mount and cgroup to go", || {
            let mi =
                std::fs::read_to_string(format!("/proc/{}/mountinfo", env.daemon_pid())).unwrap();
            !mi.contains(&id)
                && common::cgroups_named(&id).is_empty()
                && common::pids_in_dir_of(&id).is_empty()
        });
    }
    // A start of our own waits for those (starts of a container take turns) and fails as
    // they did; then nothing of any of them is left.
    let o = env.berth(&["start", "web3"]);
    assert!(o.stderr.contains("port is already allocated"), "{o:?}");
    let mi = std::fs::read_to_string(format!("/proc/{}/mountinfo", env.daemon_pid())).unwrap();
    assert!(!mi.contains(&id), "left mounted");
    assert!(common::cgroups_named(&id).is_empty());
    assert!(common::pids_in_dir_of(&id).is_empty());
    hold_tx.send(()).unwrap();
    holder.join().unwrap();
    // Once it is free, the same container starts.
    env.berth(&["start", "web3"]).ok();
    // and starting it again is no error, as in docker (the daemon answers 304)
    let o = env.berth(&["start", "web3"]).ok();
    assert_eq!(o.trimmed(), "web3");
    assert!(fetch_eventually(&env, "127.0.0.1:9090").starts_with("hello from"));

    // Stopped: the rules go and the port is free for another container.
    env.berth(&["stop", "-t", "1", "web"]).ok();
    if let Some(t) = nft(&env) {
        assert!(!t.contains("dport 8080"), "{t}");
    }
    assert!(fetch(&env, "127.0.0.1:8080").is_none());
    env.berth(&["rm", "web2"]).ok();
    env.berth(&[
        "run", "-d", "--name", "web2", "-p", "8080:80", "busybox", "sh", "-c", WEB,
    ])
    .ok();
    assert!(fetch_eventually(&env, "10.77.0.1:8080").starts_with("hello from"));
    // Started again, web's port is now taken.
    let o = env.berth(&["start", "web"]);
    assert!(o.stderr.contains("port is already allocated"), "{o:?}");
    env.berth(&["rm", "-f", "web", "web2", "web3"]).ok();
    if let Some(t) = nft(&env) {
        assert!(!t.contains("dnat"), "{t}");
    }
}

#[test]
fn random_ports_publish_all_ranges_and_an_address() {
    let env = setup();
    let tar = env.busybox_tar();
    env.berth(&["import", "-c", "EXPOSE 81", &tar, "exposing"])
        .ok();
    let (lo, hi) = {
        let s = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
        let v: Vec<u16> = s.split_whitespace().map(|x| x.parse().unwrap()).collect();
        (v[0], v[1])
    };
    let host_port = |env: &Env, name: &str, key: &str| -> u16 {
        let o = env.berth(&["port", name, key]).ok();
        o.stdout.trim().rsplit(':').next().unwrap().parse().unwrap()
    };

    // `-p 80`: a random host port from the ephemeral range.
    env.berth(&[
        "run", "-d", "--name", "rnd", "-p", "80", "busybox", "sh", "-c", WEB,
    ])
    .ok();
    let p = host_port(&env, "rnd", "80/tcp");
    assert!((lo..=hi).contains(&p), "{p}");
    assert!(fetch_eventually(&env, &format!("127.0.0.1:{p}")).starts_with("hello from"));

    // `-P`: the image's EXPOSE and --expose, each on its own random port.
    env.berth(&[
        "run", "-d", "--name", "all", "-P", "--expose", "7000/udp", "exposing", "sh", "-c", WEB,
    ])
    .ok();
    let out = env.berth(&["port", "all"]).ok().stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("81/tcp -> 0.0.0.0:"), "{out}");
    assert!(lines[1].starts_with("7000/udp -> 0.0.0.0:"), "{out}");
    let (p81, p7000) = (
        host_port(&env, "all", "81"),
        host_port(&env, "all", "7000/udp"),
    );
    assert!((lo..=hi).contains(&p81) && (lo..=hi).contains(&p7000));
    assert_ne!(p81, p);
    let col = ports_col(&env, "all");
    assert!(col.contains(&format!("0.0.0.0:{p81}->81/tcp")), "{col}");
    assert!(col.contains(&format!("0.0.0.0:{p7000}->7000/udp")), "{col}");

    // Exposed only: the PORTS column shows the port alone, `port` nothing.
    env.berth(&[
        "run", "-d", "--name", "exp", "--expose", "80", "busybox", "sleep", "100",
    ])
    .ok();
    assert_eq!(ports_col(&env, "exp"), "80/tcp");
    assert_eq!(env.berth(&["port", "exp"]).ok().stdout, "");
    assert!(inspect(&env, "exp")["NetworkSettings"]["Ports"]["80/tcp"].is_null());

    // `IP::CPORT`: only that address answers.
    env.berth(&[
        "run",
        "-d",
        "--name",
        "lo",
        "-p",
        "127.0.0.1::80",
        "busybox",
        "sh",
        "-c",
        WEB,
    ])
    .ok();
    let out = env.berth(&["port", "lo"]).ok().stdout;
    assert!(out.starts_with("80/tcp -> 127.0.0.1:"), "{out}");
    let pl = host_port(&env, "lo", "80");
    assert!(fetch_eventually(&env, &format!("127.0.0.1:{pl}")).starts_with("hello from"));
    assert!(fetch(&env, &format!("{HOST_ADDR}:{pl}")).is_none());
    if let Some(t) = nft(&env) {
        assert!(
            t.contains(&format!("ip daddr 127.0.0.1 tcp dport {pl} dnat to")),
            "{t}"
        );
    }

    // Ranges: one host port per container port.
    env.berth(&["run", "-d", "--name", "range", "-p", "8000-8001:80-81", "busybox", "sh", "-c",
        "mkdir /www && echo range > /www/index.html && (httpd -p 81 -h /www) && exec httpd -f -p 80 -h /www"])
    .ok();
    assert_eq!(
        env.berth(&["port", "range"]).ok().stdout,
        "80/tcp -> 0.0.0.0:8000\n81/tcp -> 0.0.0.0:8001\n"
    );
    assert_eq!(fetch_eventually(&env, "127.0.0.1:8001"), "range");
    // A host range for one container port: the first free one.
    env.berth(&[
        "run",
        "-d",
        "--name",
        "hr",
        "-p",
        "8000-8010:80",
        "busybox",
        "sleep",
        "100",
    ])
    .ok();
    assert_eq!(
        env.berth(&["port", "hr", "80"]).ok().stdout,
        "0.0.0.0:8002\n"
    );

    // Bad specifications are refused at create.
    let o = env.berth(&["create", "-p", "8000:80-81", "busybox"]);
    assert_ne!(o.code, 0, "{o:?}");
    env.berth(&["rm", "-f", "rnd", "all", "exp", "lo", "range", "hr"])
        .ok();
    if let Some(t) = nft(&env) {
        assert!(!t.contains("dnat"), "{t}");
    }
}

/// A static UDP echo server, built with the C compiler Rust links with.
fn udp_echo_binary(env: &Env) -> Option<std::path::PathBuf> {
    let dir = env.dir.path();
    let src = dir.join("udpecho.c");
    std::fs::write(
        &src,
        r#"#include <sys/socket.h>
#include <netinet/in.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(atoi(argv[1]));
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) return 1;
    for (;;) {
        char buf[2048];
        struct sockaddr_in p;
        socklen_t l = sizeof p;
        int n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&p, &l);
        if (n > 0) sendto(s, buf, n, 0, (struct sockaddr *)&p, l);
    }
}
"#,
    )
    .unwrap();
    let out = dir.join("udpecho");
    let ok = std::process::Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("skipped: cannot build a static UDP echo server with cc");
        return None;
    }
    Some(out)
}

/// Send `msg` to `addr` over UDP from the daemon's namespace; the echo, if any comes.
fn udp_roundtrip(env: &Env, addr: &'static str, msg: &'static [u8]) -> Option<Vec<u8>> {
    in_netns(env.daemon_pid(), move || {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        for _ in 0..10 {
            s.send_to(msg, addr).unwrap();
            let mut buf = [0u8; 2048];
            if let Ok((n, _)) = s.recv_from(&mut buf) {
                return Some(buf[..n].to_vec());
            }
        }
        None
    })
}

#[test]
fn udp_echo_through_a_published_port() {
    let env = setup();
    let Some(bin) = udp_echo_binary(&env) else {
        return;
    };
    env.berth(&[
        "create",
        "--name",
        "echo",
        "-p",
        "5353:53/udp",
        "busybox",
        "/udpecho",
        "53",
    ])
    .ok();
    env.berth(&["cp", bin.to_str().unwrap(), "echo:/udpecho"])
        .ok();
    env.berth(&["start", "echo"]).ok();
    assert_eq!(
        env.berth(&["port", "echo"]).ok().stdout,
        "53/udp -> 0.0.0.0:5353\n"
    );
    for addr in ["127.0.0.1:5353", "10.77.0.1:5353", "172.17.0.1:5353"] {
        assert_eq!(
            udp_roundtrip(&env, addr, b"ping over udp").as_deref(),
            Some(&b"ping over udp"[..]),
            "{addr}"
        );
    }
    assert_eq!(ports_col(&env, "echo"), "0.0.0.0:5353->53/udp");
    // The same port number over TCP is another port.
    env.berth(&[
        "run", "-d", "--name", "tcp", "-p", "5353:80", "busybox", "sh", "-c", WEB,
    ])
    .ok();
    assert!(fetch_eventually(&env, "127.0.0.1:5353").starts_with("hello from"));
    env.berth(&["rm", "-f", "echo"]).ok();
    assert_eq!(udp_roundtrip(&env, "127.0.0.1:5353", b"x"), None);
    env.berth(&["rm", "-f", "tcp"]).ok();
}

#[test]
fn ports_are_restored_after_a_daemon_kill_and_stopped_ones_dropped() {
    let mut env = setup();
    env.berth(&[
        "run", "-d", "--name", "keep", "-p", "8080:80", "busybox", "sh", "-c", WEB,
    ])
    .ok();
    env.berth(&[
        "run", "-d", "--name", "gone", "-p", "8082:80", "busybox", "sh", "-c", WEB,
    ])
    .ok();
    assert!(fetch_eventually(&env, "127.0.0.1:8080").starts_with("hello from"));
    assert!(fetch_eventually(&env, "127.0.0.1:8082").starts_with("hello from"));
    let gone_pid = inspect(&env, "gone")["State"]["Pid"].as_i64().unwrap() as i32;
    env.kill_daemon();
    // While the daemon is away, `gone` exits.
    // SAFETY: kill(2) on the pid of a container's init.
    unsafe {
        libc::kill(gone_pid, libc::SIGKILL);
    }
    env.start_daemon();
    assert!(fetch_eventually(&env, "127.0.0.1:8080").starts_with("hello from"));
    assert!(fetch_eventually(&env, "10.77.0.1:8080").starts_with("hello from"));
    assert_eq!(
        env.berth(&["port", "keep"]).ok().stdout,
        "80/tcp -> 0.0.0.0:8080\n"
    );
    env.eventually("gone exited", || {
        inspect(&env, "gone")["State"]["Running"] == false
    });
    if let Some(t) = nft(&env) {
        assert!(t.contains("dport 8080"), "{t}");
        assert!(!t.contains("dport 8082"), "{t}");
    }
    // The restarted daemon holds keep's port again; gone's is free.
    let o = env.berth(&[
        "run", "-d", "--name", "dup", "-p", "8080:80", "busybox", "true",
    ]);
    assert!(o.stderr.contains("port is already allocated"), "{o:?}");
    env.berth(&["start", "gone"]).ok();
    assert!(fetch_eventually(&env, "127.0.0.1:8082").starts_with("hello from"));
    env.berth(&["rm", "-f", "keep", "gone", "dup"]).ok();
    if let Some(t) = nft(&env) {
        assert!(!t.contains("dnat"), "{t}");
    }
}

macro_rules! docker {
    ($env:expr, $($arg:expr),+) => {
        match $env.docker(&[$($arg),+]) {
            Some(o) => o,
            None => return,
        }
    };
}

#[test]
fn docker_cli_publishes_and_reads_ports() {
    let env = setup();
    docker!(env, "run", "-d", "--name", "dweb", "-p", "8081:80", "busybox", "sh", "-c", WEB).ok();
    assert!(fetch_eventually(&env, "127.0.0.1:8081").starts_with("hello from"));
    let o = docker!(env, "port", "dweb").ok();
    assert_eq!(o.stdout, "80/tcp -> 0.0.0.0:8081\n");
    let o = docker!(env, "port", "dweb", "80/tcp").ok();
    assert_eq!(o.stdout, "0.0.0.0:8081\n");
    let o = docker!(env, "ps", "--format", "{{.Ports}}").ok();
    assert_eq!(o.stdout.trim(), "0.0.0.0:8081->80/tcp");
    let o = docker!(env, "run", "-d", "--name", "dweb2", "-p", "8081:80", "busybox", "true");
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("port is already allocated"), "{o:?}");
    docker!(env, "rm", "-f", "dweb", "dweb2").ok();
}
