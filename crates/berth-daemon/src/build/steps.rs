//! The filesystem side of build steps: an image's root mounted with a fresh writable
//! layer for COPY, ADD and WORKDIR, and files copied into it. Every path inside a root is
//! resolved inside it (`berth_snapshot::copy`, openat2 with RESOLVE_IN_ROOT).

use berth_api::ApiError;
use berth_image::{Image, ImageStore};
use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

fn internal(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("{what}: {e}"))
}

/// An image's root filesystem mounted over a fresh writable layer, for one step. The
/// mount and the layer go away on drop.
pub(crate) struct StepRoot {
    dir: PathBuf,
    target: PathBuf,
    mounted: bool,
}

impl StepRoot {
    /// Mounts `image` (`None`: scratch) at `target`, with its writable layer in `dir`.
    pub(crate) fn mount(
        images: &ImageStore,
        image: Option<&Image>,
        dir: PathBuf,
        target: PathBuf,
    ) -> Result<StepRoot, ApiError> {
        let mut root = StepRoot {
            dir,
            target,
            mounted: false,
        };
        let lowers = image.map(|i| images.lower_dirs(i)).unwrap_or_default();
        std::fs::create_dir_all(root.dir.join("upper"))
            .and_then(|_| std::fs::create_dir_all(root.dir.join("work")))
            .and_then(|_| std::fs::create_dir_all(&root.target))
            .map_err(|e| internal("create a build step's layer", e))?;
        berth_snapshot::mount_overlay(
            &lowers,
            &root.dir.join("upper"),
            &root.dir.join("work"),
            &root.target,
        )
        .map_err(|e| internal("mount a build step's root", e))?;
        root.mounted = true;
        Ok(root)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.target
    }

    pub(crate) fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }

    /// Unmounts, keeping the writable layer for a commit.
    pub(crate) fn unmount(&mut self) -> Result<(), ApiError> {
        if self.mounted {
            berth_snapshot::unmount(&self.target)
                .map_err(|e| internal("unmount a build step's root", e))?;
            self.mounted = false;
            let _ = std::fs::remove_dir(&self.target);
        }
        Ok(())
    }
}

impl Drop for StepRoot {
    fn drop(&mut self) {
        if let Err(e) = self.unmount() {
            tracing::warn!("{}", e.message);
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("remove {}: {e}", self.dir.display());
            }
        }
    }
}

fn open_root(root: &Path) -> Result<File, ApiError> {
    File::open(root).map_err(|e| internal("open a build step's root", e))
}

fn open_in_root(root: &File, rel: &str, flags: OFlag) -> Result<File, Errno> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let rel = if rel.is_empty() { "." } else { rel };
    loop {
        match openat2(root.as_raw_fd(), rel, how) {
            Err(Errno::EAGAIN) => continue,
            // SAFETY: openat2 returned a new descriptor that nothing else owns.
            r => return r.map(|fd| File::from(unsafe { OwnedFd::from_raw_fd(fd) })),
        }
    }
}

/// `mkdir -p` of the absolute container path `path` inside `root`; symlinks on the way are
/// followed inside the root. New directories are 0755, owned by `owner` (root by default).
pub(crate) fn mkdir_in_root(
    root: &Path,
    path: &str,
    owner: Option<(u32, u32)>,
) -> Result<(), ApiError> {
    let rootfd = open_root(root)?;
    let comps: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    let mut prefix = String::new();
    for c in comps {
        let parent = open_in_root(&rootfd, &prefix, OFlag::O_PATH | OFlag::O_DIRECTORY)
            .map_err(|e| ApiError::invalid(format!("mkdir {path}: /{prefix}: {e}")))?;
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(c);
        match open_in_root(&rootfd, &prefix, OFlag::O_PATH | OFlag::O_DIRECTORY) {
            Ok(_) => continue,
            Err(Errno::ENOENT) => {}
            Err(Errno::ENOTDIR) => {
                return Err(ApiError::invalid(format!(
                    "mkdir {path}: /{prefix} is not a directory"
                )))
            }
            Err(e) => return Err(ApiError::invalid(format!("mkdir {path}: /{prefix}: {e}"))),
        }
        match nix::sys::stat::mkdirat(
            Some(parent.as_raw_fd()),
            c,
            nix::sys::stat::Mode::from_bits_truncate(0o755),
        ) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(ApiError::invalid(format!("mkdir {path}: /{prefix}: {e}"))),
        }
        if let Some((uid, gid)) = owner {
            let _ = nix::unistd::fchownat(
                Some(parent.as_raw_fd()),
                c,
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            );
        }
    }
    Ok(())
}

