//! `docker save`: images to a Docker 20.10 archive or an OCI image layout.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufWriter, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use berth_content::Digest;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::config::{Descriptor, Manifest, MEDIA_TYPE_CONFIG, MEDIA_TYPE_MANIFEST};
use crate::error::ImageError;
use crate::gojson;
use crate::reference::Reference;
use crate::store::{ImageStore, Result, State};
use crate::tario::{TarOut, COPY_BUF};

/// OCI image index media type.
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI gzip layer media type.
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI zstd layer media type.
pub const MEDIA_TYPE_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// The annotation holding the tag in an OCI layout's `index.json`.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The annotation holding the full image name (containerd, Docker 25+).
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";

/// The archive layout written by [`ImageStore::save`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArchiveFormat {
    /// What `docker save` of Docker 20.10 writes: `manifest.json`,
    /// `repositories`, `<v1-id>/{VERSION,json,layer.tar}`, `<config-hex>.json`.
    #[default]
    Docker,
    /// An OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`), plus
    /// a Docker `manifest.json` so older `docker load` accepts it too.
    Oci,
}

/// How layers are compressed in an OCI archive (Docker archives are always
/// uncompressed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LayerCompression {
    /// Plain tar.
    None,
    /// gzip (default level).
    #[default]
    Gzip,
    /// zstd (level 3).
    Zstd,
}

/// One image to save, read under the store lock.
struct SaveImage {
    id: Digest,
    raw_config: Vec<u8>,
    config: Value,
    created: i64,
    chain_ids: Vec<Digest>,
    diff_ids: Vec<Digest>,
    refs: Vec<Reference>,
    parent: Option<Digest>,
}

/// An opened layer: its blob (the fd keeps it readable even if it is deleted meanwhile) or
/// its snapshot's tar-split (the snapshot protected from removal until the save ends).
struct Blob {
    file: Box<dyn Read + Send>,
    size: u64,
}

fn io_err(context: &str) -> impl FnOnce(io::Error) -> ImageError + '_ {
    move |e| ImageError::Io {
        context: context.to_string(),
        source: e,
    }
}

impl ImageStore {
    /// Resolves `docker save` names to images and the tags to record, in
    /// order of first appearance. A repository name without a tag saves every
    /// tag of that repository (as Docker does); ids save untagged.
    fn resolve_save_names(
        &self,
        state: &State,
        names: &[String],
    ) -> Result<Vec<(Digest, Vec<Reference>)>> {
        let mut out: Vec<(Digest, Vec<Reference>)> = Vec::new();
        let mut add = |id: Digest, r: Option<Reference>| {
            let pos = match out.iter().position(|(i, _)| *i == id) {
                Some(p) => p,
                None => {
                    out.push((id, Vec::new()));
                    out.len() - 1
                }
            };
            if let Some(r) = r {
                if !out[pos].1.contains(&r) {
                    out[pos].1.push(r);
                }
            }
        };
        for name in names {
            let name = name.trim();
            if let Ok(r) = Reference::parse(name) {
                if r.tag().is_none() && r.digest().is_none() {
                    let mut found = false;
                    for (tag, id) in &state.refs {
                        if let Ok(t) = Reference::parse(tag) {
                            if t.name() == r.name() && t.tag().is_some() && t.digest().is_none() {
                                add(id.clone(), Some(t));
                                found = true;
                            }
                        }
                    }
                    if found {
                        continue;
                    }
                }
                if r.digest().is_none() {
                    let (id, by_ref) = self.resolve(state, name)?;
                    add(id, by_ref.filter(|t| t.tag().is_some()));
                    continue;
                }
            }
            let (id, _) = self.resolve(state, name)?;
            add(id, None);
        }
        Ok(out)
    }

