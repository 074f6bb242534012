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
mod config;
mod delete;
mod error;
mod import;
mod reference;
mod store;

pub use changes::{apply_changes, ChangesError};
pub use config::{
    ContainerConfig, Descriptor, History, ImageConfig, Manifest, RootFs, MEDIA_TYPE_CONFIG,
    MEDIA_TYPE_LAYER, MEDIA_TYPE_MANIFEST,
};
pub use delete::DeleteItem;
pub use error::{ErrorKind, ImageError};
pub use import::{ImportOptions, ImportResult};
pub use reference::{Reference, ReferenceError, DEFAULT_TAG};
pub use store::{HistoryItem, Image, ImageStore, ImageSummary};

pub use berth_content::Digest;
