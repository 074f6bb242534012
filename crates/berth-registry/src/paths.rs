//! The storage layout, drawn in one place. Every key the registry reads or writes is made
//! here; anyone can find a blob by hand.
//!
//! ```text
//! blobs/<alg>/<hex[0..2]>/<hex>/data                  every blob's bytes, once (manifests too)
//! repositories/<name>/                                 <name> may hold slashes
//!   _layers/<alg>/<hex>/link                           the repository has this blob
//!   _manifests/revisions/<alg>/<hex>/link              ... and this manifest
//!   _manifests/revisions/<alg>/<hex>/type              the manifest's Content-Type
//!   _manifests/tags/<tag>/current/link                 the tag points at this manifest digest
//!   _referrers/<alg>/<hex>/<alg2>/<hex2>/link          manifest <alg2:hex2> has subject <alg:hex>
//!   _uploads/<uuid>/startedat                          an upload in progress: when it began
//!   _uploads/<uuid>/chunks/<offset, 20 digits>         ... and its chunks, in order
//! _trash/<alg>/<hex>                                   a blob the garbage collector is removing
//! ```
//!
//! A link holds the digest it names. Repository path components start with a letter or a
//! digit, so the `_`-prefixed directories never collide with a repository's own name parts.

use crate::digest::Digest;

pub fn blob_data(d: &Digest) -> String {
    let h = d.hex();
    format!("blobs/{}/{}/{h}/data", d.algorithm().name(), &h[..2])
}

pub fn blobs_root() -> &'static str {
    "blobs"
}

pub fn trash(d: &Digest) -> String {
    format!("_trash/{}/{}", d.algorithm().name(), d.hex())
}

pub fn trash_root() -> &'static str {
    "_trash"
}

pub fn layers_dir(name: &str) -> String {
    format!("repositories/{name}/_layers")
}

pub fn revisions_dir(name: &str) -> String {
    format!("repositories/{name}/_manifests/revisions")
}

pub fn uploads_dir(name: &str) -> String {
    format!("repositories/{name}/_uploads")
}

pub fn repos_root() -> &'static str {
    "repositories"
}

pub fn repo(name: &str) -> String {
    format!("repositories/{name}")
}

pub fn layer_link(name: &str, d: &Digest) -> String {
    format!(
        "repositories/{name}/_layers/{}/{}/link",
        d.algorithm().name(),
        d.hex()
    )
}

pub fn revision_dir(name: &str, d: &Digest) -> String {
    format!(
        "repositories/{name}/_manifests/revisions/{}/{}",
        d.algorithm().name(),
        d.hex()
    )
}

pub fn revision_link(name: &str, d: &Digest) -> String {
    format!("{}/link", revision_dir(name, d))
}

pub fn revision_type(name: &str, d: &Digest) -> String {
    format!("{}/type", revision_dir(name, d))
}

pub fn tags_dir(name: &str) -> String {
    format!("repositories/{name}/_manifests/tags")
}

pub fn tag_dir(name: &str, tag: &str) -> String {
    format!("repositories/{name}/_manifests/tags/{tag}")
}

pub fn tag_link(name: &str, tag: &str) -> String {
    format!("repositories/{name}/_manifests/tags/{tag}/current/link")
}

pub fn referrers_dir(name: &str, subject: &Digest) -> String {
    format!(
        "repositories/{name}/_referrers/{}/{}",
        subject.algorithm().name(),
        subject.hex()
    )
}

pub fn referrer_link(name: &str, subject: &Digest, d: &Digest) -> String {
    format!(
        "{}/{}/{}/link",
        referrers_dir(name, subject),
        d.algorithm().name(),
        d.hex()
    )
}

pub fn upload_dir(name: &str, uuid: &str) -> String {
    format!("repositories/{name}/_uploads/{uuid}")
}

pub fn upload_started(name: &str, uuid: &str) -> String {
    format!("{}/startedat", upload_dir(name, uuid))
}

pub fn upload_chunks(name: &str, uuid: &str) -> String {
    format!("{}/chunks", upload_dir(name, uuid))
}

pub fn upload_chunk(name: &str, uuid: &str, offset: u64) -> String {
    format!("{}/chunks/{offset:020}", upload_dir(name, uuid))
}
