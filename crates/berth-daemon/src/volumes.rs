//! Volumes (the `local` driver) and a container's mounts: `-v`, `--mount`, `--tmpfs`,
//! `--volumes-from` and the image's `VOLUME`s.
//!
//! A volume is a directory `<data-root>/volumes/<name>/` holding `_data` (what containers
//! see, Docker's layout) and `volume.json` (driver, labels, options, creation time, whether
//! it is anonymous). It is made whole under a temporary name and renamed into place, and
//! removed by a rename to a trash name before its tree is deleted, so a crash never leaves
//! half a volume visible; the start of the daemon clears what such a crash left.
//!
//! A volume with local driver options (`-o type=tmpfs -o device=tmpfs -o o=size=64m`, or
//! `type=none,o=bind,device=/srv`) is mounted on its `_data` while a running container
//! uses it, and unmounted when the last one stops (counted in memory; after a daemon restart
//! the counts are rebuilt from the running containers).
//!
//! The container's mounts are settled at create (`ContainerRecord::mounts`): volumes named
//! there are made, anonymous ones get a random 64-hex name. At each start the sources are
//! resolved, a new empty volume is first filled with what the image has at its path (Docker's
//! copy-up, unless `nocopy`), and the mounts go into the runtime spec.

use crate::fsutil::write_atomic;
use crate::networks::str_map;
use berth_api::ApiError;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The only volume driver.
pub const LOCAL: &str = "local";
const META: &str = "volume.json";
const DATA: &str = "_data";

/// A volume's settings, as `volume.json` keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMeta {
    pub name: String,
    pub driver: String,
    pub created: chrono::DateTime<chrono::Utc>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The local driver's options: `type`, `device`, `o`.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Made for a container (`-v /path`, `VOLUME`); `rm -v` removes it with the container.
    #[serde(default)]
    pub anonymous: bool,
}

/// What a container mounts where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    Bind,
    Volume,
    Tmpfs,
}

/// One of a container's mounts, settled at create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountPoint {
    pub kind: MountKind,
    /// The volume's name (volumes).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The host path (binds).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    pub destination: String,
    pub rw: bool,
    /// The mode as given (`-v`'s third field, e.g. `ro,z`), shown by `inspect`.
    #[serde(default)]
    pub mode: String,
    /// `rprivate`, `rshared`, `rslave`, … (binds).
    #[serde(default)]
    pub propagation: String,
    /// A volume made for this container.
    #[serde(default)]
    pub anonymous: bool,
    /// No copy-up (`nocopy`, `volume-nocopy`).
    #[serde(default)]
    pub nocopy: bool,
    /// A bind whose missing source is made at start (`-v`), not refused (`--mount`).
    #[serde(default)]
    pub create_source: bool,
    /// tmpfs options (`size=64m,mode=1777`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tmpfs_options: String,
    /// Listed in `inspect`'s `Mounts` (`--tmpfs` mounts are not, as in Docker).
    #[serde(default = "yes")]
    pub listed: bool,
}

fn yes() -> bool {
    true
}

/// The volumes of a daemon.
pub struct Volumes {
    dir: PathBuf,
    /// Orders creations and removals.
    lock: Mutex<()>,
    /// The running containers using each volume with driver options (mounted while any).
    users: Mutex<HashMap<String, HashSet<String>>>,
}

fn io(what: &str) -> impl Fn(std::io::Error) -> ApiError + '_ {
    move |e| ApiError::internal(format!("{what}: {e}"))
}

/// A volume name as the local driver allows it (Docker's rule and message).
pub fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = name.len() >= 2
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        )))
    }
}

