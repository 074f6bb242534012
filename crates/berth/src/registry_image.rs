//! `berth registry image`: the registry as an image of its own (`berth-registry:latest`),
//! made from this very binary (and the shared libraries it runs with, when it is not static),
//! plus a configuration in distribution's format, so `-e REGISTRY_STORAGE_DELETE_ENABLED=true`
//! and the other `REGISTRY_*` overrides work as with `registry:2`.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

/// The configuration baked into the image (what `registry:2` has in
/// /etc/docker/registry/config.yml).
pub const CONFIG: &str = "version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
";

/// The shared libraries the image must carry beside the binary `exe` (this process's): none
/// for a static binary (whatever a name lookup may have loaded into this process), else the
/// shared objects it has mapped.
fn libraries_to_carry(exe: &[u8]) -> io::Result<Vec<PathBuf>> {
    if interpreter(exe).is_none() {
        return Ok(Vec::new());
    }
    mapped_libraries()
}

/// The shared objects this process has mapped (its libraries and the dynamic loader).
fn mapped_libraries() -> io::Result<Vec<PathBuf>> {
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let mut libs: Vec<PathBuf> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.starts_with('/') && p.contains(".so"))
        .map(PathBuf::from)
        .collect();
    libs.sort();
    libs.dedup();
    Ok(libs)
}

/// The ELF interpreter (`PT_INTERP`) a 64-bit little-endian executable asks for.
fn interpreter(exe: &[u8]) -> Option<String> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(exe.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(exe.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(exe.get(o..o + 8)?.try_into().ok()?));
    if exe.get(..4)? != b"\x7fELF" || exe.get(4)? != &2 || exe.get(5)? != &1 {
        return None;
    }
    let phoff = u64_at(0x20)? as usize;
    let (phentsize, phnum) = (u16_at(0x36)? as usize, u16_at(0x38)? as usize);
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if u32_at(ph)? == 3 {
            let (off, size) = (u64_at(ph + 8)? as usize, u64_at(ph + 32)? as usize);
            let raw = exe.get(off..off + size)?;
            return Some(String::from_utf8_lossy(raw.split(|b| *b == 0).next()?).into_owned());
        }
    }
    None
}

fn dir_entry(b: &mut tar::Builder<std::fs::File>, path: &str, mode: u32) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(mode);
    h.set_size(0);
    h.set_mtime(0);
    b.append_data(&mut h, format!("{}/", path.trim_matches('/')), io::empty())
}

fn file_entry(
    b: &mut tar::Builder<std::fs::File>,
    path: &str,
    data: &[u8],
    mode: u32,
) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(mode);
    h.set_size(data.len() as u64);
    h.set_mtime(0);
    b.append_data(&mut h, path.trim_start_matches('/'), data)
}

fn symlink_entry(b: &mut tar::Builder<std::fs::File>, path: &Path, target: &str) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_mode(0o777);
    h.set_size(0);
    h.set_mtime(0);
    b.append_link(
        &mut h,
        path.display().to_string().trim_start_matches('/'),
        target,
    )
}

