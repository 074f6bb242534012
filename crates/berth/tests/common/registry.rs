//! `berth registry serve` for end-to-end tests: a registry process on a loopback port, curl
//! to talk to it, and the OCI distribution-spec conformance suite (built offline from
//! third_party/oci-conformance).

use super::BERTH;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A registry process with its own data directory; killed on drop.
pub struct Registry {
    child: Child,
    /// Run in this process's network namespace (a dockerd's), not the test's.
    netns_of: Option<i32>,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub addr: String,
}

impl Registry {
    /// Start with berth's flavored configuration, over a data directory of its own, plus
    /// `extra` lines in the `dev` flavor.
    pub fn start(extra: &str) -> Registry {
        Registry::start_on(local, extra)
    }

    /// Start with the `storage` lines of the `common` flavor that `storage(dir)` writes, plus
    /// `extra` lines in the `dev` flavor.
    pub fn start_on(storage: impl FnOnce(&Path) -> String, extra: &str) -> Registry {
        Registry::launch(
            "127.0.0.1:0",
            storage,
            extra,
            tempfile::tempdir().unwrap(),
            None,
        )
    }

    /// Local storage on a given address, in a given directory (which may hold keys and
    /// users).
    pub fn start_at(addr: &str, extra: &str, dir: tempfile::TempDir) -> Registry {
        Registry::launch(addr, local, extra, dir, None)
    }

    fn launch(
        addr: &str,
        storage: impl FnOnce(&Path) -> String,
        extra: &str,
        dir: tempfile::TempDir,
        netns_of: Option<i32>,
    ) -> Registry {
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "common:\n  loglevel: info\n{}  http:\n    addr: {addr}\ndev:\n{extra}",
                storage(dir.path())
            ),
        )
        .unwrap();
        let (child, addr) = spawn(&config, dir.path(), netns_of);
        Registry {
            child,
            netns_of,
            dir,
            config,
            addr,
        }
    }

    /// Start with a whole configuration file of the caller's (which must listen on a
    /// loopback port, `:0` for any).
    pub fn start_with_config(text: &str) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yml");
        std::fs::write(&config, text).unwrap();
        let (child, addr) = spawn(&config, dir.path(), None);
        Registry {
            child,
            netns_of: None,
            dir,
            config,
            addr,
        }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Kill -9 and start again on the same data (a new port).
    pub fn crash_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, addr) = spawn(&self.config, self.dir.path(), self.netns_of);
        self.child = child;
        self.addr = addr;
    }
}

