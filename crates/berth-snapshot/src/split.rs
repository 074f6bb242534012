//! tar-split: a layer's tar stream kept as the bytes that are not file content (headers,
//! padding, the end-of-archive blocks) plus, for each regular file, a reference to the file the
//! snapshot already holds. The layer's exact bytes (its digest is its diff id) are read back
//! from the two, so the uncompressed layer is not stored a second time as a blob. Docker keeps
//! layers the same way (its tar-split index next to the unpacked layer).
//!
//! ```text
//! <snapshot>/tar-split.idx    zstd: magic, stream length, the ops (raw runs, file references)
//! <snapshot>/tar-split.raw    zstd: the raw runs' bytes, in order
//! <snapshot>/tar-split.keep/  files of this layer that a later entry of the same layer
//!                             replaced or removed (moved here instead of unlinked)
//! ```
//!
//! The snapshot's files never change once it is committed (overlay never writes to a lower
//! directory), so the references stay valid; a reader still checks every file's size, and a
//! layer whose bytes changed no longer hashes to its digest (`system check` verifies them).

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::renameat;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};

use crate::fsutil::owned;

pub(crate) const INDEX_FILE: &str = "tar-split.idx";
pub(crate) const RAW_FILE: &str = "tar-split.raw";
pub(crate) const KEEP_DIR: &str = "tar-split.keep";
const MAGIC: &[u8] = b"berth tar-split 1\n";
const ZSTD_LEVEL: i32 = 1;

const OP_RAW: u8 = 1;
const OP_FILE: u8 = 2;
const OP_KEPT: u8 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    /// `len` bytes of the raw stream.
    Raw(u64),
    /// The snapshot's file at `path` (relative to `fs/`), exactly `size` bytes.
    File { path: Vec<u8>, size: u64 },
    /// `tar-split.keep/<n>`, exactly `size` bytes.
    Kept { n: u64, size: u64 },
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Records a layer stream while it is unpacked (or written) into a snapshot directory.
pub(crate) struct Recorder {
    raw: zstd::stream::write::Encoder<'static, BufWriter<File>>,
    ops: Vec<Op>,
    /// Raw bytes since the last op.
    run: u64,
    /// The file op being filled, and how many bytes it still expects.
    file: Option<(usize, u64)>,
    /// Path → index of the `File` op whose file is at that path now.
    live: HashMap<Vec<u8>, usize>,
    kept: u64,
    total: u64,
    /// The snapshot directory (holding `fs/` and the tar-split files).
    dir: PathBuf,
    fs: PathBuf,
}

/// A [`Recorder`] shared by the reader (or writer) that sees the bytes and the code that
/// knows which of them are file content.
pub(crate) type Shared = Rc<RefCell<Recorder>>;

impl Recorder {
    /// Starts recording into `dir` (a snapshot directory whose tree is `dir/fs`).
    pub(crate) fn new(dir: &Path) -> io::Result<Shared> {
        let raw = File::create(dir.join(RAW_FILE))?;
        let raw =
            zstd::stream::write::Encoder::new(BufWriter::with_capacity(1 << 20, raw), ZSTD_LEVEL)?;
        Ok(Rc::new(RefCell::new(Recorder {
            raw,
            ops: Vec::new(),
            run: 0,
            file: None,
            live: HashMap::new(),
            kept: 0,
            total: 0,
            dir: dir.to_path_buf(),
            fs: dir.join("fs"),
        })))
    }

    /// Bytes of the stream, in order.
    pub(crate) fn bytes(&mut self, data: &[u8]) -> io::Result<()> {
        self.total += data.len() as u64;
        match &mut self.file {
            Some((_, left)) => {
                let n = data.len() as u64;
                if n > *left {
                    return Err(bad("tar-split: more file data than the entry's size"));
                }
                *left -= n;
                Ok(())
            }
            None => {
                self.run += data.len() as u64;
                self.raw.write_all(data)
            }
        }
    }

    fn close_run(&mut self) {
        if self.run > 0 {
            self.ops.push(Op::Raw(self.run));
            self.run = 0;
        }
    }

