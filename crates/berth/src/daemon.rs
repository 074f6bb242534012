//! `berth daemon`: dockerd's flags, the pid file, the sockets, and a clean stop on signals.
//! Containers keep running when the daemon stops: their shims own them.

use anyhow::{bail, Context};
use berth_daemon::{Config, Daemon};
use clap::Parser;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// The berth engine: serves the Docker Engine API.
#[derive(Parser, Debug)]
#[command(name = "berth daemon", version)]
struct Args {
    /// Daemon socket(s) to connect to
    #[arg(short = 'H', long = "host")]
    hosts: Vec<String>,
    /// Root directory of persistent berth state (default "/var/lib/berth")
    #[arg(long)]
    data_root: Option<PathBuf>,
    /// Root directory for execution state files (default "/run/berth")
    #[arg(long)]
    exec_root: Option<PathBuf>,
    /// Path to use for daemon PID file
    #[arg(short = 'p', long)]
    pidfile: Option<PathBuf>,
    /// Daemon configuration file
    #[arg(long, default_value = "/etc/berth/daemon.json")]
    config_file: PathBuf,
    /// Set the logging level ("debug"|"info"|"warn"|"error"|"fatal")
    #[arg(short = 'l', long, default_value = "info")]
    log_level: String,
    /// Set parent cgroup for all containers
    #[arg(long)]
    cgroup_parent: Option<String>,
    /// Default OCI runtime for containers (default: the built-in one)
    #[arg(long)]
    default_runtime: Option<String>,
}

#[inline(never)]
pub fn main(args: Vec<OsString>) -> i32 {
    let args: Args = match crate::parse_args(&args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            // (oci-client's debug logs print registries' token responses: never below info)
            tracing_subscriber::EnvFilter::try_new(format!("{},oci_client=info", args.log_level))
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // One malloc arena: per-thread arenas keep the memory of a finished import resident, and
    // an idle daemon should stay small.
    // SAFETY: mallopt with integer arguments, before any thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth daemon: {e}");
            return 1;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("berth daemon: {e:#}");
            1
        }
    }
}

fn config(args: &Args) -> anyhow::Result<Config> {
    let exec_root = args
        .exec_root
        .clone()
        .unwrap_or_else(|| PathBuf::from("/run/berth"));
    let data_root = args
        .data_root
        .clone()
        .unwrap_or_else(|| PathBuf::from("/var/lib/berth"));
    let mut cfg = Config::new(data_root, exec_root);
    if args.config_file.exists() {
        cfg.apply_file(&args.config_file)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    // Flags win over the file.
    if let Some(d) = &args.data_root {
        cfg.data_root = d.clone();
    }
    if let Some(e) = &args.exec_root {
        cfg.exec_root = e.clone();
        let sock = cfg.exec_root.join("berth.sock");
        cfg.hosts = vec![format!("unix://{}", sock.display())];
        cfg.pidfile = cfg.exec_root.join("berth.pid");
    }
    if !args.hosts.is_empty() {
        cfg.hosts = args.hosts.clone();
    }
    if let Some(p) = &args.pidfile {
        cfg.pidfile = p.clone();
    }
    if let Some(c) = &args.cgroup_parent {
        cfg.cgroup_parent = c.clone();
    }
    if let Some(r) = &args.default_runtime {
        cfg.default_runtime = Some(r.clone());
    }
    for h in &cfg.hosts {
        if !h.starts_with("unix://") {
            bail!("unsupported host {h}: only unix:// sockets are served");
        }
    }
    Ok(cfg)
}

fn write_pidfile(path: &std::path::Path) -> anyhow::Result<()> {
    if let Ok(old) = std::fs::read_to_string(path) {
        if let Ok(pid) = old.trim().parse::<i32>() {
            let alive = pid != std::process::id() as i32
                && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
                && std::fs::read_link(format!("/proc/{pid}/exe")).ok()
                    == std::env::current_exe().ok();
            if alive {
                bail!(
                    "pid file found, ensure berth is not running or delete {}",
                    path.display()
                );
            }
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, format!("{}\n", std::process::id()))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Shims detach (double fork) so that they outlive the daemon; while the daemon lives, it is
/// their subreaper and reaps them when they exit, so none is left a zombie on hosts whose
/// init does not reap.
fn reap_orphans() -> anyhow::Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error()).context("PR_SET_CHILD_SUBREAPER");
    }
    let mut sigchld = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child())?;
    tokio::spawn(async move {
        use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
        while sigchld.recv().await.is_some() {
            while let Ok(st) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                if st == WaitStatus::StillAlive {
                    break;
                }
            }
        }
    });
    Ok(())
}

async fn run(args: Args) -> anyhow::Result<()> {
    let cfg = config(&args)?;
    std::fs::create_dir_all(&cfg.exec_root)
        .with_context(|| format!("cannot create {}", cfg.exec_root.display()))?;
    std::fs::create_dir_all(&cfg.data_root)
        .with_context(|| format!("cannot create {}", cfg.data_root.display()))?;
    write_pidfile(&cfg.pidfile)?;
    let pidfile = cfg.pidfile.clone();
    let sockets = cfg.socket_paths();
    reap_orphans()?;
    let daemon = Daemon::new(cfg).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let handle = daemon.clone();
    let mut listeners = Vec::new();
    for path in &sockets {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let _ = std::fs::remove_file(path);
        let l = tokio::net::UnixListener::bind(path)
            .with_context(|| format!("cannot listen on {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
        listeners.push(l);
    }
    tracing::info!(sockets = ?sockets, "berth daemon ready");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let result = tokio::select! {
        r = berth_server::serve(std::sync::Arc::new(crate::engine::Engine(daemon)), listeners) => r.map_err(anyhow::Error::from),
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = term.recv() => Ok(()),
    };
    for path in &sockets {
        let _ = std::fs::remove_file(path);
    }
    handle
        .finish_cleanups(std::time::Duration::from_secs(10))
        .await;
    let _ = std::fs::remove_file(&pidfile);
    tracing::info!("berth daemon stopped; containers keep running");
    result
}
