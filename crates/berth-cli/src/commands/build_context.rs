//! The build context as `docker build` sends it: a tar of the context directory, written
//! while the directory is walked and handed on in 1 MiB chunks (never whole in memory).
//!
//! As docker's client (moby `archive.TarWithOptions` with `ChownOpts` 0:0): entries in
//! lexical order, owners 0:0, permission bits and mtimes (seconds) kept, symlinks as
//! symlinks, hard links as links to the first path seen, device nodes and fifos as such,
//! sockets left out; `.dockerignore` applied, with the Dockerfile and `.dockerignore`
//! always sent. A Dockerfile from stdin or from outside the context is added under a
//! random name `.dockerfile.<20 hex>`, which `.dockerignore` then lists so that the
//! daemon leaves it out of `COPY`/`ADD`.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use berth_builder::dockerignore::{MatchState, Matcher};
use bytes::Bytes;
use tar::{EntryType, Header};

/// The size of each chunk of the upload.
pub(crate) const CHUNK: usize = 1 << 20;

/// Why writing the context stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ContextError {
    /// The receiving side went away (the request failed); its error is the one to show.
    Cancelled,
    /// Reading the context failed.
    Msg(String),
}

impl std::fmt::Display for ContextError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ContextError::Cancelled => f.write_str("context upload cancelled"),
            ContextError::Msg(m) => f.write_str(m),
        }
    }
}

/// Where the chunks go: the request body's channel, or a buffer in tests.
pub(crate) trait ChunkSink {
    /// Hands one chunk on; an error means the other side is gone.
    fn send(&mut self, chunk: Bytes) -> Result<(), ()>;
}

impl ChunkSink for tokio::sync::mpsc::Sender<io::Result<Bytes>> {
    fn send(&mut self, chunk: Bytes) -> Result<(), ()> {
        self.blocking_send(Ok(chunk)).map_err(|_| ())
    }
}

impl ChunkSink for Vec<u8> {
    fn send(&mut self, chunk: Bytes) -> Result<(), ()> {
        self.extend_from_slice(&chunk);
        Ok(())
    }
}

/// A Dockerfile that travels under another name (from stdin, or from outside the context).
#[derive(Debug, Clone)]
pub(crate) struct ExtraDockerfile {
    pub name: String,
    pub content: Vec<u8>,
}

/// A context directory to send.
#[derive(Debug, Clone)]
pub(crate) struct DirContext {
    /// The context directory (absolute, symlinks resolved).
    pub root: PathBuf,
    /// `.dockerignore`, with the exceptions that keep the Dockerfile and itself.
    pub matcher: Matcher,
    pub extra: Option<ExtraDockerfile>,
}

/// `.dockerfile.` and 20 random hex digits, as docker names an added Dockerfile.
pub(crate) fn random_dockerfile_name() -> String {
    let mut b = [0u8; 10];
    let ok = File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok();
    if !ok {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
            ^ ((std::process::id() as u128) << 64);
        b.copy_from_slice(&t.to_le_bytes()[..10]);
    }
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(".dockerfile.{hex}")
}

/// Tar output in chunks of [`CHUNK`] bytes; file contents are read straight into the chunk.
pub(crate) struct TarOut<S: ChunkSink> {
    sink: S,
    buf: Vec<u8>,
    fill: usize,
    total: u64,
    counter: Option<Arc<AtomicU64>>,
}

impl<S: ChunkSink> TarOut<S> {
    pub(crate) fn new(sink: S, counter: Option<Arc<AtomicU64>>) -> Self {
        TarOut {
            sink,
            buf: vec![0u8; CHUNK],
            fill: 0,
            total: 0,
            counter,
        }
    }

    fn flush(&mut self) -> Result<(), ContextError> {
        if self.fill > 0 {
            let chunk = Bytes::copy_from_slice(&self.buf[..self.fill]);
            self.sink
                .send(chunk)
                .map_err(|()| ContextError::Cancelled)?;
            self.total += self.fill as u64;
            if let Some(c) = &self.counter {
                c.store(self.total, Ordering::Relaxed);
            }
            self.fill = 0;
        }
        Ok(())
    }

