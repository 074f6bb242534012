//! tar-split: a layer's tar stream kept as the bytes that are not file content (headers,
//! padding, the end-of-archive blocks) plus, for each regular file, a reference to the file the
//! snapshot already holds. The layer's exact bytes (its digest is its diff id) are read back
//! from the two, so the uncompressed layer is not stored a second time as a blob. Docker keeps
//! layers the same way (its tar-split index next to the unpacked layer).
//!
//! ```text
//! <snapshot>/tar-split.idx    zstd: magic, then the ops in order (raw runs, file references),
//!                             then an end op with the stream's length
//! <snapshot>/tar-split.raw    zstd: the raw runs' bytes, in order
//! <snapshot>/tar-split.end    zstd: the stream's length, then what a later entry of the same
//!                             layer replaced or removed, moved to tar-split.keep/<n> instead
//!                             of being deleted, and when (written last: read first)
//! <snapshot>/tar-split.keep/  those entries
//! ```
//!
//! Memory does not grow with the layer's files: ops are written as they come, and only the
//! moves (an entry replaced within its own layer: rare) are kept until the end, on both sides.
//! A file op `i` for path `P` names the file that op created; if `P` or a directory above it
//! was moved after op `i` (the first such move), the file is under that move's keep entry.
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
pub(crate) const END_FILE: &str = "tar-split.end";
pub(crate) const KEEP_DIR: &str = "tar-split.keep";
const MAGIC: &[u8] = b"berth tar-split 2\n";
const ZSTD_LEVEL: i32 = 1;
/// Longest path an op may name (Linux's PATH_MAX).
const MAX_PATH: usize = 4096;

const OP_RAW: u8 = 1;
const OP_FILE: u8 = 2;
const OP_END: u8 = 3;

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// A read error of a tar-split file: an OS error (EIO...) as it is, anything else (truncated
/// or undecodable data) as damage to the layer (`InvalidData`).
fn damaged(e: io::Error, what: &str) -> io::Error {
    if e.raw_os_error().is_some() {
        e
    } else {
        bad(format!("{what}: {e}"))
    }
}

type Encoder = zstd::stream::write::Encoder<'static, BufWriter<File>>;

fn encoder(path: &Path) -> io::Result<Encoder> {
    zstd::stream::write::Encoder::new(
        BufWriter::with_capacity(256 << 10, File::create(path)?),
        ZSTD_LEVEL,
    )
}

/// Records a layer stream while it is unpacked (or written) into a snapshot directory.
pub(crate) struct Recorder {
    raw: Encoder,
    idx: Encoder,
    /// Ops written so far.
    ops: u64,
    /// Raw bytes since the last op.
    run: u64,
    /// Bytes the file being recorded still expects.
    file: Option<u64>,
    /// (ops written before the move, the moved path, its keep number).
    moves: Vec<(u64, Vec<u8>, u64)>,
    total: u64,
    /// The snapshot directory (holding `fs/` and the tar-split files).
    dir: PathBuf,
    keep: Option<File>,
}

/// A [`Recorder`] shared by the reader (or writer) that sees the bytes and the code that
/// knows which of them are file content.
pub(crate) type Shared = Rc<RefCell<Recorder>>;

impl Recorder {
    /// Starts recording into `dir` (a snapshot directory whose tree is `dir/fs`).
    pub(crate) fn new(dir: &Path) -> io::Result<Shared> {
        let raw = encoder(&dir.join(RAW_FILE))?;
        let mut idx = encoder(&dir.join(INDEX_FILE))?;
        idx.write_all(MAGIC)?;
        Ok(Rc::new(RefCell::new(Recorder {
            raw,
            idx,
            ops: 0,
            run: 0,
            file: None,
            moves: Vec::new(),
            total: 0,
            dir: dir.to_path_buf(),
            keep: None,
        })))
    }