impl Volumes {
    /// The store under `<data-root>/volumes`; what a crash left half made or half removed
    /// goes.
    pub fn open(data_root: &Path) -> Result<Volumes, ApiError> {
        let dir = data_root.join("volumes");
        std::fs::create_dir_all(&dir).map_err(io("cannot create the volumes directory"))?;
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with(".tmp-") || n.starts_with(".trash-") {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        Ok(Volumes {
            dir,
            lock: Mutex::new(()),
            users: Mutex::new(HashMap::new()),
        })
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `<data-root>/volumes/<name>/_data`: what containers see.
    pub fn data(&self, name: &str) -> PathBuf {
        self.dir.join(name).join(DATA)
    }

    /// A volume's settings; Docker's `get <name>: no such volume` when there is none.
    pub fn get(&self, name: &str) -> Result<VolumeMeta, ApiError> {
        let missing = || ApiError::not_found(format!("get {name}: no such volume"));
        if name.is_empty() || name.starts_with('.') || name.contains('/') {
            return Err(missing());
        }
        let data = std::fs::read(self.dir.join(name).join(META)).map_err(|_| missing())?;
        serde_json::from_slice(&data)
            .map_err(|e| ApiError::internal(format!("volume {name} has a broken {META}: {e}")))
    }

    /// Every volume, by name.
    pub fn list(&self) -> Vec<VolumeMeta> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with('.') {
                    continue;
                }
                match self.get(&n) {
                    Ok(m) => out.push(m),
                    Err(e) => tracing::warn!("volume {n}: {}", e.message),
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Make a volume (blocking); an existing one of that name is returned as it is (as
    /// Docker's create does). A name is made up (64 hex) when none is given.
    pub fn create(
        &self,
        name: Option<&str>,
        driver: &str,
        options: BTreeMap<String, String>,
        labels: BTreeMap<String, String>,
        anonymous: bool,
    ) -> Result<VolumeMeta, ApiError> {
        let driver = if driver.is_empty() { LOCAL } else { driver };
        if driver != LOCAL {
            return Err(ApiError::not_found(format!(
                "error looking up volume plugin {driver}: plugin \"{driver}\" not found"
            )));
        }
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                check_name(n)?;
                n.to_string()
            }
            None => crate::new_id(),
        };
        for k in options.keys() {
            if !matches!(k.as_str(), "type" | "device" | "o" | "size") {
                return Err(ApiError::invalid(format!(
                    "create {name}: invalid option key: \"{k}\""
                )));
            }
        }
        if options.contains_key("device") != options.contains_key("type") {
            return Err(ApiError::invalid(format!(
                "create {name}: missing required option: \"{}\"",
                if options.contains_key("device") {
                    "type"
                } else {
                    "device"
                }
            )));
        }
        let _g = self.guard();
        if let Ok(m) = self.get(&name) {
            return Ok(m);
        }
        let meta = VolumeMeta {
            name: name.clone(),
            driver: LOCAL.into(),
            created: chrono::Utc::now(),
            labels,
            options,
            anonymous,
        };
        let tmp = self.dir.join(format!(".tmp-{}", crate::new_id()));
        let made = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(tmp.join(DATA))?;
            let json = serde_json::to_vec_pretty(&meta).map_err(std::io::Error::other)?;
            write_atomic(&tmp.join(META), &json)?;
            std::fs::rename(&tmp, self.dir.join(&name))
        })();
        if let Err(e) = made {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(ApiError::internal(format!("create {name}: {e}")));
        }
        tracing::debug!(volume = %name, anonymous, "volume created");
        Ok(meta)
    }

    /// Delete a volume and its data (blocking; the caller checks that no container uses it).
    /// Returns the bytes it held.
    pub fn remove(&self, name: &str) -> Result<u64, ApiError> {
        let _g = self.guard();
        self.get(name)?;
        let data = self.data(name);
        if is_mountpoint(&data) {
            let _ = berth_snapshot::unmount(&data);
        }
        let size = crate::fsutil::files_size(&data);
        let trash = self.dir.join(format!(".trash-{}", crate::new_id()));
        std::fs::rename(self.dir.join(name), &trash)
            .map_err(|e| ApiError::internal(format!("remove {name}: {e}")))?;
        std::fs::remove_dir_all(&trash)
            .map_err(|e| ApiError::internal(format!("remove {name}: {e}")))?;
        self.users
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        Ok(size)
    }