    /// The next `size` bytes are the content of the file at `path` (relative to the tree).
    pub(crate) fn file_begins(&mut self, path: &[u8], size: u64) -> io::Result<()> {
        if self.file.is_some() {
            return Err(bad("tar-split: a file inside a file"));
        }
        self.close_run();
        let i = self.ops.len();
        self.ops.push(Op::File {
            path: path.to_vec(),
            size,
        });
        self.live.insert(path.to_vec(), i);
        self.file = Some((i, size));
        Ok(())
    }

    /// The file's content ended: all of it must have gone by.
    pub(crate) fn file_ends(&mut self) -> io::Result<()> {
        match self.file.take() {
            Some((_, 0)) => Ok(()),
            Some((_, left)) => Err(bad(format!(
                "tar-split: file content ended {left} bytes early"
            ))),
            None => Err(bad("tar-split: no file to end")),
        }
    }

    /// `path` (a file, or a directory when `dir`) is about to be removed or replaced: files of
    /// this layer there are moved into the keep directory first, so the stream can still be
    /// read back. Returns whether `path` itself was moved (nothing is left to remove there).
    pub(crate) fn rescue(&mut self, path: &[u8], dir: bool) -> io::Result<bool> {
        let mut doomed: Vec<Vec<u8>> = Vec::new();
        let itself = self.live.contains_key(path);
        if itself {
            doomed.push(path.to_vec());
        }
        if dir {
            let mut prefix = path.to_vec();
            prefix.push(b'/');
            doomed.extend(self.live.keys().filter(|k| k.starts_with(&prefix)).cloned());
        }
        if doomed.is_empty() {
            return Ok(false);
        }
        let keep = self.dir.join(KEEP_DIR);
        match fs::create_dir(&keep) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let root = open_dir(&self.fs)?;
        let keepd = open_dir(&keep)?;
        for p in doomed {
            let Some(i) = self.live.remove(&p) else {
                continue;
            };
            let size = match &self.ops[i] {
                Op::File { size, .. } => *size,
                _ => return Err(bad("tar-split: live entry is not a file")),
            };
            let n = self.kept;
            self.kept += 1;
            renameat(
                Some(root.as_raw_fd()),
                OsStr::from_bytes(&p),
                Some(keepd.as_raw_fd()),
                n.to_string().as_str(),
            )
            .map_err(io::Error::from)?;
            self.ops[i] = Op::Kept { n, size };
        }
        Ok(itself)
    }

    /// Writes the index. Returns the stream's length.
    pub(crate) fn finish(shared: Shared) -> io::Result<u64> {
        let rec = Rc::try_unwrap(shared)
            .map_err(|_| bad("tar-split: recorder still shared"))?
            .into_inner();
        rec.finish_inner()
    }

    fn finish_inner(mut self) -> io::Result<u64> {
        if self.file.is_some() {
            return Err(bad("tar-split: stream ended inside a file"));
        }
        self.close_run();
        let mut raw = self.raw.finish()?;
        raw.flush()?;
        let f = File::create(self.dir.join(INDEX_FILE))?;
        let mut w = zstd::stream::write::Encoder::new(BufWriter::new(f), ZSTD_LEVEL)?;
        w.write_all(MAGIC)?;
        w.write_all(&self.total.to_le_bytes())?;
        w.write_all(&(self.ops.len() as u64).to_le_bytes())?;
        for op in &self.ops {
            match op {
                Op::Raw(len) => {
                    w.write_all(&[OP_RAW])?;
                    w.write_all(&len.to_le_bytes())?;
                }
                Op::File { path, size } => {
                    w.write_all(&[OP_FILE])?;
                    w.write_all(&size.to_le_bytes())?;
                    w.write_all(&(path.len() as u32).to_le_bytes())?;
                    w.write_all(path)?;
                }
                Op::Kept { n, size } => {
                    w.write_all(&[OP_KEPT])?;
                    w.write_all(&size.to_le_bytes())?;
                    w.write_all(&n.to_le_bytes())?;
                }
            }
        }
        w.finish()?.flush()?;
        Ok(self.total)
    }
}

/// A reader that shows every byte it reads to a [`Recorder`].
pub(crate) struct RecordingReader<R> {
    pub(crate) inner: R,
    pub(crate) rec: Shared,
}

