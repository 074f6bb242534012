#![recursion_limit = "256"]
//! The engine: containers, their lifecycle and streams, and the image store behind them.
//!
//! `berth-server` turns HTTP requests into calls on [`Daemon`]; everything here speaks in
//! Engine API models (`berth_api::models`) and [`ApiError`]s, never in HTTP.

pub mod attach;
pub mod build;
mod bundle;
mod cgroups;
pub mod config;
pub mod container;
pub mod create;
mod distribution;
mod dns;
pub mod events;
pub mod exec;
mod fsutil;
pub mod health;
pub mod images;
pub mod inspect;
pub mod layout;
pub mod lifecycle;
pub mod limits;
pub mod login;
pub mod logs;
pub mod names;
pub mod network;
pub mod networks;
pub mod pull;
pub mod push;
pub mod shim_client;
pub mod stats;
pub mod system;
pub mod top;
pub mod transfer;
pub mod usage;
pub mod volumes;

pub use berth_api::types::Stream;
pub use config::Config;

use berth_api::ApiError;
use berth_image::ImageStore;
use container::{Container, ContainerRecord};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

/// The engine.
pub struct Daemon {
    pub config: Config,
    pub images: Arc<ImageStore>,
    containers: RwLock<HashMap<String, Arc<Container>>>,
    /// name → id; also guards name uniqueness.
    names: RwLock<HashMap<String, String>>,
    execs: RwLock<HashMap<String, Arc<exec::Exec>>>,
    /// The networks (the default bridge `berth0`, user networks), their leases and ports.
    pub(crate) net: network::Networks,
    /// The volumes (`<data-root>/volumes`).
    pub(crate) volumes: volumes::Volumes,
    /// The event stream (`GET /events`).
    pub(crate) events: events::Events,
    /// The shims it starts, one kept ready ahead.
    pub(crate) shims: Arc<shim_client::Shims>,
    /// Clean-ups left to the background (the files of removed containers), which a shutdown
    /// lets finish (`finish_cleanups`).
    pub(crate) cleanups: tokio_util::task::TaskTracker,
    /// Where container directories are made (`<data-root>/spread`, see `fsutil::SpreadDirs`).
    pub(crate) spread: fsutil::SpreadDirs,
    /// Where the layers were pulled from or pushed to, compressed (what a push reuses).
    pub(crate) distribution: distribution::Distribution,
}

impl Daemon {
    /// Open the stores under the data root, load every container and reconnect to their shims.
    pub async fn new(config: Config) -> Result<Arc<Daemon>, ApiError> {
        for d in [
            config.data_root.join("containers"),
            config.exec_root.join("containers"),
        ] {
            std::fs::create_dir_all(&d)
                .map_err(|e| ApiError::internal(format!("cannot create {}: {e}", d.display())))?;
        }
        // what a push in progress had compressed when the daemon stopped
        let _ = std::fs::remove_dir_all(layout::push_tmp(&config.data_root));
        let root = config.data_root.clone();
        let spread = fsutil::SpreadDirs::new(layout::spread_dir(&config.data_root));
        let mut images = tokio::task::spawn_blocking(move || ImageStore::open(&root))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(|e| ApiError::internal(format!("cannot open the image store: {e}")))?;
        images.set_apply_options(berth_snapshot::ApplyOptions {
            max_size: config.max_layer_size,
        });
        if config.cgroup_favordynmods {
            match cgroups::favor_dynmods() {
                Ok(true) => tracing::info!("cgroup2 hierarchy set to favordynmods"),
                Ok(false) => {}
                Err(e) => tracing::info!("container starts keep the cgroup attach wait: {e}"),
            }
        }
        let net = network::Networks::init(&config).await?;
        let volumes = volumes::Volumes::open(&config.data_root)?;
        let shim_exe = config.shim_exe.clone();
        let distribution =
            distribution::Distribution::open(&layout::distribution_file(&config.data_root));
        let d = Arc::new(Daemon {
            config,
            images: Arc::new(images),
            containers: RwLock::new(HashMap::new()),
            names: RwLock::new(HashMap::new()),
            execs: RwLock::new(HashMap::new()),
            net,
            volumes,
            events: Default::default(),
            shims: Arc::new(shim_client::Shims::new(&shim_exe)),
            cleanups: tokio_util::task::TaskTracker::new(),
            spread,
            distribution,
        });
        d.spread.prepare();
        d.ensure_init_layer()?;
        d.unmount_scratch();
        d.clean_build_leftovers();
        d.load_containers().await;
        d.clean_removed();
        d.reconcile_network().await;
        d.restart_policy_starts().await;
        d.collect_garbage().await;
        d.shims.refill();
        Ok(d)
    }