    /// Container `user` starts with `meta` (blocking): a volume with driver options is
    /// mounted on its `_data` for its first user.
    pub fn acquire(&self, meta: &VolumeMeta, user: &str) -> Result<(), ApiError> {
        if !meta.options.contains_key("type") {
            return Ok(());
        }
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let set = users.entry(meta.name.clone()).or_default();
        if set.is_empty() && !is_mountpoint(&self.data(&meta.name)) {
            mount_local(meta, &self.data(&meta.name))?;
        }
        set.insert(user.to_string());
        Ok(())
    }

    /// Container `user` stopped (blocking): the volumes it held and nobody else does are
    /// unmounted. Releasing twice is harmless.
    pub fn release_all(&self, user: &str) {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let mut done = Vec::new();
        for (name, set) in users.iter_mut() {
            if set.remove(user) && set.is_empty() {
                done.push(name.clone());
            }
        }
        for name in done {
            users.remove(&name);
            let data = self.data(&name);
            if is_mountpoint(&data) {
                if let Err(e) = berth_snapshot::unmount(&data) {
                    tracing::warn!(volume = %name, "cannot unmount: {e}");
                }
            }
        }
    }

    /// After a restart: `live` has the running users of each volume; volumes with driver
    /// options that no running container uses are unmounted.
    pub fn reconcile(&self, live: HashMap<String, HashSet<String>>) {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        for m in self.list() {
            if !m.options.contains_key("type") {
                continue;
            }
            match live.get(&m.name) {
                Some(set) if !set.is_empty() => {
                    users.insert(m.name.clone(), set.clone());
                }
                _ => {
                    let data = self.data(&m.name);
                    if is_mountpoint(&data) {
                        let _ = berth_snapshot::unmount(&data);
                    }
                }
            }
        }
    }

    /// The bytes under a volume's `_data`.
    pub fn size(&self, name: &str) -> u64 {
        crate::fsutil::files_size(&self.data(name))
    }
}

/// Whether `p` is a mount point (in the daemon's mount namespace).
fn is_mountpoint(p: &Path) -> bool {
    let Ok(mi) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = p.to_string_lossy();
    mi.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| m == want)
}

/// Mount a local volume with driver options on `target` (`type`, `device`, `o`), as the
/// local driver does: the flags among `o` are mount flags, the rest the filesystem's data.
fn mount_local(meta: &VolumeMeta, target: &Path) -> Result<(), ApiError> {
    use nix::mount::MsFlags;
    let ty = meta.options.get("type").map(String::as_str).unwrap_or("");
    let device = meta.options.get("device").map(String::as_str).unwrap_or("");
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in meta
        .options
        .get("o")
        .map(String::as_str)
        .unwrap_or("")
        .split(',')
        .filter(|o| !o.is_empty())
    {
        match o {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" => {}
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            "nodiratime" => flags |= MsFlags::MS_NODIRATIME,
            "relatime" => flags |= MsFlags::MS_RELATIME,
            "sync" => flags |= MsFlags::MS_SYNCHRONOUS,
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            other => data.push(other),
        }
    }
    if let Some(size) = meta.options.get("size") {
        data.push(size.as_str());
    }
    let data = data.join(",");
    let fstype = (!ty.is_empty() && ty != "none").then_some(ty);
    nix::mount::mount(
        Some(device),
        target,
        fstype,
        flags,
        (!data.is_empty()).then_some(data.as_str()),
    )
    .map_err(|e| {
        ApiError::internal(format!(
            "error while mounting volume '{}': failed to mount local volume: mount {device}:{} (type {ty}, options {data}): {e}",
            target.display(),
            target.display()
        ))
    })
}

/// Docker's `-v` modes.
const MODES: [&str; 14] = [
    "ro",
    "rw",
    "z",
    "Z",
    "nocopy",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "private",
    "rprivate",
    "consistent",
    "cached",
    "delegated",
];