    /// Writes the images named by `names` (references, ids or short ids) to `w`
    /// as a tar archive in `format`. Layers shared by several images are
    /// written once. Docker archives ignore `compression`.
    pub fn save<W: Write>(
        &self,
        names: &[String],
        format: ArchiveFormat,
        compression: LayerCompression,
        w: W,
    ) -> Result<()> {
        let _busy = crate::store::BusyGuard::new(self);
        if names.is_empty() {
            return Err(ImageError::InvalidArgument(
                "no image names given to save".into(),
            ));
        }
        // Gather everything (and open every layer) under the lock, so a concurrent rmi cannot
        // pull a blob from under us; snapshots read back through their tar-split are
        // protected until the end (and removed then if an rmi meanwhile left them unused).
        let mut protect = Vec::new();
        let (images, mut blobs, _protected) = {
            let mut state = self.lock();
            let wanted = self.resolve_save_names(&state, names)?;
            let mut images = Vec::new();
            let mut blobs: HashMap<Digest, Blob> = HashMap::new();
            for (id, refs) in wanted {
                let l = &state.images[&id];
                if l.config.rootfs.diff_ids.is_empty() {
                    return Err(ImageError::InvalidArgument(format!(
                        "image {}: empty export - not implemented",
                        id.short()
                    )));
                }
                for (i, d) in l.layer_blobs.iter().enumerate() {
                    if !blobs.contains_key(d) {
                        let (file, size) = self.image_layer_stream(l, i)?;
                        blobs.insert(d.clone(), Blob { file, size });
                    }
                }
                protect.extend(l.chain_ids.iter().cloned());
                let config: Value = serde_json::from_slice(&l.raw_config).unwrap_or(Value::Null);
                images.push(SaveImage {
                    id: id.clone(),
                    raw_config: l.raw_config.clone(),
                    config,
                    created: l.config.created.unwrap_or(l.record.created).timestamp(),
                    chain_ids: l.chain_ids.clone(),
                    diff_ids: l.layer_blobs.clone(),
                    refs,
                    parent: l.record.parent.clone(),
                });
            }
            let guard = crate::import::protect(self, &mut state, protect);
            (images, blobs, guard)
        };
        let w = BufWriter::with_capacity(COPY_BUF, w);
        match format {
            ArchiveFormat::Docker => save_docker(&images, &mut blobs, w),
            ArchiveFormat::Oci => self.save_oci(&images, &mut blobs, compression, w),
        }
    }

    /// The layers of an image whose diff ids are in `wanted`, each compressed once (in
    /// parallel) into a temp file in `dir`: what a push sends of the layers the registry does
    /// not have yet. Keyed by diff id.
    pub fn compress_layers_of(
        &self,
        name_or_id: &str,
        wanted: &[Digest],
        compression: LayerCompression,
        dir: &std::path::Path,
    ) -> Result<HashMap<Digest, CompressedLayer>> {
        let _busy = crate::store::BusyGuard::new(self);
        // (opened under the lock, as for a save, so that an rmi cannot take a layer away)
        let (order, mut blobs, _protected) = {
            let mut state = self.lock();
            let (id, _) = self.resolve(&state, name_or_id)?;
            let l = &state.images[&id];
            let mut order = Vec::new();
            let mut blobs: HashMap<Digest, Blob> = HashMap::new();
            for (i, d) in l.config.rootfs.diff_ids.iter().enumerate() {
                if wanted.contains(d) && !blobs.contains_key(d) && i < l.layer_blobs.len() {
                    let (file, size) = self.image_layer_stream(l, i)?;
                    blobs.insert(d.clone(), Blob { file, size });
                    order.push(d.clone());
                }
            }
            let chain = l.chain_ids.clone();
            let guard = crate::import::protect(self, &mut state, chain);
            (order, blobs, guard)
        };
        self.compress_layers_in(dir, &order, &mut blobs, compression)
    }

