//! Files in and out of containers: `export`, `diff`, `cp` (the archive endpoints) and
//! `commit`. Every path inside a container is resolved inside its root by
//! `berth_snapshot` (openat2 with RESOLVE_IN_ROOT); nothing from the container's filesystem
//! is ever loaded or executed by the daemon.

use crate::container::{Container, ContainerRecord, Status};
use crate::images::{map_err, release_memory};
use crate::{blocking, Daemon};
use berth_api::types::{CommitRequest, CopyToOptions, Producer};
use berth_api::ApiError;
use berth_runtime::shim::Request;
use berth_snapshot::CopyError;
use serde_json::{json, Value};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The root filesystem of a container, mounted for the daemon's own use: the live mount of
/// a running container, or a private mount of a stopped one that goes away on drop.
pub(crate) struct Rootfs {
    path: PathBuf,
    temporary: bool,
}

impl Rootfs {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        if self.temporary {
            if let Err(e) = berth_snapshot::unmount(&self.path) {
                tracing::warn!("unmount {}: {e}", self.path.display());
            }
            let _ = std::fs::remove_dir(&self.path);
        }
    }
}

fn copy_err(e: CopyError, container: &str, path: &str) -> ApiError {
    if e.is_not_found() {
        ApiError::not_found(format!(
            "Could not find the file {path} in container {container}"
        ))
    } else if e.is_invalid() {
        ApiError::invalid(e.to_string())
    } else {
        ApiError::internal(e.to_string())
    }
}

impl Daemon {
    /// Mount (or reuse) the container's root filesystem. Call with the container's
    /// operation lock held, so that no start mounts the same upper layer meanwhile.
    pub(crate) fn rootfs(&self, rec: &ContainerRecord) -> Result<Rootfs, ApiError> {
        if rec.state.status.is_live() {
            let live = self.bundle_dir(&rec.id).join("rootfs");
            if crate::fsutil::is_mount_point(&live) {
                return Ok(Rootfs {
                    path: live,
                    temporary: false,
                });
            }
        }
        let lowers = self.rootfs_lowers(rec);
        if let Some(missing) = lowers.iter().find(|l| !l.exists()) {
            return Err(ApiError::internal(format!(
                "the container's image layer {} is missing",
                missing.display()
            )));
        }
        let target = crate::layout::scratch_mount(&self.config.exec_root, &rec.id);
        let _ = berth_snapshot::unmount(&target);
        std::fs::create_dir_all(&target)
            .map_err(|e| ApiError::internal(format!("create {}: {e}", target.display())))?;
        let dir = self.container_dir(&rec.id);
        berth_snapshot::mount_overlay(
            &lowers,
            &dir.join("rw/upper"),
            &dir.join("rw/work"),
            &target,
        )
        .map_err(|e| {
            let _ = std::fs::remove_dir(&target);
            ApiError::internal(format!("error mounting the container's rootfs: {e}"))
        })?;
        Ok(Rootfs {
            path: target,
            temporary: true,
        })
    }