/// Parse a `-v`/`HostConfig.Binds` entry `src:dst[:mode]` (src a host path or a volume
/// name).
pub fn parse_bind(spec: &str) -> Result<MountPoint, ApiError> {
    let bad = || ApiError::invalid(format!("invalid volume specification: '{spec}'"));
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [s, d] => (*s, *d, ""),
        [s, d, m] => (*s, *d, *m),
        _ => return Err(bad()),
    };
    if src.is_empty() || dst.is_empty() {
        return Err(bad());
    }
    if !dst.starts_with('/') {
        return Err(ApiError::invalid(format!(
            "invalid volume specification: '{spec}': invalid mount config for type \"{}\": invalid mount path: '{dst}' mount path must be absolute",
            if src.starts_with('/') { "bind" } else { "volume" }
        )));
    }
    let mut rw = true;
    let mut nocopy = false;
    let mut propagation = String::new();
    for m in mode.split(',').filter(|m| !m.is_empty()) {
        if !MODES.contains(&m) {
            return Err(ApiError::invalid(format!("invalid mode: {mode}")));
        }
        match m {
            "ro" => rw = false,
            "nocopy" => nocopy = true,
            "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" => {
                propagation = m.to_string()
            }
            _ => {}
        }
    }
    let bind = src.starts_with('/');
    if !bind {
        check_name(src)?;
    }
    if bind && nocopy {
        return Err(ApiError::invalid(format!("invalid mode: {mode}")));
    }
    Ok(MountPoint {
        kind: if bind {
            MountKind::Bind
        } else {
            MountKind::Volume
        },
        name: if bind { String::new() } else { src.to_string() },
        source: if bind { clean(src) } else { String::new() },
        destination: clean(dst),
        rw,
        mode: mode.to_string(),
        propagation: if bind && propagation.is_empty() {
            "rprivate".into()
        } else {
            propagation
        },
        anonymous: false,
        nocopy,
        create_source: bind,
        tmpfs_options: String::new(),
        listed: true,
    })
}

/// A path without a trailing slash or `.` parts (`/data/` → `/data`).
pub fn clean(p: &str) -> String {
    let mut out = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}

/// A `HostConfig.Mounts` entry (`--mount`).
pub fn parse_api_mount(m: &berth_api::models::Mount) -> Result<MountPoint, ApiError> {
    use berth_api::models::MountType as T;
    let target = m.target.clone().unwrap_or_default();
    let kind = match m.typ {
        Some(T::BIND) => MountKind::Bind,
        Some(T::VOLUME) => MountKind::Volume,
        Some(T::TMPFS) => MountKind::Tmpfs,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "mount type unknown: \"{other}\""
            )))
        }
        None => {
            return Err(ApiError::invalid(
                "invalid mount config: mount type unknown",
            ))
        }
    };
    let tname = match kind {
        MountKind::Bind => "bind",
        MountKind::Volume => "volume",
        MountKind::Tmpfs => "tmpfs",
    };
    let cfg_err = |msg: String| {
        ApiError::invalid(format!("invalid mount config for type \"{tname}\": {msg}"))
    };
    if target.is_empty() {
        return Err(cfg_err("field Target must not be empty".into()));
    }
    if !target.starts_with('/') {
        return Err(cfg_err(format!(
            "invalid mount path: '{target}' mount path must be absolute"
        )));
    }
    let source = m.source.clone().unwrap_or_default();
    let rw = !m.read_only.unwrap_or(false);
    let mut mp = MountPoint {
        kind,
        name: String::new(),
        source: String::new(),
        destination: clean(&target),
        rw,
        mode: String::new(),
        propagation: String::new(),
        anonymous: false,
        nocopy: false,
        create_source: false,
        tmpfs_options: String::new(),
        listed: true,
    };
    match kind {
        MountKind::Bind => {
            if source.is_empty() {
                return Err(cfg_err("field Source must not be empty".into()));
            }
            if !source.starts_with('/') {
                return Err(cfg_err(format!(
                    "invalid mount path: '{source}' mount path must be absolute"
                )));
            }
            if !Path::new(&source).exists() {
                return Err(cfg_err(format!(
                    "bind source path does not exist: {source}"
                )));
            }
            mp.source = clean(&source);
            mp.propagation = m
                .bind_options
                .as_ref()
                .and_then(|b| b.propagation)
                .map(|p| p.to_string())
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "rprivate".into());
        }
        MountKind::Volume => {
            if !source.is_empty() {
                check_name(&source)?;
            }
            mp.name = source;
            mp.nocopy = m
                .volume_options
                .as_ref()
                .and_then(|v| v.no_copy)
                .unwrap_or(false);
            mp.mode = "z".into();
        }
        MountKind::Tmpfs => {
            if !source.is_empty() {
                return Err(cfg_err("field Source must not be specified".into()));
            }
            let mut opts = Vec::new();
            if let Some(t) = &m.tmpfs_options {
                if let Some(s) = t.size_bytes.filter(|s| *s > 0) {
                    opts.push(format!("size={s}"));
                }
                if let Some(mo) = t.mode.filter(|m| *m > 0) {
                    opts.push(format!("mode={mo:o}"));
                }
            }
            mp.tmpfs_options = opts.join(",");
        }
    }
    Ok(mp)
}

