//! The precompiled seccomp path of the vendored libcontainer (third_party/libcontainer/BERTH.md):
//! a process that installs Docker's default profile from its precompiled BPF ends up with
//! exactly the filter that libseccomp would have installed, and that filter denies what the
//! profile denies. Needs root (CAP_SYS_ADMIN to load a filter without no_new_privs, and to read
//! a filter back with PTRACE_SECCOMP_GET_FILTER). Own `main`, no test threads: it forks.

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use oci_spec::runtime::LinuxSeccomp;
use std::time::Instant;

const PTRACE_SECCOMP_GET_FILTER: libc::c_uint = 0x420c;

fn profile() -> LinuxSeccomp {
    let caps: Vec<String> = berth_runtime::spec::DEFAULT_CAPABILITIES
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut p = berth_runtime::seccomp::default_profile(&caps).expect("default profile");
    berth_runtime::seccomp::swap_masked_eq(&mut p);
    p
}

/// What a forked child does once its filter is in: wait to be inspected, or try `unshare`.
#[derive(Clone, Copy)]
enum Then {
    Pause,
    /// Exit 0 if unshare(CLONE_NEWUSER) is refused with EPERM, 1 if it works, 2 otherwise.
    TryUnshare,
}

/// A child that installs `profile`, after being handed `precompiled` (a profile and its
/// program) if given.
fn child(profile: &LinuxSeccomp, precompiled: Option<(&LinuxSeccomp, Vec<u8>)>, then: Then) -> Pid {
    // The child says on this pipe when its filter is in.
    let (r, w) = nix::unistd::pipe().expect("pipe");
    // SAFETY: this test is single-threaded (own main); the child only loads the filter and
    // then pauses or exits.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Parent { child } => {
            drop(w);
            let mut b = [0u8; 1];
            // Either the byte (filter in) or end of file (the child exited early).
            let _ = nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&r), &mut b);
            child
        }
        ForkResult::Child => {
            drop(r);
            if let Some((for_profile, bpf)) = precompiled {
                if !libcontainer::seccomp::use_precompiled(for_profile, bpf) {
                    exit_now(10);
                }
            }
            if libcontainer::seccomp::initialize_seccomp(profile).is_err() {
                exit_now(11);
            }
            let _ = nix::unistd::write(&w, b"1");
            drop(w);
            match then {
                Then::Pause => loop {
                    // SAFETY: no arguments; returns on a signal.
                    unsafe { libc::pause() };
                },
                Then::TryUnshare => {
                    // SAFETY: an integer flag; the child exits right after.
                    let r = unsafe { libc::unshare(libc::CLONE_NEWUSER) };
                    let e = std::io::Error::last_os_error().raw_os_error();
                    let code = match (r, e) {
                        (-1, Some(libc::EPERM)) => 0,
                        (0, _) => 1,
                        _ => 2,
                    };
                    exit_now(code)
                }
            }
        }
    }
}

