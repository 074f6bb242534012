//! `berth registry …`: the OCI registry in the same binary (`serve`), and `token`, which
//! issues bearer tokens for it.

use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// berth's OCI Distribution registry.
#[derive(Parser, Debug)]
#[command(name = "berth registry", version)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Serve the registry (on :5000 unless the configuration says otherwise)
    Serve {
        /// A YAML configuration: berth's flavored file or distribution's config.yml
        config: Option<PathBuf>,
    },
    /// Collect garbage: blobs no manifest needs (and, with --delete-untagged, manifests no tag
    /// leads to). Safe while the registry serves pushes and pulls
    #[command(name = "gc", alias = "garbage-collect")]
    Gc {
        /// The registry's configuration (for its storage)
        config: Option<PathBuf>,
        /// Report what would be deleted, delete nothing
        #[arg(long, short = 'd')]
        dry_run: bool,
        /// Also delete manifests that no tag leads to
        #[arg(long, short = 'm')]
        delete_untagged: bool,
        /// Spare everything written more recently than this (e.g. 30m, 2h; at least 11m while
        /// the registry serves)
        #[arg(long, default_value = "1h")]
        grace: String,
        /// Wait between marking and sweeping (milliseconds; for tests of concurrent pushes)
        #[arg(long, hide = true, default_value_t = 0)]
        pause_after_mark: u64,
    },
    /// Make the registry's image (berth-registry:latest) from this binary, for
    /// `berth run -d -p 5000:5000 --restart=always --name registry berth-registry`
    Image {
        /// The image's name
        #[arg(short = 't', long, default_value = "berth-registry:latest")]
        tag: String,
        /// Only write its root filesystem as a tar (for `docker import`)
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
        /// The daemon to import into (as berth's -H)
        #[arg(short = 'H', long)]
        host: Option<String>,
    },
    /// Issue a bearer token (the Docker token flow) signed with a private key, for tests and
    /// small setups; prints it
    Token {
        /// The private key, PEM: RSA (RS256), EC P-256 (ES256) or Ed25519 (EdDSA)
        #[arg(long)]
        key: PathBuf,
        /// The token's issuer (the registry's auth.token.issuer)
        #[arg(long)]
        issuer: String,
        /// The service it is for (the registry's auth.token.service)
        #[arg(long)]
        service: String,
        /// Who the token is for
        #[arg(long, default_value = "")]
        subject: String,
        /// Seconds it is valid
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
        /// What it grants: repository:<name>:pull,push,delete or registry:catalog:*
        scopes: Vec<String>,
    },
}

#[inline(never)]
pub fn main(args: Vec<OsString>) -> i32 {
    let args: Args = match crate::parse_args(&args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    match args.cmd {
        Cmd::Serve { config } => serve(config),
        Cmd::Gc {
            config,
            dry_run,
            delete_untagged,
            grace,
            pause_after_mark,
        } => gc(config, dry_run, delete_untagged, &grace, pause_after_mark),
        Cmd::Image { tag, output, host } => {
            crate::registry_image::main(&tag, output.as_deref(), host.as_deref())
        }
        Cmd::Token {
            key,
            issuer,
            service,
            subject,
            ttl,
            scopes,
        } => token(&key, &issuer, &service, &subject, ttl, &scopes),
    }
}

fn token(
    key: &Path,
    issuer: &str,
    service: &str,
    subject: &str,
    ttl: u64,
    scopes: &[String],
) -> i32 {
    use berth_registry::auth::{issue, Access};
    let mut access = Vec::new();
    for s in scopes {
        match Access::parse(s) {
            Some(a) => access.push(a),
            None => {
                eprintln!("berth registry token: invalid scope {s:?} (want type:name:actions)");
                return 125;
            }
        }
    }
    let pem = match std::fs::read(key) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("berth registry token: cannot read {}: {e}", key.display());
            return 1;
        }
    };
    match issue(
        &pem,
        issuer,
        service,
        subject,
        access,
        std::time::Duration::from_secs(ttl),
    ) {
        Ok(t) => {
            println!("{t}");
            0
        }
        Err(e) => {
            eprintln!("berth registry token: {}: {e}", key.display());
            1
        }
    }
}