/// `HostConfig.Tmpfs`: `/path` → `size=64m,mode=1777`.
pub fn tmpfs_mount(path: &str, opts: &str) -> Result<MountPoint, ApiError> {
    if !path.starts_with('/') {
        return Err(ApiError::invalid(format!(
            "invalid mount config for type \"tmpfs\": invalid mount path: '{path}' mount path must be absolute"
        )));
    }
    Ok(MountPoint {
        kind: MountKind::Tmpfs,
        name: String::new(),
        source: String::new(),
        destination: clean(path),
        rw: !opts.split(',').any(|o| o == "ro"),
        mode: String::new(),
        propagation: String::new(),
        anonymous: false,
        nocopy: false,
        create_source: false,
        tmpfs_options: opts.to_string(),
        listed: false,
    })
}

impl crate::Daemon {
    /// A volume as the API shows it.
    fn volume_json(&self, m: &VolumeMeta) -> serde_json::Value {
        let map = |b: &BTreeMap<String, String>| {
            if b.is_empty() && m.anonymous {
                serde_json::Value::Null
            } else {
                serde_json::json!(b)
            }
        };
        serde_json::json!({
            "CreatedAt": crate::networks::local_time(m.created, chrono::SecondsFormat::Secs),
            "Driver": m.driver,
            "Labels": map(&m.labels),
            "Mountpoint": self.volumes.data(&m.name),
            "Name": m.name,
            "Options": map(&m.options),
            "Scope": "local",
        })
    }

    /// The containers (running or not) whose mounts name volume `name`.
    pub(crate) fn volume_users(&self, name: &str) -> Vec<String> {
        self.all_containers()
            .iter()
            .filter(|c| c.record().mounts.iter().any(|m| m.name == name))
            .map(|c| c.id.clone())
            .collect()
    }

