//! A real S3-compatible server for tests: moto's server mode (PyPI `moto[server]`, installed by
//! `scripts/deps --test`), started on a free loopback port and killed on drop.
//!
//! Built for this crate's tests and, with the `testing` feature, for berth's end-to-end tests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Credentials moto accepts (it checks none).
pub const ACCESS_KEY: &str = "berth-test";
pub const SECRET_KEY: &str = "berth-test-secret";

/// A moto server process; killed (and its log removed) on drop.
pub struct S3Server {
    child: Child,
    log: PathBuf,
    /// `127.0.0.1:<port>`
    pub addr: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

impl S3Server {
    /// Start moto and wait until it answers. Panics, with moto's own words, when it cannot.
    pub fn start() -> S3Server {
        let mut last = String::new();
        // a port found free can be taken before moto binds it: try a few
        for _ in 0..3 {
            let port = free_port();
            let log =
                std::env::temp_dir().join(format!("berth-moto-{}-{port}.log", std::process::id()));
            let child = Command::new("python3")
                .args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
                .arg(port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("a log file for moto"))
                .spawn()
                .expect("running python3 (scripts/deps --test installs moto[server])");
            let mut s = S3Server {
                child,
                log,
                addr: format!("127.0.0.1:{port}"),
            };
            match s.wait_ready() {
                Ok(()) => return s,
                Err(e) => last = e,
            }
        }
        panic!("the S3 test server (moto) did not start (scripts/deps --test installs moto[server]):\n{last}");
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "moto exited ({status}): {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                ));
            }
            if let Ok((200, _)) = self.try_request("GET", "/") {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "no answer on {} in 60 s: {}",
            self.addr,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        ))
    }

    /// `http://127.0.0.1:<port>`, the endpoint to configure.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Create a bucket.
    pub fn create_bucket(&self, bucket: &str) {
        let (status, body) = self.request("PUT", &format!("/{bucket}"));
        assert_eq!(status, 200, "creating bucket {bucket}: {body}");
    }

    /// Every key in the bucket (at most 1000: a test's bucket holds fewer).
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let (status, body) = self.request("GET", &format!("/{bucket}?list-type=2"));
        assert_eq!(status, 200, "listing {bucket}: {body}");
        assert!(!body.contains("<IsTruncated>true"), "too many keys: {body}");
        elements(&body, "Key")
    }

    /// The keys of the bucket's multipart uploads begun and neither completed nor aborted.
    pub fn open_uploads(&self, bucket: &str) -> Vec<String> {
        let (status, body) = self.request("GET", &format!("/{bucket}?uploads"));
        assert_eq!(status, 200, "listing {bucket}'s uploads: {body}");
        elements(&body, "Key")
    }

    /// A bodiless request without a signature (moto checks none): status and body.
    pub fn request(&self, method: &str, target: &str) -> (u16, String) {
        self.try_request(method, target)
            .unwrap_or_else(|e| panic!("{method} {target} to moto: {e}"))
    }

    fn try_request(&self, method: &str, target: &str) -> std::io::Result<(u16, String)> {
        let mut s = TcpStream::connect(&self.addr)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            s,
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.addr
        )?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)?;
        let text = String::from_utf8_lossy(&out);
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((status, body))
    }
}

/// The texts of every `<name>…</name>` element.
fn elements(xml: &str, name: &str) -> Vec<String> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    xml.split(open.as_str())
        .skip(1)
        .filter_map(|s| s.split_once(close.as_str()).map(|(v, _)| v.to_string()))
        .collect()
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