/// The `storage` lines of a data directory of the registry's own.
fn local(dir: &Path) -> String {
    format!(
        "  storage: local\n  storage_path: {}\n",
        dir.join("data").display()
    )
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    /// Local storage and `extra` lines, served from the network namespace of process `pid`
    /// (whose loopback is brought up).
    pub fn start_in_netns_of(pid: i32, extra: &str) -> Registry {
        Registry::start_in_netns_of_at(pid, "127.0.0.1:0", extra)
    }

    /// The same on a given address of that namespace.
    pub fn start_in_netns_of_at(pid: i32, addr: &str, extra: &str) -> Registry {
        let ns = format!("--net=/proc/{pid}/ns/net");
        let o = Command::new("nsenter")
            .args([ns.as_str(), "ip", "link", "set", "lo", "up"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let dir = tempfile::tempdir().unwrap();
        Registry::launch(addr, local, extra, dir, Some(pid))
    }
}

/// Start `berth registry serve config` (in the network namespace of `netns_of`); the child and
/// the address it listens on.
pub fn spawn(config: &Path, dir: &Path, netns_of: Option<i32>) -> (Child, String) {
    let log = dir.join("registry.log");
    let _ = std::fs::remove_file(&log);
    let mut cmd = match netns_of {
        Some(pid) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/proc/{pid}/ns/net")).arg(BERTH);
            c
        }
        None => Command::new(BERTH),
    };
    let mut child = cmd
        .args(["registry", "serve"])
        .arg(config)
        .env_remove("SETTINGS_FLAVOR")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(i) = text.find("registry listening on ") {
            let rest = &text[i + "registry listening on ".len()..];
            let addr = rest.split_whitespace().next().unwrap().to_string();
            return (child, addr);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "the registry did not start: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

/// An HTTP answer, as curl saw it.
pub struct Answer {
    pub status: u16,
    pub headers: String,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.text()))
    }

    /// The first error code of an error body.
    pub fn code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

pub fn curl(method: &str, url: &str, headers: &[&str], body: Option<&[u8]>) -> Answer {
    let tmp = tempfile::tempdir().unwrap();
    let (hfile, bfile) = (tmp.path().join("h"), tmp.path().join("b"));
    let mut c = Command::new("curl");
    c.args(["-s", "-g", "-X", method, "-D"])
        .arg(&hfile)
        .arg("-o")
        .arg(&bfile)
        .args(["-w", "%{http_code}"]);
    if method == "HEAD" {
        c.arg("-I");
    }
    for h in headers {
        c.args(["-H", h]);
    }
    if let Some(b) = body {
        let f = tmp.path().join("in");
        std::fs::write(&f, b).unwrap();
        c.arg("--data-binary").arg(format!("@{}", f.display()));
    }
    let o = c.arg(url).output().unwrap();
    Answer {
        status: String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse()
            .unwrap_or(0),
        headers: std::fs::read_to_string(&hfile).unwrap_or_default(),
        body: std::fs::read(&bfile).unwrap_or_default(),
    }
}

pub fn sha256(b: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
}

/// Every file under a directory, relative.
pub fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// Push a blob monolithically; its digest.
pub fn push_blob(r: &Registry, name: &str, data: &[u8]) -> String {
    let d = sha256(data);
    let a = curl(
        "POST",
        &r.url(&format!("/v2/{name}/blobs/uploads/?digest={d}")),
        &["Content-Type: application/octet-stream"],
        Some(data),
    );
    assert_eq!(a.status, 201, "{}", a.text());
    d
}

pub fn manifest_for(config: &str, config_len: usize, layer: &str, layer_len: usize) -> String {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{config_len}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":{layer_len}}}]}}"#
    )
}

/// Build the conformance suite (once per target directory), offline.
pub fn conformance_binary() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Path::new(BERTH).parent().unwrap().join("oci-conformance");
    let bin = out.join("conformance.test");
    // the lock lives beside the build (in the target directory), not in /tmp
    let lock = std::fs::File::create(out.with_extension("lock")).unwrap();
    // SAFETY: flock on a file descriptor we own; one build at a time across test processes.
    unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) };
    if !bin.exists() {
        let o = Command::new("bash")
            .arg(root.join("third_party/oci-conformance/build.sh"))
            .arg(root.join("third_party/oci-conformance/src"))
            .arg(&out)
            .env("SKIP_APT", "1")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "building the conformance suite failed (scripts/deps --test installs Go and its libraries):\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    bin
}

/// Run the conformance suite's every area against the registry at `root` (`http://addr`),
/// reporting into `report`, with `env` added (credentials, trusted certificates); its summary
/// line, after checking that it passed.
pub fn run_conformance(root: &str, report: &Path, env: &[(&str, &str)]) -> String {
    let bin = conformance_binary();
    std::fs::create_dir_all(report).unwrap();
    let o = Command::new(&bin)
        .arg("--ginkgo.no-color")
        .current_dir(report)
        .envs(env.iter().copied())
        .env("OCI_ROOT_URL", root)
        .env("OCI_NAMESPACE", "berth/conformance")
        .env("OCI_CROSSMOUNT_NAMESPACE", "berth/other")
        .env("OCI_TEST_PULL", "1")
        .env("OCI_TEST_PUSH", "1")
        .env("OCI_TEST_CONTENT_DISCOVERY", "1")
        .env("OCI_TEST_CONTENT_MANAGEMENT", "1")
        .env("OCI_AUTOMATIC_CROSSMOUNT", "0")
        .env("OCI_HIDE_SKIPPED_WORKFLOWS", "0")
        .env("OCI_REPORT_DIR", report)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{out}");
    assert!(report.join("junit.xml").exists());
    out.lines()
        .find(|l| l.contains("Passed |"))
        .unwrap_or_else(|| panic!("no summary in {out}"))
        .to_string()
}