/// Whether the absolute container path `path` is a directory inside `root` (symlinks
/// followed inside the root).
pub(crate) fn is_dir_in_root(root: &Path, path: &str) -> bool {
    let Ok(rootfd) = open_root(root) else {
        return false;
    };
    let rel = path.trim_start_matches('/');
    open_in_root(&rootfd, rel, OFlag::O_PATH | OFlag::O_DIRECTORY).is_ok()
}

/// How the copied entries are owned and moded.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Attrs {
    /// `--chown` (root when not given, as Docker does); `None` keeps the archive's owners.
    pub owner: Option<(u32, u32)>,
    /// `--chmod`.
    pub mode: Option<u32>,
}

/// Copies `src_rel` from the root `src_root` (a context or another image) into the
/// directory `dest_dir` of `dst_root`, naming the top entry `name` (a directory's
/// contents are copied when `name` is `None`).
pub(crate) fn copy_tree(
    src_root: &Path,
    src_rel: &str,
    dst_root: &Path,
    dest_dir: &str,
    name: Option<&str>,
    attrs: Attrs,
) -> Result<(), ApiError> {
    let src_path = match name {
        None => format!("/{src_rel}/."),
        Some(_) => format!("/{src_rel}"),
    };
    let rename = name.map(str::to_string);
    let base = src_path.rsplit('/').next().unwrap_or("").to_string();
    let needs_rewrite = attrs.mode.is_some() || rename.as_deref().is_some_and(|n| n != base);
    let (reader, writer) = std::io::pipe().map_err(|e| internal("copy: pipe", e))?;
    let src_root = src_root.to_path_buf();
    std::thread::scope(|s| {
        let producer = s.spawn(move || -> Result<(), String> {
            let w = std::io::BufWriter::with_capacity(1 << 20, writer);
            if !needs_rewrite {
                berth_snapshot::archive_from_root(&src_root, &src_path, w)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            } else {
                let (r2, w2) = std::io::pipe().map_err(|e| e.to_string())?;
                let inner = std::thread::spawn(move || {
                    berth_snapshot::archive_from_root(
                        &src_root,
                        &src_path,
                        std::io::BufWriter::with_capacity(1 << 20, w2),
                    )
                    .map(|_| ())
                    .map_err(|e| e.to_string())
                });
                let rewritten = rewrite(r2, w, &base, rename.as_deref(), attrs.mode);
                let archived = inner
                    .join()
                    .map_err(|_| "archive thread panicked".to_string())?;
                archived.and(rewritten)
            }
        });
        let opts = berth_snapshot::ExtractOptions {
            no_overwrite_dir_non_dir: false,
            chown: attrs.owner,
        };
        let mut reader = std::io::BufReader::with_capacity(1 << 20, reader);
        let extracted = berth_snapshot::extract_into_root(dst_root, dest_dir, &mut reader, &opts);
        crate::images::drain(&mut reader);
        drop(reader);
        let produced = producer
            .join()
            .map_err(|_| ApiError::internal("copy: the reader panicked"))?;
        produced.map_err(ApiError::invalid)?;
        extracted.map_err(|e| ApiError::invalid(e.to_string()))
    })
}

