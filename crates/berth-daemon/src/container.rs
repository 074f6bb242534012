//! A container's record (persisted as `config.v2.json`) and its live handle.

use berth_api::models::{ContainerConfig, HostConfig};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::atomic::AtomicUsize;
use std::sync::Mutex;

/// Docker's container states.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }
    /// Running or paused: a process exists.
    pub fn is_live(self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StateRecord {
    pub status: Status,
    pub pid: i32,
    pub exit_code: i32,
    #[serde(default)]
    pub error: String,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub oom_killed: bool,
    /// Stopped or killed by a user (`stop`, `kill`): no restart by its policy (and none at
    /// daemon start for `unless-stopped`).
    #[serde(default)]
    pub manually_stopped: bool,
    /// Its health, with a health check (`health.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::health::Health>,
}

/// Everything the daemon knows of a container, persisted atomically.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    /// Without the leading slash.
    pub name: String,
    pub created: DateTime<Utc>,
    /// The image as the user named it.
    pub image: String,
    /// `sha256:…`
    pub image_id: String,
    /// The container's config, merged with the image's.
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    pub path: String,
    pub args: Vec<String>,
    pub state: StateRecord,
    #[serde(default)]
    pub restart_count: i64,
    /// The image's layers (chain ids, bottom-most first): the container keeps them even if
    /// its image is deleted with `rmi -f`.
    #[serde(default)]
    pub layers: Vec<String>,
    /// The networks it is attached to, in order: empty when it has none (`none`, `host`,
    /// `container:`, or disconnected from all). Records written before attachments were kept
    /// get theirs from their network mode when loaded.
    #[serde(default)]
    pub networks: Vec<crate::network::Attachment>,
    /// Its endpoints while it runs, one per attachment, in the same order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<crate::network::EndpointRecord>,
    /// The single endpoint of records written before user networks (read, moved into
    /// `endpoints` on load, never written).
    #[serde(default, rename = "network", skip_serializing)]
    pub legacy_endpoint: Option<crate::network::EndpointRecord>,
    /// Its mounts (volumes, binds, tmpfs), settled at create.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<crate::volumes::MountPoint>,
    /// The MAC that `--mac-address` asked for (`Config.MacAddress`, or an endpoint's
    /// `MacAddress`); Docker's derived one when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// A container nothing needs after its exit (auto-removed, or a build step's, whose
    /// layer the build commits): its record is written without an fsync; a build step's
    /// rootfs is a volatile overlay (`berth_snapshot::mount_overlay_volatile`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub transient: bool,
}

pub const RECORD_FILE: &str = "config.v2.json";
/// A hard link to the record as last written durably ([`ContainerRecord::save`]): what
/// [`ContainerRecord::load`] falls back to if a run-state write (not fsynced) was lost to a
/// power failure and left the record empty or torn (a rename over a file is not ordered
/// after its data on every filesystem).
pub const DURABLE_RECORD_FILE: &str = "config.v2.json.durable";
/// An empty file beside the record of a transient container ([`ContainerRecord::save_volatile`]).
pub const TRANSIENT_FILE: &str = "transient";

