//! berth-cli: the docker-compatible command line, a client of the Engine API.

mod cli;
mod client;
mod commands;
mod error;
mod format;
mod opts;
mod stream;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, FromArgMatches};

pub use client::{Client, CLIENT_API_VERSION, DEFAULT_HOST};
pub use error::CliError;

/// Run the CLI with `args` (argv[0] included); returns the process exit code.
pub async fn run(args: Vec<std::ffi::OsString>) -> i32 {
    let matches = match cli::Cli::command().try_get_matches_from(&args) {
        Ok(m) => m,
        Err(e) => return clap_error(e, &args),
    };
    let parsed = match cli::Cli::from_arg_matches(&matches) {
        Ok(p) => p,
        Err(e) => return clap_error(e, &args),
    };
    if parsed.version {
        println!("berth version {}, build berth", env!("CARGO_PKG_VERSION"));
        return 0;
    }
    let Some(cmd) = parsed.cmd else {
        let _ = cli::Cli::command().print_help();
        return 0;
    };
    // -H, then BERTH_HOST. Not DOCKER_HOST: it is the docker CLI's, and often names another
    // engine (rootless Docker, Podman, a remote daemon), whose containers `berth rm -f` must
    // not touch.
    let host = parsed
        .host
        .or_else(|| std::env::var("BERTH_HOST").ok().filter(|h| !h.is_empty()));
    match commands::dispatch(host, cmd).await {
        Ok(code) => code,
        Err(e) => {
            let msg = e.to_string();
            if !msg.is_empty() {
                eprintln!("{msg}");
            }
            e.exit_code()
        }
    }
}

/// The subcommand path from clap's usage line ("berth image ls").
fn command_path(e: &clap::Error) -> String {
    let usage = match e.get(ContextKind::Usage) {
        Some(ContextValue::StyledStr(s)) => s.to_string(),
        _ => return "berth".into(),
    };
    let usage = usage.trim_start().trim_start_matches("Usage:").trim_start();
    let words: Vec<&str> = usage
        .split_whitespace()
        .take_while(|w| {
            w.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
        .collect();
    if words.is_empty() {
        "berth".into()
    } else {
        words.join(" ")
    }
}

/// The subcommand path from the command line itself ("berth network rm" for `berth network
/// remove …`), for the clap errors that carry no usage line.
fn command_path_from_args(args: &[std::ffi::OsString]) -> String {
    let mut cmd = cli::Cli::command();
    let mut path = vec!["berth".to_string()];
    let mut it = args.iter().skip(1).map(|a| a.to_string_lossy().to_string());
    while let Some(a) = it.next() {
        if cmd.get_subcommands().next().is_none() {
            break;
        }
        if a.starts_with('-') {
            // The global flags that take a value as the next word.
            if matches!(a.as_str(), "-H" | "--host" | "-l" | "--log-level") {
                it.next();
            }
            continue;
        }
        let Some(mut sub) = cmd.find_subcommand(&a).cloned() else {
            break;
        };
        // Subcommands are built when they run (`defer`): build this one to look inside.
        sub.build();
        path.push(sub.get_name().to_string());
        cmd = sub;
    }
    path.join(" ")
}

fn find_command(path: &str) -> Option<clap::Command> {
    let mut cmd = cli::Cli::command();
    for w in path.split_whitespace().skip(1) {
        cmd = cmd.find_subcommand(w)?.clone();
        // Subcommands are built when they run (`defer`): build this one to look inside.
        cmd.build();
    }
    Some(cmd)
}

fn ctx_str(e: &clap::Error, k: ContextKind) -> Option<String> {
    match e.get(k) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(v)) => v.first().cloned(),
        Some(ContextValue::StyledStr(s)) => Some(s.to_string()),
        _ => None,
    }
}

fn exact_args(path: &str) -> Option<usize> {
    match path {
        "berth network create" => return Some(1),
        "berth network connect" | "berth network disconnect" => return Some(2),
        _ => {}
    }
    match path.rsplit(' ').next().unwrap_or("") {
        "rename" | "tag" => Some(2),
        "logs" | "attach" | "history" => Some(1),
        _ => None,
    }
}

