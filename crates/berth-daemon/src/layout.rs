//! Where everything lives on disk: the one drawing of berth's layout, and the functions that
//! name its paths. The parts owned by other crates (content, snapshots, images) are drawn
//! here too and named by those crates' own `open(root)`.
//!
//! ```text
//! <data-root>/                      --data-root, default /var/lib/berth
//!   content/                        berth_content::ContentStore
//!     blobs/sha256/<hex>            immutable blobs: image configs, manifests (and the layer
//!                                   tars of stores made before layers were kept as tar-splits)
//!     ingest/                       blobs being written (temp, fsync, rename into blobs/)
//!   snapshots/                      berth_snapshot::SnapshotStore
//!     <chain-id-hex>/fs/            an unpacked layer (an overlay lowerdir)
//!     <chain-id-hex>/snapshot.json  { parent, diff_id, size }
//!     <chain-id-hex>/tar-split.*    the layer's tar: its headers, and references to fs/'s files
//!   images/                         berth_image::ImageStore
//!     images.json                   image records
//!     references.json               "repo:tag" -> image id
//!   containers/<id>/                container_dir()
//!     config.v2.json                the container's record (RECORD_FILE)
//!     config.v2.json.durable        a hard link to its last fsynced version (the fallback
//!                                   if a run-state write was lost: DURABLE_RECORD_FILE)
//!     transient                     marks a transient container (auto-removed, a build
//!                                   step's), whose record is never fsynced: TRANSIENT_FILE
//!     rw/upper  rw/work             its writable layer
//!     init/                         init_layer(): only in containers made before the init
//!                                   layer was shared (see init-layer/ below)
//!     <id>-json.log[.N]             its log, json-file format, rotated (log_path())
//!     hostname  hosts  resolv.conf  bind-mounted into /etc
//!   init-layer/                     shared_init_layer(): the runtime's mount points (/proc,
//!                                   /etc/hosts…), a read-only lower between a container's image
//!                                   and its rw/, the same for all (made once, at start-up)
//!   init/berth-init                 the init process of `run --init`
//!   spread/<8 hex>/ (16)            spread_dir(): empty buckets, each in an allocation group
//!                                   of its own; a container's directory is made in one, then
//!                                   renamed into containers/ (fsutil::SpreadDirs); none where
//!                                   the filesystem cannot spread them (spread/ stays empty)
//!   trash/<id>/                     trash_dir(): a removed container's directory, moved here
//!                                   at once and deleted in the background (emptied at start-up)
//!   volumes/<name>/                 a volume (volumes.rs): _data/ (what containers mount) and
//!                                   volume.json (driver, labels, options, anonymous)
//!   network/                        network_dir(): the networks
//!     bridge.id host.id none.id     the built-in networks' ids (64 hex, made once)
//!     networks/<id>.json            a user network's settings (user_networks_dir(),
//!                                   network::NetworkConfig)
//!     leases/bridge.json            the default bridge's subnet, gateway and address leases
//!     leases/<id>.json              a user network's (leases_dir(),
//!                                   berth_network::ipam::NetworkAddresses, written atomically)
//!   distribution.json               distribution_file(): where each layer (diff id) was pulled
//!                                   from or pushed to, compressed (distribution.rs; a cache)
//!   tmp/push/                       push_tmp(): the layers a push compresses, until they are
//!                                   sent (emptied at start-up)
//!   builder/
//!     cache/<key>                   build cache: a step's key -> the image it made (build_cache())
//!     tmp/<build-id>/               a build in progress (build_tmp()): context/ (the unpacked
//!                                   context), step-N/ (a COPY/WORKDIR step's writable layer)
//!
//! <exec-root>/                      --exec-root, default /run/berth
//!   berth.sock  berth.pid           the API socket (0660) and the daemon's pid
//!   runtime/<id>/                   libcontainer's (or runc's) own state
//!   seccomp/<digest>.bpf            seccomp_cache(): seccomp profiles compiled to BPF by the
//!                                   shims, one per profile (ShimConfig::seccomp_cache)
//!   containers/<id>/                bundle_dir(): the OCI bundle and the shim's files
//!     config.json                   the runtime spec
//!     rootfs/                       the overlay mount point
//!     shim.json shim.sock shim.pid  the shim's config, control socket and pid
//!     state.json  shim.log          the container's state as the shim records it; its log
//!   mounts/<id>/                    scratch_mount(): a stopped container's root, mounted
//!                                   while export, cp or commit read or write it; also
//!                                   build-<build-id>-N, a build step's root
//! ```

