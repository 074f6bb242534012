//! The build context: the client's tar unpacked into a private directory, the
//! Dockerfile read from it, and COPY/ADD sources resolved inside it (never outside:
//! `../` and symlinks that lead out are refused) and checksummed for the cache.

use berth_api::ApiError;
use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// An unpacked build context.
pub(crate) struct Context {
    root: PathBuf,
    /// Symlinks resolve as if the root were `/` (an image's root for `COPY --from`);
    /// otherwise (a build context) a symlink that leads out is an error.
    scoped: bool,
}

/// A COPY/ADD source found in the context.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    /// Its path inside the context after following symlinks (`/`-separated, relative;
    /// empty for the context's root).
    pub rel: String,
    /// What the Dockerfile named (for messages and the destination's name).
    pub name: String,
    pub is_dir: bool,
}

fn internal(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("{what}: {e}"))
}

impl Context {
    /// Unpacks the context tar (plain, gzip or zstd) from `body` into `root`, which must
    /// not exist yet.
    pub(crate) fn receive(root: &Path, body: &mut (dyn Read + Send)) -> Result<Context, ApiError> {
        std::fs::create_dir_all(root).map_err(|e| internal("create build context dir", e))?;
        let ctx = Context {
            root: root.to_path_buf(),
            scoped: false,
        };
        let mut counted = Counted { inner: body, n: 0 };
        let reader = berth_snapshot::decompress(&mut counted)
            .map_err(|e| ApiError::invalid(format!("the build context: {e}")))?;
        let mut reader = std::io::BufReader::with_capacity(crate::images::BODY_BUF, reader);
        let r = berth_snapshot::extract_into_root(
            root,
            "/",
            &mut reader,
            &berth_snapshot::ExtractOptions::default(),
        );
        crate::images::drain(&mut reader);
        drop(reader);
        match r {
            Ok(()) => Ok(ctx),
            // An empty body is an empty context (nothing to send); a cut one is an error.
            Err(_) if counted.n == 0 => Ok(ctx),
            Err(e) => Err(ApiError::invalid(format!(
                "failed to read the build context: {e}"
            ))),
        }
    }