    /// Bytes of the stream, in order.
    pub(crate) fn bytes(&mut self, data: &[u8]) -> io::Result<()> {
        self.total += data.len() as u64;
        match &mut self.file {
            Some(left) => {
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

    fn close_run(&mut self) -> io::Result<()> {
        if self.run > 0 {
            self.idx.write_all(&[OP_RAW])?;
            self.idx.write_all(&self.run.to_le_bytes())?;
            self.ops += 1;
            self.run = 0;
        }
        Ok(())
    }

    /// The next `size` bytes are the content of the file at `path` (relative to the tree).
    pub(crate) fn file_begins(&mut self, path: &[u8], size: u64) -> io::Result<()> {
        if self.file.is_some() {
            return Err(bad("tar-split: a file inside a file"));
        }
        if path.len() > MAX_PATH {
            return Err(bad("tar-split: path too long"));
        }
        self.close_run()?;
        self.idx.write_all(&[OP_FILE])?;
        self.idx.write_all(&size.to_le_bytes())?;
        self.idx.write_all(&(path.len() as u32).to_le_bytes())?;
        self.idx.write_all(path)?;
        self.ops += 1;
        self.file = Some(size);
        Ok(())
    }

    /// The file's content ended: all of it must have gone by.
    pub(crate) fn file_ends(&mut self) -> io::Result<()> {
        match self.file.take() {
            Some(0) => Ok(()),
            Some(left) => Err(bad(format!(
                "tar-split: file content ended {left} bytes early"
            ))),
            None => Err(bad("tar-split: no file to end")),
        }
    }

    /// `name` in `parent` (the tree's `path`) is about to be removed or replaced by a later
    /// entry of the layer: it is moved into the keep directory instead, so that files the
    /// stream refers to stay readable. Nothing is left at `name` afterwards.
    pub(crate) fn move_aside(
        &mut self,
        parent: &File,
        path: &[u8],
        name: &OsStr,
    ) -> io::Result<()> {
        if self.keep.is_none() {
            let keep = self.dir.join(KEEP_DIR);
            match fs::create_dir(&keep) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            self.keep = Some(open_dir(&keep)?);
        }
        let keep = self.keep.as_ref().map(|k| k.as_raw_fd());
        let n = self.moves.len() as u64;
        renameat(Some(parent.as_raw_fd()), name, keep, n.to_string().as_str())
            .map_err(io::Error::from)?;
        self.moves.push((self.ops, path.to_vec(), n));
        Ok(())
    }

    /// Writes the end of the index, then the end file (the length and the moves). Returns
    /// the stream's length.
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
        self.close_run()?;
        self.idx.write_all(&[OP_END])?;
        self.idx.write_all(&self.total.to_le_bytes())?;
        self.idx.finish()?.flush()?;
        self.raw.finish()?.flush()?;
        let mut w = encoder(&self.dir.join(END_FILE))?;
        w.write_all(MAGIC)?;
        w.write_all(&self.total.to_le_bytes())?;
        w.write_all(&(self.moves.len() as u64).to_le_bytes())?;
        for (ops, path, n) in &self.moves {
            w.write_all(&ops.to_le_bytes())?;
            w.write_all(&n.to_le_bytes())?;
            w.write_all(&(path.len() as u32).to_le_bytes())?;
            w.write_all(path)?;
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

type Decoder = zstd::stream::read::Decoder<'static, BufReader<File>>;

fn read_u64(r: &mut dyn Read) -> io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)
        .map_err(|e| damaged(e, "tar-split index"))?;
    Ok(u64::from_le_bytes(b))
}

fn read_path(r: &mut dyn Read) -> io::Result<Vec<u8>> {
    let mut n = [0u8; 4];
    r.read_exact(&mut n)
        .map_err(|e| damaged(e, "tar-split index"))?;
    let n = u32::from_le_bytes(n) as usize;
    if n > MAX_PATH {
        return Err(bad("tar-split index: path too long"));
    }
    let mut path = vec![0u8; n];
    r.read_exact(&mut path)
        .map_err(|e| damaged(e, "tar-split index"))?;
    Ok(path)
}

fn read_magic(r: &mut dyn Read) -> io::Result<()> {
    let mut magic = vec![0u8; MAGIC.len()];
    r.read_exact(&mut magic)
        .map_err(|e| damaged(e, "tar-split index"))?;
    if magic != MAGIC {
        return Err(bad("tar-split index: not a berth tar-split index"));
    }
    Ok(())
}

enum Cur {
    Idle,
    Raw(u64),
    File(File, u64),
    Done,
}

/// Reads a layer's exact tar stream back from a snapshot directory's tar-split files and tree.
pub struct LayerReader {
    idx: Decoder,
    raw: Decoder,
    fs: File,
    keep: Option<File>,
    /// Moved path → (ops written before the move, keep number), in the moves' order.
    moves: HashMap<Vec<u8>, Vec<(u64, u64)>>,
    /// The stream's length.
    len: u64,
    /// Index of the next op.
    op: u64,
    cur: Cur,
    done: u64,
}

impl std::fmt::Debug for LayerReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerReader")
            .field("done", &self.done)
            .finish()
    }
}

impl LayerReader {
    /// Opens the tar-split of the snapshot directory `dir`.
    pub(crate) fn open(dir: &Path) -> io::Result<LayerReader> {
        let mut idx = zstd::stream::read::Decoder::new(File::open(dir.join(INDEX_FILE))?)?;
        read_magic(&mut idx)?;
        let mut end = zstd::stream::read::Decoder::new(File::open(dir.join(END_FILE))?)?;
        read_magic(&mut end)?;
        let len = read_u64(&mut end)?;
        let count = read_u64(&mut end)?;
        let mut moves: HashMap<Vec<u8>, Vec<(u64, u64)>> = HashMap::new();
        for _ in 0..count {
            let ops = read_u64(&mut end)?;
            let n = read_u64(&mut end)?;
            let path = read_path(&mut end)?;
            moves.entry(path).or_default().push((ops, n));
        }
        let keep = if moves.is_empty() {
            None
        } else {
            Some(open_dir(&dir.join(KEEP_DIR))?)
        };
        let raw = zstd::stream::read::Decoder::new(File::open(dir.join(RAW_FILE))?)?;
        Ok(LayerReader {
            len,
            idx,
            raw,
            fs: open_dir(&dir.join("fs"))?,
            keep,
            moves,
            op: 0,
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

    /// Where the file of op `op`, created at `path`, is now: the first move after the op of
    /// the path or of a directory above it, else the path in the tree.
    fn locate(&self, op: u64, path: &[u8]) -> (bool, Vec<u8>) {
        let mut best: Option<(u64, u64, usize)> = None; // (ops, keep number, prefix length)
        let mut consider = |prefix_len: usize| {
            if let Some(list) = self.moves.get(&path[..prefix_len]) {
                if let Some(&(ops, n)) = list.iter().find(|(ops, _)| *ops > op) {
                    if best.is_none_or(|(b, _, _)| ops < b) {
                        best = Some((ops, n, prefix_len));
                    }
                }
            }
        };
        if !self.moves.is_empty() {
            consider(path.len());
            for (i, c) in path.iter().enumerate() {
                if *c == b'/' {
                    consider(i);
                }
            }
        }
        match best {
            Some((_, n, len)) => {
                let mut p = n.to_string().into_bytes();
                p.extend_from_slice(&path[len..]);
                (true, p)
            }
            None => (false, path.to_vec()),
        }
    }

    fn open_file(&self, op: u64, path: &[u8], size: u64) -> io::Result<File> {
        let (kept, rel) = self.locate(op, path);
        let name = String::from_utf8_lossy(path).into_owned();
        let dir = match (kept, &self.keep) {
            (false, _) => &self.fs,
            (true, Some(k)) => k,
            (true, None) => return Err(bad("tar-split: keep directory missing")),
        };
        let f = open_file_beneath(dir, OsStr::from_bytes(&rel)).map_err(|e| match e {
            // Gone, or not what it was: the layer's files changed.
            Errno::ENOENT | Errno::ELOOP | Errno::EXDEV | Errno::ENOTDIR => {
                bad(format!("layer file {name}: {e}"))
            }
            // Anything else (EMFILE, EIO...) is not a verdict on the layer.
            e => io::Error::other(format!("layer file {name}: {e}")),
        })?;
        let md = f.metadata()?;
        if !md.is_file() || md.len() != size {
            return Err(bad(format!(
                "layer file {name} changed: {} bytes, the layer has {size}",
                md.len()
            )));
        }
        Ok(f)
    }

    fn next_op(&mut self) -> io::Result<()> {
        let mut tag = [0u8; 1];
        self.idx
            .read_exact(&mut tag)
            .map_err(|e| damaged(e, "tar-split index"))?;
        let op = self.op;
        self.op += 1;
        self.cur = match tag[0] {
            OP_RAW => Cur::Raw(read_u64(&mut self.idx)?),
            OP_FILE => {
                let size = read_u64(&mut self.idx)?;
                let path = read_path(&mut self.idx)?;
                Cur::File(self.open_file(op, &path, size)?, size)
            }
            OP_END => {
                let len = read_u64(&mut self.idx)?;
                if len != self.done {
                    return Err(bad("tar-split: index and stream length disagree"));
                }
                Cur::Done
            }
            t => return Err(bad(format!("tar-split index: unknown op {t}"))),
        };
        Ok(())
    }
}

impl Read for LayerReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match &mut self.cur {
                Cur::Done => return Ok(0),
                Cur::Idle | Cur::Raw(0) | Cur::File(_, 0) => self.next_op()?,
                Cur::Raw(left) => {
                    let want = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                    let n = self
                        .raw
                        .read(&mut buf[..want])
                        .map_err(|e| damaged(e, "tar-split data"))?;
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

    /// A path replaced again and again within the layer, through its parent too: each file op
    /// must find its file in the keep entry of the first move after it.
    fn replaced_again_and_again() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        dir(&mut b, "d/");
        file(&mut b, "d/f", b"version one");
        file(&mut b, "d/f", b"version two, longer");
        link(&mut b, tar::EntryType::Symlink, "d", "elsewhere");
        dir(&mut b, "d/");
        file(&mut b, "d/f", b"three");
        file(&mut b, "d", b"d is a file now");
        dir(&mut b, "d/");
        file(&mut b, "d/f", b"four: the parent made again implicitly");
        file(&mut b, "h1", b"first h1");
        link(&mut b, tar::EntryType::Link, "h2", "h1");
        file(&mut b, "h1", b"second h1");
        link(&mut b, tar::EntryType::Link, "h3", "h1");
        file(&mut b, ".wh.h1", b"");
        b.into_inner().unwrap()
    }

    #[test]
    fn paths_replaced_many_times_read_back() {
        let tar = replaced_again_and_again();
        let (_dir, store, s) = applied(&tar);
        assert_eq!(
            std::fs::read(s.fs.join("d/f")).unwrap(),
            b"four: the parent made again implicitly"
        );
        assert_eq!(std::fs::read(s.fs.join("h2")).unwrap(), b"first h1");
        assert_eq!(std::fs::read(s.fs.join("h3")).unwrap(), b"second h1");
        // h1 is an overlay whiteout now.
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::symlink_metadata(s.fs.join("h1"))
            .unwrap()
            .file_type()
            .is_char_device());
        assert_eq!(read_back(&store, &s.chain_id), tar);
    }

    /// A fresh store with `tar` applied as a base layer.
    fn applied(tar: &[u8]) -> (tempfile::TempDir, SnapshotStore, crate::Snapshot) {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(&dir.path().join("snapshots")).unwrap();
        let s = store
            .create_from_tar(None, None, tar, &ApplyOptions::default())
            .unwrap();
        (dir, store, s)
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
        assert_eq!(kept, 3, "the first replaced, the directory gone, orig");

        // A child snapshot of the same layer reads back too.
        let child = store
            .create_from_tar(Some(&diff), Some(&diff), &tar[..], &ApplyOptions::default())
            .unwrap();
        assert_eq!(child.chain_id, chain_id(Some(&diff), &diff));
        assert_eq!(read_back(&store, &child.chain_id), tar);
    }

    #[test]
    fn a_changed_file_is_an_error_not_a_wrong_stream() {
        let (_dir, store, s) = applied(&tricky_layer());
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