impl ContainerRecord {
    pub fn load(dir: &Path) -> std::io::Result<ContainerRecord> {
        match Self::load_file(&dir.join(RECORD_FILE)) {
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                let durable = Self::load_file(&dir.join(DURABLE_RECORD_FILE)).map_err(|_| e)?;
                tracing::warn!(
                    "{}: unreadable; using its last durable copy",
                    dir.join(RECORD_FILE).display()
                );
                Ok(durable)
            }
            r => r,
        }
    }

    fn load_file(path: &Path) -> std::io::Result<ContainerRecord> {
        let data = std::fs::read(path)?;
        let bad = |e| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let v: serde_json::Value = serde_json::from_slice(&data).map_err(bad)?;
        let legacy = v.get("networks").is_none();
        let mut rec: ContainerRecord = serde_json::from_value(v).map_err(bad)?;
        if legacy && crate::network::on_default_bridge(&rec) {
            rec.networks = vec![crate::network::Attachment {
                network: crate::network::NETWORK.into(),
                ..Default::default()
            }];
        }
        if let Some(ep) = rec.legacy_endpoint.take() {
            rec.endpoints.push(ep);
        }
        Ok(rec)
    }

    /// Write the record durably (fsync before the rename), and keep a link to it as its last
    /// durable copy.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let data = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        let path = dir.join(RECORD_FILE);
        crate::fsutil::write_atomic(&path, &data)?;
        let tmp = dir.join(format!(
            ".{DURABLE_RECORD_FILE}.tmp{}",
            rand::random::<u32>()
        ));
        std::fs::hard_link(&path, &tmp)
            .and_then(|()| std::fs::rename(&tmp, dir.join(DURABLE_RECORD_FILE)))
            .inspect_err(|_| {
                let _ = std::fs::remove_file(&tmp);
            })
    }

    /// Write a new record atomically but without waiting for the disk, and without a durable
    /// copy: for a transient container (auto-removed, which start-up removes anyway if the
    /// daemon goes away before it does, or a build step's). A power loss may leave its record
    /// empty with no copy beside it, which start-up takes for a create that never finished
    /// ([`ContainerRecord::lost_create`]).
    pub fn save_volatile(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::File::create(dir.join(TRANSIENT_FILE))?;
        self.save_state(dir)
    }

    /// Whether `dir` is a transient container's ([`ContainerRecord::save_volatile`]: its
    /// marker file is there, no durable copy) whose record a power loss emptied (all zero
    /// bytes, or none). Without the marker, a record in that state is never taken for one.
    pub fn lost_create(dir: &Path) -> bool {
        dir.join(TRANSIENT_FILE).exists()
            && !dir.join(DURABLE_RECORD_FILE).exists()
            && std::fs::read(dir.join(RECORD_FILE)).is_ok_and(|d| d.iter().all(|&b| b == 0))
    }

    /// Write the record atomically but without waiting for the disk (see
    /// `fsutil::write_replace`): for changes of its run state, which the daemon reconciles
    /// with the shims at start-up anyway.
    fn save_state(&self, dir: &Path) -> std::io::Result<()> {
        let data = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        crate::fsutil::write_replace(&dir.join(RECORD_FILE), &data)
    }
}

/// Counters that move on state changes; waiters watch them.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Bumped each time a shim is ready for attach clients (before start).
    pub shims: u64,
    /// Bumped each time the container's process exits.
    pub exits: u64,
    /// Bumped on each successful start.
    pub starts: u64,
    pub removed: bool,
    /// The exit code of the last exit.
    pub last_exit: i32,
}