    /// Runs `f` on a blocking thread with the container's root mounted and its operation
    /// lock held.
    async fn with_rootfs<T: Send + 'static>(
        self: &Arc<Self>,
        c: &Arc<Container>,
        f: impl FnOnce(&Path) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let _op = c.op.lock().await;
        // Not while the last run's overlay is still mounted over the same rw/ directories.
        let _teardown = c.teardown.lock().await;
        let rec = c.record();
        let d = self.clone();
        blocking(move || {
            let root = d.rootfs(&rec)?;
            f(root.path())
        })
        .await
    }

    /// A producer that holds the container's lock and its mounted root while it writes.
    /// `f` gets the root, whether nothing can change it meanwhile (a stopped container:
    /// its own mount, under its lock), and the writer.
    fn rootfs_producer(
        self: &Arc<Self>,
        c: Arc<Container>,
        f: impl FnOnce(&Path, bool, &mut dyn std::io::Write) -> Result<(), ApiError> + Send + 'static,
    ) -> Producer {
        let d = self.clone();
        Box::new(move |w| {
            let _op = c.op.blocking_lock();
            let _teardown = c.teardown.blocking_lock();
            let root = d.rootfs(&c.record())?;
            f(root.path(), root.temporary, w)
        })
    }

    /// `GET /containers/{id}/export`.
    pub async fn export_container(self: &Arc<Self>, name: &str) -> Result<Producer, ApiError> {
        let c = self.container(name)?;
        if c.status() == Status::Removing || c.status() == Status::Dead {
            return Err(ApiError::conflict(format!(
                "You cannot export container {} which is being removed",
                c.id
            )));
        }
        Ok(self.rootfs_producer(c, |root, quiescent, w| {
            let r = if quiescent {
                berth_snapshot::write_tree_quiescent(root, w)
            } else {
                berth_snapshot::write_tree(root, w)
            };
            r.map(|_| ())
                .map_err(|e| ApiError::internal(format!("export: {e}")))
        }))
    }

    /// `GET /containers/{id}/changes`.
    pub async fn container_changes(self: &Arc<Self>, name: &str) -> Result<Value, ApiError> {
        let c = self.container(name)?;
        let rec = c.record();
        let upper = self.container_dir(&c.id).join("rw/upper");
        let lowers = self.rootfs_lowers(&rec);
        let changes = blocking(move || {
            berth_snapshot::changes(&upper, &lowers)
                .map_err(|e| ApiError::internal(format!("diff: {e}")))
        })
        .await?;
        Ok(Value::Array(
            changes
                .iter()
                .map(|ch| json!({ "Path": ch.path, "Kind": ch.kind.as_docker() }))
                .collect(),
        ))
    }

    /// `HEAD /containers/{id}/archive`: the stat header's value (base64 of its JSON).
    pub async fn stat_path(self: &Arc<Self>, name: &str, path: &str) -> Result<String, ApiError> {
        let c = self.container(name)?;
        let (id, p) = (name.to_string(), path.to_string());
        let stat = self
            .with_rootfs(&c, move |root| {
                berth_snapshot::stat_in_root(root, &p).map_err(|e| copy_err(e, &id, &p))
            })
            .await?;
        Ok(stat_header(&stat))
    }

    /// `GET /containers/{id}/archive`: the path's stat, and the tar of it.
    pub async fn archive_path(
        self: &Arc<Self>,
        name: &str,
        path: &str,
    ) -> Result<(String, Producer), ApiError> {
        let header = self.stat_path(name, path).await?;
        let c = self.container(name)?;
        let (id, p) = (name.to_string(), path.to_string());
        let producer = self.rootfs_producer(c, move |root, _, w| {
            berth_snapshot::archive_from_root(root, &p, w)
                .map(|_| ())
                .map_err(|e| copy_err(e, &id, &p))
        });
        Ok((header, producer))
    }

    /// `PUT /containers/{id}/archive`: unpack a tar into a directory of the container.
    pub async fn extract_archive(
        self: &Arc<Self>,
        name: &str,
        opts: CopyToOptions,
        body: Box<dyn Read + Send>,
    ) -> Result<(), ApiError> {
        let c = self.container(name)?;
        let rec = c.record();
        let id = name.to_string();
        self.with_rootfs(&c, move |root| {
            let chown = if opts.copy_uid_gid {
                // Docker's -a: the files belong to the container's user.
                let u =
                    berth_runtime::user::resolve(root, rec.config.user.as_deref().unwrap_or(""))
                        .map_err(|e| ApiError::invalid(format!("unable to find user: {e}")))?;
                Some((u.uid, u.gid))
            } else {
                None
            };
            let eo = berth_snapshot::ExtractOptions {
                no_overwrite_dir_non_dir: opts.no_overwrite_dir_non_dir,
                chown,
            };
            let mut body = std::io::BufReader::with_capacity(crate::images::BODY_BUF, body);
            let r = berth_snapshot::extract_into_root(root, &opts.path, &mut body, &eo)
                .map_err(|e| copy_err(e, &id, &opts.path));
            // What follows the archive's end (tar's zero padding), or the rest of a refused one.
            crate::images::drain(&mut body);
            r
        })
        .await
    }

    /// `POST /commit`: a new image from the container's changes.
    pub async fn commit_container(
        self: &Arc<Self>,
        req: CommitRequest,
    ) -> Result<String, ApiError> {
        let c = self.container(&req.container)?;
        let _op = c.op.lock().await;
        let _teardown = c.teardown.lock().await;
        let rec = c.record();
        let parent = berth_content::Digest::parse(&rec.image_id)
            .map_err(|e| ApiError::internal(format!("container's image id: {e}")))?;
        if self.images.get(&rec.image_id).is_err() {
            return Err(ApiError::conflict(format!(
                "cannot commit container {}: its image {} was deleted",
                c.id, rec.image_id
            )));
        }
        let config = commit_config(&rec, req.config.as_ref(), &req.changes)?;
        let bundle = self.bundle_dir(&c.id);
        let pause = req.pause && c.status() == Status::Running;
        if pause {
            crate::shim_client::call(&bundle, &Request::Pause).await?;
        }
        let upper = self.container_dir(&c.id).join("rw/upper");
        let images = self.images.clone();
        let created_by = std::iter::once(rec.path.clone())
            .chain(rec.args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ");
        let icr = berth_image::CommitRequest {
            parent: Some(parent),
            reference: req.reference.clone(),
            author: req.author.clone(),
            comment: req.comment.clone(),
            config,
            container_id: c.id.clone(),
            created_by,
        };
        let r = blocking(move || commit_upper(&images, &upper, icr)).await;
        if pause {
            if let Err(e) = crate::shim_client::call(&bundle, &Request::Resume).await {
                tracing::warn!(id = %c.id, "unpause after commit: {e}");
            }
        }
        Ok(r?.to_string())
    }
}

