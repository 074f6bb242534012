//! A small, fast tar writer (ustar headers, PAX records where needed) and a
//! descriptor-based tree walker on top of it, shared by layer diffs, exports
//! and `docker cp` archives.
//!
//! The walker never follows a symlink: each entry is opened `O_PATH |
//! O_NOFOLLOW` relative to its parent directory's descriptor, its type is
//! taken from `fstat` of that descriptor, and only regular files and
//! directories are reopened (through the descriptor's magic link) for
//! reading, so nothing in the tree can make us open a device node or a path
//! outside the tree, even while it changes.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::sys::stat::FileStat;

use crate::fsutil::{self, XattrSrc, Xattrs, OVERLAY_XATTR_PREFIX};

const BLOCK: usize = 512;
const BUF_SIZE: usize = 1 << 20;
const WHITEOUT_PREFIX: &[u8] = b".wh.";
const WHITEOUT_OPAQUE: &[u8] = b".wh..wh..opq";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Counts the bytes written through it.
pub(crate) struct Counting<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The metadata of one tar entry.
pub(crate) struct Meta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub size: u64,
    pub rdev: u64,
}

impl Meta {
    pub(crate) fn from_stat(st: &FileStat) -> Self {
        Meta {
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            mtime: st.st_mtime,
            size: st.st_size.max(0) as u64,
            rdev: st.st_rdev,
        }
    }
}

/// Buffered tar output.
pub(crate) struct TarOut<W: Write> {
    w: BufWriter<Counting<W>>,
    pax: Vec<u8>,
    /// Told which bytes are files' content (see [`Self::file_data`]).
    split: Option<crate::split::Shared>,
}

fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    // "<len> <key>=<value>\n", where len counts itself.
    let rest = 1 + key.len() + 1 + value.len() + 1;
    let mut len = rest + 1;
    loop {
        let digits = len.to_string().len();
        if digits + rest == len {
            break;
        }
        len = digits + rest;
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

const MAX_OCTAL_ID: u32 = 0o7_777_777;

impl<W: Write> TarOut<W> {
    pub(crate) fn new(w: W) -> Self {
        TarOut {
            w: BufWriter::with_capacity(BUF_SIZE, Counting { inner: w, n: 0 }),
            pax: Vec::new(),
            split: None,
        }
    }

    /// Writes the header(s) of one entry. `name` is the full entry name
    /// (with a trailing `/` for directories).
    pub(crate) fn header(
        &mut self,
        name: &[u8],
        kind: tar::EntryType,
        meta: &Meta,
        link: Option<&[u8]>,
        xattrs: &[(Vec<u8>, Vec<u8>)],
    ) -> io::Result<()> {
        self.pax.clear();
        if name.len() > 100 {
            pax_record(&mut self.pax, b"path", name);
        }
        if let Some(l) = link {
            if l.len() > 100 {
                pax_record(&mut self.pax, b"linkpath", l);
            }
        }
        if meta.uid > MAX_OCTAL_ID {
            pax_record(&mut self.pax, b"uid", meta.uid.to_string().as_bytes());
        }
        if meta.gid > MAX_OCTAL_ID {
            pax_record(&mut self.pax, b"gid", meta.gid.to_string().as_bytes());
        }
        for (k, v) in xattrs {
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend_from_slice(k);
            pax_record(&mut self.pax, &key, v);
        }
        if !self.pax.is_empty() {
            let pax = std::mem::take(&mut self.pax);
            let mut h = tar::Header::new_ustar();
            set_bytes(&mut h.as_ustar_mut_checked().name, b"././@PaxHeader");
            h.set_entry_type(tar::EntryType::XHeader);
            h.set_mode(0o644);
            h.set_size(pax.len() as u64);
            h.set_mtime(0);
            h.set_cksum();
            self.w.write_all(h.as_bytes())?;
            self.w.write_all(&pax)?;
            self.pad(pax.len() as u64)?;
            self.pax = pax;
        }
        let mut h = tar::Header::new_ustar();
        {
            let u = h.as_ustar_mut_checked();
            set_bytes(&mut u.name, &name[..name.len().min(100)]);
            if let Some(l) = link {
                set_bytes(&mut u.linkname, &l[..l.len().min(100)]);
            }
        }
        h.set_entry_type(kind);
        h.set_mode(meta.mode & 0o7777);
        h.set_uid(u64::from(meta.uid.min(MAX_OCTAL_ID)));
        h.set_gid(u64::from(meta.gid.min(MAX_OCTAL_ID)));
        h.set_mtime(meta.mtime.max(0) as u64);
        h.set_size(if kind == tar::EntryType::Regular {
            meta.size
        } else {
            0
        });
        if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
            let major = libc::major(meta.rdev);
            let minor = libc::minor(meta.rdev);
            h.set_device_major(major)?;
            h.set_device_minor(minor)?;
        }
        h.set_cksum();
        self.w.write_all(h.as_bytes())
    }

    fn pad(&mut self, size: u64) -> io::Result<()> {
        let rem = (size % BLOCK as u64) as usize;
        if rem != 0 {
            self.w.write_all(&[0u8; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }

    /// Writes exactly `size` bytes of `f` (zero-filled if it shrank), then the padding.
    pub(crate) fn data(&mut self, f: &mut File, size: u64, buf: &mut [u8]) -> io::Result<()> {
        let mut left = size;
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = match f.read(&mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.w.write_all(&buf[..n])?;
            left -= n as u64;
        }
        while left > 0 {
            let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            buf[..n].fill(0);
            self.w.write_all(&buf[..n])?;
            left -= n as u64;
        }
        self.pad(size)
    }

    /// Like [`Self::data`], telling the tar-split recorder (if any) that these bytes are the
    /// content of the tree's file `name`; a file that shrank is then an error (its bytes
    /// could not be read back).
    pub(crate) fn file_data(
        &mut self,
        name: &[u8],
        f: &mut File,
        size: u64,
        buf: &mut [u8],
    ) -> io::Result<()> {
        let Some(rec) = self.split.clone() else {
            return self.data(f, size, buf);
        };
        self.w.flush()?;
        rec.borrow_mut().file_begins(name, size)?;
        let mut left = size;
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = match f.read(&mut buf[..want]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file shrank while being archived",
                    ))
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.w.write_all(&buf[..n])?;
            left -= n as u64;
        }
        self.w.flush()?;
        rec.borrow_mut().file_ends()?;
        self.pad(size)
    }

    /// Writes the end-of-archive marker, flushes, and returns the bytes
    /// written and the writer.
    pub(crate) fn finish(mut self) -> io::Result<(u64, W)> {
        self.w.write_all(&[0u8; 2 * BLOCK])?;
        self.w.flush()?;
        let c = self.w.into_inner().map_err(|e| e.into_error())?;
        Ok((c.n, c.inner))
    }
}

trait UstarChecked {
    fn as_ustar_mut_checked(&mut self) -> &mut tar::UstarHeader;
}

impl UstarChecked for tar::Header {
    fn as_ustar_mut_checked(&mut self) -> &mut tar::UstarHeader {
        // Built with new_ustar, so the ustar view always exists; the
        // fallback reinterprets the same 512 bytes and is never taken.
        if self.as_ustar().is_none() {
            *self = tar::Header::new_ustar();
        }
        match self.as_ustar_mut() {
            Some(u) => u,
            None => unreachable!("new_ustar header has a ustar view"),
        }
    }
}

fn set_bytes(field: &mut [u8], v: &[u8]) {
    let n = v.len().min(field.len());
    field[..n].copy_from_slice(&v[..n]);
    field[n..].fill(0);
}

/// What an archive is for; decides whiteout handling and which xattrs go in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Flavor {
    /// An OCI layer from an overlay upper dir: whiteouts become `.wh.` files.
    Layer,
    /// `docker export`: everything but sockets, all xattrs but overlay's.
    Export,
    /// `docker cp`: like export, but only `security.capability` (as Docker).
    Copy,
}

/// An error while walking, with the entry name it concerns.
#[derive(Debug)]
pub(crate) struct WalkError {
    pub path: String,
    pub op: &'static str,
    pub source: io::Error,
}

fn werr<'a>(name: &'a [u8], op: &'static str) -> impl FnOnce(io::Error) -> WalkError + 'a {
    move |source| WalkError {
        path: String::from_utf8_lossy(name).into_owned(),
        op,
        source,
    }
}

