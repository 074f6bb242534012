//! Builds berth-init (init/berth-init.c), the static PID 1 of `run --init`, which the daemon
//! embeds and bind-mounts at /dev/init.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "init/berth-init.c";
    println!("cargo:rerun-if-changed={src}");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("berth-init");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(["-static", "-Os", "-s", "-Wall", "-o"])
        .arg(&out)
        .arg(src)
        .status()
        .unwrap_or_else(|e| {
            panic!("run {cc} to build berth-init: {e} (install gcc and libc6-dev)")
        });
    assert!(
        status.success(),
        "{cc} failed to build berth-init (needs gcc and libc6-dev)"
    );
}