use std::path::{Path, PathBuf};

/// `<data-root>/containers/<id>`
pub fn container_dir(data_root: &Path, id: &str) -> PathBuf {
    data_root.join("containers").join(id)
}

/// `<data-root>/spread`: where container directories are made before they are renamed
/// into `containers/` (`fsutil::SpreadDirs`)
pub fn spread_dir(data_root: &Path) -> PathBuf {
    data_root.join("spread")
}

/// `<data-root>/trash`
pub fn trash_dir(data_root: &Path) -> PathBuf {
    data_root.join("trash")
}

/// `<exec-root>/seccomp`
pub fn seccomp_cache(exec_root: &Path) -> PathBuf {
    exec_root.join("seccomp")
}

/// `<exec-root>/containers/<id>`
pub fn bundle_dir(exec_root: &Path, id: &str) -> PathBuf {
    exec_root.join("containers").join(id)
}

/// `<container-dir>/<id>-json.log`
pub fn log_path(container_dir: &Path, id: &str) -> PathBuf {
    container_dir.join(format!("{id}-json.log"))
}

/// `<exec-root>/runtime`: the OCI runtime's state root.
pub fn runtime_root(exec_root: &Path) -> PathBuf {
    exec_root.join("runtime")
}

/// `<exec-root>/mounts/<id>`: where a stopped container's root is mounted for `export`,
/// `cp` and the like.
pub fn scratch_mount(exec_root: &Path, id: &str) -> PathBuf {
    exec_root.join("mounts").join(id)
}

/// `<container-dir>/init`: a container's own init layer, as berth made them before they were
/// shared (`shared_init_layer`); containers created since have none.
pub fn init_layer(container_dir: &Path) -> PathBuf {
    container_dir.join("init")
}

/// `<data-root>/init-layer`: the init layer every container shares (`fsutil::make_init_layer`).
pub fn shared_init_layer(data_root: &Path) -> PathBuf {
    data_root.join("init-layer")
}

/// `<data-root>/builder/cache`: the build cache's entries.
pub fn build_cache(data_root: &Path) -> PathBuf {
    data_root.join("builder").join("cache")
}

/// `<data-root>/builder/tmp/<build-id>`: a build's private directory.
pub fn build_tmp(data_root: &Path, id: &str) -> PathBuf {
    data_root.join("builder").join("tmp").join(id)
}

/// `<data-root>/tmp/push`: the layers pushes compress, until they are sent.
pub fn push_tmp(data_root: &Path) -> PathBuf {
    data_root.join("tmp").join("push")
}

/// `<data-root>/distribution.json`: the layers' compressed forms and where they are.
pub fn distribution_file(data_root: &Path) -> PathBuf {
    data_root.join("distribution.json")
}

/// `<data-root>/network`: the networks' state.
pub fn network_dir(data_root: &Path) -> PathBuf {
    data_root.join("network")
}

/// `<data-root>/network/networks`: one `<id>.json` of settings per user network.
pub fn user_networks_dir(data_root: &Path) -> PathBuf {
    network_dir(data_root).join("networks")
}

/// `<data-root>/network/leases`: one `<network>.json` of address leases per network.
pub fn leases_dir(data_root: &Path) -> PathBuf {
    network_dir(data_root).join("leases")
}