fn eerr<'a>(name: &'a [u8], op: &'static str) -> impl FnOnce(Errno) -> WalkError + 'a {
    move |e| WalkError {
        path: String::from_utf8_lossy(name).into_owned(),
        op,
        source: io::Error::from(e),
    }
}

/// Writes trees into a tar stream.
/// How a regular file is reached: its `O_PATH` descriptor (reopened for reading through
/// its magic link), or already open for reading (a quiescent tree).
enum FileSource<'a> {
    Path(&'a File),
    Open(File),
}

pub(crate) struct Walker<W: Write> {
    pub out: TarOut<W>,
    flavor: Flavor,
    links: HashMap<(u64, u64), Vec<u8>>,
    buf: Vec<u8>,
    /// Number of entries written (PAX headers not counted).
    pub entries: u64,
    /// Bytes of regular files' content written (hardlinks counted once).
    pub file_bytes: u64,
    /// Nothing changes the tree during the walk (a stopped container's root): regular
    /// files are opened once, directly, instead of `O_PATH` then a reopen.
    quiescent: bool,
}

impl<W: Write> Walker<W> {
    pub(crate) fn new(w: W, flavor: Flavor) -> Self {
        Walker {
            out: TarOut::new(w),
            flavor,
            links: HashMap::new(),
            buf: vec![0u8; BUF_SIZE],
            entries: 0,
            file_bytes: 0,
            quiescent: false,
        }
    }

    /// See [`Walker::quiescent`]: only when no process can change the tree.
    pub(crate) fn set_quiescent(&mut self, q: bool) {
        self.quiescent = q;
    }

    fn fd_xattrs(&self, f: &File, name: &[u8]) -> Result<Xattrs, WalkError> {
        let flavor = self.flavor;
        fsutil::read_xattrs(XattrSrc::Fd(f), |k| keep(flavor, k)).map_err(werr(name, "read xattrs"))
    }

    /// Writes the children of the readable directory `dir`; `prefix` is the
    /// tar name of the directory including its trailing `/` (or empty for
    /// the top of the archive).
    pub(crate) fn dir_contents(
        &mut self,
        dir: &File,
        prefix: &mut Vec<u8>,
    ) -> Result<(), WalkError> {
        let names = fsutil::list_dir_typed(dir).map_err(eerr(prefix, "read directory"))?;
        let base = prefix.len();
        for (name, regular) in names {
            prefix.truncate(base);
            prefix.extend_from_slice(name.as_bytes());
            if self.quiescent && regular {
                if let Ok(f) = fsutil::open_read_at(dir, &name) {
                    let st = fsutil::stat_fd(&f).map_err(eerr(prefix, "stat"))?;
                    if fsutil::fmt(&st) == libc::S_IFREG {
                        self.regular(Some((dir, &name)), &st, prefix, FileSource::Open(f))?;
                        continue;
                    }
                }
            }
            let pathfd = match fsutil::open_path_at(dir, &name) {
                Ok(f) => f,
                // Removed while we walk: skip, as Docker does.
                Err(Errno::ENOENT) => continue,
                Err(e) => return Err(eerr(prefix, "open")(e)),
            };
            let st = fsutil::stat_fd(&pathfd).map_err(eerr(prefix, "stat"))?;
            self.entry(Some((dir, &name)), &pathfd, &st, prefix)?;
        }
        prefix.truncate(base);
        Ok(())
    }

