//! Link the berth binary as a position-dependent executable (`-no-pie`).
//!
//! Every container has a shim, a process of this binary, for its whole life. Linked as PIE,
//! each process applies the binary's relative relocations at start and so dirties its own copy
//! of the relocated read-only data (about 0.7 MiB of private memory per shim, measured with
//! /proc/<pid>/smaps). Linked at a fixed address, those pages need no relocation and stay
//! clean pages of the file, shared by every shim. (Go binaries, Docker's shims among them,
//! are linked this way on amd64 too.)
//!
//! On x86_64 glibc, .cargo/config.toml goes further: the whole build is static
//! (`crt-static`) with the static relocation model, so this flag only restates what that link
//! already is. On other targets it is what keeps the binary position-dependent.

fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
}