    /// An image's root, where symlinks resolve inside the root (`COPY --from`).
    pub(crate) fn scoped(root: &Path) -> Context {
        Context {
            root: root.to_path_buf(),
            scoped: true,
        }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    fn root_fd(&self) -> Result<File, ApiError> {
        File::open(&self.root).map_err(|e| internal("open the build context", e))
    }

    /// Opens `rel` beneath the context: symlinks are followed but may not leave it.
    fn open_beneath(&self, rel: &str, flags: OFlag) -> Result<File, Errno> {
        let root = self.root_fd().map_err(|_| Errno::EIO)?;
        let rel = if rel.is_empty() { "." } else { rel };
        let scope = if self.scoped {
            ResolveFlag::RESOLVE_IN_ROOT
        } else {
            ResolveFlag::RESOLVE_BENEATH
        };
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .resolve(scope | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        loop {
            match openat2(root.as_raw_fd(), rel, how) {
                Err(Errno::EAGAIN) => continue,
                // SAFETY: openat2 returned a new descriptor that nothing else owns.
                r => return r.map(|fd| File::from(unsafe { OwnedFd::from_raw_fd(fd) })),
            }
        }
    }

    /// Reads the Dockerfile at `name` (a path inside the context). Like Docker, a missing
    /// `Dockerfile` is also looked for as `dockerfile`.
    pub(crate) fn read_dockerfile(&self, name: &str) -> Result<String, ApiError> {
        let name = if name.is_empty() { "Dockerfile" } else { name };
        let rel = clean_rel(name).ok_or_else(|| {
            ApiError::invalid(format!(
                "the Dockerfile ({name}) must be within the build context"
            ))
        })?;
        let mut candidates = vec![rel.clone()];
        if name == "Dockerfile" {
            candidates.push("dockerfile".into());
        }
        for c in &candidates {
            match self.open_beneath(c, OFlag::O_RDONLY) {
                Ok(mut f) => {
                    let mut text = String::new();
                    f.by_ref()
                        .take(16 << 20)
                        .read_to_string(&mut text)
                        .map_err(|e| {
                            ApiError::invalid(format!("failed to read the Dockerfile {name}: {e}"))
                        })?;
                    return Ok(text);
                }
                Err(Errno::ENOENT) => continue,
                Err(Errno::EXDEV) => {
                    return Err(ApiError::invalid(format!(
                        "the Dockerfile ({name}) must be within the build context"
                    )))
                }
                Err(Errno::EISDIR) => {
                    return Err(ApiError::invalid(format!(
                        "Cannot locate specified Dockerfile: {name} (it is a directory)"
                    )))
                }
                Err(e) => return Err(internal(&format!("open the Dockerfile {name}"), e)),
            }
        }
        Err(ApiError::invalid(format!(
            "Cannot locate specified Dockerfile: {name}"
        )))
    }

    /// Reads `.dockerignore` if there is one.
    pub(crate) fn read_dockerignore(&self) -> Option<String> {
        let mut f = self.open_beneath(".dockerignore", OFlag::O_RDONLY).ok()?;
        let mut text = String::new();
        f.read_to_string(&mut text).ok()?;
        Some(text)
    }

    /// Removes a top-level entry (the Dockerfile or `.dockerignore` when the rules exclude
    /// them: Docker sends them anyway, and hides them from COPY).
    pub(crate) fn remove(&self, rel: &str) {
        if let Some(rel) = clean_rel(rel) {
            if !rel.is_empty() {
                let _ = std::fs::remove_file(self.root.join(rel));
            }
        }
    }

    /// The sources a COPY or ADD names: globs expanded, each resolved beneath the context.
    pub(crate) fn sources(
        &self,
        patterns: &[String],
        keyword: &str,
    ) -> Result<Vec<Source>, ApiError> {
        let mut out = Vec::new();
        for pat in patterns {
            let rel = clean_rel(pat).ok_or_else(|| {
                ApiError::invalid(format!(
                    "{keyword} failed: forbidden path outside the build context: {pat} ()"
                ))
            })?;
            let globbed = has_glob(&rel);
            let matches = if globbed {
                self.glob(&rel)?
            } else {
                vec![rel.clone()]
            };
            if matches.is_empty() {
                return Err(not_found(keyword, pat));
            }
            for m in matches {
                // A match is named by its own path (the name it is copied under), not the pattern.
                let name = if globbed { m.as_str() } else { pat.as_str() };
                out.push(self.resolve(&m, name, keyword)?);
            }
        }
        Ok(out)
    }

    fn resolve(&self, rel: &str, name: &str, keyword: &str) -> Result<Source, ApiError> {
        let f = match self.open_beneath(rel, OFlag::O_PATH) {
            Ok(f) => f,
            Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => return Err(not_found(keyword, name)),
            Err(Errno::EXDEV) | Err(Errno::ELOOP) => {
                return Err(ApiError::invalid(format!(
                    "{keyword} failed: forbidden path outside the build context: {name} (a symlink leads out of it)"
                )))
            }
            Err(e) => return Err(internal(&format!("{keyword} {name}"), e)),
        };
        let real = std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd()))
            .map_err(|e| internal("resolve a source", e))?;
        let rel = real
            .strip_prefix(&self.root)
            .map_err(|_| {
                ApiError::invalid(format!(
                    "{keyword} failed: forbidden path outside the build context: {name} ()"
                ))
            })?
            .to_string_lossy()
            .into_owned();
        let md = std::fs::metadata(format!("/proc/self/fd/{}", f.as_raw_fd()))
            .map_err(|e| internal("stat a source", e))?;
        Ok(Source {
            rel,
            name: name.to_string(),
            is_dir: md.is_dir(),
        })
    }

