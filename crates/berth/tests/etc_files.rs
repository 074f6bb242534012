//! `/etc/hosts` and `/etc/resolv.conf` from the container flags (issue 5): `--add-host`
//! (with `host-gateway`), `--dns`, `--dns-search`, `--dns-option`, through the berth CLI and
//! the docker CLI; what `inspect` shows; bad input refused with nothing created.

mod common;
use common::Env;
use serde_json::Value;

#[test]
fn add_host_lines_and_host_gateway() {
    let env = Env::new().with_busybox();
    let o = env
        .berth(&[
            "run",
            "--rm",
            "--hostname",
            "me",
            "--add-host",
            "db:10.1.2.3",
            "--add-host",
            "gw:host-gateway",
            "busybox",
            "cat",
            "/etc/hosts",
        ])
        .ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    let db = lines.iter().position(|l| *l == "10.1.2.3\tdb");
    let gw = lines.iter().position(|l| *l == "172.17.0.1\tgw");
    let me = lines.iter().position(|l| l.ends_with("\tme"));
    assert!(db.is_some() && gw.is_some() && me.is_some(), "{o:?}");
    // As Docker's: the defaults, the extra hosts, then the container's own line.
    assert!(
        lines[0] == "127.0.0.1\tlocalhost" && db < gw && gw < me,
        "{o:?}"
    );
}

#[test]
fn dns_flags_write_resolv_conf_and_inspect_shows_them() {
    let env = Env::new().with_busybox();
    let o = env
        .berth(&[
            "run",
            "--rm",
            "--dns",
            "10.0.0.53",
            "--dns",
            "10.0.0.54",
            "--dns-search",
            "example.com",
            "--dns-option",
            "ndots:2",
            "busybox",
            "cat",
            "/etc/resolv.conf",
        ])
        .ok();
    assert_eq!(
        o.stdout,
        "search example.com\nnameserver 10.0.0.53\nnameserver 10.0.0.54\noptions ndots:2\n"
    );
    // Without the flags: the host's file without loopback nameservers, or Google's.
    let o = env
        .berth(&["run", "--rm", "busybox", "cat", "/etc/resolv.conf"])
        .ok();
    assert!(o.stdout.contains("nameserver "), "{o:?}");
    assert!(!o.stdout.contains("nameserver 127."), "{o:?}");

    env.berth(&[
        "create",
        "--name",
        "cfg",
        "--add-host",
        "db:10.1.2.3",
        "--add-host",
        "gw:host-gateway",
        "--dns",
        "10.0.0.53",
        "--dns-search",
        "example.com",
        "--dns-option",
        "ndots:2",
        "busybox",
        "true",
    ])
    .ok();
    let v: Value = serde_json::from_str(&env.berth(&["inspect", "cfg"]).ok().stdout).unwrap();
    let hc = &v[0]["HostConfig"];
    assert_eq!(
        hc["ExtraHosts"],
        serde_json::json!(["db:10.1.2.3", "gw:host-gateway"])
    );
    assert_eq!(hc["Dns"], serde_json::json!(["10.0.0.53"]));
    assert_eq!(hc["DnsSearch"], serde_json::json!(["example.com"]));
    assert_eq!(hc["DnsOptions"], serde_json::json!(["ndots:2"]));
}

#[test]
fn bad_input_is_refused_and_creates_nothing() {
    let env = Env::new().with_busybox();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--add-host", "foo"],
            r#"invalid argument "foo" for "--add-host" flag: bad format for add-host: "foo""#,
        ),
        (
            &["--add-host", "foo:1.2.3.999"],
            r#"invalid argument "foo:1.2.3.999" for "--add-host" flag: invalid IP address in add-host: "1.2.3.999""#,
        ),
        (
            &["--dns", "nope"],
            r#"invalid argument "nope" for "--dns" flag: nope is not an ip address"#,
        ),
    ];
    for (flags, msg) in cases {
        for cmd in ["run", "create"] {
            let mut args = vec![cmd];
            args.extend_from_slice(flags);
            args.extend_from_slice(&["busybox", "true"]);
            let o = env.berth(&args);
            assert_eq!(o.code, 125, "{o:?}");
            assert!(o.stderr.contains(msg), "{o:?}");
        }
    }
    assert_eq!(env.berth(&["ps", "-aq"]).ok().stdout, "");
}

#[test]
fn docker_cli_add_host_and_dns() {
    let env = Env::new().with_busybox();
    let Some(o) = env.docker(&[
        "run",
        "--rm",
        "--add-host",
        "db:10.1.2.3",
        "--add-host",
        "gw:host-gateway",
        "busybox",
        "cat",
        "/etc/hosts",
    ]) else {
        return;
    };
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.contains("10.1.2.3\tdb\n"), "{o:?}");
    assert!(o.stdout.contains("172.17.0.1\tgw\n"), "{o:?}");
    let o = env
        .docker(&[
            "run",
            "--rm",
            "--dns",
            "10.0.0.53",
            "--dns-search",
            "example.com",
            "--dns-opt",
            "ndots:2",
            "busybox",
            "cat",
            "/etc/resolv.conf",
        ])
        .unwrap();
    assert_eq!(
        o.stdout, "search example.com\nnameserver 10.0.0.53\noptions ndots:2\n",
        "{o:?}"
    );
    // The docker CLI refuses a bad one itself; berth refuses it too from an API client.
    let o = env
        .docker(&["run", "--add-host", "foo", "busybox", "true"])
        .unwrap();
    assert_eq!(o.code, 125, "{o:?}");
    assert!(o.stderr.contains("bad format for add-host"), "{o:?}");
    assert_eq!(env.berth(&["ps", "-aq"]).ok().stdout, "");
}

#[test]
fn mac_address_from_berth_and_docker_cli() {
    let env = Env::new().with_busybox();
    let o = env
        .berth(&[
            "run",
            "--rm",
            "--mac-address",
            "92:d0:c6:0a:29:33",
            "busybox",
            "cat",
            "/sys/class/net/eth0/address",
        ])
        .ok();
    assert_eq!(o.stdout, "92:d0:c6:0a:29:33\n");
    let o = env.berth(&["run", "--mac-address", "zz", "busybox", "true"]);
    assert_eq!(o.code, 125, "{o:?}");
    assert!(o.stderr.contains("zz is not a valid mac address"), "{o:?}");
    let Some(o) = env.docker(&[
        "run",
        "--rm",
        "--mac-address",
        "92:d0:c6:0a:29:34",
        "busybox",
        "cat",
        "/sys/class/net/eth0/address",
    ]) else {
        return;
    };
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(o.stdout, "92:d0:c6:0a:29:34\n");
    assert_eq!(env.berth(&["ps", "-aq"]).ok().stdout, "");
}