    /// Writes one entry, named `name` (no trailing slash), and for a directory
    /// everything below it. `at` is its parent directory and name in it (needed
    /// for the xattrs of symlinks and special files).
    pub(crate) fn entry(
        &mut self,
        at: Option<(&File, &OsStr)>,
        pathfd: &File,
        st: &FileStat,
        name: &mut Vec<u8>,
    ) -> Result<(), WalkError> {
        let meta = Meta::from_stat(st);
        let base = name.len();
        match fsutil::fmt(st) {
            libc::S_IFDIR => {
                let dir = match fsutil::reopen_dir(pathfd) {
                    Ok(d) => d,
                    Err(Errno::ENOENT) => return Ok(()),
                    Err(e) => return Err(eerr(name, "open directory")(e)),
                };
                let xattrs = self.fd_xattrs(&dir, name)?;
                let opaque = self.flavor == Flavor::Layer
                    && fsutil::get_fd_xattr(&dir, OPAQUE_XATTR).as_deref() == Some(b"y");
                if !name.is_empty() && !name.ends_with(b"/") {
                    name.push(b'/');
                }
                if !name.is_empty() {
                    self.out
                        .header(name, tar::EntryType::Directory, &meta, None, &xattrs)
                        .map_err(werr(name, "write"))?;
                    self.entries += 1;
                }
                if opaque {
                    let dir_name_len = name.len();
                    name.extend_from_slice(WHITEOUT_OPAQUE);
                    let wo = Meta {
                        mode: meta.mode & 0o777,
                        size: 0,
                        ..meta
                    };
                    self.out
                        .header(name, tar::EntryType::Regular, &wo, None, &[])
                        .map_err(werr(name, "write"))?;
                    self.entries += 1;
                    name.truncate(dir_name_len);
                }
                self.dir_contents(&dir, name)?;
            }
            libc::S_IFREG => self.regular(at, st, name, FileSource::Path(pathfd))?,
            libc::S_IFLNK => {
                let target = fsutil::readlink_fd(pathfd).map_err(eerr(name, "read link"))?;
                let xattrs = self.path_xattrs(at, name)?;
                self.out
                    .header(name, tar::EntryType::Symlink, &meta, Some(&target), &xattrs)
                    .map_err(werr(name, "write"))?;
                self.entries += 1;
            }
            libc::S_IFCHR if self.flavor == Flavor::Layer && st.st_rdev == 0 => {
                // An overlay whiteout becomes an OCI whiteout file.
                let slash = name.iter().rposition(|b| *b == b'/').map_or(0, |i| i + 1);
                let base_name = name[slash..].to_vec();
                name.truncate(slash);
                name.extend_from_slice(WHITEOUT_PREFIX);
                name.extend_from_slice(&base_name);
                let wo = Meta {
                    mode: 0o600,
                    size: 0,
                    ..meta
                };
                self.out
                    .header(name, tar::EntryType::Regular, &wo, None, &[])
                    .map_err(werr(name, "write"))?;
                self.entries += 1;
            }
            kind @ (libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO) => {
                let ty = match kind {
                    libc::S_IFCHR => tar::EntryType::Char,
                    libc::S_IFBLK => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                };
                let xattrs = self.path_xattrs(at, name)?;
                self.out
                    .header(name, ty, &meta, None, &xattrs)
                    .map_err(werr(name, "write"))?;
                self.entries += 1;
            }
            // Sockets (and anything unknown) are not archived, as with Docker.
            _ => {}
        }
        name.truncate(base);
        Ok(())
    }

    /// A regular file: a hardlink to one already written, or its header and data.
    fn regular(
        &mut self,
        at: Option<(&File, &OsStr)>,
        st: &FileStat,
        name: &[u8],
        source: FileSource<'_>,
    ) -> Result<(), WalkError> {
        let meta = Meta::from_stat(st);
        if st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key) {
                let first = first.clone();
                let xattrs = self.path_xattrs(at, name)?;
                self.out
                    .header(name, tar::EntryType::Link, &meta, Some(&first), &xattrs)
                    .map_err(werr(name, "write"))?;
                self.entries += 1;
                return Ok(());
            }
            self.links.insert(key, name.to_vec());
        }
        let mut f = match source {
            FileSource::Open(f) => f,
            FileSource::Path(pathfd) => match fsutil::reopen_regular(pathfd) {
                Ok(f) => f,
                Err(Errno::ENOENT) => return Ok(()),
                Err(e) => return Err(eerr(name, "open file")(e)),
            },
        };
        let xattrs = self.fd_xattrs(&f, name)?;
        self.out
            .header(name, tar::EntryType::Regular, &meta, None, &xattrs)
            .map_err(werr(name, "write"))?;
        self.out
            .file_data(name, &mut f, meta.size, &mut self.buf)
            .map_err(werr(name, "copy file"))?;
        self.entries += 1;
        self.file_bytes += meta.size;
        Ok(())
    }

    /// Xattrs of an entry that can't be opened for reading: looked up by
    /// name in its parent (not following a symlink).
    fn path_xattrs(&self, at: Option<(&File, &OsStr)>, name: &[u8]) -> Result<Xattrs, WalkError> {
        let flavor = self.flavor;
        let Some((dir, n)) = at else {
            return Ok(Vec::new());
        };
        let path = fsutil::at_path(dir, n);
        fsutil::read_xattrs(XattrSrc::Path(&path), |k| keep(flavor, k))
            .map_err(werr(name, "read xattrs"))
    }

    /// Ends the archive; returns its size in bytes.
    pub(crate) fn finish(self) -> io::Result<u64> {
        self.out.finish().map(|(n, _)| n)
    }

    /// Ends the archive; returns its size in bytes and the writer.
    pub(crate) fn finish_with_writer(self) -> io::Result<(u64, W)> {
        self.out.finish()
    }

    /// Tells `rec` which bytes of the stream are the tree's files (see `split.rs`).
    pub(crate) fn set_split(&mut self, rec: crate::split::Shared) {
        self.out.split = Some(rec);
    }
}