    fn write(&mut self, mut data: &[u8]) -> Result<(), ContextError> {
        while !data.is_empty() {
            let n = (CHUNK - self.fill).min(data.len());
            self.buf[self.fill..self.fill + n].copy_from_slice(&data[..n]);
            self.fill += n;
            data = &data[n..];
            if self.fill == CHUNK {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn pad(&mut self, size: u64) -> Result<(), ContextError> {
        let rem = (size % 512) as usize;
        if rem != 0 {
            self.write(&[0u8; 512][..512 - rem])?;
        }
        Ok(())
    }

    /// A GNU long-name (`L`) or long-link (`K`) entry for a name over 100 bytes.
    fn long_name(&mut self, kind: u8, name: &[u8]) -> Result<(), ContextError> {
        let mut h = Header::new_gnu();
        h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(name.len() as u64 + 1);
        h.set_entry_type(EntryType::new(kind));
        h.set_cksum();
        self.write(h.as_bytes())?;
        self.write(name)?;
        self.write(&[0])?;
        self.pad(name.len() as u64 + 1)
    }

    /// Writes a header for `path` (and `link`), with long names as GNU extensions.
    fn header(
        &mut self,
        h: &mut Header,
        path: &[u8],
        link: Option<&[u8]>,
    ) -> Result<(), ContextError> {
        if path.len() > 100 {
            self.long_name(b'L', path)?;
        }
        if let Some(l) = link.filter(|l| l.len() > 100) {
            self.long_name(b'K', l)?;
        }
        {
            let old = h.as_old_mut();
            let n = path.len().min(100);
            old.name = [0; 100];
            old.name[..n].copy_from_slice(&path[..n]);
            if let Some(l) = link {
                let n = l.len().min(100);
                old.linkname = [0; 100];
                old.linkname[..n].copy_from_slice(&l[..n]);
            }
        }
        h.set_cksum();
        self.write(h.as_bytes())
    }

    /// A regular file from memory.
    pub(crate) fn file(
        &mut self,
        path: &str,
        mode: u32,
        mtime: u64,
        data: &[u8],
    ) -> Result<(), ContextError> {
        let mut h = base_header(EntryType::Regular, mode, mtime);
        h.set_size(data.len() as u64);
        self.header(&mut h, path.as_bytes(), None)?;
        self.write(data)?;
        self.pad(data.len() as u64)
    }

    /// `size` bytes of `f`, read straight into the chunk buffer.
    fn copy_file(&mut self, f: &mut File, size: u64, path: &Path) -> Result<(), ContextError> {
        let mut left = size;
        while left > 0 {
            if self.fill == CHUNK {
                self.flush()?;
            }
            let want = ((CHUNK - self.fill) as u64).min(left) as usize;
            let n = match f.read(&mut self.buf[self.fill..self.fill + want]) {
                Ok(0) => {
                    return Err(ContextError::Msg(format!(
                        "error checking context: file '{}' changed size while being read",
                        path.display()
                    )))
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(ContextError::Msg(format!(
                        "error checking context: read {}: {}",
                        path.display(),
                        crate::opts::io_msg(&e)
                    )))
                }
            };
            self.fill += n;
            left -= n as u64;
        }
        self.pad(size)
    }

    /// The two zero blocks that end an archive; returns the bytes written.
    pub(crate) fn finish(mut self) -> Result<(u64, S), ContextError> {
        self.write(&[0u8; 1024])?;
        self.flush()?;
        Ok((self.total, self.sink))
    }
}

fn base_header(kind: EntryType, mode: u32, mtime: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode & 0o7777);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime);
    h.set_size(0);
    h
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The walk over the context directory.
struct Walker<'a, S: ChunkSink> {
    ctx: &'a DirContext,
    out: TarOut<S>,
    /// (device, inode) of files with several links → the first path written.
    links: HashMap<(u64, u64), Vec<u8>>,
    saw_dockerignore: bool,
}

/// Writes the context directory as a tar into `out`; returns the bytes written.
pub(crate) fn write_dir_context<S: ChunkSink>(
    ctx: &DirContext,
    out: TarOut<S>,
) -> Result<(u64, S), ContextError> {
    let mut w = Walker {
        ctx,
        out,
        links: HashMap::new(),
        saw_dockerignore: false,
    };
    w.walk(&ctx.root, &[], None)?;
    if let Some(extra) = &ctx.extra {
        let now = now_secs();
        w.out.file(&extra.name, 0o600, now, &extra.content)?;
        if !w.saw_dockerignore {
            let text = format!(".dockerignore\n{}\n", extra.name);
            w.out.file(".dockerignore", 0o600, now, text.as_bytes())?;
        }
    }
    w.out.finish()
}

impl<S: ChunkSink> Walker<'_, S> {
    fn walk(
        &mut self,
        dir: &Path,
        rel: &[u8],
        state: Option<&MatchState>,
    ) -> Result<(), ContextError> {
        let rd = std::fs::read_dir(dir).map_err(|e| {
            ContextError::Msg(match e.kind() {
                io::ErrorKind::PermissionDenied => {
                    format!("error checking context: can't stat '{}'", dir.display())
                }
                _ => format!(
                    "error checking context: open {}: {}",
                    dir.display(),
                    crate::opts::io_msg(&e)
                ),
            })
        })?;
        let mut names: Vec<std::ffi::OsString> = Vec::new();
        for e in rd {
            let e = e.map_err(|e| {
                ContextError::Msg(format!(
                    "error checking context: readdir {}: {}",
                    dir.display(),
                    crate::opts::io_msg(&e)
                ))
            })?;
            names.push(e.file_name());
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let matching = !self.ctx.matcher.is_empty();
        for name in names {
            let abs = dir.join(&name);
            let mut path = rel.to_vec();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(name.as_bytes());
            let md = match std::fs::symlink_metadata(&abs) {
                Ok(m) => m,
                // Gone since the directory was read: as if it never was.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(_) => {
                    return Err(ContextError::Msg(format!(
                        "error checking context: can't stat '{}'",
                        abs.display()
                    )))
                }
            };
            let st = if matching {
                let p = String::from_utf8_lossy(&path);
                let st = self.ctx.matcher.matches_in(&p, state);
                if st.excluded() {
                    if md.is_dir() && self.ctx.matcher.may_include_under(&p) {
                        self.walk(&abs, &path, Some(&st))?;
                    }
                    continue;
                }
                Some(st)
            } else {
                None
            };
            self.entry(&abs, &path, &md)?;
            if md.is_dir() {
                self.walk(&abs, &path, st.as_ref())?;
            }
        }
        Ok(())
    }