/// A container the daemon knows.
pub struct Container {
    pub id: String,
    rec: Mutex<ContainerRecord>,
    /// Serializes lifecycle operations (start, stop, remove...) on this container.
    pub op: tokio::sync::Mutex<()>,
    pub progress: tokio::sync::watch::Sender<Progress>,
    /// Attach requests waiting for the shim of the next start.
    pub pending_attach: AtomicUsize,
    /// Signalled each time a waiting attach request has connected (or given up).
    pub attach_settled: tokio::sync::Notify,
    /// The restart policy's current delay (Docker's backoff: 100 ms, doubling, at most a
    /// minute, back to 100 ms after a run of 10 s or more).
    pub restart_delay: Mutex<std::time::Duration>,
    /// Held while the previous run of the container is torn down (its shim deletes it from
    /// the runtime and unmounts its rootfs, then the daemon removes its bundle): its exit is
    /// reported before that ends, and what would reuse the bundle (a start, a removal's
    /// clean-up) takes this lock first.
    pub teardown: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Container {
    pub fn new(rec: ContainerRecord) -> Container {
        Container {
            id: rec.id.clone(),
            rec: Mutex::new(rec),
            op: tokio::sync::Mutex::new(()),
            progress: tokio::sync::watch::channel(Progress::default()).0,
            pending_attach: AtomicUsize::new(0),
            attach_settled: tokio::sync::Notify::new(),
            restart_delay: Mutex::new(std::time::Duration::ZERO),
            teardown: Default::default(),
        }
    }

    /// A copy of the record.
    pub fn record(&self) -> ContainerRecord {
        self.rec.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Change the record in memory, then persist it into `dir` durably: for changes of its
    /// configuration (name, networks, resources).
    pub fn update<T>(&self, dir: &Path, f: impl FnOnce(&mut ContainerRecord) -> T) -> T {
        let mut g = self.rec.lock().unwrap_or_else(|e| e.into_inner());
        let r = f(&mut g);
        if let Err(e) = g.save(dir) {
            tracing::error!(id = %self.id, "cannot save container record: {e}");
        }
        r
    }

    /// Change the record's run state in memory only: for a container whose directory is about
    /// to go (an exit that an auto-removal follows, a removal before its rename into the
    /// trash). A crash before that leaves the last saved record, which start-up reconciles
    /// (see `Daemon::reconcile`).
    pub fn set_state_in_memory<T>(&self, f: impl FnOnce(&mut ContainerRecord) -> T) -> T {
        f(&mut self.rec.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Change the record's run state (status, pid, exit code, endpoints, health...) in
    /// memory, then persist it into `dir` atomically without an fsync: a power loss can only
    /// lose state that start-up reconciles with the shims (a container that ran is found
    /// stopped), and starts and exits do not wait for the disk.
    pub fn set_state<T>(&self, dir: &Path, f: impl FnOnce(&mut ContainerRecord) -> T) -> T {
        let mut g = self.rec.lock().unwrap_or_else(|e| e.into_inner());
        let r = f(&mut g);
        if let Err(e) = g.save_state(dir) {
            tracing::error!(id = %self.id, "cannot save container record: {e}");
        }
        r
    }

    pub fn status(&self) -> Status {
        self.rec
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .state
            .status
    }

    pub fn name(&self) -> String {
        self.rec
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .name
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str) -> ContainerRecord {
        serde_json::from_value(serde_json::json!({
            "id": "c0ffee", "name": name, "created": "2026-11-28T00:00:00Z",
            "image": "busybox", "image_id": "sha256:00", "config": {}, "host_config": {},
            "path": "true", "args": [],
            "state": { "status": "created", "pid": 0, "exit_code": 0, "started_at": null, "finished_at": null }
        }))
        .unwrap()
    }

    #[test]
    fn an_auto_removed_containers_record_lost_to_a_power_loss_is_an_unfinished_create() {
        let dir = tempfile::tempdir().unwrap();
        record("rm").save_volatile(dir.path()).unwrap();
        assert_eq!(ContainerRecord::load(dir.path()).unwrap().name, "rm");
        assert!(!ContainerRecord::lost_create(dir.path()));
        assert!(!dir.path().join(DURABLE_RECORD_FILE).exists());
        // The data never reached the disk: an empty file, or zeroes.
        std::fs::write(dir.path().join(RECORD_FILE), b"").unwrap();
        assert!(ContainerRecord::lost_create(dir.path()));
        std::fs::write(dir.path().join(RECORD_FILE), [0u8; 512]).unwrap();
        assert!(ContainerRecord::lost_create(dir.path()));
        // Without the marker (lost too, or never there): never taken for one.
        std::fs::remove_file(dir.path().join(TRANSIENT_FILE)).unwrap();
        assert!(!ContainerRecord::lost_create(dir.path()));
        // Any other container has a durable copy: never taken for one.
        std::fs::File::create(dir.path().join(TRANSIENT_FILE)).unwrap();
        record("kept").save(dir.path()).unwrap();
        let c = Container::new(record("kept"));
        c.set_state(dir.path(), |r| r.name = "later".into());
        std::fs::write(dir.path().join(RECORD_FILE), b"").unwrap();
        assert!(!ContainerRecord::lost_create(dir.path()));
        assert_eq!(ContainerRecord::load(dir.path()).unwrap().name, "kept");
    }

    #[test]
    fn a_lost_run_state_write_falls_back_to_the_durable_record() {
        let dir = tempfile::tempdir().unwrap();
        record("first").save(dir.path()).unwrap();
        let c = Container::new(record("first"));
        c.set_state(dir.path(), |r| r.name = "second".into());
        assert_eq!(ContainerRecord::load(dir.path()).unwrap().name, "second");
        // A power failure after a write that was not fsynced: the record is empty.
        std::fs::write(dir.path().join(RECORD_FILE), b"").unwrap();
        assert_eq!(ContainerRecord::load(dir.path()).unwrap().name, "first");
        // A durable save moves the copy along; the next run-state write (a new file renamed
        // over the record) is torn.
        record("third").save(dir.path()).unwrap();
        c.set_state(dir.path(), |r| r.name = "fourth".into());
        std::fs::write(dir.path().join(RECORD_FILE), b"{\"id\":").unwrap();
        assert_eq!(ContainerRecord::load(dir.path()).unwrap().name, "third");
        // Without a readable copy, the error is the record's own.
        std::fs::remove_file(dir.path().join(DURABLE_RECORD_FILE)).unwrap();
        let e = ContainerRecord::load(dir.path()).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    }
}
