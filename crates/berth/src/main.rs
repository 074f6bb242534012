//! berth: one binary for the CLI, the daemon (`berth daemon`) and the per-container shim
//! (`berth shim`, started by the daemon), and the OCI registry (`berth registry serve`).

mod daemon;
mod engine;
mod registry;
mod registry_image;

use std::ffi::OsString;

// Each role is a function of its own, never inlined here: `main` stays under every shim's
// loop for the container's whole life, and the CLI's future alone would make its frame ~20 KiB
// of stack resident in each shim.
fn main() {
    let args: Vec<OsString> = std::env::args_os().collect();
    let code = match args.get(1).and_then(|a| a.to_str()) {
        // The shim stays single-threaded: no async runtime, libcontainer forks from it.
        Some("shim") => shim(&args),
        Some("daemon") => daemon::main(args),
        Some("registry") => registry::main(args),
        _ => cli(args),
    };
    std::process::exit(code);
}

#[inline(never)]
fn cli(args: Vec<OsString>) -> i32 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    match rt {
        Ok(rt) => rt.block_on(berth_cli::run(args)),
        Err(e) => {
            eprintln!("berth: cannot start: {e}");
            1
        }
    }
}

/// Parse a subcommand's arguments (after `berth`); on failure the exit code, after clap has
/// printed its message (125 for a usage error, as docker does; 0 for --help).
pub(crate) fn parse_args<T: clap::Parser>(args: &[OsString]) -> Result<T, i32> {
    T::try_parse_from(args.iter().skip(1)).map_err(|e| {
        let _ = e.print();
        if e.use_stderr() {
            125
        } else {
            0
        }
    })
}

#[inline(never)]
fn shim(args: &[OsString]) -> i32 {
    if std::env::var_os("BERTH_SHIM_TRACE").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_writer(std::io::stderr)
            .with_timer(tracing_subscriber::fmt::time::uptime())
            .try_init();
    }
    let mut it = args.iter().skip(2);
    while let Some(a) = it.next() {
        if a == "--dir" {
            if let Some(dir) = it.next() {
                return berth_shim::main(std::path::Path::new(dir));
            }
        }
        if a == "--spare" {
            let announce = args.iter().any(|a| a == "--announce-netns");
            return berth_shim::spare(announce);
        }
    }
    eprintln!("usage: berth shim --dir <container-state-dir> | --spare [--announce-netns]");
    2
}