    fn entry(&mut self, abs: &Path, path: &[u8], md: &Metadata) -> Result<(), ContextError> {
        let ft = md.file_type();
        let mtime = md.mtime().max(0) as u64;
        let mode = md.mode();
        if ft.is_dir() {
            let mut name = path.to_vec();
            name.push(b'/');
            let mut h = base_header(EntryType::Directory, mode, mtime);
            return self.out.header(&mut h, &name, None);
        }
        if ft.is_symlink() {
            let target = std::fs::read_link(abs).map_err(|e| {
                ContextError::Msg(format!(
                    "error checking context: readlink {}: {}",
                    abs.display(),
                    crate::opts::io_msg(&e)
                ))
            })?;
            let mut h = base_header(EntryType::Symlink, mode, mtime);
            return self
                .out
                .header(&mut h, path, Some(target.as_os_str().as_bytes()));
        }
        if md.nlink() > 1 && !ft.is_dir() {
            let key = (md.dev(), md.ino());
            if let Some(first) = self.links.get(&key).cloned() {
                let mut h = base_header(EntryType::Link, mode, mtime);
                return self.out.header(&mut h, path, Some(&first));
            }
            self.links.insert(key, path.to_vec());
        }
        if ft.is_file() {
            let is_ignore_file = path == b".dockerignore";
            if is_ignore_file {
                self.saw_dockerignore = true;
            }
            let mut f = File::open(abs).map_err(|e| {
                ContextError::Msg(match e.kind() {
                    io::ErrorKind::PermissionDenied => format!(
                        "error checking context: no permission to read from '{}'",
                        abs.display()
                    ),
                    _ => format!(
                        "error checking context: open {}: {}",
                        abs.display(),
                        crate::opts::io_msg(&e)
                    ),
                })
            })?;
            if is_ignore_file {
                if let Some(extra) = &self.ctx.extra {
                    // docker's AddDockerfileToBuildContext: list the added Dockerfile.
                    let mut text = Vec::new();
                    f.read_to_end(&mut text).map_err(|e| {
                        ContextError::Msg(format!(
                            "error checking context: read {}: {}",
                            abs.display(),
                            crate::opts::io_msg(&e)
                        ))
                    })?;
                    text.extend_from_slice(format!("\n{}\n", extra.name).as_bytes());
                    let mut h = base_header(EntryType::Regular, mode, mtime);
                    h.set_size(text.len() as u64);
                    self.out.header(&mut h, path, None)?;
                    self.out.write(&text)?;
                    return self.out.pad(text.len() as u64);
                }
            }
            let size = md.len();
            let mut h = base_header(EntryType::Regular, mode, mtime);
            h.set_size(size);
            self.out.header(&mut h, path, None)?;
            return self.out.copy_file(&mut f, size, abs);
        }
        let kind = if ft.is_char_device() {
            EntryType::Char
        } else if ft.is_block_device() {
            EntryType::Block
        } else if ft.is_fifo() {
            EntryType::Fifo
        } else {
            // Sockets (and anything else) stay out, as in docker's archive.
            return Ok(());
        };
        let mut h = base_header(kind, mode, mtime);
        if kind != EntryType::Fifo {
            let rdev = md.rdev();
            let _ = h.set_device_major(libc::major(rdev));
            let _ = h.set_device_minor(libc::minor(rdev));
        }
        self.out.header(&mut h, path, None)
    }
}