/// Write the image's root filesystem as a tar.
pub fn write_rootfs(out: &Path) -> io::Result<()> {
    let exe_path = std::env::current_exe()?;
    let exe = std::fs::read(&exe_path)?;
    let mut b = tar::Builder::new(std::fs::File::create(out)?);
    let mut dirs: Vec<String> = Vec::new();
    // a directory and its parents, each once
    let mut add_dirs = |b: &mut tar::Builder<std::fs::File>, dir: &Path| -> io::Result<()> {
        let mut acc = PathBuf::from("/");
        for c in dir.components().skip(1) {
            acc.push(c);
            let s = acc.display().to_string();
            if !dirs.contains(&s) {
                dir_entry(b, &s, 0o755)?;
                dirs.push(s);
            }
        }
        Ok(())
    };
    for d in ["/etc/berth", "/var/lib/registry"] {
        add_dirs(&mut b, Path::new(d))?;
    }
    dir_entry(&mut b, "tmp", 0o1777)?;
    file_entry(&mut b, "berth", &exe, 0o755)?;
    file_entry(&mut b, "etc/berth/registry.yml", CONFIG.as_bytes(), 0o644)?;
    file_entry(&mut b, "etc/passwd", b"root:x:0:0:root:/:/berth\n", 0o644)?;
    for lib in libraries_to_carry(&exe)? {
        let data = std::fs::read(&lib)?;
        add_dirs(&mut b, lib.parent().unwrap_or(Path::new("/")))?;
        file_entry(&mut b, &lib.display().to_string(), &data, 0o755)?;
        // the names the loader looks for (libseccomp.so.2 for libseccomp.so.2.5.4), as the
        // host's symlinks beside it give them
        let (Some(dir), Some(name)) = (lib.parent(), lib.file_name().and_then(|n| n.to_str()))
        else {
            continue;
        };
        let mut short = name;
        while let Some((head, tail)) = short.rsplit_once('.') {
            if !tail.bytes().all(|c| c.is_ascii_digit()) || !head.contains(".so") {
                break;
            }
            short = head;
            let alias = dir.join(short);
            if alias.is_symlink() && std::fs::canonicalize(&alias).ok().as_deref() == Some(&*lib) {
                symlink_entry(&mut b, &alias, name)?;
            }
        }
    }
    // the loader where the binary looks for it, if that is not where it lies
    if let Some(interp) = interpreter(&exe) {
        let real = std::fs::canonicalize(&interp)?;
        if Path::new(&interp) != real {
            add_dirs(
                &mut b,
                Path::new(&interp).parent().unwrap_or(Path::new("/")),
            )?;
            symlink_entry(&mut b, Path::new(&interp), &real.display().to_string())?;
        }
    }
    b.into_inner()?.sync_all()
}

/// `berth registry image`: build the rootfs, then import it through the engine with the
/// image's settings (or only write the tar, for `docker import`).
pub fn main(tag: &str, output: Option<&Path>, host: Option<&str>) -> i32 {
    let (tmp, path) = match output {
        Some(p) => (None, p.to_path_buf()),
        None => match tempfile::tempdir() {
            Ok(d) => {
                let p = d.path().join("berth-registry.tar");
                (Some(d), p)
            }
            Err(e) => {
                eprintln!("berth registry image: {e}");
                return 1;
            }
        },
    };
    if let Err(e) = write_rootfs(&path) {
        eprintln!("berth registry image: {e}");
        return 1;
    }
    if output.is_some() {
        return 0;
    }
    let mut args: Vec<OsString> = vec!["berth".into()];
    if let Some(h) = host {
        args.extend(["-H".into(), h.into()]);
    }
    for a in [
        "import",
        "-m",
        "berth registry image",
        "-c",
        r#"ENTRYPOINT ["/berth", "registry", "serve"]"#,
        "-c",
        r#"CMD ["/etc/berth/registry.yml"]"#,
        "-c",
        "EXPOSE 5000",
        "-c",
        "VOLUME /var/lib/registry",
    ] {
        args.push(a.into());
    }
    args.push(path.into_os_string());
    args.push(tag.into());
    let code = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(berth_cli::run(args)),
        Err(e) => {
            eprintln!("berth registry image: {e}");
            1
        }
    };
    drop(tmp);
    code
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_loader_and_libraries_a_binary_needs() {
        // A dynamically linked program of the host: its loader is named in the ELF.
        let sh = std::fs::read("/bin/sh").unwrap();
        let interp = super::interpreter(&sh).expect("/bin/sh is dynamically linked");
        assert!(
            interp.starts_with('/') && interp.contains("ld-linux"),
            "{interp}"
        );
        assert!(super::interpreter(b"not an elf").is_none());
        // This test binary: static on x86_64 glibc (.cargo/config.toml), so it names no
        // loader and maps no library, and the image needs nothing beside it; built dynamic
        // (another target), it maps libc and the image must carry it.
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let libs = super::libraries_to_carry(&exe).unwrap();
        match super::interpreter(&exe) {
            None => assert!(libs.is_empty(), "{libs:?}"),
            Some(_) => assert!(
                libs.iter()
                    .any(|l| l.display().to_string().contains("libc.so")),
                "{libs:?}"
            ),
        }
        // The static case is decided by the ELF alone, not by what this process has mapped.
        assert!(super::libraries_to_carry(b"not an elf").unwrap().is_empty());
    }
}