    /// Every context path matching `pattern` component by component (Go's
    /// `filepath.Match` semantics: `*` does not cross `/`).
    fn glob(&self, pattern: &str) -> Result<Vec<String>, ApiError> {
        let mut found = vec![String::new()];
        for comp in pattern.split('/') {
            let mut next = Vec::new();
            for base in &found {
                if !has_glob(comp) {
                    let p = join_rel(base, comp);
                    if std::fs::symlink_metadata(self.root.join(&p)).is_ok() {
                        next.push(p);
                    }
                    continue;
                }
                let dir = self.root.join(base);
                let Ok(rd) = std::fs::read_dir(&dir) else {
                    continue;
                };
                let mut names: Vec<String> = rd
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                for n in names {
                    if berth_builder::dockerignore::match_name(comp, &n).map_err(|e| {
                        ApiError::invalid(format!("invalid pattern {pattern:?}: {e}"))
                    })? {
                        next.push(join_rel(base, &n));
                    }
                }
            }
            found = next;
        }
        Ok(found)
    }

    /// The cache checksum of `sources`: every file's path, type, mode, owner, size, content
    /// and link target; not its times.
    pub(crate) fn checksum(&self, sources: &[Source]) -> Result<String, ApiError> {
        let mut h = Sha256::new();
        for s in sources {
            h.update(s.name.as_bytes());
            h.update([0]);
            hash_tree(&self.root.join(&s.rel), "", &mut h)
                .map_err(|e| internal(&format!("checksum {}", s.name), e))?;
        }
        Ok(hex::encode(h.finalize()))
    }
}

/// Counts the bytes read through it.
struct Counted<'a> {
    inner: &'a mut (dyn Read + Send),
    n: u64,
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n += k as u64;
        Ok(k)
    }
}

/// Hashes the tree at `path` (not following symlinks below it) into `h`.
pub(crate) fn hash_tree(path: &Path, rel: &str, h: &mut Sha256) -> std::io::Result<()> {
    let md = std::fs::symlink_metadata(path)?;
    let ft = md.file_type();
    h.update(rel.as_bytes());
    h.update(format!("\0{:o}\0{}\0{}\0", md.mode(), md.uid(), md.gid()).as_bytes());
    if ft.is_symlink() {
        h.update(std::fs::read_link(path)?.as_os_str().as_encoded_bytes());
    } else if ft.is_file() {
        h.update(md.len().to_le_bytes());
        let mut f = File::open(path)?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    } else if ft.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(path)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for n in names {
            let child_rel = join_rel(rel, &n.to_string_lossy());
            hash_tree(&path.join(&n), &child_rel, h)?;
        }
    }
    h.update([0xff]);
    Ok(())
}

fn not_found(keyword: &str, name: &str) -> ApiError {
    ApiError::invalid(format!(
        "{keyword} failed: file not found in build context or excluded by .dockerignore: stat {name}: file does not exist"
    ))
}

fn join_rel(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_string()
    } else {
        format!("{base}/{name}")
    }
}