/// Whether the first bytes of stdin are an archive (docker's `isArchive`): a compression
/// magic (gzip, bzip2, xz, zstd) or a tar header with a good checksum.
pub(crate) fn is_archive(head: &[u8]) -> bool {
    const MAGICS: [&[u8]; 4] = [
        &[0x1f, 0x8b, 0x08],
        b"BZh",
        &[0xfd, b'7', b'z', b'X', b'Z', 0x00],
        &[0x28, 0xb5, 0x2f, 0xfd],
    ];
    if MAGICS.iter().any(|m| head.starts_with(m)) {
        return true;
    }
    tar_header_ok(head)
}

fn tar_header_ok(head: &[u8]) -> bool {
    let Some(b) = head.get(..512) else {
        return false;
    };
    if b.iter().all(|&x| x == 0) {
        return false;
    }
    let field = &b[148..156];
    let digits: String = field
        .iter()
        .map(|&c| c as char)
        .filter(|c| !matches!(c, ' ' | '\0'))
        .collect();
    let Ok(want) = i64::from_str_radix(&digits, 8) else {
        return false;
    };
    let mut unsigned: i64 = 0;
    let mut signed: i64 = 0;
    for (i, &x) in b.iter().enumerate() {
        let x = if (148..156).contains(&i) { b' ' } else { x };
        unsigned += x as i64;
        signed += (x as i8) as i64;
    }
    want == unsigned || want == signed
}

/// A context holding only a Dockerfile (`docker build - < Dockerfile`).
pub(crate) fn dockerfile_only_tar(content: &[u8]) -> Vec<u8> {
    let out = TarOut::new(Vec::new(), None);
    let mut out = out;
    // Writing into memory can't fail.
    let _ = out.file("Dockerfile", 0o644, now_secs(), content);
    out.finish().map(|(_, v)| v).unwrap_or_default()
}