    /// `GET /volumes`, with the filters `name` (substring), `driver`, `label` (`k`, `k=v`)
    /// and `dangling`.
    pub fn list_volumes(
        &self,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<serde_json::Value, ApiError> {
        for k in filters.keys() {
            if !matches!(k.as_str(), "name" | "driver" | "label" | "dangling") {
                return Err(ApiError::invalid(format!("invalid filter '{k}'")));
            }
        }
        let used: HashSet<String> = self
            .all_containers()
            .iter()
            .flat_map(|c| c.record().mounts.into_iter().map(|m| m.name))
            .collect();
        let any = |key: &str, f: &dyn Fn(&str) -> bool| {
            filters
                .get(key)
                .is_none_or(|vs| vs.is_empty() || vs.iter().any(|v| f(v)))
        };
        let mut out = Vec::new();
        for m in self.volumes.list() {
            let labels_ok = filters.get("label").is_none_or(|vs| {
                vs.iter().all(|v| match v.split_once('=') {
                    Some((k, val)) => m.labels.get(k).is_some_and(|x| x == val),
                    None => m.labels.contains_key(v.as_str()),
                })
            });
            if labels_ok
                && any("name", &|v| m.name.contains(v))
                && any("driver", &|v| v == m.driver)
                && any("dangling", &|v| {
                    matches!(v, "true" | "1") == !used.contains(&m.name)
                })
            {
                out.push(self.volume_json(&m));
            }
        }
        Ok(serde_json::json!({ "Volumes": out, "Warnings": null }))
    }

    /// `system df`'s volumes: each with `UsageData` (its bytes, and how many containers name
    /// it). Blocking (it walks the volumes).
    pub(crate) fn volumes_usage(&self) -> Vec<serde_json::Value> {
        self.volumes
            .list()
            .iter()
            .map(|m| {
                let mut v = self.volume_json(m);
                v["UsageData"] = serde_json::json!({
                    "Size": self.volumes.size(&m.name),
                    "RefCount": self.volume_users(&m.name).len(),
                });
                v
            })
            .collect()
    }

    /// `GET /volumes/{name}`.
    pub fn inspect_volume(&self, name: &str) -> Result<serde_json::Value, ApiError> {
        Ok(self.volume_json(&self.volumes.get(name)?))
    }

    /// `POST /volumes/create` (`Name`, `Driver`, `DriverOpts`, `Labels`).
    pub async fn create_volume(
        self: &std::sync::Arc<Self>,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, ApiError> {
        let d = self.clone();
        crate::blocking(move || {
            let m = d.volumes.create(
                body["Name"].as_str(),
                body["Driver"].as_str().unwrap_or(""),
                str_map(&body["DriverOpts"]),
                str_map(&body["Labels"]),
                false,
            )?;
            d.event("volume", "create", &m.name, &[("driver", m.driver.clone())]);
            Ok(d.volume_json(&m))
        })
        .await
    }

    /// `DELETE /volumes/{name}`: refused while a container (running or not) uses it; with
    /// `force`, a volume that does not exist is no error.
    pub async fn remove_volume(
        self: &std::sync::Arc<Self>,
        name: &str,
        force: bool,
    ) -> Result<(), ApiError> {
        let d = self.clone();
        let name = name.to_string();
        crate::blocking(move || {
            if let Err(e) = d.volumes.get(&name) {
                return if force { Ok(()) } else { Err(e) };
            }
            let users = d.volume_users(&name);
            if !users.is_empty() {
                return Err(ApiError::conflict(format!(
                    "remove {name}: volume is in use - [{}]",
                    users.join(", ")
                )));
            }
            d.volumes.remove(&name)?;
            d.event("volume", "destroy", &name, &[("driver", LOCAL.into())]);
            Ok(())
        })
        .await
    }

    /// `POST /volumes/prune`: every volume no container uses (filters `label`, `label!`);
    /// returns the names and the bytes freed.
    pub async fn prune_volumes(
        self: &std::sync::Arc<Self>,
        filters: HashMap<String, Vec<String>>,
    ) -> Result<serde_json::Value, ApiError> {
        for k in filters.keys() {
            if !matches!(k.as_str(), "label" | "label!" | "all") {
                return Err(ApiError::invalid(format!("invalid filter '{k}'")));
            }
        }
        let d = self.clone();
        crate::blocking(move || {
            let mut labels_only = filters.clone();
            labels_only.remove("all");
            let mut deleted = Vec::new();
            let mut space = 0u64;
            for m in d.volumes.list() {
                let labels: HashMap<String, String> = m.labels.clone().into_iter().collect();
                if !crate::usage::prune_match(&labels_only, &labels, m.created)?
                    || !d.volume_users(&m.name).is_empty()
                {
                    continue;
                }
                match d.volumes.remove(&m.name) {
                    Ok(n) => {
                        space += n;
                        deleted.push(m.name);
                    }
                    Err(e) => tracing::warn!(volume = %m.name, "prune: {}", e.message),
                }
            }
            Ok(serde_json::json!({ "VolumesDeleted": deleted, "SpaceReclaimed": space }))
        })
        .await
    }

    /// `inspect`'s `Mounts`: the container's volumes, binds and `--mount` tmpfs.
    pub(crate) fn mount_points(
        &self,
        rec: &crate::container::ContainerRecord,
    ) -> Vec<berth_api::models::MountPoint> {
        rec.mounts
            .iter()
            .filter(|m| m.listed)
            .map(|m| berth_api::models::MountPoint {
                typ: Some(
                    match m.kind {
                        MountKind::Bind => "bind",
                        MountKind::Volume => "volume",
                        MountKind::Tmpfs => "tmpfs",
                    }
                    .to_string(),
                ),
                name: (m.kind == MountKind::Volume).then(|| m.name.clone()),
                source: Some(match m.kind {
                    MountKind::Bind => m.source.clone(),
                    MountKind::Volume => self.volumes.data(&m.name).display().to_string(),
                    MountKind::Tmpfs => String::new(),
                }),
                destination: Some(m.destination.clone()),
                driver: (m.kind == MountKind::Volume).then(|| LOCAL.to_string()),
                mode: Some(m.mode.clone()),
                rw: Some(m.rw),
                propagation: Some(m.propagation.clone()),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_parse_as_dockers() {
        let m = parse_bind("data:/var/lib/data:ro,nocopy").unwrap();
        assert_eq!(m.kind, MountKind::Volume);
        assert_eq!(
            (m.name.as_str(), m.destination.as_str()),
            ("data", "/var/lib/data")
        );
        assert!(!m.rw && m.nocopy);
        let b = parse_bind("/srv/www/:/www").unwrap();
        assert_eq!(b.kind, MountKind::Bind);
        assert_eq!(
            (b.source.as_str(), b.destination.as_str()),
            ("/srv/www", "/www")
        );
        assert_eq!(b.propagation, "rprivate");
        assert!(b.rw && b.create_source);
        assert_eq!(parse_bind("/a:/b:rshared").unwrap().propagation, "rshared");
        assert!(parse_bind("/a:/b:bogus")
            .unwrap_err()
            .message
            .contains("invalid mode: bogus"));
        assert!(parse_bind("/a:b").is_err());
        assert!(parse_bind("/a").is_err());
        assert!(parse_bind("a:b:c:d").is_err());
        assert!(parse_bind("x$:/a")
            .unwrap_err()
            .message
            .contains("invalid characters"));
        assert_eq!(clean("/a/./b//c/"), "/a/b/c");
    }

    #[test]
    fn volumes_are_made_found_and_removed_whole() {
        let d = tempfile::tempdir().unwrap();
        let v = Volumes::open(d.path()).unwrap();
        let m = v
            .create(Some("db"), "", BTreeMap::new(), BTreeMap::new(), false)
            .unwrap();
        assert_eq!(m.driver, "local");
        assert!(v.data("db").is_dir());
        // Made again: the same volume.
        let again = v
            .create(Some("db"), "local", BTreeMap::new(), BTreeMap::new(), false)
            .unwrap();
        assert_eq!(again, m);
        std::fs::write(v.data("db").join("f"), b"12345").unwrap();
        assert_eq!(v.size("db"), 5);
        let anon = v
            .create(None, "", BTreeMap::new(), BTreeMap::new(), true)
            .unwrap();
        assert_eq!(anon.name.len(), 64);
        assert_eq!(v.list().len(), 2);
        assert_eq!(v.remove("db").unwrap(), 5);
        assert!(v.get("db").unwrap_err().message.contains("no such volume"));
        assert!(v
            .create(Some("x"), "nfs", BTreeMap::new(), BTreeMap::new(), false)
            .is_err());
        let mut o = BTreeMap::new();
        o.insert("bogus".to_string(), "1".to_string());
        assert!(v.create(Some("y1"), "", o, BTreeMap::new(), false).is_err());
        // A crash's leftovers go at the next open.
        std::fs::create_dir_all(d.path().join("volumes/.tmp-x/_data")).unwrap();
        let v = Volumes::open(d.path()).unwrap();
        assert!(!d.path().join("volumes/.tmp-x").exists());
        assert_eq!(v.list().len(), 1);
    }
}