/// Like [`commit_upper`] for an upper directory nothing needs afterwards (a finished build
/// step's): it becomes the new snapshot itself when it is on the store's filesystem, so its
/// files are not copied again.
pub(crate) fn commit_upper_owned(
    images: &berth_image::ImageStore,
    upper: &Path,
    icr: berth_image::CommitRequest,
) -> Result<berth_image::Digest, ApiError> {
    use std::os::unix::fs::MetadataExt;
    let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev()).ok();
    if dev(upper).is_some() && dev(upper) == dev(images.snapshots().root()) {
        let r = images.commit_dir(icr, upper).map(|r| r.id).map_err(map_err);
        release_memory();
        return r;
    }
    commit_upper(images, upper, icr)
}

/// A new image from `icr` and the writable layer `upper` (an overlay upper directory,
/// whiteouts and all): the layer is written by one thread and unpacked and stored by this
/// one. If the layer cannot be written whole, no image is left behind.
pub(crate) fn commit_upper(
    images: &berth_image::ImageStore,
    upper: &Path,
    icr: berth_image::CommitRequest,
) -> Result<berth_image::Digest, ApiError> {
    let (reader, writer) =
        std::io::pipe().map_err(|e| ApiError::internal(format!("commit: pipe: {e}")))?;
    grow_pipe(&writer);
    let r = std::thread::scope(|s| {
        let writer_thread = s.spawn(move || -> Result<(), String> {
            let mut w = std::io::BufWriter::with_capacity(PIPE_BUF, writer);
            berth_snapshot::write_layer(upper, &mut w).map_err(|e| e.to_string())?;
            std::io::Write::flush(&mut w).map_err(|e| format!("write layer: {e}"))
        });
        let committed = images.commit(icr, std::io::BufReader::with_capacity(PIPE_BUF, reader));
        let written = writer_thread
            .join()
            .map_err(|_| ApiError::internal("commit: the layer writer panicked"))?;
        match (written, committed) {
            (Ok(()), c) => c.map(|r| r.id).map_err(map_err),
            (Err(e), c) => {
                // The layer was cut short: an image made of it must not stay.
                if let Ok(made) = c {
                    let _ = images.delete(&made.id.to_string(), true, &|_| Vec::new());
                }
                Err(ApiError::internal(format!("commit: {e}")))
            }
        }
    });
    release_memory();
    r
}

/// The commit's layer flows from the walker to the image store in large pieces.
const PIPE_BUF: usize = 1 << 20;

/// A larger pipe buffer means fewer wake-ups between the walker and the store (best
/// effort: the kernel caps it at /proc/sys/fs/pipe-max-size).
fn grow_pipe(w: &std::io::PipeWriter) {
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl on a pipe descriptor we own, with an integer argument.
    unsafe {
        libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_BUF as libc::c_int);
    }
}

/// The new image's config: the container's (merged with its image's at create), overridden
/// by the request's config, then the `--change` instructions.
fn commit_config(
    rec: &ContainerRecord,
    requested: Option<&berth_api::models::ContainerConfig>,
    changes: &[String],
) -> Result<berth_image::ContainerConfig, ApiError> {
    let mut base = serde_json::to_value(&rec.config)
        .map_err(|e| ApiError::internal(format!("container config: {e}")))?;
    if let Some(req) = requested {
        let over = serde_json::to_value(req)
            .map_err(|e| ApiError::invalid(format!("commit config: {e}")))?;
        if let (Some(b), Value::Object(o)) = (base.as_object_mut(), over) {
            for (k, v) in o {
                let empty = v.is_null()
                    || v.as_str() == Some("")
                    || v.as_array().is_some_and(|a| a.is_empty())
                    || v.as_object().is_some_and(|m| m.is_empty());
                if !empty {
                    b.insert(k, v);
                }
            }
        }
    }
    let mut config: berth_image::ContainerConfig = serde_json::from_value(base)
        .map_err(|e| ApiError::internal(format!("container config: {e}")))?;
    berth_image::apply_changes(&mut config, changes)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    Ok(config)
}

/// `X-Docker-Container-Path-Stat`: base64 of the stat's JSON.
fn stat_header(stat: &berth_snapshot::PathStat) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(stat.to_header_json())
}
