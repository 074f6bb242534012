//! A small streaming tar writer (ustar headers, large copy buffers) and
//! helpers shared by save and load.

use std::io::{self, Read, Write};

/// Copy buffer size: large reads and writes keep save close to `tar -c`.
pub(crate) const COPY_BUF: usize = 1 << 20;

/// Writes a tar stream entry by entry.
pub(crate) struct TarOut<W: Write> {
    w: W,
    buf: Vec<u8>,
}

impl<W: Write> TarOut<W> {
    pub(crate) fn new(w: W) -> Self {
        TarOut { w, buf: Vec::new() }
    }

    fn header(
        &mut self,
        name: &str,
        kind: tar::EntryType,
        mode: u32,
        size: u64,
        mtime: i64,
        link: Option<&str>,
    ) -> io::Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(mtime.max(0) as u64);
        h.set_uid(0);
        h.set_gid(0);
        if name.len() > 100 {
            // ustar's prefix field; every name berth writes fits.
            h.set_path(name)?;
        } else {
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        }
        if let Some(l) = link {
            h.set_link_name(l)?;
        }
        h.set_cksum();
        self.w.write_all(h.as_bytes())
    }

    /// A directory entry (`name` ends with `/`).
    pub(crate) fn dir(&mut self, name: &str, mtime: i64) -> io::Result<()> {
        self.header(name, tar::EntryType::Directory, 0o755, 0, mtime, None)
    }

    /// A symlink entry.
    pub(crate) fn symlink(&mut self, name: &str, target: &str, mtime: i64) -> io::Result<()> {
        self.header(name, tar::EntryType::Symlink, 0o777, 0, mtime, Some(target))
    }

    /// A regular file from memory.
    pub(crate) fn bytes(&mut self, name: &str, data: &[u8], mtime: i64) -> io::Result<()> {
        self.header(
            name,
            tar::EntryType::Regular,
            0o644,
            data.len() as u64,
            mtime,
            None,
        )?;
        self.w.write_all(data)?;
        self.pad(data.len() as u64)
    }

    /// A regular file streamed from `file`, which must hold exactly `size` bytes.
    pub(crate) fn file(
        &mut self,
        name: &str,
        file: &mut dyn Read,
        size: u64,
        mtime: i64,
    ) -> io::Result<()> {
        self.header(name, tar::EntryType::Regular, 0o644, size, mtime, None)?;
        if self.buf.is_empty() {
            self.buf = vec![0u8; COPY_BUF];
        }
        let mut left = size;
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let n = match file.read(&mut self.buf[..want]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{name}: file shrank while being saved"),
                    ))
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.w.write_all(&self.buf[..n])?;
            left -= n as u64;
        }
        self.pad(size)
    }

    fn pad(&mut self, size: u64) -> io::Result<()> {
        let rem = (size % 512) as usize;
        if rem != 0 {
            self.w.write_all(&[0u8; 512][..512 - rem])?;
        }
        Ok(())
    }

    /// Writes the end-of-archive marker and flushes.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.w.write_all(&[0u8; 1024])?;
        self.w.flush()?;
        Ok(self.w)
    }
}

/// Normalizes an archive path: `./` and empty components dropped, `..`
/// resolved; `None` if it escapes the archive root.
pub(crate) fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    #[test]
    fn writes_a_readable_tar() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, vec![7u8; 3000]).unwrap();
        let mut t = TarOut::new(Vec::new());
        t.dir("d/", 5).unwrap();
        t.bytes("d/a", b"hello", 5).unwrap();
        t.file("d/b", &mut File::open(&p).unwrap(), 3000, 5)
            .unwrap();
        t.symlink("d/c", "../d/a", 5).unwrap();
        let err = t
            .file("d/e", &mut File::open(&p).unwrap(), 3001, 5)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let mut t = TarOut::new(Vec::new());
        t.bytes("x", b"1", 0).unwrap();
        t.file("y", &mut File::open(&p).unwrap(), 3000, 0).unwrap();
        let data = t.finish().unwrap();
        let mut a = tar::Archive::new(&data[..]);
        let mut names = Vec::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let mut v = Vec::new();
            e.read_to_end(&mut v).unwrap();
            names.push((e.path().unwrap().display().to_string(), v.len()));
        }
        assert_eq!(names, vec![("x".into(), 1), ("y".into(), 3000)]);
    }

    #[test]
    fn normalizes_paths() {
        assert_eq!(normalize("./a//b/").as_deref(), Some("a/b"));
        assert_eq!(normalize("a/../b").as_deref(), Some("b"));
        assert_eq!(normalize("/abs").as_deref(), Some("abs"));
        assert_eq!(normalize("../x"), None);
        assert_eq!(normalize("."), None);
    }
}