    fn save_oci<W: Write>(
        &self,
        images: &[SaveImage],
        blobs: &mut HashMap<Digest, Blob>,
        compression: LayerCompression,
        w: W,
    ) -> Result<()> {
        // Compress every distinct layer (in parallel) into the ingest dir.
        let mut order: Vec<Digest> = Vec::new();
        for img in images {
            for d in &img.diff_ids {
                if !order.contains(d) {
                    order.push(d.clone());
                }
            }
        }
        let compressed: HashMap<Digest, CompressedLayer> = if compression == LayerCompression::None
        {
            HashMap::new()
        } else {
            self.compress_layers(&order, blobs, compression)?
        };
        let sizes: HashMap<Digest, u64> = blobs.iter().map(|(d, b)| (d.clone(), b.size)).collect();
        let layer_desc = |d: &Digest| -> Descriptor {
            match compressed.get(d) {
                Some(c) => Descriptor {
                    media_type: match compression {
                        LayerCompression::Zstd => MEDIA_TYPE_LAYER_ZSTD,
                        _ => MEDIA_TYPE_LAYER_GZIP,
                    }
                    .into(),
                    digest: c.digest.clone(),
                    size: c.size,
                },
                None => Descriptor {
                    media_type: crate::config::MEDIA_TYPE_LAYER.into(),
                    digest: d.clone(),
                    size: sizes.get(d).copied().unwrap_or(0),
                },
            }
        };

        let mut tar = TarOut::new(w);
        let werr = io_err("write archive");
        tar.dir("blobs/", 0).map_err(werr)?;
        tar.dir("blobs/sha256/", 0)
            .map_err(io_err("write archive"))?;
        let mut written: Vec<Digest> = Vec::new();
        let mut index = Vec::new();
        let mut docker_manifest = Vec::new();
        for img in images {
            let mut layers = Vec::new();
            for d in &img.diff_ids {
                let desc = layer_desc(d);
                if !written.contains(&desc.digest) {
                    let name = format!("blobs/sha256/{}", desc.digest.hex());
                    match compressed.get(d) {
                        Some(c) => {
                            let mut f = c.file.reopen().map_err(io_err("reopen layer"))?;
                            tar.file(&name, &mut f, c.size, img.created)
                        }
                        None => {
                            let b = blobs
                                .get_mut(d)
                                .ok_or_else(|| ImageError::NotFound(format!("layer blob {d}")))?;
                            tar.file(&name, b.file.as_mut(), b.size, img.created)
                        }
                    }
                    .map_err(io_err("write archive"))?;
                    written.push(desc.digest.clone());
                }
                layers.push(desc);
            }
            let manifest = Manifest {
                schema_version: 2,
                media_type: Some(MEDIA_TYPE_MANIFEST.into()),
                config: Descriptor {
                    media_type: MEDIA_TYPE_CONFIG.into(),
                    digest: img.id.clone(),
                    size: img.raw_config.len() as u64,
                },
                layers: layers.clone(),
            };
            let raw_manifest = serde_json::to_vec(&manifest).map_err(|e| {
                ImageError::InvalidArgument(format!("serialize image manifest: {e}"))
            })?;
            let manifest_digest = Digest::of(&raw_manifest);
            for (digest, data) in [
                (&img.id, &img.raw_config),
                (&manifest_digest, &raw_manifest),
            ] {
                if !written.contains(digest) {
                    tar.bytes(&format!("blobs/sha256/{}", digest.hex()), data, img.created)
                        .map_err(io_err("write archive"))?;
                    written.push(digest.clone());
                }
            }
            let desc = json!({
                "mediaType": MEDIA_TYPE_MANIFEST,
                "digest": manifest_digest,
                "size": raw_manifest.len(),
            });
            if img.refs.is_empty() {
                index.push(desc.clone());
            }
            for r in &img.refs {
                let mut d = desc.clone();
                d["annotations"] = json!({
                    ANNOTATION_IMAGE_NAME: r.to_string(),
                    ANNOTATION_REF_NAME: r.tag().unwrap_or_default(),
                });
                index.push(d);
            }
            docker_manifest.push(json!({
                "Config": format!("blobs/sha256/{}", img.id.hex()),
                "RepoTags": if img.refs.is_empty() { Value::Null } else {
                    img.refs.iter().map(|r| r.familiar()).collect::<Vec<_>>().into()
                },
                "Layers": layers.iter().map(|l| format!("blobs/sha256/{}", l.digest.hex())).collect::<Vec<_>>(),
            }));
        }
        let index = json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_INDEX,
            "manifests": index,
        });
        let mut index_raw = serde_json::to_vec(&index).unwrap_or_default();
        index_raw.push(b'\n');
        let mut manifest_raw = serde_json::to_vec(&docker_manifest).unwrap_or_default();
        manifest_raw.push(b'\n');
        tar.bytes("index.json", &index_raw, 0)
            .and_then(|_| tar.bytes("manifest.json", &manifest_raw, 0))
            .and_then(|_| tar.bytes("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#, 0))
            .and_then(|_| tar.finish())
            .map_err(io_err("write archive"))?;
        Ok(())
    }

    /// Compresses `order`'s blobs into temp files of the content store's
    /// ingest dir (removed on drop, and at the next open after a crash).
    fn compress_layers(
        &self,
        order: &[Digest],
        blobs: &mut HashMap<Digest, Blob>,
        compression: LayerCompression,
    ) -> Result<HashMap<Digest, CompressedLayer>> {
        let ingest = self.content.root().join("ingest");
        self.compress_layers_in(&ingest, order, blobs, compression)
    }

    /// The same into `ingest`.
    fn compress_layers_in(
        &self,
        ingest: &std::path::Path,
        order: &[Digest],
        blobs: &mut HashMap<Digest, Blob>,
        compression: LayerCompression,
    ) -> Result<HashMap<Digest, CompressedLayer>> {
        // Each layer is compressed once: its stream moves to the worker.
        let jobs: Vec<(Digest, Box<dyn Read + Send>)> = order
            .iter()
            .map(|d| {
                let b = blobs
                    .get_mut(d)
                    .ok_or_else(|| ImageError::NotFound(format!("layer blob {d}")))?;
                let f = std::mem::replace(&mut b.file, Box::new(io::empty()));
                Ok((d.clone(), f))
            })
            .collect::<Result<_>>()?;
        let jobs = Mutex::new(jobs.into_iter().map(Some).collect::<Vec<_>>());
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Result<(Digest, CompressedLayer)>>> = Mutex::new(Vec::new());
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(order.len())
            .max(1);
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let job = {
                        let mut j = jobs.lock().unwrap_or_else(|p| p.into_inner());
                        match j.get_mut(i) {
                            Some(job) => job.take(),
                            None => break,
                        }
                    };
                    let Some((d, mut f)) = job else { break };
                    let r = compress_one(ingest, &mut f, compression).map(|c| (d, c));
                    results.lock().unwrap_or_else(|p| p.into_inner()).push(r);
                });
            }
        });
        results
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .into_iter()
            .collect()
    }
}