/// docker's `units.HumanSize`: decimal units, four significant digits.
pub(crate) fn human_size(n: u64) -> String {
    crate::format::units::human_size(n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn entries(tar_bytes: &[u8]) -> Vec<(String, EntryType, Vec<u8>, String)> {
        let mut a = tar::Archive::new(tar_bytes);
        let mut out = Vec::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let path = String::from_utf8(e.path_bytes().into_owned()).unwrap();
            let kind = e.header().entry_type();
            let link = e
                .link_name_bytes()
                .map(|l| String::from_utf8(l.into_owned()).unwrap())
                .unwrap_or_default();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            assert_eq!(e.header().uid().unwrap(), 0);
            assert_eq!(e.header().gid().unwrap(), 0);
            out.push((path, kind, data, link));
        }
        out
    }

    fn build(ctx: &DirContext) -> Vec<u8> {
        let (n, v) = write_dir_context(ctx, TarOut::new(Vec::new(), None)).unwrap();
        assert_eq!(n as usize, v.len());
        assert_eq!(v.len() % 512, 0);
        v
    }

    fn names(tar_bytes: &[u8]) -> Vec<String> {
        entries(tar_bytes).into_iter().map(|e| e.0).collect()
    }

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::write(p.join("Dockerfile"), "FROM busybox\n").unwrap();
        std::fs::create_dir_all(p.join("src/deep")).unwrap();
        std::fs::write(p.join("src/a.go"), "package a").unwrap();
        std::fs::write(p.join("src/deep/b.txt"), "b").unwrap();
        std::fs::create_dir_all(p.join("node_modules/x")).unwrap();
        std::fs::write(p.join("node_modules/x/i.js"), "x").unwrap();
        std::fs::write(p.join("README.md"), "readme").unwrap();
        d
    }

    fn ctx(root: &Path, ignore: &str, dockerfile: Option<&str>) -> DirContext {
        let mut matcher = Matcher::parse(ignore).unwrap();
        if matcher.excludes(".dockerignore") {
            matcher.add_exception(".dockerignore").unwrap();
        }
        if let Some(d) = dockerfile {
            if matcher.excludes(d) {
                matcher.add_exception(d).unwrap();
            }
        }
        DirContext {
            root: root.to_path_buf(),
            matcher,
            extra: None,
        }
    }

    #[test]
    fn whole_tree_in_order() {
        let d = tree();
        let v = build(&ctx(d.path(), "", Some("Dockerfile")));
        assert_eq!(
            names(&v),
            vec![
                "Dockerfile",
                "README.md",
                "node_modules/",
                "node_modules/x/",
                "node_modules/x/i.js",
                "src/",
                "src/a.go",
                "src/deep/",
                "src/deep/b.txt",
            ]
        );
        let e = entries(&v);
        assert_eq!(e[0].2, b"FROM busybox\n");
        assert_eq!(e[2].1, EntryType::Directory);
    }

    #[test]
    fn dockerignore_applied_and_build_files_kept() {
        let d = tree();
        let ignore = "node_modules\n*.md\nDockerfile\n.dockerignore\nsrc\n!src/deep/b.txt\n";
        std::fs::write(d.path().join(".dockerignore"), ignore).unwrap();
        let v = build(&ctx(d.path(), ignore, Some("Dockerfile")));
        // The excluded src/ isn't written itself, but the exception under it is.
        assert_eq!(
            names(&v),
            vec![".dockerignore", "Dockerfile", "src/deep/b.txt"]
        );
    }

    #[test]
    fn dockerfile_kept_inside_an_ignored_directory() {
        let d = tree();
        std::fs::create_dir(d.path().join("docker")).unwrap();
        std::fs::write(d.path().join("docker/Dockerfile.dev"), "FROM x").unwrap();
        std::fs::write(d.path().join("docker/other"), "o").unwrap();
        let v = build(&ctx(d.path(), "docker\n", Some("docker/Dockerfile.dev")));
        let n = names(&v);
        assert!(n.contains(&"docker/Dockerfile.dev".to_string()), "{n:?}");
        assert!(!n.iter().any(|x| x == "docker/other" || x == "docker/"));
    }

    #[test]
    fn symlinks_stay_symlinks() {
        let d = tree();
        symlink("/etc/passwd", d.path().join("abs")).unwrap();
        symlink("src", d.path().join("srclink")).unwrap();
        symlink("missing", d.path().join("dangling")).unwrap();
        let v = build(&ctx(d.path(), "node_modules\nsrc\n", None));
        let e = entries(&v);
        let get = |n: &str| e.iter().find(|x| x.0 == n).unwrap().clone();
        assert_eq!(get("abs").1, EntryType::Symlink);
        assert_eq!(get("abs").3, "/etc/passwd");
        assert_eq!(get("srclink").1, EntryType::Symlink);
        assert_eq!(get("srclink").3, "src");
        assert_eq!(get("dangling").3, "missing");
        // Nothing was read through the link to the ignored directory.
        assert!(!e.iter().any(|x| x.0.starts_with("srclink/")));
    }

    #[test]
    fn hard_links_long_names_and_modes() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::write(p.join("a"), "same").unwrap();
        std::fs::hard_link(p.join("a"), p.join("b")).unwrap();
        let long = "x".repeat(150);
        std::fs::create_dir(p.join(&long)).unwrap();
        std::fs::write(p.join(&long).join("f"), "deep").unwrap();
        symlink("y".repeat(120), p.join("longlink")).unwrap();
        std::fs::set_permissions(p.join("a"), std::fs::Permissions::from_mode(0o4755)).unwrap();
        let v = build(&ctx(p, "", None));
        let e = entries(&v);
        assert_eq!(e[0].0, "a");
        assert_eq!(e[1].0, "b");
        assert_eq!(e[1].1, EntryType::Link);
        assert_eq!(e[1].3, "a");
        assert_eq!(e[2].0, "longlink");
        assert_eq!(e[2].3, "y".repeat(120));
        assert_eq!(e[3].0, format!("{long}/"));
        assert_eq!(e[4].0, format!("{long}/f"));
        assert_eq!(e[4].2, b"deep");
        let mut a = tar::Archive::new(&v[..]);
        let first = a.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(first.header().mode().unwrap(), 0o4755);
    }

    #[test]
    fn dockerfile_from_outside_the_context() {
        let d = tree();
        let extra = ExtraDockerfile {
            name: ".dockerfile.0123456789abcdef0123".into(),
            content: b"FROM outside\n".to_vec(),
        };
        let mut c = ctx(d.path(), "", None);
        c.extra = Some(extra.clone());
        let v = build(&c);
        let e = entries(&v);
        let n: Vec<_> = e.iter().map(|x| x.0.clone()).collect();
        assert_eq!(n[n.len() - 2], extra.name);
        assert_eq!(n[n.len() - 1], ".dockerignore");
        assert_eq!(e[e.len() - 2].2, b"FROM outside\n");
        assert_eq!(
            String::from_utf8(e[e.len() - 1].2.clone()).unwrap(),
            format!(".dockerignore\n{}\n", extra.name)
        );

        // An existing .dockerignore gets the name appended.
        std::fs::write(d.path().join(".dockerignore"), "node_modules").unwrap();
        let mut c = ctx(d.path(), "node_modules", None);
        c.extra = Some(extra.clone());
        let e = entries(&build(&c));
        let di: Vec<_> = e.iter().filter(|x| x.0 == ".dockerignore").collect();
        assert_eq!(di.len(), 1);
        assert_eq!(
            String::from_utf8(di[0].2.clone()).unwrap(),
            format!("node_modules\n{}\n", extra.name)
        );
        assert!(!e.iter().any(|x| x.0.starts_with("node_modules")));
        assert_eq!(random_dockerfile_name().len(), ".dockerfile.".len() + 20);
        assert_ne!(random_dockerfile_name(), random_dockerfile_name());
    }

    #[test]
    fn chunks_are_one_mib() {
        struct Count(Vec<usize>);
        impl ChunkSink for Count {
            fn send(&mut self, chunk: Bytes) -> Result<(), ()> {
                self.0.push(chunk.len());
                Ok(())
            }
        }
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("big"), vec![7u8; 3 * CHUNK + 5]).unwrap();
        let (total, sink) =
            write_dir_context(&ctx(d.path(), "", None), TarOut::new(Count(vec![]), None)).unwrap();
        assert!(sink.0[..sink.0.len() - 1].iter().all(|&n| n == CHUNK));
        assert_eq!(sink.0.iter().sum::<usize>() as u64, total);
        // A closed receiver stops the walk.
        struct Gone;
        impl ChunkSink for Gone {
            fn send(&mut self, _: Bytes) -> Result<(), ()> {
                Err(())
            }
        }
        let r = write_dir_context(&ctx(d.path(), "", None), TarOut::new(Gone, None));
        assert_eq!(r.err(), Some(ContextError::Cancelled));
    }

    #[test]
    fn stdin_detection() {
        let t = dockerfile_only_tar(b"FROM scratch\n");
        assert!(is_archive(&t[..1024]));
        let e = entries(&t);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].0, "Dockerfile");
        assert_eq!(e[0].2, b"FROM scratch\n");
        assert!(is_archive(&[0x1f, 0x8b, 0x08, 0, 0]));
        assert!(is_archive(b"BZh91AY"));
        assert!(is_archive(&[0xfd, b'7', b'z', b'X', b'Z', 0x00, 1]));
        assert!(is_archive(&[0x28, 0xb5, 0x2f, 0xfd, 0]));
        assert!(!is_archive(b"FROM busybox\nRUN echo hi\n"));
        assert!(!is_archive(&[0u8; 1024]));
        assert!(!is_archive(b""));
        let mut bad = t.clone();
        bad[0] ^= 1;
        assert!(!is_archive(&bad[..1024]));
    }

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(2048), "2.048kB");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(1500), "1.5kB");
        assert_eq!(human_size(209_715_200), "209.7MB");
        assert_eq!(human_size(123_456_789), "123.5MB");
        assert_eq!(human_size(10_240), "10.24kB");
    }

    #[test]
    fn unreadable_file_is_an_error() {
        use std::os::unix::fs::PermissionsExt;
        if nix::unistd::geteuid().is_root() {
            return; // root reads anything
        }
        let d = tree();
        let f = d.path().join("secret");
        std::fs::write(&f, "x").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o000)).unwrap();
        let r = write_dir_context(&ctx(d.path(), "", None), TarOut::new(Vec::new(), None));
        assert!(
            r.err()
                .unwrap()
                .to_string()
                .contains("no permission to read"),
            "permission"
        );
    }
}