/// cobra's `RequiresMaxArgs`: the commands whose last argument is optional.
fn max_args(path: &str) -> Option<usize> {
    match path {
        "berth volume create" => Some(1),
        _ => None,
    }
}

/// cobra's argument-count error: `"berth x" requires …` with the usage line and the summary.
fn args_message(path: &str, req: &str) -> String {
    let see = format!("See '{path} --help'.");
    let (usage, about) = match find_command(path) {
        Some(mut c) => (
            c.render_usage()
                .to_string()
                .trim_start_matches("Usage: ")
                .to_string(),
            c.get_about().map(|a| a.to_string()).unwrap_or_default(),
        ),
        None => (path.to_string(), String::new()),
    };
    format!("\"{path}\" {req}.\n{see}\n\nUsage:  {usage}\n\n{about}")
}

/// pflag's message for a flag value its check refused: `invalid argument "v" for "--flag"
/// flag: <why>` (the shorthand too when there is one: `"-l, --label"`).
fn invalid_value_message(e: &clap::Error, path: &str) -> Option<String> {
    let arg = ctx_str(e, ContextKind::InvalidArg)?;
    let v = ctx_str(e, ContextKind::InvalidValue).filter(|v| !v.is_empty())?;
    let flag = arg
        .split([' ', ','])
        .find(|w| w.starts_with("--"))
        .unwrap_or("")
        .to_string();
    let name = flag.trim_start_matches("--");
    let short = find_command(path).and_then(|c| {
        c.get_arguments()
            .find(|a| a.get_long() == Some(name))
            .and_then(|a| a.get_short())
    });
    let shown = match short {
        Some(c) => format!("-{c}, {flag}"),
        None => flag.clone(),
    };
    // Our own checks say why; Rust's number parsers' words are not Go's.
    let why = match std::error::Error::source(e) {
        Some(src)
            if e.kind() == ErrorKind::ValueValidation
                && !src.is::<std::num::ParseIntError>()
                && !src.is::<std::num::ParseFloatError>()
                && !src.is::<std::str::ParseBoolError>() =>
        {
            src.to_string()
        }
        _ => "invalid syntax".to_string(),
    };
    Some(format!(
        "invalid argument \"{v}\" for \"{shown}\" flag: {why}\nSee '{path} --help'."
    ))
}

/// Print a clap error the way docker's cobra front end does; return the exit code.
fn clap_error(e: clap::Error, args: &[std::ffi::OsString]) -> i32 {
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            0
        }
        _ => {
            let (msg, code) = clap_message(&e, args);
            eprintln!("{msg}");
            code
        }
    }
}