/// A compressed layer in a temp file (removed on drop).
pub struct CompressedLayer {
    /// The compressed bytes.
    pub file: tempfile::NamedTempFile,
    /// Their digest.
    pub digest: Digest,
    /// Their length.
    pub size: u64,
}

struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn compress_one(
    ingest: &std::path::Path,
    src: &mut dyn Read,
    compression: LayerCompression,
) -> Result<CompressedLayer> {
    let tmp = tempfile::Builder::new()
        .prefix("save-")
        .tempfile_in(ingest)
        .map_err(io_err("create temp file"))?;
    let out = HashWriter {
        inner: BufWriter::with_capacity(COPY_BUF, tmp.reopen().map_err(io_err("open temp"))?),
        hasher: Sha256::new(),
        size: 0,
    };
    let mut buf = vec![0u8; COPY_BUF];
    let copy = |enc: &mut dyn Write, src: &mut dyn Read, buf: &mut [u8]| -> io::Result<()> {
        loop {
            let n = src.read(buf)?;
            if n == 0 {
                return Ok(());
            }
            enc.write_all(&buf[..n])?;
        }
    };
    let mut out = match compression {
        LayerCompression::Zstd => {
            let mut enc = zstd::stream::write::Encoder::new(out, 3).map_err(io_err("zstd"))?;
            copy(&mut enc, src, &mut buf).map_err(io_err("compress layer"))?;
            enc.finish().map_err(io_err("compress layer"))?
        }
        _ => {
            let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
            copy(&mut enc, src, &mut buf).map_err(io_err("compress layer"))?;
            enc.finish().map_err(io_err("compress layer"))?
        }
    };
    out.flush().map_err(io_err("compress layer"))?;
    Ok(CompressedLayer {
        file: tmp,
        digest: Digest::from_sha256(out.hasher.finalize().as_slice()),
        size: out.size,
    })
}

/// Layer entries of the Docker format, by path (written in path order, as
/// Docker's directory walk does).
enum DockerEntry {
    Dir,
    Bytes(Vec<u8>),
    Layer(Digest),
    Symlink(String),
}

