//! berth-image: the image store — references (`repo:tag`), image configs,
//! import, history, delete with layer GC.
//!
//! Layout under the data root:
//!
//! ```text
//! content/      blobs (configs, manifests, uncompressed layer tars)
//! snapshots/    unpacked layers by chain id
//! images/images.json       image id -> { manifest, parent, created }
//! images/references.json   "repo:tag" -> image id
//! ```

mod changes;
mod check;
mod commit;
mod config;
mod delete;
mod du;
mod error;
mod gojson;
mod import;
mod load;
mod prune;
mod reference;
mod save;
mod store;
mod tario;

pub use changes::{apply_changes, ChangesError};
pub use check::{CheckReport, Finding, FindingKind};
pub use commit::CommitRequest;
pub use config::{
    ContainerConfig, Descriptor, History, ImageConfig, Manifest, RootFs, MEDIA_TYPE_CONFIG,
    MEDIA_TYPE_LAYER, MEDIA_TYPE_MANIFEST,
};
pub use delete::DeleteItem;
pub use error::{ErrorKind, ImageError};
pub use import::{host_arch, ImportOptions, ImportResult};
pub use load::{LoadedImage, MAX_JSON_SIZE};
pub use prune::{disk_bytes_of, DiskUsage, ImageUsage, PruneReport};
pub use reference::{Reference, ReferenceError, DEFAULT_TAG};
pub use save::{
    ArchiveFormat, CompressedLayer, LayerCompression, ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME,
    MEDIA_TYPE_INDEX, MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_ZSTD,
};
pub use store::{HistoryItem, Image, ImageStore, ImageSummary};

pub use berth_content::Digest;
