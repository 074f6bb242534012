//! Real object-store servers for tests, each started on a free loopback port and killed on
//! drop: moto's server mode for S3 (PyPI `moto[server]`) and Azurite for Azure Blob Storage
//! (npm `azurite`), both installed by `scripts/deps --test`.
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
        Ok(http_answer(&out))
    }
}

/// The status and body of a whole HTTP/1.1 answer (`Connection: close`).
fn http_answer(out: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(out);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
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

/// Azurite's well-known account and key (every Azurite has them).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A real Azure Blob Storage server for tests: Azurite (npm `azurite`, installed by
/// `scripts/deps --test`), its blob service on a free loopback port, its data in a temporary
/// directory; killed and removed on drop.
pub struct AzureServer {
    child: Child,
    dir: PathBuf,
    /// `127.0.0.1:<port>`
    pub addr: String,
}

impl AzureServer {
    /// Start Azurite's blob service and wait until it answers. Panics, with Azurite's own
    /// words, when it cannot.
    pub fn start() -> AzureServer {
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port();
            let dir = std::env::temp_dir().join(format!(
                "berth-azurite-{}-{port}-{}",
                std::process::id(),
                rand::random::<u32>()
            ));
            std::fs::create_dir_all(&dir).expect("a directory for azurite");
            let child = Command::new("azurite-blob")
                .args(["--blobHost", "127.0.0.1", "--blobPort"])
                .arg(port.to_string())
                .arg("--location")
                .arg(&dir)
                .args(["--skipApiVersionCheck", "--loose"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join("log")).expect("a log file for azurite"))
                .spawn()
                .expect("running azurite-blob (scripts/deps --test installs npm's azurite)");
            let mut s = AzureServer {
                child,
                dir,
                addr: format!("127.0.0.1:{port}"),
            };
            match s.wait_ready() {
                Ok(()) => return s,
                Err(e) => last = e,
            }
        }
        panic!("the Azure test server (Azurite) did not start (scripts/deps --test installs it):\n{last}");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("azurite exited ({status}): {}", self.log()));
            }
            // any HTTP answer (a bare GET of the account is refused) means it listens
            if matches!(self.signed("GET", "?comp=list"), Ok((s, _)) if s != 0) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "no answer on {} in 60 s: {}",
            self.addr,
            self.log()
        ))
    }

    /// The account's URL, the endpoint to configure: `http://127.0.0.1:<port>/devstoreaccount1`.
    pub fn endpoint(&self) -> String {
        format!("http://{}/{AZURITE_ACCOUNT}", self.addr)
    }

    /// Create a container.
    pub fn create_container(&self, name: &str) {
        let (status, body) = self
            .signed("PUT", &format!("/{name}?restype=container"))
            .unwrap_or_else(|e| panic!("creating container {name}: {e}"));
        assert_eq!(status, 201, "creating container {name}: {body}");
    }

    /// Every blob in the container (at most 5000: a test's container holds fewer).
    pub fn blobs(&self, container: &str) -> Vec<String> {
        let (status, body) = self
            .signed("GET", &format!("/{container}?restype=container&comp=list"))
            .unwrap_or_else(|e| panic!("listing {container}: {e}"));
        assert_eq!(status, 200, "listing {container}: {body}");
        assert!(!body.contains("<NextMarker>1"), "too many blobs: {body}");
        elements(&body, "Name")
    }

    /// A bodiless request to the account, signed with its shared key: status and body.
    /// `target` is what follows the account in the URL (`/container?restype=container`).
    fn signed(&self, method: &str, target: &str) -> std::io::Result<(u16, String)> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let date = chrono::Utc::now()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let version = "2021-08-06";
        // the canonicalized resource: /<account><URL path>, then the query's parameters
        // sorted, one `name:value` a line
        let mut resource = format!("/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}{path}");
        let mut params: Vec<(&str, &str)> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")))
            .collect();
        params.sort();
        for (k, v) in params {
            resource.push_str(&format!("\n{k}:{v}"));
        }
        let to_sign = format!(
            "{method}\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n{resource}"
        );
        let key = b64.decode(AZURITE_KEY).expect("the well-known key");
        let signature = b64.encode(hmac_sha256(&key, to_sign.as_bytes()));
        let mut s = TcpStream::connect(&self.addr)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            s,
            "{method} /{AZURITE_ACCOUNT}{target} HTTP/1.1\r\nHost: {}\r\nx-ms-date: {date}\r\n\
             x-ms-version: {version}\r\nAuthorization: SharedKey {AZURITE_ACCOUNT}:{signature}\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n",
            self.addr
        )?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)?;
        Ok(http_answer(&out))
    }
}

/// HMAC-SHA256 (RFC 2104), for Azure's shared-key signatures.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

impl Drop for AzureServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