impl<R: Read> Read for RecordingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.rec.borrow_mut().bytes(&buf[..n])?;
        Ok(n)
    }
}

/// A writer that shows every byte written to a [`Recorder`] and hashes them.
pub(crate) struct RecordingWriter {
    pub(crate) rec: Shared,
    pub(crate) hasher: sha2::Sha256,
}

impl Write for RecordingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        sha2::Digest::update(&mut self.hasher, buf);
        self.rec.borrow_mut().bytes(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn open_dir(path: &Path) -> io::Result<File> {
    let fd = nix::fcntl::openat(
        None,
        path,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    Ok(owned(fd))
}

fn open_file_beneath(dir: &File, path: &OsStr) -> Result<File, Errno> {
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK)
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS
                | ResolveFlag::RESOLVE_NO_XDEV,
        );
    Ok(owned(openat2(dir.as_raw_fd(), path, how)?))
}

/// Whether the snapshot directory `dir` holds a tar-split index.
pub(crate) fn has_index(dir: &Path) -> bool {
    dir.join(INDEX_FILE).is_file()
}

enum Cur {
    Idle,
    Raw(u64),
    File(File, u64),
}

/// Reads a layer's exact tar stream back from a snapshot directory's tar-split files and tree.
pub struct LayerReader {
    ops: std::vec::IntoIter<Op>,
    raw: zstd::stream::read::Decoder<'static, BufReader<File>>,
    fs: File,
    keep: PathBuf,
    len: u64,
    cur: Cur,
    done: u64,
}

impl std::fmt::Debug for LayerReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerReader")
            .field("len", &self.len)
            .finish()
    }
}

impl LayerReader {
    /// Opens the tar-split of the snapshot directory `dir`.
    pub(crate) fn open(dir: &Path) -> io::Result<LayerReader> {
        let idx = File::open(dir.join(INDEX_FILE))?;
        let mut r = zstd::stream::read::Decoder::new(idx)?;
        let mut magic = vec![0u8; MAGIC.len()];
        r.read_exact(&mut magic)
            .map_err(|_| bad("tar-split index: truncated"))?;
        if magic != MAGIC {
            return Err(bad("tar-split index: not a berth tar-split index"));
        }
        let u64_of = |r: &mut dyn Read| -> io::Result<u64> {
            let mut b = [0u8; 8];
            r.read_exact(&mut b)
                .map_err(|_| bad("tar-split index: truncated"))?;
            Ok(u64::from_le_bytes(b))
        };
        let len = u64_of(&mut r)?;
        let count = u64_of(&mut r)?;
        let mut ops = Vec::with_capacity(count.min(1 << 20) as usize);
        for _ in 0..count {
            let mut tag = [0u8; 1];
            r.read_exact(&mut tag)
                .map_err(|_| bad("tar-split index: truncated"))?;
            ops.push(match tag[0] {
                OP_RAW => Op::Raw(u64_of(&mut r)?),
                OP_FILE => {
                    let size = u64_of(&mut r)?;
                    let mut n = [0u8; 4];
                    r.read_exact(&mut n)
                        .map_err(|_| bad("tar-split index: truncated"))?;
                    let n = u32::from_le_bytes(n) as usize;
                    if n > 1 << 20 {
                        return Err(bad("tar-split index: path too long"));
                    }
                    let mut path = vec![0u8; n];
                    r.read_exact(&mut path)
                        .map_err(|_| bad("tar-split index: truncated"))?;
                    Op::File { path, size }
                }
                OP_KEPT => {
                    let size = u64_of(&mut r)?;
                    Op::Kept {
                        n: u64_of(&mut r)?,
                        size,
                    }
                }
                t => return Err(bad(format!("tar-split index: unknown op {t}"))),
            });
        }
        let raw = zstd::stream::read::Decoder::new(File::open(dir.join(RAW_FILE))?)?;
        Ok(LayerReader {
            ops: ops.into_iter(),
            raw,
            fs: open_dir(&dir.join("fs"))?,
            keep: dir.join(KEEP_DIR),
            len,
            cur: Cur::Idle,
            done: 0,
        })
    }