/// Copies a tar stream, renaming its top entry `base` to `rename` and forcing `mode`.
fn rewrite(
    r: impl Read,
    w: impl Write,
    base: &str,
    rename: Option<&str>,
    mode: Option<u32>,
) -> Result<(), String> {
    let mut ar = tar::Archive::new(r);
    let mut out = tar::Builder::new(w);
    out.mode(tar::HeaderMode::Complete);
    for e in ar.entries().map_err(|e| e.to_string())? {
        let mut e = e.map_err(|e| e.to_string())?;
        let path = e
            .path()
            .map_err(|e| e.to_string())?
            .to_string_lossy()
            .into_owned();
        let new_path = match rename {
            Some(n) if path == base => n.to_string(),
            Some(n) => match path.strip_prefix(&format!("{base}/")) {
                Some(rest) => format!("{n}/{rest}"),
                None => path.clone(),
            },
            None => path.clone(),
        };
        let mut h = e.header().clone();
        if let Some(m) = mode {
            if !h.entry_type().is_symlink() {
                h.set_mode(m);
            }
        }
        let link = e
            .link_name()
            .map_err(|e| e.to_string())?
            .map(|l| l.into_owned());
        match link {
            Some(l) if h.entry_type().is_hard_link() => {
                let l = l.to_string_lossy().into_owned();
                let l = match rename {
                    Some(n) if l == base => n.to_string(),
                    Some(n) => match l.strip_prefix(&format!("{base}/")) {
                        Some(rest) => format!("{n}/{rest}"),
                        None => l,
                    },
                    None => l,
                };
                out.append_link(&mut h, &new_path, &l)
                    .map_err(|e| e.to_string())?;
            }
            Some(l) => {
                out.append_link(&mut h, &new_path, &l)
                    .map_err(|e| e.to_string())?;
            }
            None => {
                out.append_data(&mut h, &new_path, &mut e)
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    out.into_inner()
        .and_then(|mut w| w.flush())
        .map_err(|e| e.to_string())
}

/// Writes one regular file (a heredoc) into `dest_dir` of `root`: mode 0644 unless
/// `--chmod`, modified now.
pub(crate) fn write_file(
    root: &Path,
    dest_dir: &str,
    name: &str,
    data: &[u8],
    attrs: Attrs,
) -> Result<(), ApiError> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(data.len() as u64);
    h.set_mode(attrs.mode.unwrap_or(0o644));
    h.set_mtime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    );
    let (reader, writer) = std::io::pipe().map_err(|e| internal("copy: pipe", e))?;
    std::thread::scope(|s| {
        let producer = s.spawn(move || -> Result<(), String> {
            let mut b = tar::Builder::new(std::io::BufWriter::new(writer));
            b.append_data(&mut h, name, data)
                .map_err(|e| e.to_string())?;
            b.into_inner()
                .and_then(|mut w| w.flush())
                .map_err(|e| e.to_string())
        });
        let opts = berth_snapshot::ExtractOptions {
            no_overwrite_dir_non_dir: false,
            chown: attrs.owner,
        };
        let mut reader = std::io::BufReader::new(reader);
        let extracted = berth_snapshot::extract_into_root(root, dest_dir, &mut reader, &opts);
        crate::images::drain(&mut reader);
        drop(reader);
        let produced = producer
            .join()
            .map_err(|_| ApiError::internal("copy: the writer panicked"))?;
        produced.map_err(ApiError::invalid)?;
        extracted.map_err(|e| ApiError::invalid(e.to_string()))
    })
}

/// Extracts an archive (`ADD`'s local tar, plain, gzip or zstd) into `dest_dir` of `root`.
pub(crate) fn extract_archive(
    archive: &Path,
    root: &Path,
    dest_dir: &str,
    attrs: Attrs,
) -> Result<(), ApiError> {
    let f = File::open(archive).map_err(|e| internal("open an archive", e))?;
    let r = berth_snapshot::decompress(std::io::BufReader::with_capacity(1 << 20, f))
        .map_err(|e| ApiError::invalid(format!("ADD: {e}")))?;
    let mut r = std::io::BufReader::with_capacity(1 << 20, r);
    let opts = berth_snapshot::ExtractOptions {
        no_overwrite_dir_non_dir: false,
        chown: attrs.owner,
    };
    berth_snapshot::extract_into_root(root, dest_dir, &mut r, &opts)
        .map_err(|e| ApiError::invalid(format!("ADD: {e}")))
}

/// Whether the file at `path` is a tar archive, plain or compressed (ADD extracts those).
pub(crate) fn is_archive(path: &Path) -> bool {
    let Ok(f) = File::open(path) else {
        return false;
    };
    let Ok(r) = berth_snapshot::decompress(f) else {
        return false;
    };
    let mut head = [0u8; 512];
    let mut n = 0;
    let mut r = r;
    while n < head.len() {
        match r.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return false,
        }
    }
    if n < 512 {
        return false;
    }
    // A tar header: the checksum field must match the header's bytes.
    let field = std::str::from_utf8(&head[148..156]).unwrap_or("");
    let Ok(sum) = u32::from_str_radix(field.trim_matches(|c: char| c == '\0' || c == ' '), 8)
    else {
        return false;
    };
    let computed: u32 = head
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                b' ' as u32
            } else {
                b as u32
            }
        })
        .sum();
    sum == computed
}