/// Leave the forked child without running the parent's exit handlers.
fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` ends the process at once; nothing of the parent's runs.
    unsafe { libc::_exit(code) }
}

/// The filter installed in `pid` (stopped with ptrace for the read), then `pid` is killed.
/// `None` if the kernel cannot give filters back (no CONFIG_CHECKPOINT_RESTORE).
fn filter_of(pid: Pid) -> Option<Vec<u8>> {
    // SAFETY: ptrace requests with integer arguments on our own child.
    unsafe {
        assert_eq!(
            libc::ptrace(libc::PTRACE_SEIZE, pid.as_raw(), 0usize, 0usize),
            0,
            "seize"
        );
        assert_eq!(
            libc::ptrace(libc::PTRACE_INTERRUPT, pid.as_raw(), 0usize, 0usize),
            0
        );
    }
    let st = waitpid(pid, None).expect("waitpid");
    assert!(
        matches!(st, WaitStatus::PtraceEvent(..) | WaitStatus::Stopped(..)),
        "{st:?}"
    );
    // SAFETY: a null buffer asks for the number of instructions only.
    let n = unsafe {
        libc::ptrace(
            PTRACE_SECCOMP_GET_FILTER,
            pid.as_raw(),
            0usize,
            std::ptr::null_mut::<libc::c_void>(),
        )
    };
    let out = if n <= 0 {
        let e = std::io::Error::last_os_error();
        assert!(
            matches!(
                e.raw_os_error(),
                Some(libc::EINVAL) | Some(libc::EMEDIUMTYPE)
            ),
            "PTRACE_SECCOMP_GET_FILTER: {e} (n = {n})"
        );
        None
    } else {
        let mut buf = vec![0u8; n as usize * 8];
        // SAFETY: `buf` holds the `n` instructions the kernel just counted.
        let m = unsafe {
            libc::ptrace(
                PTRACE_SECCOMP_GET_FILTER,
                pid.as_raw(),
                0usize,
                buf.as_mut_ptr() as *mut libc::c_void,
            )
        };
        assert_eq!(m, n, "the filter changed size");
        Some(buf)
    };
    let _ = kill(pid, Signal::SIGKILL);
    let _ = waitpid(pid, None);
    out
}

fn exit_code(pid: Pid) -> i32 {
    match waitpid(pid, None).expect("waitpid") {
        WaitStatus::Exited(_, c) => c,
        st => panic!("child: {st:?}"),
    }
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        println!("skipping: needs root");
        return;
    }
    let started = Instant::now();
    let p = profile();
    let bpf = libcontainer::seccomp::compile_bpf(&p).expect("compile");
    assert!(
        !bpf.is_empty() && bpf.len().is_multiple_of(8),
        "{} bytes",
        bpf.len()
    );

    // The same filter either way, and the very program compiled ahead.
    let by_libseccomp = filter_of(child(&p, None, Then::Pause));
    let precompiled = filter_of(child(&p, Some((&p, bpf.clone())), Then::Pause));
    match (by_libseccomp, precompiled) {
        (Some(a), Some(b)) => {
            assert_eq!(a.len(), b.len(), "filters of different lengths");
            assert!(a == b, "the precompiled filter differs from libseccomp's");
            assert!(
                b == bpf,
                "the installed filter is not the precompiled program"
            );
            println!("test precompiled_filter_is_libseccomps ... ok");
        }
        _ => println!(
            "test precompiled_filter_is_libseccomps ... skipped (no PTRACE_SECCOMP_GET_FILTER)"
        ),
    }

    // And it does what the profile says: without CAP_SYS_ADMIN in the profile, no unshare.
    let code = exit_code(child(&p, Some((&p, bpf.clone())), Then::TryUnshare));
    assert_eq!(code, 0, "unshare under the precompiled filter: exit {code}");
    let code = exit_code(child(&p, None, Then::TryUnshare));
    assert_eq!(code, 0, "unshare under libseccomp's filter: exit {code}");
    // A program made for another profile is not used for this one: libseccomp compiles it.
    let mut other = p.clone();
    other.set_default_errno_ret(Some(1234));
    let other_bpf = libcontainer::seccomp::compile_bpf(&other).expect("compile other");
    assert!(
        other_bpf != bpf,
        "changing the default errno changed nothing"
    );
    if let Some(f) = filter_of(child(&p, Some((&other, other_bpf)), Then::Pause)) {
        assert!(f == bpf, "a program for another profile was installed");
    }
    // A program the kernel refuses (a damaged cache file): libseccomp compiles the profile.
    let garbage = vec![0u8; 8];
    if let Some(f) = filter_of(child(&p, Some((&p, garbage)), Then::Pause)) {
        assert!(f == bpf, "not libseccomp's filter after a refused program");
    }
    let code = exit_code(child(&p, Some((&p, vec![0u8; 8])), Then::TryUnshare));
    assert_eq!(code, 0, "unshare after a refused program: exit {code}");
    println!("test precompiled_filter_denies_what_the_profile_denies ... ok");
    println!(
        "\ntest result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in {:.2}s\n",
        started.elapsed().as_secs_f64()
    );
}
