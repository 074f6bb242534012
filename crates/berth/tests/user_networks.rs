//! User-defined networks (issue 5): `network create/ls/inspect/rm/prune`, `--network <net>`
//! with `--network-alias` and `--ip`, `network connect/disconnect` while a container runs,
//! the embedded DNS server (names, aliases, short ids, `name.network`, reverse lookups,
//! forwarding), `--internal`, and nothing left behind (bridges, veths, leases, rules).
//! Each test's daemon runs in its own network namespace.

mod common;
use common::Env;
use serde_json::Value;

fn inspect(env: &Env, what: &[&str]) -> Value {
    let mut args = vec!["inspect"];
    args.extend_from_slice(what);
    let o = env.berth(&args).ok();
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    v[0].clone()
}

fn net_inspect(env: &Env, name: &str) -> Value {
    let o = env.berth(&["network", "inspect", name]).ok();
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    v[0].clone()
}

/// `ip -o <args>` in the daemon's namespace.
fn ip_in_daemon_ns(env: &Env, args: &[&str]) -> String {
    let mut a = vec!["ip", "-o"];
    a.extend_from_slice(args);
    let o = env.in_daemon_netns(&a).output().unwrap();
    assert!(o.status.success(), "{o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The links of the daemon's namespace, by name.
fn links(env: &Env) -> Vec<String> {
    ip_in_daemon_ns(env, &["link", "show"])
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

fn nft_table(env: &Env) -> String {
    let o = env
        .in_daemon_netns(&["nft", "list", "table", "ip", "berth"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A container's address on network `net`.
fn ip_on(env: &Env, name: &str, net: &str) -> String {
    inspect(env, &[name])["NetworkSettings"]["Networks"][net]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The leases of a network's file: address → container id.
fn leases(env: &Env, id: &str) -> serde_json::Map<String, Value> {
    let p = env.data_root.join(format!("network/leases/{id}.json"));
    let v: Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
    v["leases"].as_object().cloned().unwrap_or_default()
}

#[test]
fn containers_on_a_user_network_find_each_other_by_name_alias_and_short_id() {
    let env = Env::new().with_busybox();
    let id = env
        .berth(&[
            "network",
            "create",
            "--subnet",
            "10.77.0.0/24",
            "--label",
            "team=web",
            "appnet",
        ])
        .ok()
        .trimmed()
        .to_string();
    assert_eq!(id.len(), 64, "{id}");
    let net = net_inspect(&env, "appnet");
    assert_eq!(net["Id"], id.as_str());
    assert_eq!(net["Driver"], "bridge");
    assert_eq!(net["IPAM"]["Config"][0]["Subnet"], "10.77.0.0/24");
    assert_eq!(net["IPAM"]["Config"][0]["Gateway"], "10.77.0.1");
    assert_eq!(net["Labels"]["team"], "web");
    // Its bridge is br-<id>, with the gateway's address.
    let bridge = format!("br-{}", &id[..12]);
    assert!(links(&env).contains(&bridge), "{:?}", links(&env));
    assert!(ip_in_daemon_ns(&env, &["-4", "addr", "show", &bridge]).contains("10.77.0.1/24"));
    assert!(
        nft_table(&env).contains("10.77.0.0/24"),
        "{}",
        nft_table(&env)
    );

    env.berth(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "appnet",
        "--network-alias",
        "www",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /w && echo hello-web > /w/index.html && exec httpd -f -p 80 -h /w",
    ])
    .ok();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "db",
        "--network",
        "appnet",
        "--ip",
        "10.77.0.50",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    let web = inspect(&env, &["web"]);
    let web_ip = web["NetworkSettings"]["Networks"]["appnet"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(web_ip.starts_with("10.77.0."), "{web_ip}");
    assert_eq!(
        web["NetworkSettings"]["Networks"]["appnet"]["Gateway"],
        "10.77.0.1"
    );
    assert_eq!(
        web["NetworkSettings"]["Networks"]["appnet"]["NetworkID"],
        id.as_str()
    );
    let aliases = web["NetworkSettings"]["Networks"]["appnet"]["Aliases"].to_string();
    let web_id = web["Id"].as_str().unwrap().to_string();
    assert!(
        aliases.contains("www") && aliases.contains(&web_id[..12]),
        "{aliases}"
    );
    // Not on the default bridge: no top-level address, as Docker's.
    assert_eq!(web["NetworkSettings"]["IPAddress"], "");
    let db = inspect(&env, &["db"]);
    assert_eq!(
        db["NetworkSettings"]["Networks"]["appnet"]["IPAddress"],
        "10.77.0.50"
    );
    assert_eq!(
        db["NetworkSettings"]["Networks"]["appnet"]["IPAMConfig"]["IPv4Address"],
        "10.77.0.50"
    );

    // resolv.conf points at the embedded server.
    let conf = env.berth(&["exec", "db", "cat", "/etc/resolv.conf"]).ok();
    assert!(
        conf.stdout.contains("nameserver 127.0.0.11"),
        "{}",
        conf.stdout
    );
    assert!(conf.stdout.contains("ndots:0"), "{}", conf.stdout);

    // By name, alias, short id and name.network: the same address; ping and wget work.
    for name in ["web", "www", &web_id[..12], "web.appnet", "WEB"] {
        let o = env.berth(&["exec", "db", "nslookup", name]).ok();
        assert!(o.stdout.contains(&web_ip), "{name}: {}", o.stdout);
    }
    env.berth(&["exec", "db", "ping", "-c", "1", "-W", "2", "web"])
        .ok();
    let o = env
        .berth(&["exec", "db", "timeout", "5", "wget", "-qO-", "http://www/"])
        .ok();
    assert_eq!(o.stdout.trim(), "hello-web");
    // A reverse lookup names the container on its network.
    let o = env.berth(&["exec", "db", "nslookup", &web_ip]).ok();
    assert!(o.stdout.contains("web.appnet"), "{}", o.stdout);
    // A name nobody has is not found.
    let o = env.berth(&["exec", "db", "nslookup", "nosuchname"]);
    assert_ne!(o.code, 0, "{o:?}");

    // A container on the default bridge resolves none of them, and has no embedded server.
    let o = env
        .berth(&["run", "--rm", "busybox", "cat", "/etc/resolv.conf"])
        .ok();
    assert!(!o.stdout.contains("127.0.0.11"), "{}", o.stdout);

    // The network lists its containers; ls shows it; rm refuses while they run.
    let net = net_inspect(&env, "appnet");
    assert_eq!(net["Containers"].as_object().unwrap().len(), 2, "{net}");
    let ls = env.berth(&["network", "ls"]).ok();
    assert!(ls.stdout.contains("appnet"), "{}", ls.stdout);
    let o = env.berth(&["network", "rm", "appnet"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("has active endpoints"), "{o:?}");
    assert_eq!(leases(&env, &id).len(), 2);

    env.berth(&["rm", "-f", "web", "db"]).ok();
    assert!(leases(&env, &id).is_empty());
    assert_eq!(
        env.berth(&["network", "rm", "appnet"]).ok().trimmed(),
        "appnet"
    );
    assert!(!links(&env).contains(&bridge));
    assert!(!nft_table(&env).contains("10.77.0.0/24"));
    assert!(!env
        .data_root
        .join(format!("network/leases/{id}.json"))
        .exists());
    assert!(!env
        .data_root
        .join(format!("network/networks/{id}.json"))
        .exists());
    let o = env.berth(&["network", "inspect", "appnet"]);
    assert_ne!(o.code, 0);
}

#[test]
fn connect_and_disconnect_while_running() {
    let env = Env::new().with_busybox();
    env.berth(&["network", "create", "--subnet", "10.78.0.0/24", "back"])
        .ok();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "api",
        "--network",
        "back",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    // On the default bridge at first, with one interface.
    env.berth(&["run", "-d", "--name", "app", "busybox", "sleep", "300"])
        .ok();
    let o = env.berth(&["exec", "app", "ip", "-o", "-4", "addr"]).ok();
    assert!(
        o.stdout.contains("eth0") && !o.stdout.contains("eth1"),
        "{}",
        o.stdout
    );
    assert!(!o.stdout.contains("10.78.0."), "{}", o.stdout);

    env.berth(&[
        "network",
        "connect",
        "--alias",
        "frontend",
        "--ip",
        "10.78.0.9",
        "back",
        "app",
    ])
    .ok();
    let o = env
        .berth(&["exec", "app", "ip", "-o", "-4", "addr", "show", "eth1"])
        .ok();
    assert!(o.stdout.contains("10.78.0.9/24"), "{}", o.stdout);
    // It keeps its default route on the default bridge.
    let o = env.berth(&["exec", "app", "ip", "route"]).ok();
    assert!(o.stdout.contains("default via 172.17.0.1"), "{}", o.stdout);
    let app = inspect(&env, &["app"]);
    let nets = app["NetworkSettings"]["Networks"]
        .as_object()
        .unwrap()
        .clone();
    assert!(
        nets.contains_key("bridge") && nets.contains_key("back"),
        "{nets:?}"
    );
    assert_eq!(nets["back"]["IPAddress"], "10.78.0.9");
    // Both ways by name now: its resolv.conf was switched to the embedded server.
    let o = env.berth(&["exec", "app", "cat", "/etc/resolv.conf"]).ok();
    assert!(o.stdout.contains("127.0.0.11"), "{}", o.stdout);
    env.berth(&["exec", "app", "ping", "-c", "1", "-W", "2", "api"])
        .ok();
    let o = env.berth(&["exec", "api", "nslookup", "frontend"]).ok();
    assert!(o.stdout.contains("10.78.0.9"), "{}", o.stdout);
    env.berth(&["exec", "api", "ping", "-c", "1", "-W", "2", "app"])
        .ok();
    // Connecting twice is refused.
    let o = env.berth(&["network", "connect", "back", "app"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("already exists in network back"), "{o:?}");

    env.berth(&["network", "disconnect", "back", "app"]).ok();
    let o = env.berth(&["exec", "app", "ip", "-o", "link"]).ok();
    assert!(!o.stdout.contains("eth1"), "{}", o.stdout);
    let o = env.berth(&["exec", "api", "nslookup", "app"]);
    assert_ne!(o.code, 0, "{o:?}");
    let o = env.berth(&["exec", "api", "ping", "-c", "1", "-W", "1", "10.78.0.9"]);
    assert_ne!(o.code, 0, "{o:?}");
    let app = inspect(&env, &["app"]);
    assert!(
        app["NetworkSettings"]["Networks"]["back"].is_null(),
        "{app}"
    );
    let o = env.berth(&["network", "disconnect", "back", "app"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stderr.contains("is not connected to network back"),
        "{o:?}"
    );

    // A stopped container: connect is kept and applied at start, as eth1.
    env.berth(&["create", "--name", "later", "busybox", "sleep", "300"])
        .ok();
    env.berth(&["network", "connect", "--alias", "late", "back", "later"])
        .ok();
    let later = inspect(&env, &["later"]);
    assert_eq!(
        later["NetworkSettings"]["Networks"]["back"]["IPAddress"],
        ""
    );
    env.berth(&["start", "later"]).ok();
    let o = env
        .berth(&["exec", "later", "ip", "-o", "-4", "addr", "show", "eth1"])
        .ok();
    assert!(o.stdout.contains("10.78.0."), "{}", o.stdout);
    let o = env.berth(&["exec", "api", "nslookup", "late"]).ok();
    assert!(o.stdout.contains("10.78.0."), "{}", o.stdout);

    // Disconnected from the network of its default route, it gets one through another.
    env.berth(&["network", "connect", "back", "app"]).ok();
    env.berth(&["network", "disconnect", "bridge", "app"]).ok();
    let o = env.berth(&["exec", "app", "ip", "route"]).ok();
    assert!(o.stdout.contains("default via 10.78.0.1"), "{}", o.stdout);
    let app = inspect(&env, &["app"]);
    assert_eq!(
        app["NetworkSettings"]["Networks"]["back"]["Gateway"],
        "10.78.0.1"
    );
    assert!(
        app["NetworkSettings"]["Networks"]["bridge"].is_null(),
        "{app}"
    );

    // Bad input changes nothing.
    let o = env.berth(&["network", "connect", "nosuchnet", "app"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("network nosuchnet not found"), "{o:?}");
    let o = env.berth(&["network", "connect", "back", "nosuchcontainer"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stderr.contains("No such container: nosuchcontainer"),
        "{o:?}"
    );
    let o = env.berth(&["network", "connect", "--alias", "x", "bridge", "later"]);
    assert_eq!(o.code, 1, "{o:?}");
    env.berth(&["rm", "-f", "app", "api", "later"]).ok();
    env.berth(&["network", "rm", "back"]).ok();
}

/// A minimal DNS server for the tests: answers every A query with 192.0.2.7 (Python).
const UPSTREAM: &str = r#"
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
print("ready", flush=True)
while True:
    q, a = s.recvfrom(512)
    qid, = struct.unpack("!H", q[:2])
    end = 12
    while q[end] != 0:
        end += q[end] + 1
    question = q[12:end + 5]
    hdr = struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0)
    ans = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([192, 0, 2, 7])
    s.sendto(hdr + question + ans, a)
"#;

#[test]
fn other_names_are_forwarded_from_the_daemons_namespace() {
    let env = Env::new().with_busybox();
    // An upstream on the loopback of the daemon's namespace: Docker's resolver could not reach
    // it (it forwards from the container's namespace); berth's forwards from the daemon's.
    let mut up = env.in_daemon_netns(&["python3", "-c", UPSTREAM]);
    up.stdout(std::process::Stdio::piped());
    let mut up = common::Streaming::spawn(up);
    assert!(up.wait_line(10, |l| l.contains("ready")).is_some());
    env.berth(&["network", "create", "fwd"]).ok();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "cc",
        "--network",
        "fwd",
        "--dns",
        "127.0.0.1",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    let o = env.berth(&["exec", "cc", "nslookup", "example.org"]).ok();
    assert!(o.stdout.contains("192.0.2.7"), "{}", o.stdout);
    // Its resolv.conf still names only the embedded server.
    let o = env.berth(&["exec", "cc", "cat", "/etc/resolv.conf"]).ok();
    assert!(o.stdout.contains("nameserver 127.0.0.11"), "{}", o.stdout);
    assert!(!o.stdout.contains("nameserver 127.0.0.1\n"), "{}", o.stdout);
    env.berth(&["rm", "-f", "cc"]).ok();
    env.berth(&["network", "rm", "fwd"]).ok();
}

#[test]
fn internal_networks_have_no_way_out() {
    let env = Env::new().with_busybox();
    env.berth(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.79.0.0/24",
        "sealed",
    ])
    .ok();
    let net = net_inspect(&env, "sealed");
    assert_eq!(net["Internal"], true);
    assert!(
        !nft_table(&env).contains("10.79.0.0/24"),
        "{}",
        nft_table(&env)
    );
    env.berth(&[
        "run",
        "-d",
        "--name",
        "ca",
        "--network",
        "sealed",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "cb",
        "--network",
        "sealed",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    // No default route; the neighbours are reachable by name.
    let o = env.berth(&["exec", "ca", "ip", "route"]).ok();
    assert!(!o.stdout.contains("default"), "{}", o.stdout);
    env.berth(&["exec", "ca", "ping", "-c", "1", "-W", "2", "cb"])
        .ok();
    // Nothing outside the subnet: not the default bridge's gateway.
    let o = env.berth(&["exec", "ca", "ping", "-c", "1", "-W", "1", "172.17.0.1"]);
    assert_ne!(o.code, 0, "{o:?}");
    env.berth(&["rm", "-f", "ca", "cb"]).ok();
    env.berth(&["network", "rm", "sealed"]).ok();
}

#[test]
fn bad_network_input_is_refused_and_changes_nothing() {
    let env = Env::new().with_busybox();
    env.berth(&["network", "create", "--subnet", "10.80.0.0/16", "one"])
        .ok();
    let before = env.berth(&["network", "ls", "-q"]).ok().stdout;
    let links_before = links(&env);
    let bad: &[(&[&str], &str)] = &[
        (
            &["network", "create", "one"],
            "network with name one already exists",
        ),
        (
            &["network", "create", "--subnet", "10.80.5.0/24", "two"],
            "Pool overlaps with other one on this address space",
        ),
        (
            &["network", "create", "--subnet", "10.81.0.0/33", "two"],
            "10.81.0.0/33",
        ),
        (
            &["network", "create", "--subnet", "10.81.0.1/16", "two"],
            "10.81.0.1/16",
        ),
        (
            &["network", "create", "-d", "overlay2", "two"],
            "plugin \"overlay2\" not found",
        ),
        (&["network", "create", "bridge"], "bridge"),
        (
            &["network", "rm", "bridge"],
            "pre-defined network and cannot be removed",
        ),
        (&["network", "rm", "nosuch"], "No such network: nosuch"),
    ];
    for (args, msg) in bad {
        let o = env.berth(args);
        assert_ne!(o.code, 0, "{args:?}: {o:?}");
        assert!(o.stderr.contains(msg), "{args:?}: {o:?}");
    }
    // --ip on the default bridge, or on a network whose subnet was chosen, is refused.
    let o = env.berth(&[
        "run",
        "--rm",
        "--network",
        "bridge",
        "--ip",
        "172.17.0.9",
        "busybox",
        "true",
    ]);
    assert_eq!(o.code, 125, "{o:?}");
    assert!(
        o.stderr
            .contains("user specified IP address is supported on user defined networks only"),
        "{o:?}"
    );
    env.berth(&["network", "create", "auto"]).ok();
    let o = env.berth(&[
        "run",
        "--rm",
        "--network",
        "auto",
        "--ip",
        "10.0.0.9",
        "busybox",
        "true",
    ]);
    assert_eq!(o.code, 125, "{o:?}");
    assert!(o.stderr.contains("user configured subnets"), "{o:?}");
    let o = env.berth(&["run", "--rm", "--network", "nosuch", "busybox", "true"]);
    assert_eq!(o.code, 125, "{o:?}");
    assert!(o.stderr.contains("network nosuch not found"), "{o:?}");
    // As dockerd: the network is looked up at start, and a --rm container that cannot
    // start is removed.
    assert_eq!(env.berth(&["ps", "-aq"]).ok().trimmed(), "");
    env.berth(&[
        "create",
        "--name",
        "orphan",
        "--network",
        "nosuch",
        "busybox",
        "true",
    ])
    .ok();
    let o = env.berth(&["start", "orphan"]);
    assert!(o.stderr.contains("network nosuch not found"), "{o:?}");
    env.berth(&["rm", "orphan"]).ok();
    // An address taken: the second container does not start and keeps nothing.
    env.berth(&[
        "run",
        "-d",
        "--name",
        "cx",
        "--network",
        "one",
        "--ip",
        "10.80.0.5",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    let o = env.berth(&[
        "run",
        "-d",
        "--name",
        "cy",
        "--network",
        "one",
        "--ip",
        "10.80.0.5",
        "busybox",
        "sleep",
        "300",
    ]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("Address already in use"), "{o:?}");
    let id = net_inspect(&env, "one")["Id"].as_str().unwrap().to_string();
    assert_eq!(leases(&env, &id).len(), 1);
    env.berth(&["rm", "-f", "cx", "cy"]).ok();
    env.berth(&["network", "rm", "auto"]).ok();
    assert_eq!(env.berth(&["network", "ls", "-q"]).ok().stdout, before);
    assert_eq!(links(&env), links_before);
}

#[test]
fn prune_removes_unused_networks_and_nothing_leaks() {
    let mut env = Env::new().with_busybox();
    env.berth(&["network", "create", "--label", "keep=yes", "kept"])
        .ok();
    env.berth(&["network", "create", "gone1"]).ok();
    env.berth(&["network", "create", "used"]).ok();
    let used_id = net_inspect(&env, "used")["Id"]
        .as_str()
        .unwrap()
        .to_string();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "cu",
        "--network",
        "used",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    let o = env
        .berth(&["network", "prune", "-f", "--filter", "label!=keep=yes"])
        .ok();
    assert!(o.stdout.contains("gone1"), "{}", o.stdout);
    assert!(
        !o.stdout.contains("kept") && !o.stdout.contains("used"),
        "{}",
        o.stdout
    );
    let ls = env
        .berth(&["network", "ls", "--format", "{{.Name}}"])
        .ok()
        .stdout;
    assert!(
        ls.contains("kept") && ls.contains("used") && !ls.contains("gone1"),
        "{ls}"
    );

    // 200 containers come and go on both kinds of network: nothing stays.
    for i in 0..200 {
        let net = if i % 2 == 0 { "used" } else { "bridge" };
        env.berth(&["run", "--rm", "--network", net, "busybox", "true"])
            .ok();
    }
    // After a kill of the daemon, the live container keeps its address and DNS, and one
    // removed while the daemon was away gives everything back.
    env.berth(&[
        "run",
        "-d",
        "--name",
        "cv",
        "--network",
        "used",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    let v_pid = inspect(&env, &["cv"])["State"]["Pid"].as_i64().unwrap();
    env.kill_daemon();
    // SAFETY: kill(2) of a container's init this test started.
    unsafe {
        libc::kill(v_pid as i32, libc::SIGKILL);
    }
    env.start_daemon();
    env.eventually("cv is seen exited", || {
        env.berth(&["inspect", "-f", "{{.State.Status}}", "cv"])
            .trimmed()
            == "exited"
    });
    let o = env.berth(&["exec", "cu", "nslookup", "cu"]).ok();
    let u_ip = ip_on(&env, "cu", "used");
    assert!(o.stdout.contains(&u_ip), "{}", o.stdout);
    assert_eq!(
        leases(&env, &used_id).len(),
        1,
        "{:?}",
        leases(&env, &used_id)
    );
    env.berth(&["rm", "-f", "cu", "cv"]).ok();
    assert!(leases(&env, &used_id).is_empty());
    let bridge_leases = env.data_root.join("network/leases/bridge.json");
    let v: Value = serde_json::from_slice(&std::fs::read(bridge_leases).unwrap()).unwrap();
    assert!(v["leases"].as_object().is_none_or(|m| m.is_empty()), "{v}");
    env.eventually("no veth is left", || {
        !links(&env).iter().any(|l| l.starts_with("veth"))
    });
    let o = env.berth(&["network", "prune", "-f"]).ok();
    assert!(
        o.stdout.contains("kept") && o.stdout.contains("used"),
        "{}",
        o.stdout
    );
    assert!(
        !links(&env).iter().any(|l| l.starts_with("br-")),
        "{:?}",
        links(&env)
    );
    let table = nft_table(&env);
    assert_eq!(table.matches("masquerade").count(), 1, "{table}");
    let dir = env.data_root.join("network/networks");
    assert_eq!(std::fs::read_dir(dir).unwrap().count(), 0);
}

#[test]
fn docker_cli_drives_user_networks() {
    let env = Env::new().with_busybox();
    let Some(o) = env.docker(&["network", "create", "--subnet", "10.82.0.0/24", "dnet"]) else {
        return; // no docker CLI on this machine
    };
    assert_eq!(o.code, 0, "{o:?}");
    let ls = env.docker(&["network", "ls"]).unwrap();
    assert!(
        ls.stdout.contains("dnet") && ls.stdout.contains("bridge"),
        "{ls:?}"
    );
    let o = env
        .docker(&[
            "run",
            "-d",
            "--name",
            "d1",
            "--network",
            "dnet",
            "--network-alias",
            "one",
            "busybox",
            "sleep",
            "300",
        ])
        .unwrap();
    assert_eq!(o.code, 0, "{o:?}");
    let o = env
        .docker(&["run", "-d", "--name", "d2", "busybox", "sleep", "300"])
        .unwrap();
    assert_eq!(o.code, 0, "{o:?}");
    let o = env
        .docker(&["network", "connect", "--ip", "10.82.0.20", "dnet", "d2"])
        .unwrap();
    assert_eq!(o.code, 0, "{o:?}");
    let o = env
        .docker(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.dnet.IPAddress}}",
            "d2",
        ])
        .unwrap();
    assert_eq!(o.stdout.trim(), "10.82.0.20", "{o:?}");
    let o = env.docker(&["exec", "d2", "nslookup", "one"]).unwrap();
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.contains("10.82.0."), "{o:?}");
    let o = env
        .docker(&["network", "inspect", "-f", "{{len .Containers}}", "dnet"])
        .unwrap();
    assert_eq!(o.stdout.trim(), "2", "{o:?}");
    let o = env
        .docker(&["network", "disconnect", "dnet", "d2"])
        .unwrap();
    assert_eq!(o.code, 0, "{o:?}");
    let o = env.docker(&["network", "rm", "dnet"]).unwrap();
    assert_ne!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("has active endpoints"), "{o:?}");
    env.docker(&["rm", "-f", "d1", "d2"]).unwrap();
    let o = env.docker(&["network", "rm", "dnet"]).unwrap();
    assert_eq!(o.code, 0, "{o:?}");
    let o = env.docker(&["network", "prune", "-f"]).unwrap();
    assert_eq!(o.code, 0, "{o:?}");
}

#[test]
fn ipv6_networks_give_containers_v6_addresses_routes_and_names() {
    if !std::path::Path::new("/proc/sys/net/ipv6").exists() {
        eprintln!("note: this host has no IPv6; skipped");
        return;
    }
    let env = Env::new().with_busybox();
    env.berth(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "10.90.0.0/24",
        "--subnet",
        "fd00:90::/64",
        "v6net",
    ])
    .ok();
    let net = net_inspect(&env, "v6net");
    assert_eq!(net["EnableIPv6"], true, "{net}");
    let cfg = net["IPAM"]["Config"].to_string();
    assert!(
        cfg.contains("fd00:90::/64") && cfg.contains("fd00:90::1"),
        "{cfg}"
    );
    env.berth(&[
        "run",
        "-d",
        "--name",
        "s6",
        "--network",
        "v6net",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "c6",
        "--network",
        "v6net",
        "--ip6",
        "fd00:90::99",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    let s6 = inspect(&env, &["s6"]);
    let ip6 = s6["NetworkSettings"]["Networks"]["v6net"]["GlobalIPv6Address"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ip6.starts_with("fd00:90::"), "{s6}");
    assert_eq!(
        s6["NetworkSettings"]["Networks"]["v6net"]["GlobalIPv6PrefixLen"],
        64
    );
    assert_eq!(
        s6["NetworkSettings"]["Networks"]["v6net"]["IPv6Gateway"],
        "fd00:90::1"
    );
    let c6 = inspect(&env, &["c6"]);
    assert_eq!(
        c6["NetworkSettings"]["Networks"]["v6net"]["GlobalIPv6Address"],
        "fd00:90::99"
    );
    let o = env
        .berth(&["exec", "c6", "ip", "-6", "addr", "show", "eth0"])
        .ok();
    // Usable at once: the global address is not waiting for duplicate detection.
    let global = o.stdout.lines().find(|l| l.contains("fd00:90::99/64"));
    assert!(
        global.is_some_and(|l| !l.contains("tentative")),
        "{}",
        o.stdout
    );
    let o = env.berth(&["exec", "c6", "ip", "-6", "route"]).ok();
    assert!(o.stdout.contains("default via fd00:90::1"), "{}", o.stdout);
    // Over IPv6 to the gateway and the neighbour, by address and by name (AAAA).
    env.berth(&[
        "exec",
        "c6",
        "ping",
        "-6",
        "-c",
        "1",
        "-W",
        "2",
        "fd00:90::1",
    ])
    .ok();
    env.berth(&["exec", "c6", "ping", "-6", "-c", "1", "-W", "2", &ip6])
        .ok();
    let o = env
        .berth(&["exec", "c6", "nslookup", "-type=aaaa", "s6"])
        .ok();
    assert!(o.stdout.contains(&ip6), "{}", o.stdout);
    let id = net["Id"].as_str().unwrap().to_string();
    let v6_leases = env.data_root.join(format!("network/leases/{id}.v6.json"));
    assert!(v6_leases.exists());
    env.berth(&["rm", "-f", "s6", "c6"]).ok();
    let v: Value = serde_json::from_slice(&std::fs::read(&v6_leases).unwrap()).unwrap();
    assert!(v["leases"].as_object().is_none_or(|m| m.is_empty()), "{v}");
    env.berth(&["network", "rm", "v6net"]).ok();
    assert!(!v6_leases.exists());
    // --ip6 on a network without IPv6, or a v6 subnet without --ipv6, is refused.
    env.berth(&["network", "create", "--subnet", "10.91.0.0/24", "v4only"])
        .ok();
    let o = env.berth(&[
        "run",
        "--rm",
        "--network",
        "v4only",
        "--ip6",
        "fd00:91::5",
        "busybox",
        "true",
    ]);
    assert_ne!(o.code, 0, "{o:?}");
    let o = env.berth(&["network", "create", "--subnet", "fd00:92::/64", "nov6"]);
    assert_ne!(o.code, 0, "{o:?}");
    env.berth(&["network", "rm", "v4only"]).ok();
}

#[test]
fn networks_are_kept_apart_but_published_ports_answer_from_any() {
    let mut env = Env::new().with_busybox();
    env.berth(&["network", "create", "--subnet", "10.93.0.0/24", "red"])
        .ok();
    env.berth(&["network", "create", "--subnet", "10.94.0.0/24", "blue"])
        .ok();
    env.berth(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.95.0.0/24",
        "vault",
    ])
    .ok();
    let serve = "mkdir -p /w && echo from-$HOSTNAME > /w/index.html && exec httpd -f -p 80 -h /w";
    env.berth(&[
        "run",
        "-d",
        "--name",
        "rweb",
        "--hostname",
        "rweb",
        "--network",
        "red",
        "-p",
        "8093:80",
        "busybox",
        "sh",
        "-c",
        serve,
    ])
    .ok();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "vweb",
        "--hostname",
        "vweb",
        "--network",
        "vault",
        "busybox",
        "sh",
        "-c",
        serve,
    ])
    .ok();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "bcli",
        "--network",
        "blue",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    env.berth(&["run", "-d", "--name", "dcli", "busybox", "sleep", "300"])
        .ok();
    let rweb = ip_on(&env, "rweb", "red");
    let vweb = ip_on(&env, "vweb", "vault");
    let get = |env: &Env, from: &str, url: &str| {
        env.berth(&["exec", from, "timeout", "2", "wget", "-qO-", url])
    };
    // Not from another user network, nor from the default bridge, nor into an internal one.
    for (from, to) in [
        ("bcli", &rweb),
        ("dcli", &rweb),
        ("bcli", &vweb),
        ("dcli", &vweb),
    ] {
        let o = get(&env, from, &format!("http://{to}/"));
        assert_ne!(o.code, 0, "{from} reached {to}: {o:?}");
    }
    // A published port answers from any network, through the host.
    let gw = net_inspect(&env, "blue")["IPAM"]["Config"][0]["Gateway"]
        .as_str()
        .unwrap()
        .to_string();
    let o = get(&env, "bcli", &format!("http://{gw}:8093/")).ok();
    assert_eq!(o.stdout.trim(), "from-rweb");
    let o = get(&env, "dcli", "http://172.17.0.1:8093/").ok();
    assert_eq!(o.stdout.trim(), "from-rweb");
    // Connected to red as well, bcli reaches rweb there.
    env.berth(&["network", "connect", "red", "bcli"]).ok();
    let o = get(&env, "bcli", "http://rweb/").ok();
    assert_eq!(o.stdout.trim(), "from-rweb");
    let table = nft_table(&env);
    assert!(
        table.contains("chain forward") && table.contains("ct status dnat accept"),
        "{table}"
    );

    // The names a container in another's namespace sees are that container's.
    let o = env
        .berth(&[
            "run",
            "--rm",
            "--network",
            "container:bcli",
            "busybox",
            "nslookup",
            "rweb",
        ])
        .ok();
    assert!(o.stdout.contains(&rweb), "{}", o.stdout);

    // Disconnected from the default bridge, a container stays off it, also after a restart.
    env.berth(&["network", "disconnect", "bridge", "dcli"]).ok();
    env.berth(&["restart", "-t", "0", "dcli"]).ok();
    let o = env.berth(&["exec", "dcli", "ip", "-o", "link"]).ok();
    assert!(!o.stdout.contains("eth0"), "{}", o.stdout);
    let nets = inspect(&env, &["dcli"])["NetworkSettings"]["Networks"].clone();
    assert!(nets.as_object().is_none_or(|m| m.is_empty()), "{nets}");
    env.berth(&["network", "connect", "bridge", "dcli"]).ok();
    let o = env
        .berth(&["exec", "dcli", "ip", "-o", "-4", "addr", "show", "eth0"])
        .ok();
    assert!(o.stdout.contains("172.17.0."), "{}", o.stdout);

    // Auxiliary addresses stay out of allocation across a daemon restart.
    env.berth(&[
        "network",
        "create",
        "--subnet",
        "10.96.0.0/29",
        "--aux-address",
        "h=10.96.0.2",
        "tiny",
    ])
    .ok();
    env.stop_daemon();
    env.start_daemon();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "t1",
        "--network",
        "tiny",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    assert_eq!(ip_on(&env, "t1", "tiny"), "10.96.0.3");
    env.berth(&["rm", "-f", "rweb", "vweb", "bcli", "dcli", "t1"])
        .ok();
    for n in ["red", "blue", "vault", "tiny"] {
        env.berth(&["network", "rm", n]).ok();
    }
}

#[test]
fn a_torn_leases_file_keeps_the_aux_addresses_and_the_live_leases() {
    // The leases are written in place; a crash in the middle of a write leaves a file that
    // does not parse. At start-up the network's aux addresses are reserved again and the
    // running containers' addresses leased again from their records.
    let mut env = Env::new().with_busybox();
    env.berth(&[
        "network",
        "create",
        "--subnet",
        "10.97.0.0/29",
        "--aux-address",
        "h=10.97.0.2",
        "torn",
    ])
    .ok();
    let id = net_inspect(&env, "torn")["Id"]
        .as_str()
        .unwrap()
        .to_string();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "keep",
        "--network",
        "torn",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    let k_ip = ip_on(&env, "keep", "torn");
    assert_ne!(k_ip, "10.97.0.2");
    env.kill_daemon();
    let path = env.data_root.join(format!("network/leases/{id}.json"));
    let text = std::fs::read(&path).unwrap();
    std::fs::write(&path, &text[..text.len() / 2]).unwrap();
    env.start_daemon();
    let l = leases(&env, &id);
    assert!(l.contains_key("10.97.0.2"), "{l:?}");
    assert!(l.contains_key(&k_ip), "{l:?}");
    env.berth(&[
        "run",
        "-d",
        "--name",
        "newc",
        "--network",
        "torn",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    let n_ip = ip_on(&env, "newc", "torn");
    assert!(n_ip != "10.97.0.2" && n_ip != k_ip, "{n_ip}");
    env.berth(&["rm", "-f", "keep", "newc"]).ok();
    env.berth(&["network", "rm", "torn"]).ok();
}
