//! The container's log in Docker's json-file format, with rotation.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

/// A partial line is written out once it reaches this size (as Docker does).
pub const MAX_PARTIAL: usize = 16 * 1024;

#[derive(Serialize)]
struct Entry<'a> {
    log: &'a str,
    stream: &'a str,
    time: &'a str,
}

/// Now, as Docker writes it: RFC 3339 with nanoseconds, UTC.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Writes `{"log":...,"stream":...,"time":...}` lines.
pub struct JsonLog {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    max_files: u32,
    partial: [Vec<u8>; 2],
}

impl JsonLog {
    pub fn open(path: &Path, max_size: u64, max_files: u32) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(JsonLog {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_files,
            partial: [Vec::new(), Vec::new()],
        })
    }

    fn idx(stream: &str) -> usize {
        usize::from(stream == "stderr")
    }

    /// Add output of `stream` (`stdout` or `stderr`); complete lines are written.
    pub fn write(&mut self, stream: &'static str, data: &[u8]) -> io::Result<()> {
        let i = Self::idx(stream);
        let mut buf = std::mem::take(&mut self.partial[i]);
        buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + nl + 1;
            self.entry(stream, &buf[start..end])?;
            start = end;
        }
        while buf.len() - start >= MAX_PARTIAL {
            self.entry(stream, &buf[start..start + MAX_PARTIAL])?;
            start += MAX_PARTIAL;
        }
        buf.drain(..start);
        self.partial[i] = buf;
        Ok(())
    }

    /// Write out partial lines (at exit).
    pub fn flush(&mut self) -> io::Result<()> {
        for (i, stream) in ["stdout", "stderr"].into_iter().enumerate() {
            let buf = std::mem::take(&mut self.partial[i]);
            if !buf.is_empty() {
                self.entry(stream, &buf)?;
            }
        }
        self.file.flush()
    }

    fn entry(&mut self, stream: &str, line: &[u8]) -> io::Result<()> {
        let text = String::from_utf8_lossy(line);
        let time = now_rfc3339();
        let mut out = serde_json::to_vec(&Entry {
            log: &text,
            stream,
            time: &time,
        })
        .map_err(io::Error::other)?;
        out.push(b'\n');
        if self.max_size > 0 && self.size > 0 && self.size + out.len() as u64 > self.max_size {
            self.rotate()?;
        }
        self.file.write_all(&out)?;
        self.size += out.len() as u64;
        Ok(())
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut s = self.path.clone().into_os_string();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }

    /// `<log>` → `<log>.1` → `<log>.2`..., keeping `max_files` files in all.
    fn rotate(&mut self) -> io::Result<()> {
        let keep = self.max_files.max(1);
        if keep > 1 {
            let _ = fs::remove_file(self.rotated(keep - 1));
            for n in (1..keep - 1).rev() {
                let from = self.rotated(n);
                if from.exists() {
                    fs::rename(&from, self.rotated(n + 1))?;
                }
            }
            fs::rename(&self.path, self.rotated(1))?;
        } else {
            let _ = fs::remove_file(&self.path);
        }
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(p: &Path) -> Vec<serde_json::Value> {
        fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn splits_lines_and_flushes_partials() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c-json.log");
        let mut l = JsonLog::open(&p, 0, 1).unwrap();
        l.write("stdout", b"hel").unwrap();
        l.write("stderr", b"oops\n").unwrap();
        l.write("stdout", b"lo\nwor").unwrap();
        l.write("stdout", b"ld").unwrap();
        l.flush().unwrap();
        let v = lines(&p);
        assert_eq!(v.len(), 3);
        assert_eq!(v[0]["log"], "oops\n");
        assert_eq!(v[0]["stream"], "stderr");
        assert_eq!(v[1]["log"], "hello\n");
        assert_eq!(v[2]["log"], "world");
        let t = v[1]["time"].as_str().unwrap();
        assert!(t.ends_with('Z') && t.len() == 30, "{t}");
    }

    #[test]
    fn long_partial_lines_are_cut() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c-json.log");
        let mut l = JsonLog::open(&p, 0, 1).unwrap();
        l.write("stdout", &vec![b'a'; MAX_PARTIAL + 10]).unwrap();
        assert_eq!(lines(&p).len(), 1);
        l.flush().unwrap();
        let v = lines(&p);
        assert_eq!(v[1]["log"].as_str().unwrap().len(), 10);
    }

    #[test]
    fn rotates() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c-json.log");
        let mut l = JsonLog::open(&p, 300, 3).unwrap();
        for i in 0..40 {
            l.write("stdout", format!("line {i}\n").as_bytes()).unwrap();
        }
        assert!(p.exists());
        assert!(d.path().join("c-json.log.1").exists());
        assert!(d.path().join("c-json.log.2").exists());
        assert!(!d.path().join("c-json.log.3").exists());
        let last = lines(&p);
        assert_eq!(last.last().unwrap()["log"], "line 39\n");
        assert!(fs::metadata(&p).unwrap().len() <= 300);
    }
}
