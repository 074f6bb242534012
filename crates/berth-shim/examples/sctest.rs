fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let mut p = berth_runtime::seccomp::default_profile(&[]).unwrap();
    berth_runtime::seccomp::swap_masked_eq(&mut p);
    if mode == "native" {
        p.set_architectures(Some(vec![oci_spec::runtime::Arch::ScmpArchNative]));
    }
    if mode == "noargs" {
        let s: Vec<_> = p
            .syscalls()
            .clone()
            .unwrap()
            .into_iter()
            .filter(|s| s.args().is_none())
            .collect();
        p.set_syscalls(Some(s));
    }
    match libcontainer::seccomp::initialize_seccomp(&p) {
        Ok(_) => println!("{mode}: ok"),
        Err(e) => {
            let mut s = format!("{e}");
            let mut c = std::error::Error::source(&e);
            while let Some(x) = c {
                s += &format!(": {x}");
                c = x.source();
            }
            println!("{mode}: {s}")
        }
    }
}