fn keep(flavor: Flavor, key: &[u8]) -> bool {
    match flavor {
        Flavor::Copy => key == b"security.capability",
        Flavor::Layer | Flavor::Export => !key.starts_with(OVERLAY_XATTR_PREFIX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_lengths() {
        let mut v = Vec::new();
        pax_record(&mut v, b"path", b"a");
        assert_eq!(v, b"9 path=a\n");
        let mut v = Vec::new();
        let long = vec![b'x'; 95];
        pax_record(&mut v, b"path", &long);
        // 3 digits: 3 + 1 + 4 + 1 + 95 + 1 = 105
        assert!(v.starts_with(b"105 path="));
        assert_eq!(v.len(), 105);
    }

    #[test]
    fn long_names_and_big_ids_round_trip_through_the_tar_crate() {
        let mut out = TarOut::new(Vec::new());
        let long = format!("{}/file", "d".repeat(150));
        let link = "t".repeat(120);
        let meta = Meta {
            mode: 0o4755,
            uid: 3_000_000,
            gid: 7,
            mtime: 1_600_000_000,
            size: 3,
            rdev: 0,
        };
        out.header(
            long.as_bytes(),
            tar::EntryType::Regular,
            &meta,
            None,
            &[(b"user.k".to_vec(), b"v".to_vec())],
        )
        .unwrap();
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"ab").unwrap();
        use std::io::Seek;
        f.rewind().unwrap();
        let mut buf = vec![0u8; 16];
        // The file is shorter than announced: zero-filled.
        out.data(&mut f, 3, &mut buf).unwrap();
        out.header(
            b"l",
            tar::EntryType::Symlink,
            &meta,
            Some(link.as_bytes()),
            &[],
        )
        .unwrap();
        let (n, bytes) = out.finish().unwrap();
        assert_eq!(n as usize, bytes.len());
        assert_eq!(bytes.len() % 512, 0);
        let mut ar = tar::Archive::new(&bytes[..]);
        let mut entries = ar.entries().unwrap();
        let mut e = entries.next().unwrap().unwrap();
        assert_eq!(e.path_bytes().as_ref(), long.as_bytes());
        assert_eq!(e.header().mode().unwrap(), 0o4755);
        assert_eq!(e.header().uid().unwrap(), 3_000_000);
        assert_eq!(e.header().gid().unwrap(), 7);
        let xattrs: Vec<(String, Vec<u8>)> = e
            .pax_extensions()
            .unwrap()
            .unwrap()
            .map(|x| x.unwrap())
            .map(|x| (x.key().unwrap().to_string(), x.value_bytes().to_vec()))
            .collect();
        assert!(xattrs.contains(&("SCHILY.xattr.user.k".to_string(), b"v".to_vec())));
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        assert_eq!(data, b"ab\0");
        let e = entries.next().unwrap().unwrap();
        assert_eq!(e.path_bytes().as_ref(), b"l");
        assert_eq!(e.link_name_bytes().unwrap().as_ref(), link.as_bytes());
        assert!(entries.next().is_none());
    }
}
