//! The default bridge (issue 5): `eth0` on `berth0` with an address, a default route and
//! `/etc/hosts`; containers reaching each other; what `inspect` shows; `--network none`; no
//! veth or lease left behind after removal, and after a `kill -9` of the daemon. Each test's
//! daemon runs in the test's own network namespace, so the bridge and the NAT table are made
//! there, never on the host.

mod common;
use common::Env;
use serde_json::Value;

/// The veths on `berth0`, by name.
fn bridge_ports(env: &Env) -> Vec<String> {
    let o = env
        .in_daemon_netns(&["ip", "-o", "link", "show", "master", "berth0"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

fn leases_path(env: &Env) -> std::path::PathBuf {
    env.data_root.join("network/leases/bridge.json")
}

/// The default bridge's leases: address → container id.
fn leases(env: &Env) -> serde_json::Map<String, Value> {
    let v: Value = serde_json::from_slice(&std::fs::read(leases_path(env)).unwrap()).unwrap();
    v["leases"].as_object().cloned().unwrap_or_default()
}

fn inspect(env: &Env, name: &str) -> Value {
    let o = env.berth(&["inspect", name]).ok();
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    v[0].clone()
}

fn full_id(env: &Env, name: &str) -> String {
    inspect(env, name)["Id"].as_str().unwrap().to_string()
}

fn ip_of(env: &Env, name: &str) -> String {
    inspect(env, name)["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn containers_get_eth0_reach_each_other_and_inspect_shows_it() {
    let env = Env::new().with_busybox();
    // The bridge and berth's NAT table exist in the daemon's namespace.
    let addr = env
        .in_daemon_netns(&["ip", "-o", "-4", "addr", "show", "berth0"])
        .output()
        .unwrap();
    let addr = String::from_utf8_lossy(&addr.stdout).into_owned();
    assert!(addr.contains("172.17.0.1/16"), "{addr}");
    let fwd = env
        .in_daemon_netns(&["cat", "/proc/sys/net/ipv4/ip_forward"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&fwd.stdout).trim(), "1");

    env.berth(&[
        "run",
        "-d",
        "--name",
        "web",
        "--hostname",
        "webhost",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 80 -h /www",
    ])
    .ok();
    env.berth(&["run", "-d", "--name", "client", "busybox", "sleep", "1000"])
        .ok();
    let web_ip = ip_of(&env, "web");
    let client_ip = ip_of(&env, "client");
    assert!(web_ip.starts_with("172.17.") && client_ip.starts_with("172.17."));
    assert_ne!(web_ip, client_ip);

    // eth0 with the address and Docker's MAC, a default route via the gateway.
    let ip_addr = env
        .berth(&["exec", "web", "ip", "-o", "-4", "addr", "show", "eth0"])
        .ok();
    assert!(
        ip_addr.stdout.contains(&format!("inet {web_ip}/16")),
        "{ip_addr:?}"
    );
    let route = env.berth(&["exec", "web", "ip", "route"]).ok();
    assert!(
        route.stdout.contains("default via 172.17.0.1 dev eth0"),
        "{route:?}"
    );
    let ifaces = env.berth(&["exec", "web", "ls", "/sys/class/net"]).ok();
    assert_eq!(ifaces.stdout, "eth0\nlo\n");
    // /etc/hosts names the container as Docker writes it.
    let hosts = env.berth(&["exec", "web", "cat", "/etc/hosts"]).ok();
    assert!(hosts.stdout.contains("127.0.0.1\tlocalhost\n"), "{hosts:?}");
    assert!(
        hosts.stdout.ends_with(&format!("{web_ip}\twebhost\n")),
        "{hosts:?}"
    );

    // By IP: ping (NET_RAW is one of Docker's default capabilities) and HTTP.
    env.berth(&["exec", "client", "ping", "-c", "1", "-W", "5", &web_ip])
        .ok();
    let got = env
        .berth(&[
            "exec",
            "client",
            "wget",
            "-q",
            "-O-",
            &format!("http://{web_ip}/"),
        ])
        .ok();
    assert_eq!(got.trimmed(), "hello-from-web");
    // The gateway (the bridge's address in the daemon's namespace) answers too.
    env.berth(&["exec", "client", "ping", "-c", "1", "-W", "5", "172.17.0.1"])
        .ok();

    // inspect: Docker 20.10's shape.
    let v = inspect(&env, "web");
    let ns = &v["NetworkSettings"];
    let mac = {
        let o: Vec<u8> = web_ip.split('.').map(|x| x.parse().unwrap()).collect();
        format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
    };
    assert_eq!(ns["IPAddress"], web_ip.as_str());
    assert_eq!(ns["IPPrefixLen"], 16);
    assert_eq!(ns["Gateway"], "172.17.0.1");
    assert_eq!(ns["MacAddress"], mac.as_str());
    assert_eq!(ns["Bridge"], "");
    let br = &ns["Networks"]["bridge"];
    assert_eq!(br["IPAddress"], web_ip.as_str());
    assert_eq!(br["IPPrefixLen"], 16);
    assert_eq!(br["Gateway"], "172.17.0.1");
    assert_eq!(br["MacAddress"], mac.as_str());
    assert_eq!(br["NetworkID"].as_str().unwrap().len(), 64);
    assert_eq!(br["EndpointID"].as_str().unwrap().len(), 64);
    assert_eq!(ns["EndpointID"], br["EndpointID"]);
    let link = env
        .berth(&["exec", "web", "cat", "/sys/class/net/eth0/address"])
        .ok();
    assert_eq!(link.trimmed(), mac);
    let nets = env
        .berth(&["ps", "--format", "{{.Names}} {{.Networks}}"])
        .ok();
    assert!(nets.stdout.contains("web bridge"), "{nets:?}");
    if let Some(o) = env.docker(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.IPAddress}} {{.NetworkSettings.Networks.bridge.Gateway}}",
        "web",
    ]) {
        assert_eq!(o.ok().trimmed(), format!("{web_ip} 172.17.0.1"));
    }

    // One veth per running container on the bridge; leases name the containers.
    assert_eq!(bridge_ports(&env).len(), 2);
    let l = leases(&env);
    assert_eq!(l.len(), 2);
    assert_eq!(l[&web_ip], full_id(&env, "web").as_str());

    // Stopped: the endpoint and the lease go, inspect's fields are empty.
    env.berth(&["stop", "-t", "1", "web"]).ok();
    let ns = inspect(&env, "web")["NetworkSettings"].clone();
    assert_eq!(ns["IPAddress"], "");
    assert_eq!(ns["Networks"]["bridge"]["IPAddress"], "");
    assert_eq!(
        ns["Networks"]["bridge"]["NetworkID"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    assert!(!leases(&env).contains_key(&web_ip));
    env.eventually("the stopped container's veth to go", || {
        bridge_ports(&env).len() == 1
    });
    // Started again: a fresh address, in /etc/hosts too.
    env.berth(&["start", "web"]).ok();
    let again = ip_of(&env, "web");
    assert!(again.starts_with("172.17."));
    let hosts = env.berth(&["exec", "web", "cat", "/etc/hosts"]).ok();
    assert!(
        hosts.stdout.ends_with(&format!("{again}\twebhost\n")),
        "{hosts:?}"
    );
    assert_eq!(hosts.stdout.matches("webhost").count(), 1, "{hosts:?}");
}

#[test]
fn network_none_has_only_loopback_and_no_lease() {
    let env = Env::new().with_busybox();
    // Only lo, up as in Docker's containers (IFF_UP | IFF_LOOPBACK), with its address.
    let o = env
        .berth(&[
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "ls /sys/class/net; cat /sys/class/net/lo/flags; ip -4 addr show lo",
        ])
        .ok();
    assert!(o.stdout.starts_with("lo\n0x9\n"), "{o:?}");
    assert!(o.stdout.contains("inet 127.0.0.1/8"), "{o:?}");
    env.berth(&[
        "run",
        "-d",
        "--name",
        "quiet",
        "--network",
        "none",
        "busybox",
        "sleep",
        "1000",
    ])
    .ok();
    let ns = inspect(&env, "quiet")["NetworkSettings"].clone();
    assert_eq!(ns["IPAddress"], "");
    assert_eq!(ns["Networks"]["none"]["IPAddress"], "");
    assert!(ns["Networks"].get("bridge").is_none());
    let hosts = env.berth(&["exec", "quiet", "cat", "/etc/hosts"]).ok();
    assert!(!hosts.stdout.contains("172.17."), "{hosts:?}");
    assert!(bridge_ports(&env).is_empty());
    assert!(leases(&env).is_empty());
}

#[test]
fn nothing_leaks_after_containers_run_and_are_removed() {
    let env = Env::new().with_busybox();
    for _ in 0..8 {
        env.berth(&["run", "--rm", "busybox", "true"]).ok();
    }
    // Every way a container ends: exit, stop, kill, rm -f, and a failed start.
    for n in ["e1", "s1", "k1", "r1"] {
        let cmd: &[&str] = if n == "e1" {
            &["true"]
        } else {
            &["sleep", "1000"]
        };
        let mut args = vec!["run", "-d", "--name", n, "busybox"];
        args.extend_from_slice(cmd);
        env.berth(&args).ok();
    }
    env.berth(&["stop", "-t", "1", "s1"]).ok();
    env.berth(&["kill", "k1"]).ok();
    env.berth(&["rm", "-f", "r1"]).ok();
    let o = env.berth(&["run", "--name", "bad", "busybox", "/nonexistent"]);
    assert_ne!(o.code, 0);
    env.eventually("the containers to stop", || {
        env.berth(&["ps", "-q"]).ok().stdout.trim().is_empty()
    });
    for n in ["e1", "s1", "k1", "bad"] {
        env.berth(&["rm", n]).ok();
    }
    env.eventually("no veth left on berth0", || bridge_ports(&env).is_empty());
    assert!(leases(&env).is_empty(), "{:?}", leases(&env));
    // The container side went with its namespace: the daemon's namespace has only lo and
    // the bridge.
    let links = env
        .in_daemon_netns(&["ip", "-o", "link", "show"])
        .output()
        .unwrap();
    let links = String::from_utf8_lossy(&links.stdout).into_owned();
    assert_eq!(links.lines().count(), 2, "{links}");
}

#[test]
fn kill_9_of_the_daemon_keeps_addresses_and_cleans_what_is_gone() {
    let mut env = Env::new().with_busybox();
    env.berth(&["run", "-d", "--name", "keeper", "busybox", "sleep", "1000"])
        .ok();
    env.berth(&["run", "-d", "--name", "victim", "busybox", "sleep", "1000"])
        .ok();
    let keeper_ip = ip_of(&env, "keeper");
    let keeper_id = full_id(&env, "keeper");
    let victim_ip = ip_of(&env, "victim");
    let victim_pid = inspect(&env, "victim")["State"]["Pid"].as_i64().unwrap();
    let keeper_veths = bridge_ports(&env);
    assert_eq!(keeper_veths.len(), 2);

    env.kill_daemon();
    // While the daemon is away: one container dies, a veth nobody owns appears on the
    // bridge, and the leases file names a container that does not exist.
    // SAFETY: kill(2) on a pid of a test container.
    unsafe {
        libc::kill(victim_pid as i32, libc::SIGKILL);
    }
    for args in [
        &[
            "ip",
            "link",
            "add",
            "vethstale0",
            "type",
            "veth",
            "peer",
            "name",
            "vethstale1",
        ][..],
        &["ip", "link", "set", "vethstale0", "master", "berth0", "up"][..],
    ] {
        assert!(env.in_daemon_netns(args).status().unwrap().success());
    }
    let mut v: Value = serde_json::from_slice(&std::fs::read(leases_path(&env)).unwrap()).unwrap();
    v["leases"]["172.17.0.200"] = Value::String("f".repeat(64));
    std::fs::write(leases_path(&env), serde_json::to_vec(&v).unwrap()).unwrap();
    env.start_daemon();

    // The survivor keeps its address, its veth and its lease; the rest is gone.
    let ports = bridge_ports(&env);
    assert_eq!(ports.len(), 1, "{ports:?}");
    assert!(keeper_veths.contains(&ports[0]));
    let l = leases(&env);
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(l[&keeper_ip], keeper_id.as_str());
    assert_eq!(ip_of(&env, "keeper"), keeper_ip);
    assert_eq!(inspect(&env, "victim")["State"]["Running"], false);
    assert_eq!(ip_of(&env, "victim"), "");
    let eth0 = env
        .berth(&["exec", "keeper", "ip", "-o", "-4", "addr", "show", "eth0"])
        .ok();
    assert!(
        eth0.stdout.contains(&format!("inet {keeper_ip}/16")),
        "{eth0:?}"
    );
    // A new container gets an address nobody has, and reaches the survivor.
    env.berth(&[
        "run", "-d", "--name", "newcomer", "busybox", "sleep", "1000",
    ])
    .ok();
    let new_ip = ip_of(&env, "newcomer");
    assert_ne!(new_ip, keeper_ip);
    let _ = victim_ip;
    env.berth(&["exec", "newcomer", "ping", "-c", "1", "-W", "5", &keeper_ip])
        .ok();
    // A later stop releases the survivor's address.
    env.berth(&["stop", "-t", "1", "keeper"]).ok();
    assert!(!leases(&env).contains_key(&keeper_ip));
    env.berth(&["rm", "-f", "keeper", "victim", "newcomer"])
        .ok();
    env.eventually("no veth left on berth0", || bridge_ports(&env).is_empty());
    assert!(leases(&env).is_empty());
}

#[test]
fn a_torn_leases_file_is_rebuilt_from_the_records() {
    // The leases are written in place; a crash in the middle of a write leaves a file that
    // does not parse. The daemon starts anyway and takes the addresses from the records.
    let mut env = Env::new().with_busybox();
    env.berth(&["run", "-d", "--name", "keeper", "busybox", "sleep", "1000"])
        .ok();
    let keeper_ip = ip_of(&env, "keeper");
    let keeper_id = full_id(&env, "keeper");
    env.kill_daemon();
    let text = std::fs::read(leases_path(&env)).unwrap();
    std::fs::write(leases_path(&env), &text[..text.len() / 2]).unwrap();
    env.start_daemon();
    let l = leases(&env);
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(l[&keeper_ip], keeper_id.as_str());
    env.berth(&[
        "run", "-d", "--name", "newcomer", "busybox", "sleep", "1000",
    ])
    .ok();
    assert_ne!(ip_of(&env, "newcomer"), keeper_ip);
    env.berth(&["exec", "newcomer", "ping", "-c", "1", "-W", "5", &keeper_ip])
        .ok();
    env.berth(&["rm", "-f", "keeper", "newcomer"]).ok();
    env.eventually("no veth left on berth0", || bridge_ports(&env).is_empty());
    assert!(leases(&env).is_empty());
}

#[test]
fn bip_in_daemon_json_sets_the_bridge_subnet() {
    let mut env = Env::new().with_busybox();
    env.stop_daemon();
    // The bridge keeps the address it was made with: a new bip needs it gone (as with
    // Docker's docker0).
    assert!(env
        .in_daemon_netns(&["ip", "link", "del", "berth0"])
        .status()
        .unwrap()
        .success());
    let cfg = env.dir.path().join("bip.json");
    std::fs::write(&cfg, r#"{"bip": "10.123.4.1/24"}"#).unwrap();
    env.start_daemon_with(Some(&cfg), &[]);
    env.berth(&["run", "-d", "--name", "c1", "busybox", "sleep", "1000"])
        .ok();
    let ns = inspect(&env, "c1")["NetworkSettings"].clone();
    assert_eq!(ns["IPAddress"], "10.123.4.2");
    assert_eq!(ns["IPPrefixLen"], 24);
    assert_eq!(ns["Gateway"], "10.123.4.1");
    let route = env.berth(&["exec", "c1", "ip", "route"]).ok();
    assert!(route.stdout.contains("default via 10.123.4.1"), "{route:?}");
    let nft = env
        .in_daemon_netns(&["nft", "list", "table", "ip", "berth"])
        .output()
        .unwrap();
    if nft.status.success() {
        let t = String::from_utf8_lossy(&nft.stdout).into_owned();
        assert!(
            t.contains("ip saddr 10.123.4.0/24 oifname != \"berth0\" masquerade"),
            "{t}"
        );
    }
    // A bip that does not parse stops the daemon with a clear error.
    env.stop_daemon();
    std::fs::write(&cfg, r#"{"bip": "10.123.4.0/24"}"#).unwrap();
    let o = common::run_daemon_expecting_failure(
        &[
            "--data-root",
            env.data_root.to_str().unwrap(),
            "--exec-root",
            env.dir.path().join("r2").to_str().unwrap(),
            "--config-file",
            cfg.to_str().unwrap(),
        ],
        10,
    );
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("invalid bip 10.123.4.0/24"), "{o:?}");
    env.start_daemon_with(None, &[]);
}

#[test]
fn network_ls_and_inspect_show_the_builtin_networks() {
    let mut env = Env::new().with_busybox();
    let ls = env.berth(&["network", "ls"]).ok();
    let lines: Vec<Vec<&str>> = ls
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        ls.stdout.lines().next().unwrap(),
        "NETWORK ID     NAME      DRIVER    SCOPE",
        "{ls:?}"
    );
    assert_eq!(lines.len(), 4, "{ls:?}");
    for (row, (name, driver)) in
        lines[1..]
            .iter()
            .zip([("bridge", "bridge"), ("host", "host"), ("none", "null")])
    {
        assert_eq!(row[0].len(), 12, "{ls:?}");
        assert_eq!(&row[1..], &[name, driver, "local"], "{ls:?}");
    }
    let q = env.berth(&["network", "ls", "-q", "--no-trunc"]).ok();
    assert!(q.stdout.lines().all(|l| l.len() == 64), "{q:?}");
    let f = env
        .berth(&[
            "network",
            "ls",
            "-f",
            "driver=null",
            "--format",
            "{{.Name}}",
        ])
        .ok();
    assert_eq!(f.trimmed(), "none");

    env.berth(&["run", "-d", "--name", "c1", "busybox", "sleep", "1000"])
        .ok();
    let c = inspect(&env, "c1");
    let ip = c["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    let o = env.berth(&["network", "inspect", "bridge"]).ok();
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    let n = &v[0];
    assert_eq!(n["Name"], "bridge");
    assert_eq!(n["Driver"], "bridge");
    assert_eq!(n["Scope"], "local");
    assert_eq!(n["IPAM"]["Config"][0]["Subnet"], "172.17.0.0/16");
    assert_eq!(n["IPAM"]["Config"][0]["Gateway"], "172.17.0.1");
    assert_eq!(n["Options"]["com.docker.network.bridge.name"], "berth0");
    assert_eq!(
        n["Id"], c["NetworkSettings"]["Networks"]["bridge"]["NetworkID"],
        "{o:?}"
    );
    let ep = &n["Containers"][c["Id"].as_str().unwrap()];
    assert_eq!(ep["Name"], "c1", "{o:?}");
    assert_eq!(ep["IPv4Address"], format!("{ip}/16"));
    assert_eq!(ep["MacAddress"], c["NetworkSettings"]["MacAddress"]);
    assert_eq!(ep["EndpointID"], c["NetworkSettings"]["EndpointID"]);
    // By id prefix, with a template; the ids stay across a daemon restart.
    let id = n["Id"].as_str().unwrap().to_string();
    let f = env
        .berth(&[
            "network",
            "inspect",
            "-f",
            "{{.Name}} {{.Driver}}",
            &id[..12],
        ])
        .ok();
    assert_eq!(f.trimmed(), "bridge bridge");
    let o = env.berth(&["network", "inspect", "host", "none"]).ok();
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v[0]["Driver"], "host");
    assert_eq!(v[1]["Driver"], "null");
    assert_eq!(v[1]["Containers"], serde_json::json!({}));

    let bad = env.berth(&["network", "inspect", "nope"]);
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stderr.contains("No such network: nope"), "{bad:?}");

    if let Some(o) = env.docker(&["network", "ls"]) {
        let o = o.ok();
        for name in ["bridge", "host", "none"] {
            assert!(o.stdout.contains(name), "{o:?}");
        }
        assert!(o.stdout.contains("null"), "{o:?}");
        let o = env
            .docker(&[
                "network",
                "inspect",
                "-f",
                "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}} {{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}}",
                "bridge",
            ])
            .unwrap()
            .ok();
        assert_eq!(o.trimmed(), format!("172.17.0.0/16 172.17.0.1 c1 {ip}/16"));
        let o = env.docker(&["network", "inspect", "bridge"]).unwrap().ok();
        assert!(o.stdout.contains("\"berth0\""), "{o:?}");
        let bad = env.docker(&["network", "inspect", "nope"]).unwrap();
        assert_eq!(bad.code, 1, "{bad:?}");
    }
    env.stop_daemon();
    env.start_daemon();
    let again = env
        .berth(&["network", "ls", "-q", "--no-trunc", "-f", "name=bridge"])
        .ok();
    assert_eq!(again.trimmed(), id);
}

/// Kills and reaps a child when the test ends, however it ends.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        // SAFETY: kill(2) of our own child.
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sh_in_daemon_netns(env: &Env, script: &str) -> common::Out {
    let o = env.in_daemon_netns(&["sh", "-c", script]).output().unwrap();
    common::Out::from(o)
}

/// A dockerd that turned `ip_forward` on itself sets iptables' FORWARD policy to DROP, which
/// would drop everything berth's bridges forward; berth keeps accept rules for its bridges in
/// Docker's DOCKER-USER chain (and nothing else of Docker's), so containers still get out.
#[test]
fn containers_get_out_when_dockers_firewall_drops_forwarding() {
    let Some(dockerd) = common::dockerd_path() else {
        eprintln!("note: dockerd is not installed; skipped");
        return;
    };
    let mut env = Env::new().with_busybox();
    // An "outside" host: a namespace behind a veth, at 198.51.100.2.
    let outside = Reaped(
        std::process::Command::new("unshare")
            .args(["--net", "--", "sleep", "300"])
            .spawn()
            .unwrap(),
    );
    let opid = outside.0.id();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let o = sh_in_daemon_netns(
        &env,
        &format!(
            "ip link add ext0 type veth peer name ext1 netns {opid} && \
             ip addr add 198.51.100.1/24 dev ext0 && ip link set ext0 up && \
             nsenter --net=/proc/{opid}/ns/net sh -c 'ip addr add 198.51.100.2/24 dev ext1 && ip link set ext1 up && ip link set lo up'"
        ),
    );
    assert_eq!(o.code, 0, "{o:?}");
    // Docker starts where forwarding is off, so it turns it on and sets the DROP policy.
    let d = env.dir.path().join("dockerd");
    std::fs::create_dir_all(&d).unwrap();
    sh_in_daemon_netns(&env, "echo 0 > /proc/sys/net/ipv4/ip_forward").ok();
    let tag = format!("{:08x}", rand::random::<u32>());
    let log = std::fs::File::create(d.join("log")).unwrap();
    let sock = d.join("docker.sock");
    let _docker = Reaped(
        env.in_daemon_netns(&[
            dockerd.to_str().unwrap(),
            "--data-root",
            d.join("data").to_str().unwrap(),
            "--exec-root",
            d.join("r").to_str().unwrap(),
            "--pidfile",
            d.join("pid").to_str().unwrap(),
            "-H",
            &format!("unix://{}", sock.display()),
            "--cgroup-parent",
            &format!("berth-test-dockerd-{tag}"),
            "--containerd-namespace",
            &format!("berth-test-{tag}"),
            "--containerd-plugins-namespace",
            &format!("berth-test-{tag}-plugins"),
        ])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap(),
    );
    // Up and done with its firewall: it answers.
    env.eventually("dockerd answers", || {
        std::os::unix::net::UnixStream::connect(&sock)
            .and_then(|mut c| {
                use std::io::{Read, Write};
                c.write_all(b"GET /_ping HTTP/1.0\r\n\r\n")?;
                let mut s = String::new();
                c.read_to_string(&mut s)?;
                Ok(s.contains("200 OK"))
            })
            .unwrap_or(false)
    });
    env.eventually("dockerd sets the FORWARD policy to DROP", || {
        sh_in_daemon_netns(&env, "iptables -S FORWARD")
            .stdout
            .contains("-P FORWARD DROP")
    });
    // berth, started again, finds Docker's chain.
    env.stop_daemon();
    env.start_daemon();
    env.berth(&["network", "create", "outnet"]).ok();
    for net in ["bridge", "outnet"] {
        let o = env.berth(&[
            "run",
            "--rm",
            "--network",
            net,
            "busybox",
            "ping",
            "-c",
            "1",
            "-W",
            "3",
            "198.51.100.2",
        ]);
        let dbg = sh_in_daemon_netns(
            &env,
            "iptables -S; ip -o addr; ip route; nft list table ip berth",
        )
        .stdout;
        assert_eq!(o.code, 0, "{net}: {o:?}\n{dbg}\n{}", env.daemon_log());
    }
    // Only berth's own, marked rules are in DOCKER-USER, listed by iptables without
    // complaint, and they follow the networks.
    let rules = sh_in_daemon_netns(&env, "iptables -S DOCKER-USER")
        .ok()
        .stdout;
    let ours = rules
        .lines()
        .filter(|l| l.contains("berth: forward"))
        .count();
    assert_eq!(ours, 4, "{rules}");
    assert!(rules.contains("-A DOCKER-USER -j RETURN"), "{rules}");
    env.berth(&["network", "rm", "outnet"]).ok();
    let rules = sh_in_daemon_netns(&env, "iptables -S DOCKER-USER")
        .ok()
        .stdout;
    assert_eq!(
        rules
            .lines()
            .filter(|l| l.contains("berth: forward"))
            .count(),
        2,
        "{rules}"
    );
    assert!(sh_in_daemon_netns(&env, "iptables -S FORWARD")
        .ok()
        .stdout
        .contains("-P FORWARD DROP"));
}
