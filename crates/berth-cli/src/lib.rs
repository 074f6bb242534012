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
        Err(e) => return clap_error(e),
    };
    let parsed = match cli::Cli::from_arg_matches(&matches) {
        Ok(p) => p,
        Err(e) => return clap_error(e),
    };
    if parsed.version {
        println!("berth version {}, build berth", env!("CARGO_PKG_VERSION"));
        return 0;
    }
    let Some(cmd) = parsed.cmd else {
        let _ = cli::Cli::command().print_help();
        return 0;
    };
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

fn find_command(path: &str) -> Option<clap::Command> {
    let mut cmd = cli::Cli::command();
    for w in path.split_whitespace().skip(1) {
        cmd = cmd.find_subcommand(w)?.clone();
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
    match path.rsplit(' ').next().unwrap_or("") {
        "rename" | "tag" => Some(2),
        "logs" | "attach" | "history" => Some(1),
        _ => None,
    }
}

/// Print a clap error the way docker's cobra front end does; return the exit code.
fn clap_error(e: clap::Error) -> i32 {
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return 0;
        }
        _ => {}
    }
    let path = command_path(&e);
    let see = format!("See '{path} --help'.");
    match e.kind() {
        ErrorKind::InvalidSubcommand => {
            let sub = ctx_str(&e, ContextKind::InvalidSubcommand).unwrap_or_default();
            eprintln!("berth: '{sub}' is not a berth command.\n{see}");
            1
        }
        ErrorKind::MissingRequiredArgument
        | ErrorKind::TooFewValues
        | ErrorKind::WrongNumberOfValues
            if !ctx_str(&e, ContextKind::InvalidArg)
                .unwrap_or_default()
                .starts_with('-') =>
        {
            let req = match exact_args(&path) {
                Some(1) => "exactly 1 argument".to_string(),
                Some(n) => format!("exactly {n} arguments"),
                None if path.ends_with(" exec") => "at least 2 arguments".to_string(),
                None => "at least 1 argument".to_string(),
            };
            let (usage, about) = match find_command(&path) {
                Some(mut c) => (
                    c.render_usage()
                        .to_string()
                        .trim_start_matches("Usage: ")
                        .to_string(),
                    c.get_about().map(|a| a.to_string()).unwrap_or_default(),
                ),
                None => (path.clone(), String::new()),
            };
            eprintln!("\"{path}\" requires {req}.\n{see}\n\nUsage:  {usage}\n\n{about}");
            1
        }
        ErrorKind::UnknownArgument => {
            let arg = ctx_str(&e, ContextKind::InvalidArg).unwrap_or_default();
            let arg = arg.split('=').next().unwrap_or("").to_string();
            if arg.starts_with("--") || arg.is_empty() {
                eprintln!("unknown flag: {arg}\n{see}");
            } else {
                let c = arg.trim_start_matches('-').chars().next().unwrap_or('?');
                eprintln!("unknown shorthand flag: '{c}' in {arg}\n{see}");
            }
            125
        }
        ErrorKind::InvalidValue | ErrorKind::ValueValidation | ErrorKind::NoEquals => {
            let arg = ctx_str(&e, ContextKind::InvalidArg).unwrap_or_default();
            let flag = arg
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_end_matches(',')
                .to_string();
            let flag = arg
                .split([' ', ','])
                .find(|w| w.starts_with("--"))
                .map(str::to_string)
                .unwrap_or(flag);
            match ctx_str(&e, ContextKind::InvalidValue) {
                Some(v) if !v.is_empty() => {
                    eprintln!("invalid argument \"{v}\" for \"{arg}\" flag: invalid syntax\n{see}")
                }
                _ => eprintln!("flag needs an argument: {flag}\n{see}"),
            }
            125
        }
        _ => {
            let msg = e.to_string();
            let first = msg
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ")
                .to_string();
            eprintln!("{first}\n{see}");
            125
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
        assert_eq!(clap_error(e), 125);
        let e = parse(&["berth", "image", "ls", "--nope"]).unwrap_err();
        assert_eq!(command_path(&e), "berth image ls");
        let e = parse(&["berth", "run"]).unwrap_err();
        assert_eq!(clap_error(e), 1);
        let e = parse(&["berth", "ps", "--help"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::DisplayHelp);
    }
}