    /// `<data-root>/containers/<id>`: the record, the rw layer, the log.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        layout::container_dir(&self.config.data_root, id)
    }

    /// `<exec-root>/containers/<id>`: the bundle and the shim's files.
    pub fn bundle_dir(&self, id: &str) -> PathBuf {
        layout::bundle_dir(&self.config.exec_root, id)
    }

    /// Find a container by full id, name, or unique id prefix.
    pub fn container(&self, name_or_id: &str) -> Result<Arc<Container>, ApiError> {
        let key = name_or_id.strip_prefix('/').unwrap_or(name_or_id);
        let not_found = || ApiError::not_found(format!("No such container: {name_or_id}"));
        if key.is_empty() {
            return Err(not_found());
        }
        let containers = self.containers.read().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = containers.get(key) {
            return Ok(c.clone());
        }
        if let Some(id) = self
            .names
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
        {
            if let Some(c) = containers.get(id) {
                return Ok(c.clone());
            }
        }
        let mut found = containers.values().filter(|c| c.id.starts_with(key));
        match (found.next(), found.next()) {
            (Some(c), None) => Ok(c.clone()),
            (Some(_), Some(_)) => Err(ApiError::invalid(format!(
                "multiple IDs found with provided prefix: {key}"
            ))),
            _ => Err(not_found()),
        }
    }

    /// Every container, newest first.
    pub fn all_containers(&self) -> Vec<Arc<Container>> {
        let mut v: Vec<(chrono::DateTime<chrono::Utc>, Arc<Container>)> = self
            .containers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|c| (c.record().created, c.clone()))
            .collect();
        v.sort_by_key(|x| std::cmp::Reverse(x.0));
        v.into_iter().map(|(_, c)| c).collect()
    }

    /// Reserve a name for a container id; Docker's conflict message when it is taken.
    fn reserve_name(&self, name: &str, id: &str) -> Result<(), ApiError> {
        let mut names = self.names.write().unwrap_or_else(|e| e.into_inner());
        if let Some(other) = names.get(name) {
            return Err(ApiError::conflict(format!(
                "Conflict. The container name \"/{name}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
            )));
        }
        names.insert(name.to_string(), id.to_string());
        Ok(())
    }

    fn release_name(&self, name: &str) {
        self.names
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    fn register(&self, c: Arc<Container>) {
        self.containers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(c.id.clone(), c);
    }

    fn unregister(&self, id: &str) {
        self.containers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Let the background clean-ups end (at most `limit`), and make durable what builds
    /// stored without fsyncs: for a daemon that is stopping.
    pub async fn finish_cleanups(&self, limit: std::time::Duration) {
        let images = self.images.clone();
        if let Err(e) = crate::blocking(move || {
            images
                .sync_deferred()
                .map_err(|e| berth_api::ApiError::internal(e.to_string()))
        })
        .await
        {
            tracing::warn!("syncing build images at shutdown: {e}");
        }
        self.cleanups.close();
        if tokio::time::timeout(limit, self.cleanups.wait())
            .await
            .is_err()
        {
            tracing::warn!("stopping with clean-ups still running; the next start finishes them");
        }
    }

    /// What removals left behind when the daemon went away before their background clean-up
    /// ended: the trash, and bundles (rootfs mounts) of containers that no longer exist.
    /// Deleted in the background.
    fn clean_removed(self: &Arc<Self>) {
        let known: std::collections::HashSet<String> = self
            .containers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        // A bundle is an orphan when its container's directory is gone (removed); a container
        // whose record could not be read keeps its bundle (and its shim, if it runs).
        let mut orphans = Vec::new();
        if let Ok(rd) = std::fs::read_dir(self.config.exec_root.join("containers")) {
            for e in rd.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                if !known.contains(&id) && !self.container_dir(&id).exists() {
                    orphans.push(id);
                }
            }
        }
        // Listed now: what a removal moves there from here on is its own task's to delete.
        let trashed: Vec<PathBuf> = std::fs::read_dir(layout::trash_dir(&self.config.data_root))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        let d = self.clone();
        self.cleanups.spawn_blocking(move || {
            for id in orphans {
                tracing::info!(%id, "cleaning up after a removed container");
                d.cleanup_bundle(&id);
            }
            for path in trashed {
                // (A removal that start-up finished may be deleting it too.)
                match std::fs::remove_dir_all(&path) {
                    Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                        tracing::warn!("cannot delete {}: {err}", path.display());
                    }
                    _ => {}
                }
            }
        });
    }

    /// Load every container record; reconnect to live shims, record exits that happened
    /// while the daemon was away.
    async fn load_containers(self: &Arc<Self>) {
        let dir = self.config.data_root.join("containers");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let rec = match ContainerRecord::load(&path) {
                Ok(r) => r,
                Err(err)
                    if err.kind() == std::io::ErrorKind::NotFound
                        || ContainerRecord::lost_create(&path) =>
                {
                    // A create that crashed before its record was written (or, for an
                    // auto-removed container, before it reached the disk): nothing refers to
                    // this directory.
                    tracing::warn!("removing incomplete container {}", path.display());
                    let _ = std::fs::remove_dir_all(&path);
                    continue;
                }
                Err(err) => {
                    tracing::warn!("skipping {}: {err}", path.display());
                    continue;
                }
            };
            let name = rec.name.clone();
            let c = Arc::new(Container::new(rec));
            if self.reserve_name(&name, &c.id).is_err() {
                tracing::warn!("duplicate container name {name}");
            }
            self.register(c.clone());
            self.reconcile(&c).await;
        }
    }

    /// After loading the containers: a container that is not live holds no endpoint; the
    /// networks keep the leases and veths of the live ones only.
    async fn reconcile_network(self: &Arc<Self>) {
        let mut live = HashMap::new();
        for c in self.all_containers() {
            let rec = c.record();
            if rec.state.status.is_live() {
                if !rec.endpoints.is_empty() {
                    live.insert(c.id.clone(), rec.endpoints.clone());
                }
            } else if !rec.endpoints.is_empty() {
                c.set_state(&self.container_dir(&c.id), |r| r.endpoints.clear());
            }
        }
        self.net.reconcile(&live).await;
        self.restore_dns();
        // The volumes with driver options that running containers hold stay mounted.
        let mut users: HashMap<String, std::collections::HashSet<String>> = HashMap::new();
        for c in self.all_containers() {
            let rec = c.record();
            if rec.state.status.is_live() {
                for m in rec.mounts.iter().filter(|m| !m.name.is_empty()) {
                    users
                        .entry(m.name.clone())
                        .or_default()
                        .insert(rec.id.clone());
                }
            }
        }
        self.volumes.reconcile(users);
    }

    /// Ids of containers created from an image, with whether they run.
    pub fn image_users(&self, image_id: &str) -> Vec<(String, bool)> {
        self.all_containers()
            .iter()
            .filter_map(|c| {
                let r = c.record();
                (r.image_id == image_id).then(|| (r.id.clone(), r.state.status.is_live()))
            })
            .collect()
    }

    /// The container's image layers as overlay lowerdirs, top-most first.
    pub fn layer_dirs(&self, rec: &ContainerRecord) -> Vec<PathBuf> {
        rec.layers
            .iter()
            .rev()
            .filter_map(|c| berth_content::Digest::parse(c).ok())
            .map(|c| self.images.snapshots().fs_path(&c))
            .collect()
    }

    /// The lower dirs of the container's root, top-most first: the init layer (its own, for a
    /// container made before the init layer was shared, else the shared one), then its image's
    /// layers.
    pub fn rootfs_lowers(&self, rec: &ContainerRecord) -> Vec<PathBuf> {
        let own = layout::init_layer(&self.container_dir(&rec.id));
        let shared = layout::shared_init_layer(&self.config.data_root);
        let mut v = Vec::new();
        if own.is_dir() {
            v.push(own);
        } else if shared.is_dir() {
            v.push(shared);
        }
        v.extend(self.layer_dirs(rec));
        v
    }

    /// Make the shared init layer if it is not there: in a temporary directory, renamed into
    /// place whole, so that a crash never leaves half of one.
    fn ensure_init_layer(&self) -> Result<(), ApiError> {
        let path = layout::shared_init_layer(&self.config.data_root);
        // Temporary ones of a start that crashed.
        if let Ok(rd) = std::fs::read_dir(&self.config.data_root) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(".init-layer-") {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        if path.is_dir() {
            // (an init layer made before it had one gets its /.dockerenv: a new file in a
            // lower layer, which the overlays of running containers take as it is)
            if !path.join(".dockerenv").exists() {
                fsutil::make_dockerenv(&path)
                    .map_err(|e| ApiError::internal(format!("cannot add /.dockerenv: {e}")))?;
            }
            return Ok(());
        }
        let tmp = self
            .config
            .data_root
            .join(format!(".init-layer-{}", new_id()));
        fsutil::make_init_layer(&tmp)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| {
                let _ = std::fs::remove_dir_all(&tmp);
                ApiError::internal(format!("cannot make the init layer: {e}"))
            })
    }

    /// The chain ids of every container's layers: they stay while the container does.
    pub fn container_layers(&self) -> Vec<berth_content::Digest> {
        self.all_containers()
            .iter()
            .flat_map(|c| c.record().layers)
            .filter_map(|c| berth_content::Digest::parse(&c).ok())
            .collect()
    }

    /// Remove layers and blobs that neither an image nor a container needs (after a crash,
    /// or once the last container of a force-deleted image is gone).
    pub async fn collect_garbage(self: &Arc<Self>) {
        let keep = self.container_layers();
        let images = self.images.clone();
        let r = blocking(move || images.prune_unused(&keep).map_err(crate::images::map_err)).await;
        match r {
            Ok(removed) if !removed.is_empty() => {
                tracing::info!(count = removed.len(), "removed unused layers")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("garbage collection failed: {e}"),
        }
    }
}

/// A 64-hex random id.
pub fn new_id() -> String {
    let b: [u8; 32] = rand::random();
    hex::encode(b)
}

/// Run blocking work (image store, file I/O) off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
}
