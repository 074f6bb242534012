//! Descriptor-based filesystem helpers shared by diff, export and copy.
//!
//! Everything here works on open directory descriptors and single path
//! components, so a concurrently changing tree can never redirect an
//! operation through a symlink.

use std::ffi::{CStr, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fstat, FileStat, Mode};

/// Prefix of the xattrs overlayfs keeps for itself; never copied into archives.
pub(crate) const OVERLAY_XATTR_PREFIX: &[u8] = b"trusted.overlay.";

pub(crate) fn owned(fd: RawFd) -> File {
    // SAFETY: callers pass a descriptor freshly returned by a successful open
    // call, which nothing else owns.
    File::from(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// File type bits of a stat mode.
pub(crate) fn fmt(st: &FileStat) -> u32 {
    st.st_mode & libc::S_IFMT
}

pub(crate) fn is_dir(st: &FileStat) -> bool {
    fmt(st) == libc::S_IFDIR
}

/// An overlay whiteout: a character device 0/0.
pub(crate) fn is_whiteout(st: &FileStat) -> bool {
    fmt(st) == libc::S_IFCHR && st.st_rdev == 0
}

/// Opens `name` in `dir` as an `O_PATH` descriptor without following a
/// symlink in the last component (`name` may hold several components, none
/// may be `..`-escaping when the caller guarantees it; usually it is one).
pub(crate) fn open_path_at(dir: &File, name: &OsStr) -> Result<File, Errno> {
    let fd = openat(
        Some(dir.as_raw_fd()),
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    Ok(owned(fd))
}

/// Opens the host directory `path` (the caller's trusted root), not following a final symlink.
pub(crate) fn open_root(path: &Path) -> io::Result<File> {
    let fd = openat(
        None,
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )?;
    Ok(owned(fd))
}

/// Turns an `O_PATH` descriptor of a directory into a readable one.
pub(crate) fn reopen_dir(pathfd: &File) -> Result<File, Errno> {
    let fd = openat(
        Some(pathfd.as_raw_fd()),
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    Ok(owned(fd))
}

/// The `/proc/self/fd/N` magic link of a descriptor.
pub(crate) fn proc_fd_path(f: &File) -> PathBuf {
    let mut p = PathBuf::from("/proc/self/fd");
    p.push(f.as_raw_fd().to_string());
    p
}

/// `/proc/self/fd`, opened once: reopening through it costs one lookup
/// instead of a walk from `/proc` for every file.
fn proc_self_fd() -> Option<&'static File> {
    static DIR: OnceLock<Option<File>> = OnceLock::new();
    DIR.get_or_init(|| {
        openat(
            None,
            "/proc/self/fd",
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ok()
        .map(owned)
    })
    .as_ref()
}

/// Reopens an `O_PATH` descriptor (already checked to be a regular file) for
/// reading, through its magic link: the same inode, no path lookup in the
/// tree, so nothing can swap a device node or a symlink in meanwhile.
pub(crate) fn reopen_regular(pathfd: &File) -> Result<File, Errno> {
    let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK;
    let fd = match proc_self_fd() {
        Some(dir) => {
            let num = pathfd.as_raw_fd().to_string();
            openat(Some(dir.as_raw_fd()), num.as_str(), flags, Mode::empty())?
        }
        None => openat(None, &proc_fd_path(pathfd), flags, Mode::empty())?,
    };
    // O_NONBLOCK only guards against a FIFO; regular files ignore it.
    Ok(owned(fd))
}

/// fstat of a descriptor.
pub(crate) fn stat_fd(f: &File) -> Result<FileStat, Errno> {
    fstat(f.as_raw_fd())
}

/// The target of a symlink held as an `O_PATH` descriptor.
pub(crate) fn readlink_fd(pathfd: &File) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: buf is valid for buf.len() bytes; an empty path with an
        // O_PATH descriptor reads the link the descriptor refers to.
        let n = unsafe {
            libc::readlinkat(
                pathfd.as_raw_fd(),
                c"".as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n < 0 {
            return Err(Errno::last());
        }
        let n = n as usize;
        if n < buf.len() {
            buf.truncate(n);
            return Ok(buf);
        }
        if buf.len() >= 1 << 20 {
            return Err(Errno::ENAMETOOLONG);
        }
        let len = buf.len() * 2;
        buf.resize(len, 0);
    }
}

/// The names in a directory (without `.` and `..`), sorted bytewise.
pub(crate) fn list_dir(dir: &File) -> Result<Vec<OsString>, Errno> {
    let dup = nix::unistd::dup(dir.as_raw_fd())?;
    let mut it = match nix::dir::Dir::from_fd(dup) {
        Ok(d) => d,
        Err(e) => {
            let _ = nix::unistd::close(dup);
            return Err(e);
        }
    };
    let mut names = Vec::new();
    for ent in it.iter() {
        let ent = ent?;
        let n: &CStr = ent.file_name();
        let n = n.to_bytes();
        if n != b"." && n != b".." {
            names.push(OsString::from_vec(n.to_vec()));
        }
    }
    names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

/// Like [`list_dir`], with whether the directory entry says "regular file"
/// (`d_type`; false when the filesystem does not say).
pub(crate) fn list_dir_typed(dir: &File) -> Result<Vec<(OsString, bool)>, Errno> {
    let dup = nix::unistd::dup(dir.as_raw_fd())?;
    let mut it = match nix::dir::Dir::from_fd(dup) {
        Ok(d) => d,
        Err(e) => {
            let _ = nix::unistd::close(dup);
            return Err(e);
        }
    };
    let mut names = Vec::new();
    for ent in it.iter() {
        let ent = ent?;
        let n = ent.file_name().to_bytes();
        if n != b"." && n != b".." {
            let reg = ent.file_type() == Some(nix::dir::Type::File);
            names.push((OsString::from_vec(n.to_vec()), reg));
        }
    }
    names.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(names)
}

/// Opens `name` in `dir` for reading, not following a symlink, without
/// blocking on a FIFO or taking a terminal. Only for trees nothing else
/// changes meanwhile: a device node swapped in would be opened.
pub(crate) fn open_read_at(dir: &File, name: &OsStr) -> Result<File, Errno> {
    let fd = openat(
        Some(dir.as_raw_fd()),
        name,
        OFlag::O_RDONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY
            | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    Ok(owned(fd))
}

/// Xattr names and values.
pub(crate) type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// Where to read xattrs from.
pub(crate) enum XattrSrc<'a> {
    /// An open (not `O_PATH`) descriptor.
    Fd(&'a File),
    /// A path whose final component is not followed.
    Path(&'a Path),
}

impl XattrSrc<'_> {
    fn list(&self) -> io::Result<xattr::XAttrs> {
        use xattr::FileExt;
        match self {
            XattrSrc::Fd(f) => f.list_xattr(),
            XattrSrc::Path(p) => xattr::list(p),
        }
    }
    fn get(&self, name: &OsStr) -> io::Result<Option<Vec<u8>>> {
        use xattr::FileExt;
        match self {
            XattrSrc::Fd(f) => f.get_xattr(name),
            XattrSrc::Path(p) => xattr::get(p, name),
        }
    }
}

/// The xattrs of `src`, minus overlay's own and those `keep` rejects, sorted
/// by name. Filesystems without xattr support read as none.
pub(crate) fn read_xattrs(src: XattrSrc<'_>, keep: impl Fn(&[u8]) -> bool) -> io::Result<Xattrs> {
    let names = match src.list() {
        Ok(n) => n,
        Err(e) if is_unsupported(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in names {
        let key = name.as_bytes();
        if key.starts_with(OVERLAY_XATTR_PREFIX) || !keep(key) {
            continue;
        }
        match src.get(&name) {
            Ok(Some(v)) => out.push((key.to_vec(), v)),
            Ok(None) => {}
            Err(e) if is_unsupported(&e) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort();
    Ok(out)
}

fn is_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOTSUP) | Some(libc::ENODATA) | Some(libc::EPERM)
    )
}

/// Reads one xattr of an open descriptor; errors read as absent.
pub(crate) fn get_fd_xattr(f: &File, name: &str) -> Option<Vec<u8>> {
    use xattr::FileExt;
    f.get_xattr(name).ok().flatten()
}

/// `dir/name` as a path through the directory's magic link, for the xattr
/// calls that have no `*at` form. `name` is a single component.
pub(crate) fn at_path(dir: &File, name: &OsStr) -> PathBuf {
    let mut p = proc_fd_path(dir);
    p.push(name);
    p
}

/// Go's `os.FileMode` bits for a stat mode.
pub(crate) fn go_file_mode(st_mode: u32) -> u32 {
    const MODE_DIR: u32 = 1 << 31;
    const MODE_SYMLINK: u32 = 1 << 27;
    const MODE_DEVICE: u32 = 1 << 26;
    const MODE_NAMED_PIPE: u32 = 1 << 25;
    const MODE_SOCKET: u32 = 1 << 24;
    const MODE_SETUID: u32 = 1 << 23;
    const MODE_SETGID: u32 = 1 << 22;
    const MODE_CHAR_DEVICE: u32 = 1 << 21;
    const MODE_STICKY: u32 = 1 << 20;
    let mut m = st_mode & 0o777;
    m |= match st_mode & libc::S_IFMT {
        libc::S_IFDIR => MODE_DIR,
        libc::S_IFLNK => MODE_SYMLINK,
        libc::S_IFBLK => MODE_DEVICE,
        libc::S_IFCHR => MODE_DEVICE | MODE_CHAR_DEVICE,
        libc::S_IFIFO => MODE_NAMED_PIPE,
        libc::S_IFSOCK => MODE_SOCKET,
        _ => 0,
    };
    if st_mode & libc::S_ISUID != 0 {
        m |= MODE_SETUID;
    }
    if st_mode & libc::S_ISGID != 0 {
        m |= MODE_SETGID;
    }
    if st_mode & libc::S_ISVTX != 0 {
        m |= MODE_STICKY;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_modes() {
        assert_eq!(go_file_mode(libc::S_IFREG | 0o644), 0o644);
        assert_eq!(go_file_mode(libc::S_IFDIR | 0o755), (1 << 31) | 0o755);
        assert_eq!(go_file_mode(libc::S_IFLNK | 0o777), (1 << 27) | 0o777);
        assert_eq!(
            go_file_mode(libc::S_IFCHR | 0o666),
            (1 << 26) | (1 << 21) | 0o666
        );
        assert_eq!(go_file_mode(libc::S_IFBLK | 0o660), (1 << 26) | 0o660);
        assert_eq!(go_file_mode(libc::S_IFIFO | 0o600), (1 << 25) | 0o600);
        assert_eq!(go_file_mode(libc::S_IFSOCK | 0o755), (1 << 24) | 0o755);
        assert_eq!(
            go_file_mode(libc::S_IFREG | 0o4755),
            (1 << 23) | 0o755,
            "setuid"
        );
        assert_eq!(
            go_file_mode(libc::S_IFDIR | 0o2755),
            (1 << 31) | (1 << 22) | 0o755
        );
        assert_eq!(
            go_file_mode(libc::S_IFDIR | 0o1777),
            (1 << 31) | (1 << 20) | 0o777
        );
    }
}