    /// The stream's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the stream is empty (never, for a tar).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn open_file(&self, op: &Op) -> io::Result<(File, u64)> {
        let (f, size, name) = match op {
            Op::File { path, size } => {
                let f = open_file_beneath(&self.fs, OsStr::from_bytes(path)).map_err(|e| {
                    bad(format!("layer file {}: {e}", String::from_utf8_lossy(path)))
                })?;
                (f, *size, String::from_utf8_lossy(path).into_owned())
            }
            Op::Kept { n, size } => {
                let f = File::open(self.keep.join(n.to_string()))?;
                (f, *size, format!("{KEEP_DIR}/{n}"))
            }
            Op::Raw(_) => return Err(bad("tar-split: not a file op")),
        };
        let md = f.metadata()?;
        if !md.is_file() || md.len() != size {
            return Err(bad(format!(
                "layer file {name} changed: {} bytes, the layer has {size}",
                md.len()
            )));
        }
        Ok((f, size))
    }
}

impl Read for LayerReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match &mut self.cur {
                Cur::Idle => match self.ops.next() {
                    None => {
                        if self.done != self.len {
                            return Err(bad("tar-split: index and stream length disagree"));
                        }
                        return Ok(0);
                    }
                    Some(Op::Raw(n)) => self.cur = Cur::Raw(n),
                    Some(op) => {
                        let (f, size) = self.open_file(&op)?;
                        self.cur = Cur::File(f, size);
                    }
                },
                Cur::Raw(0) | Cur::File(_, 0) => self.cur = Cur::Idle,
                Cur::Raw(left) => {
                    let want = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                    let n = self.raw.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(bad("tar-split: raw data truncated"));
                    }
                    *left -= n as u64;
                    self.done += n as u64;
                    return Ok(n);
                }
                Cur::File(f, left) => {
                    let want = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                    let n = match f.read(&mut buf[..want]) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        r => r?,
                    };
                    if n == 0 {
                        return Err(bad("tar-split: a layer file shrank"));
                    }
                    *left -= n as u64;
                    self.done += n as u64;
                    return Ok(n);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{chain_id, ApplyOptions, SnapshotStore};
    use berth_content::Digest;
    use std::io::Read;

    fn header(kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
        let mut h = header(tar::EntryType::Regular, data.len() as u64);
        b.append_data(&mut h, name, data).unwrap();
    }

    fn dir(b: &mut tar::Builder<Vec<u8>>, name: &str) {
        let mut h = header(tar::EntryType::Directory, 0);
        h.set_mode(0o755);
        b.append_data(&mut h, name, &[][..]).unwrap();
    }

    fn link(b: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, name: &str, target: &str) {
        let mut h = header(kind, 0);
        b.append_link(&mut h, name, target).unwrap();
    }

    /// A layer with what can happen in one: nested and long names (PAX/GNU headers), empty
    /// and big files, links, a whiteout, a file replaced by a later entry, a directory
    /// replaced by a file, a hardlink whose first name is removed, and junk after the end.
    fn tricky_layer() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        dir(&mut b, "etc/");
        file(&mut b, "etc/passwd", b"root:x:0:0::/root:/bin/sh\n");
        file(&mut b, "empty", b"");
        let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        file(&mut b, "big.bin", &big);
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(130));
        file(&mut b, &long, b"long name");
        link(&mut b, tar::EntryType::Symlink, "etc/link", "passwd");
        file(&mut b, "orig", b"the first name of a hardlinked file");
        link(&mut b, tar::EntryType::Link, "second", "orig");
        file(&mut b, "replaced", b"first version");
        file(&mut b, "replaced", b"second version, longer");
        dir(&mut b, "gone/");
        file(&mut b, "gone/a", b"aaaa");
        file(&mut b, "gone/sub/b", b"bbbb");
        file(&mut b, "gone", b"a file where a directory was");
        file(&mut b, ".wh.orig", b"");
        file(&mut b, "etc/.wh.nothing", b"");
        let mut out = b.into_inner().unwrap();
        out.extend_from_slice(&[0u8; 10240]);
        out
    }

    fn read_back(store: &SnapshotStore, chain: &Digest) -> Vec<u8> {
        let mut r = store.layer_reader(chain).unwrap().expect("a tar-split");
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out.len() as u64, r.len());
        out
    }

    #[test]
    fn applied_layers_read_back_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(&dir.path().join("snapshots")).unwrap();
        let tar = tricky_layer();
        let diff = Digest::of(&tar);
        let s = store
            .create_from_tar(None, Some(&diff), &tar[..], &ApplyOptions::default())
            .unwrap();
        // The tree is what the layer says...
        assert_eq!(
            std::fs::read(s.fs.join("replaced")).unwrap(),
            b"second version, longer"
        );
        assert!(std::fs::symlink_metadata(s.fs.join("gone"))
            .unwrap()
            .is_file());
        assert_eq!(
            std::fs::read(s.fs.join("second")).unwrap(),
            b"the first name of a hardlinked file"
        );
        // ...and the stream comes back exactly, the replaced files from the keep directory.
        assert_eq!(read_back(&store, &s.chain_id), tar);
        let kept = std::fs::read_dir(store.dir(&s.chain_id).join(super::KEEP_DIR))
            .unwrap()
            .count();
        assert_eq!(kept, 4, "replaced, gone/a, gone/sub/b, orig");

        // A child snapshot of the same layer reads back too.
        let child = store
            .create_from_tar(Some(&diff), Some(&diff), &tar[..], &ApplyOptions::default())
            .unwrap();
        assert_eq!(child.chain_id, chain_id(Some(&diff), &diff));
        assert_eq!(read_back(&store, &child.chain_id), tar);
    }

    #[test]
    fn a_changed_file_is_an_error_not_a_wrong_stream() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(&dir.path().join("snapshots")).unwrap();
        let tar = tricky_layer();
        let s = store
            .create_from_tar(None, None, &tar[..], &ApplyOptions::default())
            .unwrap();
        std::fs::write(s.fs.join("big.bin"), b"short").unwrap();
        let mut r = store.layer_reader(&s.chain_id).unwrap().unwrap();
        let err = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("big.bin changed"), "{err}");
        // A file swapped for a symlink is not followed.
        std::fs::remove_file(s.fs.join("big.bin")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", s.fs.join("big.bin")).unwrap();
        let mut r = store.layer_reader(&s.chain_id).unwrap().unwrap();
        assert!(r.read_to_end(&mut Vec::new()).is_err());
        // A broken index is refused.
        std::fs::write(store.dir(&s.chain_id).join(super::INDEX_FILE), b"junk").unwrap();
        assert!(store.layer_reader(&s.chain_id).is_err());
    }

    #[test]
    fn written_trees_match_write_layer() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(&dir.path().join("snapshots")).unwrap();
        let pending = store.prepare().unwrap();
        let fs = pending.fs_path().to_path_buf();
        std::fs::create_dir_all(fs.join("usr/bin")).unwrap();
        std::fs::write(fs.join("usr/bin/tool"), vec![5u8; 70_000]).unwrap();
        std::fs::write(fs.join("note"), b"hello").unwrap();
        std::fs::write(fs.join("empty"), b"").unwrap();
        std::fs::hard_link(fs.join("note"), fs.join("note2")).unwrap();
        std::os::unix::fs::symlink("note", fs.join("sym")).unwrap();
        nix::sys::stat::mknod(
            &fs.join("whiteout"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
        let mut expected = Vec::new();
        crate::write_layer(&fs, &mut expected).unwrap();
        let (stats, digest) = pending.write_split().unwrap();
        assert_eq!(digest, Digest::of(&expected));
        assert_eq!(stats.size, expected.len() as u64);
        let snap = pending.commit(None, &digest, stats.file_bytes).unwrap();
        assert_eq!(read_back(&store, &snap.chain_id), expected);
    }

    #[test]
    fn snapshots_without_a_split_say_so() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(&dir.path().join("snapshots")).unwrap();
        let pending = store.prepare().unwrap();
        std::fs::write(pending.fs_path().join("f"), b"x").unwrap();
        let s = pending.commit(None, &Digest::of(b"x"), 1).unwrap();
        assert!(store.layer_reader(&s.chain_id).unwrap().is_none());
        assert!(store.layer_reader(&Digest::of(b"nothing")).is_err());
    }
}
