//! berth-content: a content-addressable blob store.
//!
//! Layout under `<data-root>/content`:
//!
//! ```text
//! blobs/sha256/<hex>   immutable blobs
//! ingest/              temporary files being written (write, fsync, rename, fsync dir)
//! ```

mod digest;
mod store;

pub use digest::{is_sha256_hex, Digest, DigestError};
pub use store::{BlobWriter, ContentError, ContentStore};