/// "90s", "30m", "2h", "1d" (a bare number is seconds).
fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 's') => (&s[..i], 1),
        (i, 'm') => (&s[..i], 60),
        (i, 'h') => (&s[..i], 3600),
        (i, 'd') => (&s[..i], 86400),
        _ => (s, 1),
    };
    let n: f64 = num
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)?;
    Some(std::time::Duration::from_secs_f64(n * mult as f64))
}

fn gc(
    config: Option<PathBuf>,
    dry_run: bool,
    delete_untagged: bool,
    grace: &str,
    pause_after_mark: u64,
) -> i32 {
    let Some(grace) = parse_duration(grace) else {
        eprintln!("berth registry gc: invalid duration {grace:?} (e.g. 30m, 2h)");
        return 125;
    };
    let settings = match settings(config.as_deref()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let opts = berth_registry::gc::GcOptions {
        dry_run,
        delete_untagged,
        grace,
        pause_after_mark: std::time::Duration::from_millis(pause_after_mark),
        ..Default::default()
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth registry gc: {e}");
            return 1;
        }
    };
    match rt.block_on(berth_registry::collect(&settings, &opts)) {
        Ok(r) => {
            let verb = if dry_run { "would delete" } else { "deleted" };
            for m in &r.manifests_deleted {
                println!("manifest {verb}: {m}");
            }
            for b in &r.blobs_deleted {
                println!("blob {verb}: {b}");
            }
            println!(
                "{} blobs marked, {} blobs and {} manifests {verb} ({} bytes), {} abandoned uploads removed, {} blobs kept for a push in progress",
                r.blobs_marked,
                r.blobs_deleted.len(),
                r.manifests_deleted.len(),
                r.bytes_freed,
                r.uploads_removed,
                r.blobs_rescued
            );
            0
        }
        Err(e) => {
            eprintln!("berth registry gc: {e}");
            1
        }
    }
}

/// Read a configuration file (or none: the defaults and the environment).
fn settings(config: Option<&Path>) -> Result<berth_registry::config::Settings, i32> {
    let text = match config {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("berth registry: cannot read {}: {e}", p.display());
                return Err(1);
            }
        },
        None => String::new(),
    };
    berth_registry::config::parse(&text, &|k| std::env::var(k).ok()).map_err(|e| {
        eprintln!("berth registry: {e}");
        1
    })
}

fn serve(config: Option<PathBuf>) -> i32 {
    let settings = match settings(config.as_deref()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let level = match settings.loglevel.as_str() {
        "warning" => "warn",
        "critical" | "fatal" | "panic" => "error",
        l => l,
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(format!("{level},hyper=info,h2=info"))
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // Half the CPUs as worker threads (at least one): a request is light next to the
    // kernel's work for it (TCP, the page cache) and the clients' own, and more workers than
    // that spent their time handing each other work. Measured on 2 CPUs with skopeo pushing
    // 300 MB: 2 workers 0.60-0.66 s of the registry's CPU and ~27,000 context switches, 1 worker
    // 0.49-0.54 s; manifest GETs at 64 connections 81,000/s with 2, 88,000/s with 1
    // (docs/PERFORMANCE.md, "The registry"; larger machines not measured yet). File I/O runs
    // on tokio's blocking threads.
    // An upload's body arrives in the socket reads' buffers (hyper's, ~100-400 KiB each, split
    // into the chunks that are written out a MiB at a time). With glibc's defaults those
    // buffers were mapped and unmapped, or trimmed off the heap's top, over and over: a 300 MB
    // push faulted in ~21,000 fresh zeroed pages (a fifth of the registry's CPU for it). Kept
    // on the heap and not trimmed below 64 MiB, they are reused: ~850 faults, the registry's
    // CPU for the push 0.46-0.52 -> 0.40-0.44 s (docs/PERFORMANCE.md, "The registry"). The
    // cost: up to 64 MiB of freed heap per malloc arena stays resident after a large upload.
    // SAFETY: mallopt with integer arguments, before any thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 8 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
    let workers = std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1));
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth registry: {e}");
            return 1;
        }
    };
    let shutdown = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    match rt.block_on(berth_registry::serve(&settings, shutdown)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("berth registry: {e}");
            1
        }
    }
}