/// What docker's cobra front end prints for a command line error, and the exit code.
fn clap_message(e: &clap::Error, args: &[std::ffi::OsString]) -> (String, i32) {
    let mut path = command_path(e);
    if path == "berth" {
        path = command_path_from_args(args);
    }
    let see = format!("See '{path} --help'.");
    let invalid_arg = ctx_str(e, ContextKind::InvalidArg).unwrap_or_default();
    match e.kind() {
        ErrorKind::InvalidSubcommand => {
            let sub = ctx_str(e, ContextKind::InvalidSubcommand).unwrap_or_default();
            (format!("berth: '{sub}' is not a berth command.\n{see}"), 1)
        }
        ErrorKind::MissingRequiredArgument
        | ErrorKind::TooFewValues
        | ErrorKind::WrongNumberOfValues
            if !invalid_arg.starts_with('-') =>
        {
            let req = match exact_args(&path) {
                Some(1) => "exactly 1 argument".to_string(),
                Some(n) => format!("exactly {n} arguments"),
                None if path.ends_with(" exec") => "at least 2 arguments".to_string(),
                None => "at least 1 argument".to_string(),
            };
            (args_message(&path, &format!("requires {req}")), 1)
        }
        // A word too many: cobra's RequiresMaxArgs, ExactArgs and NoArgs messages.
        ErrorKind::UnknownArgument
            if !invalid_arg.starts_with('-') && max_args(&path).is_some() =>
        {
            let n = max_args(&path).unwrap_or(1);
            let req = format!(
                "requires at most {n} {}",
                if n == 1 { "argument" } else { "arguments" }
            );
            (args_message(&path, &req), 1)
        }
        ErrorKind::UnknownArgument
            if !invalid_arg.starts_with('-')
                && (exact_args(&path).is_some()
                    || find_command(&path).is_some_and(|c| {
                        c.get_positionals().next().is_none() && c.get_subcommands().next().is_none()
                    })) =>
        {
            let req = match exact_args(&path) {
                Some(1) => "requires exactly 1 argument".to_string(),
                Some(n) => format!("requires exactly {n} arguments"),
                None => "accepts no arguments".to_string(),
            };
            (args_message(&path, &req), 1)
        }
        ErrorKind::UnknownArgument => {
            let arg = invalid_arg.split('=').next().unwrap_or("").to_string();
            if arg.starts_with("--") || arg.is_empty() {
                (format!("unknown flag: {arg}\n{see}"), 125)
            } else {
                let c = arg.trim_start_matches('-').chars().next().unwrap_or('?');
                (
                    format!("unknown shorthand flag: '{c}' in {arg}\n{see}"),
                    125,
                )
            }
        }
        ErrorKind::InvalidValue | ErrorKind::ValueValidation | ErrorKind::NoEquals => {
            if let Some(m) = invalid_value_message(e, &path) {
                return (m, 125);
            }
            let flag = invalid_arg
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_end_matches(',')
                .to_string();
            let flag = invalid_arg
                .split([' ', ','])
                .find(|w| w.starts_with("--"))
                .map(str::to_string)
                .unwrap_or(flag);
            (format!("flag needs an argument: {flag}\n{see}"), 125)
        }
        _ => {
            let msg = e.to_string();
            let first = msg
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ")
                .to_string();
            (format!("{first}\n{see}"), 125)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<cli::Cli, clap::Error> {
        let m = cli::Cli::command().try_get_matches_from(args)?;
        cli::Cli::from_arg_matches(&m)
    }

    #[test]
    fn run_args_stop_at_image() {
        let c = parse(&[
            "berth", "run", "--rm", "-it", "-h", "box", "busybox", "ls", "-l", "-d",
        ])
        .unwrap();
        let Some(cli::Cmd::Container(cli::ContainerCmd::Run(r))) = c.cmd else {
            panic!("not run")
        };
        assert!(r.opts.rm && r.opts.interactive && r.opts.tty && !r.detach);
        assert_eq!(r.opts.hostname.as_deref(), Some("box"));
        assert_eq!(r.opts.args, vec!["busybox", "ls", "-l", "-d"]);
        assert!(r.sig_proxy);
    }

    #[test]
    fn global_host_and_groups() {
        let c = parse(&["berth", "-H", "unix:///x.sock", "container", "ls", "-aq"]).unwrap();
        assert_eq!(c.host.as_deref(), Some("unix:///x.sock"));
        assert!(matches!(
            c.cmd,
            Some(cli::Cmd::ContainerGroup(cli::ContainerGroupCmd::Common(
                cli::ContainerCmd::Ps(_)
            )))
        ));
        let c = parse(&["berth", "history", "-H=false", "img"]).unwrap();
        let Some(cli::Cmd::History(h)) = c.cmd else {
            panic!()
        };
        assert!(!h.human);
        let c = parse(&["berth", "exec", "-it", "c1", "sh", "-c", "x"]).unwrap();
        let Some(cli::Cmd::Container(cli::ContainerCmd::Exec(x))) = c.cmd else {
            panic!()
        };
        assert_eq!(x.args, vec!["c1", "sh", "-c", "x"]);
    }

    #[test]
    fn clap_errors_map_to_docker_codes() {
        let e = parse(&["berth", "run", "--foo", "x"]).unwrap_err();
        assert_eq!(command_path(&e), "berth run");
        assert_eq!(clap_error(e, &[]), 125);
        let e = parse(&["berth", "image", "ls", "--nope"]).unwrap_err();
        assert_eq!(command_path(&e), "berth image ls");
        let e = parse(&["berth", "run"]).unwrap_err();
        assert_eq!(clap_error(e, &[]), 1);
        let e = parse(&["berth", "ps", "--help"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::DisplayHelp);
    }

    fn message(args: &[&str]) -> (String, i32) {
        let e = parse(args).unwrap_err();
        let os: Vec<std::ffi::OsString> = args.iter().map(|a| a.into()).collect();
        clap_message(&e, &os)
    }

    #[test]
    fn network_flag_and_argument_errors_as_docker() {
        assert_eq!(
            message(&["berth", "network", "create", "--label", "=x", "n"]),
            (
                "invalid argument \"=x\" for \"--label\" flag: invalid label '=x': empty name\n\
                 See 'berth network create --help'."
                    .to_string(),
                125
            )
        );
        assert_eq!(
            message(&[
                "berth",
                "-H",
                "unix:///x",
                "network",
                "remove",
                "n",
                "--nope"
            ])
            .0,
            "unknown flag: --nope\nSee 'berth network rm --help'."
        );
        let (m, code) = message(&["berth", "network", "connect", "--link", "a:b:c", "n", "c"]);
        assert_eq!(code, 125);
        assert_eq!(
            m,
            "invalid argument \"a:b:c\" for \"--link\" flag: bad format for links: a:b:c\n\
             See 'berth network connect --help'."
        );
        let (m, code) = message(&["berth", "run", "--network", "name=a,foo=b", "busybox"]);
        assert_eq!(code, 125);
        assert_eq!(
            m,
            "invalid argument \"name=a,foo=b\" for \"--network\" flag: invalid field key foo\n\
             See 'berth run --help'."
        );
        let (m, code) = message(&["berth", "network", "prune", "--filter", "x"]);
        assert_eq!(code, 125);
        assert!(m.starts_with(
            "invalid argument \"x\" for \"--filter\" flag: bad format of filter (expected name=value)"
        ));
        let (m, code) = message(&["berth", "network", "connect", "n"]);
        assert_eq!(code, 1);
        assert_eq!(
            m,
            "\"berth network connect\" requires exactly 2 arguments.\n\
             See 'berth network connect --help'.\n\n\
             Usage:  berth network connect [OPTIONS] NETWORK CONTAINER\n\n\
             Connect a container to a network"
        );
        let (m, code) = message(&["berth", "network", "create", "a", "b"]);
        assert_eq!(code, 1);
        assert!(m.starts_with("\"berth network create\" requires exactly 1 argument.\n"));
        let (m, code) = message(&["berth", "network", "prune", "x"]);
        assert_eq!(code, 1);
        assert!(m.starts_with("\"berth network prune\" accepts no arguments.\n"));
        assert!(m.ends_with("Usage:  berth network prune [OPTIONS]\n\nRemove all unused networks"));
        let (m, code) = message(&["berth", "network", "rm"]);
        assert_eq!(code, 1);
        assert!(m.starts_with("\"berth network rm\" requires at least 1 argument.\n"));
        let (m, code) = message(&["berth", "network", "disconnect", "-x"]);
        assert_eq!(code, 125);
        assert_eq!(
            m,
            "unknown shorthand flag: 'x' in -x\nSee 'berth network disconnect --help'."
        );
    }

    #[test]
    fn volume_commands_parse_and_fail_as_docker() {
        let c = parse(&[
            "berth",
            "volume",
            "create",
            "-d",
            "local",
            "--label",
            "a=b",
            "-o",
            "type=tmpfs",
            "--opt",
            "device=tmpfs",
            "v1",
        ])
        .unwrap();
        let Some(cli::Cmd::Volume(cli::VolumeCmd::Create(a))) = c.cmd else {
            panic!()
        };
        assert_eq!(a.name.as_deref(), Some("v1"));
        assert_eq!(a.opt, vec!["type=tmpfs", "device=tmpfs"]);
        let c = parse(&["berth", "volume", "create"]).unwrap();
        let Some(cli::Cmd::Volume(cli::VolumeCmd::Create(a))) = c.cmd else {
            panic!()
        };
        assert_eq!((a.driver.as_str(), a.name.clone()), ("local", None));
        let c = parse(&["berth", "volume", "create", "--name", "x"]).unwrap();
        let Some(cli::Cmd::Volume(cli::VolumeCmd::Create(a))) = c.cmd else {
            panic!()
        };
        assert_eq!(a.name_flag.as_deref(), Some("x"));
        let c = parse(&["berth", "volume", "remove", "-f", "a", "b"]).unwrap();
        let Some(cli::Cmd::Volume(cli::VolumeCmd::Rm(r))) = c.cmd else {
            panic!()
        };
        assert!(r.force && r.names == vec!["a", "b"]);
        let c = parse(&["berth", "volume", "list", "-q", "-f", "dangling=true"]).unwrap();
        let Some(cli::Cmd::Volume(cli::VolumeCmd::Ls(l))) = c.cmd else {
            panic!()
        };
        assert!(l.quiet && l.filter == vec!["dangling=true"]);
        assert!(parse(&["berth", "volume", "inspect", "-f", "{{.Name}}", "v"]).is_ok());
        assert!(parse(&["berth", "volume", "prune", "-f", "--filter", "label=a"]).is_ok());
        let (m, code) = message(&["berth", "volume", "create", "a", "b"]);
        assert_eq!(code, 1);
        assert_eq!(
            m,
            "\"berth volume create\" requires at most 1 argument.\n\
             See 'berth volume create --help'.\n\n\
             Usage:  berth volume create [OPTIONS] [VOLUME]\n\n\
             Create a volume"
        );
        let (m, code) = message(&["berth", "volume", "ls", "x"]);
        assert_eq!(code, 1);
        assert!(m.starts_with("\"berth volume ls\" accepts no arguments.\n"));
        let (m, code) = message(&["berth", "volume", "rm"]);
        assert_eq!(code, 1);
        assert!(m.starts_with("\"berth volume rm\" requires at least 1 argument.\n"));
        let (m, code) = message(&["berth", "volume", "create", "--label", "=x"]);
        assert_eq!(code, 125);
        assert!(m.starts_with(
            "invalid argument \"=x\" for \"--label\" flag: invalid label '=x': empty name\n"
        ));
        let (m, code) = message(&["berth", "volume", "ls", "--filter", "x"]);
        assert_eq!(code, 125);
        assert!(
            m.starts_with("invalid argument \"x\" for \"-f, --filter\" flag: bad format of filter")
        );
    }

    #[test]
    fn mount_flags_parse_and_fail_as_docker() {
        let c = parse(&[
            "berth",
            "run",
            "-v",
            "/data",
            "--volume",
            "/h:/c",
            "--mount",
            "type=tmpfs,dst=/t",
            "--tmpfs",
            "/run:size=1m",
            "--volumes-from",
            "other:ro",
            "--volume-driver",
            "local",
            "busybox",
        ])
        .unwrap();
        let Some(cli::Cmd::Container(cli::ContainerCmd::Run(r))) = c.cmd else {
            panic!()
        };
        assert_eq!(r.opts.volume, vec!["/data", "/h:/c"]);
        assert_eq!(r.opts.mount, vec!["type=tmpfs,dst=/t"]);
        assert_eq!(r.opts.tmpfs, vec!["/run:size=1m"]);
        assert_eq!(r.opts.volumes_from, vec!["other:ro"]);
        assert_eq!(r.opts.volume_driver.as_deref(), Some("local"));
        let (m, code) = message(&["berth", "run", "--mount", "type=foo", "busybox"]);
        assert_eq!(code, 125);
        assert_eq!(
            m,
            "invalid argument \"type=foo\" for \"--mount\" flag: target is required\n\
             See 'berth run --help'."
        );
        let (m, _) = message(&["berth", "create", "--mount", "type", "busybox"]);
        assert_eq!(
            m,
            "invalid argument \"type\" for \"--mount\" flag: invalid field 'type' must be a key=value pair\n\
             See 'berth create --help'."
        );
        let (m, _) = message(&["berth", "run", "--mount", "x=y,dst=/a", "busybox"]);
        assert!(m.starts_with(
            "invalid argument \"x=y,dst=/a\" for \"--mount\" flag: unexpected key 'x' in 'x=y'\n"
        ));
        let (m, _) = message(&[
            "berth",
            "container",
            "run",
            "--mount",
            "type=,dst=/a",
            "busybox",
        ]);
        assert!(m.contains("flag: type is required\nSee 'berth container run --help'."));
    }

    #[test]
    fn network_commands_parse() {
        let c = parse(&[
            "berth",
            "network",
            "create",
            "-d",
            "bridge",
            "--subnet",
            "10.1.0.0/16,10.2.0.0/16",
            "--gateway",
            "10.1.0.1",
            "--label",
            "a=b",
            "-o",
            "x=y",
            "--internal",
            "net1",
        ])
        .unwrap();
        let Some(cli::Cmd::Network(cli::NetworkCmd::Create(a))) = c.cmd else {
            panic!()
        };
        assert_eq!(a.subnet, vec!["10.1.0.0/16", "10.2.0.0/16"]);
        assert_eq!(a.name, "net1");
        assert!(a.internal && !a.ipv6);
        assert_eq!(a.ipam_driver, "default");
        let c = parse(&["berth", "network", "remove", "a", "b"]).unwrap();
        let Some(cli::Cmd::Network(cli::NetworkCmd::Rm(r))) = c.cmd else {
            panic!()
        };
        assert_eq!(r.names, vec!["a", "b"]);
        let c = parse(&[
            "berth", "network", "connect", "--alias", "x,y", "--alias", "z", "n", "c",
        ])
        .unwrap();
        let Some(cli::Cmd::Network(cli::NetworkCmd::Connect(a))) = c.cmd else {
            panic!()
        };
        assert_eq!(a.alias, vec!["x", "y", "z"]);
        assert_eq!((a.network.as_str(), a.container.as_str()), ("n", "c"));
        let c = parse(&["berth", "network", "disconnect", "-f", "n", "c"]).unwrap();
        let Some(cli::Cmd::Network(cli::NetworkCmd::Disconnect(d))) = c.cmd else {
            panic!()
        };
        assert!(d.force);
        let c = parse(&["berth", "network", "ls", "-q", "--filter", "driver=bridge"]).unwrap();
        let Some(cli::Cmd::Network(cli::NetworkCmd::Ls(l))) = c.cmd else {
            panic!()
        };
        assert!(l.quiet && l.filter == vec!["driver=bridge"]);
        let c = parse(&[
            "berth",
            "run",
            "--net",
            "n1",
            "--net-alias",
            "a1",
            "--network-alias",
            "a2",
            "--ip",
            "10.0.0.9",
            "--ip6",
            "2001:db8::9",
            "busybox",
        ])
        .unwrap();
        let Some(cli::Cmd::Container(cli::ContainerCmd::Run(r))) = c.cmd else {
            panic!()
        };
        assert_eq!(r.opts.network, vec!["n1"]);
        assert_eq!(r.opts.network_alias, vec!["a1", "a2"]);
        assert_eq!(r.opts.ip.as_deref(), Some("10.0.0.9"));
        assert_eq!(r.opts.ip6.as_deref(), Some("2001:db8::9"));
    }
    #[test]
    fn limit_flags_parse_and_errors_as_docker() {
        let c = parse(&[
            "berth",
            "run",
            "-m",
            "512m",
            "--memory-swap",
            "-1",
            "-c",
            "512",
            "--cpus",
            "1.5",
            "--ulimit",
            "nofile=1024:2048",
            "--health-interval",
            "30s",
            "--oom-score-adj",
            "-10",
            "busybox",
        ])
        .unwrap();
        let Some(cli::Cmd::Container(cli::ContainerCmd::Run(r))) = c.cmd else {
            panic!("not run")
        };
        assert_eq!(r.opts.memory, Some(512 << 20));
        assert_eq!(r.opts.memory_swap, Some(-1));
        assert_eq!(r.opts.cpu_shares, Some(512));
        assert_eq!(r.opts.cpus, Some(1_500_000_000));
        assert_eq!(r.opts.health_interval, Some(30_000_000_000));
        assert_eq!(r.opts.oom_score_adj, Some(-10));
        assert_eq!(r.opts.args, vec!["busybox"]);
        assert_eq!(
            message(&["berth", "run", "-m", "1x", "busybox"]),
            (
                "invalid argument \"1x\" for \"-m, --memory\" flag: invalid size: '1x'\n\
                 See 'berth run --help'."
                    .to_string(),
                125
            )
        );
        assert_eq!(
            message(&["berth", "create", "--cpus", "abc", "busybox"]).0,
            "invalid argument \"abc\" for \"--cpus\" flag: failed to parse abc as a rational number\n\
             See 'berth create --help'."
        );
        assert_eq!(
            message(&["berth", "run", "--ulimit", "nofile=a", "busybox"]).0,
            "invalid argument \"nofile=a\" for \"--ulimit\" flag: strconv.ParseInt: parsing \"a\": invalid syntax\n\
             See 'berth run --help'."
        );
        assert_eq!(
            message(&["berth", "run", "--health-interval", "x", "busybox"]).0,
            "invalid argument \"x\" for \"--health-interval\" flag: time: invalid duration \"x\"\n\
             See 'berth run --help'."
        );
        assert_eq!(
            message(&["berth", "run", "-c", "x", "busybox"]).0,
            "invalid argument \"x\" for \"-c, --cpu-shares\" flag: strconv.ParseInt: parsing \"x\": invalid syntax\n\
             See 'berth run --help'."
        );
    }
    #[test]
    fn update_stats_events_parse() {
        let c = parse(&[
            "berth",
            "update",
            "-m",
            "1g",
            "--memory-swap",
            "-1",
            "--restart",
            "always",
            "a",
            "b",
        ])
        .unwrap();
        let Some(cli::Cmd::Container(cli::ContainerCmd::Update(u))) = c.cmd else {
            panic!("not update")
        };
        assert_eq!(u.memory, Some(1 << 30));
        assert_eq!(u.memory_swap, Some(-1));
        assert_eq!(u.containers, vec!["a", "b"]);
        let c = parse(&["berth", "container", "stats", "--no-stream", "-a"]).unwrap();
        assert!(matches!(
            c.cmd,
            Some(cli::Cmd::ContainerGroup(cli::ContainerGroupCmd::Common(cli::ContainerCmd::Stats(ref s)))) if s.no_stream && s.all && s.containers.is_empty()
        ));
        let c = parse(&[
            "berth",
            "events",
            "--since",
            "10m",
            "-f",
            "type=container",
            "--format",
            "{{json .}}",
        ])
        .unwrap();
        let Some(cli::Cmd::Events(e)) = c.cmd else {
            panic!("not events")
        };
        assert_eq!(e.since.as_deref(), Some("10m"));
        assert_eq!(e.filter, vec!["type=container"]);
        assert!(matches!(
            parse(&["berth", "system", "events"]).unwrap().cmd,
            Some(cli::Cmd::System(cli::SystemCmd::Events(_)))
        ));
        assert_eq!(message(&["berth", "update"]).1, 1);
        assert!(message(&["berth", "events", "x"])
            .0
            .starts_with("\"berth events\" accepts no arguments."));
    }
}