fn save_docker<W: Write>(
    images: &[SaveImage],
    blobs: &mut HashMap<Digest, Blob>,
    w: W,
) -> Result<()> {
    let mut entries: BTreeMap<String, (DockerEntry, i64)> = BTreeMap::new();
    // diff id → the path it was first written at.
    let mut layer_paths: HashMap<Digest, String> = HashMap::new();
    let mut manifest = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let saved: Vec<&Digest> = images.iter().map(|i| &i.id).collect();
    for img in images {
        let ids = gojson::v1_layer_ids(&img.config, &img.chain_ids);
        let mut layers = Vec::new();
        for ((v1, json), diff) in ids.iter().zip(&img.diff_ids) {
            let dir = v1.hex().to_string();
            layers.push(format!("{dir}/layer.tar"));
            if entries.contains_key(&dir) {
                continue;
            }
            let t = img.created;
            entries.insert(dir.clone(), (DockerEntry::Dir, t));
            entries.insert(
                format!("{dir}/VERSION"),
                (DockerEntry::Bytes(b"1.0".to_vec()), t),
            );
            entries.insert(
                format!("{dir}/json"),
                (DockerEntry::Bytes(json.clone().into_bytes()), t),
            );
            let layer = format!("{dir}/layer.tar");
            match layer_paths.get(diff) {
                Some(first) => {
                    entries.insert(layer, (DockerEntry::Symlink(format!("../{first}")), t));
                }
                None => {
                    layer_paths.insert(diff.clone(), layer.clone());
                    entries.insert(layer, (DockerEntry::Layer(diff.clone()), t));
                }
            }
        }
        entries.insert(
            format!("{}.json", img.id.hex()),
            (DockerEntry::Bytes(img.raw_config.clone()), img.created),
        );
        let top = ids
            .last()
            .map(|(id, _)| id.hex().to_string())
            .unwrap_or_default();
        for r in &img.refs {
            repositories
                .entry(r.familiar_name())
                .or_default()
                .insert(r.tag().unwrap_or_default().to_string(), top.clone());
        }
        // Go struct order: Config, RepoTags, Layers, Parent.
        let mut item = String::from("{\"Config\":");
        gojson::string(&mut item, &format!("{}.json", img.id.hex()));
        item.push_str(",\"RepoTags\":");
        if img.refs.is_empty() {
            item.push_str("null");
        } else {
            item.push('[');
            for (i, r) in img.refs.iter().enumerate() {
                if i > 0 {
                    item.push(',');
                }
                gojson::string(&mut item, &r.familiar());
            }
            item.push(']');
        }
        item.push_str(",\"Layers\":[");
        for (i, l) in layers.iter().enumerate() {
            if i > 0 {
                item.push(',');
            }
            gojson::string(&mut item, l);
        }
        item.push(']');
        if let Some(p) = img.parent.as_ref().filter(|p| saved.contains(p)) {
            item.push_str(",\"Parent\":");
            gojson::string(&mut item, &p.to_string());
        }
        item.push('}');
        manifest.push(item);
    }
    let manifest = format!("[{}]\n", manifest.join(","));

    let mut tar = TarOut::new(w);
    let err = || io_err("write archive");
    for (path, (entry, mtime)) in &entries {
        match entry {
            DockerEntry::Dir => tar.dir(&format!("{path}/"), *mtime),
            DockerEntry::Bytes(b) => tar.bytes(path, b, *mtime),
            DockerEntry::Symlink(t) => tar.symlink(path, t, *mtime),
            DockerEntry::Layer(d) => {
                let b = blobs
                    .get_mut(d)
                    .ok_or_else(|| ImageError::NotFound(format!("layer blob {d}")))?;
                tar.file(path, b.file.as_mut(), b.size, *mtime)
            }
        }
        .map_err(err())?;
    }
    tar.bytes("manifest.json", manifest.as_bytes(), 0)
        .map_err(err())?;
    if !repositories.is_empty() {
        let mut repos = String::from("{");
        for (i, (name, tags)) in repositories.iter().enumerate() {
            if i > 0 {
                repos.push(',');
            }
            gojson::string(&mut repos, name);
            repos.push_str(":{");
            for (j, (tag, id)) in tags.iter().enumerate() {
                if j > 0 {
                    repos.push(',');
                }
                gojson::string(&mut repos, tag);
                repos.push(':');
                gojson::string(&mut repos, id);
            }
            repos.push('}');
        }
        repos.push_str("}\n");
        tar.bytes("repositories", repos.as_bytes(), 0)
            .map_err(err())?;
    }
    tar.finish().map_err(err())?;
    Ok(())
}