/// Cleans a context path lexically (`./`, `//`, a leading `/` dropped, `..` applied);
/// `None` if it climbs out of the context. The context itself is `""`.
pub(crate) fn clean_rel(p: &str) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    Some(out.join("/"))
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_body_is_an_empty_context_and_a_cut_one_an_error() {
        let t = tempfile::tempdir().unwrap();
        Context::receive(&t.path().join("empty"), &mut std::io::empty()).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(4096);
        h.set_mode(0o644);
        b.append_data(&mut h, "big", &vec![1u8; 4096][..]).unwrap();
        let whole = b.into_inner().unwrap();
        let mut cut = &whole[..1500];
        let e = match Context::receive(&t.path().join("cut"), &mut cut) {
            Ok(_) => panic!("a cut context was taken"),
            Err(e) => e,
        };
        assert!(
            e.message.contains("failed to read the build context"),
            "{}",
            e.message
        );
    }

    #[test]
    fn clean_rel_refuses_climbing_out() {
        assert_eq!(clean_rel("./a//b/").as_deref(), Some("a/b"));
        assert_eq!(clean_rel("/a/../b").as_deref(), Some("b"));
        assert_eq!(clean_rel(".").as_deref(), Some(""));
        assert_eq!(clean_rel("../x"), None);
        assert_eq!(clean_rel("a/../../x"), None);
    }

    #[test]
    fn glob_is_go_filepath_match() {
        let glob_match = berth_builder::dockerignore::match_name;
        assert!(glob_match("*.txt", "a.txt").unwrap());
        assert!(glob_match("*.txt", ".hidden.txt").unwrap());
        assert!(!glob_match("*.txt", "a.txt.bak").unwrap());
        assert!(glob_match("a?c", "abc").unwrap());
        assert!(!glob_match("a?c", "ac").unwrap());
        assert!(glob_match("[a-c]x", "bx").unwrap());
        assert!(!glob_match("[^a-c]x", "bx").unwrap());
        assert!(glob_match("[^a-c]x", "dx").unwrap());
        assert!(glob_match("\\*", "*").unwrap());
        assert!(!glob_match("\\*", "a").unwrap());
        assert!(glob_match("*a*b*", "xxaxxbxx").unwrap());
        assert!(glob_match("file[0-9]*", "file12").unwrap());
        assert!(glob_match("[a-", "x").is_err());
    }

    #[test]
    fn sources_stay_inside_the_context() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("ctx");
        std::fs::create_dir_all(root.join("dir/sub")).unwrap();
        std::fs::write(root.join("a.txt"), "a").unwrap();
        std::fs::write(root.join("b.txt"), "b").unwrap();
        std::fs::write(root.join("dir/sub/c"), "c").unwrap();
        std::fs::write(t.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink("../secret", root.join("out")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("dir/sub", root.join("in")).unwrap();
        let ctx = Context {
            root: root.clone(),
            scoped: false,
        };
        let s = ctx.sources(&["*.txt".into()], "COPY").unwrap();
        assert_eq!(
            s.iter().map(|s| s.rel.as_str()).collect::<Vec<_>>(),
            ["a.txt", "b.txt"]
        );
        let s = ctx.sources(&["in".into()], "COPY").unwrap();
        assert_eq!(s[0].rel, "dir/sub");
        assert!(s[0].is_dir);
        for bad in ["out", "abs", "../secret", "dir/../../secret"] {
            let e = ctx.sources(&[bad.into()], "COPY").unwrap_err();
            assert!(
                e.message.contains("outside the build context"),
                "{bad}: {}",
                e.message
            );
        }
        let e = ctx.sources(&["nope".into()], "COPY").unwrap_err();
        assert!(
            e.message.contains("file not found in build context"),
            "{}",
            e.message
        );
        let e = ctx.sources(&["*.nope".into()], "COPY").unwrap_err();
        assert!(
            e.message.contains("file not found in build context"),
            "{}",
            e.message
        );
    }

    #[test]
    fn checksum_ignores_times_not_content_or_mode() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("d")).unwrap();
        std::fs::write(t.path().join("d/f"), "hello").unwrap();
        let ctx = Context {
            root: t.path().to_path_buf(),
            scoped: false,
        };
        let src = ctx.sources(&["d".into()], "COPY").unwrap();
        let a = ctx.checksum(&src).unwrap();
        let f = File::options()
            .write(true)
            .open(t.path().join("d/f"))
            .unwrap();
        f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(
            ctx.checksum(&src).unwrap(),
            a,
            "mtime alone changes nothing"
        );
        std::fs::write(t.path().join("d/f"), "hellO").unwrap();
        let b = ctx.checksum(&src).unwrap();
        assert_ne!(a, b, "one byte changes the checksum");
        std::fs::set_permissions(t.path().join("d/f"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        assert_ne!(ctx.checksum(&src).unwrap(), b, "the mode changes it");
    }
}
