//! berth-snapshot: safe layer extraction, snapshots shared by images,
//! container rw layers and overlay mounts.

mod apply;
mod compress;
mod copy;
mod diff;
mod fsutil;
mod mount;
mod split;
mod store;
mod tarw;
#[cfg(test)]
mod testutil;
mod tree;
mod usage;

pub use apply::{apply_layer, ApplyError, ApplyOptions, ApplyStats, DEFAULT_MAX_LAYER_SIZE};
pub use compress::{decompress, detect_compression, xz_decoder, Compression, CompressionError};
pub use copy::{
    archive_from_root, extract_into_root, stat_in_root, CopyError, CopyErrorKind, ExtractOptions,
    PathStat, MODE_DIR, MODE_SYMLINK,
};
pub use diff::{changes, write_layer, Change, ChangeKind, DiffError, LayerStats};
pub use mount::{create_rw, mount_overlay, mount_overlay_volatile, remove_rw, unmount, MountError};
pub use split::LayerReader;
pub use store::{chain_id, PendingSnapshot, Snapshot, SnapshotError, SnapshotStore};
pub use tree::{write_tree, write_tree_quiescent, TreeError};
pub use usage::{dir_size, UsageError};
