//! `save` and `load` with real archives: Docker 20.10 and OCI layouts, round
//! trips between stores, and hostile archives that must leave nothing behind.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use berth_image::{
    ArchiveFormat, Digest, ErrorKind, ImageStore, LayerCompression, LoadedImage,
    MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_ZSTD,
};
use serde_json::{json, Value};

mod common;
use common::layer_bytes;

/// A layer tar with `files` (path, content).
fn layer(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

fn config(diff_ids: &[Digest], cmd: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-02T03:04:05.5Z",
        "config": {"Cmd": [cmd], "Env": ["PATH=/bin"]},
        "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop) CMD <x>"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": diff_ids.iter().map(|_| json!({"created_by": "ADD x"})).collect::<Vec<_>>(),
    }))
    .unwrap()
}

/// Builds a tar archive of (path, data) entries, in order.
fn archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

struct Fixture {
    base: Vec<u8>,
    top: Vec<u8>,
    app: Vec<u8>,
    cfg_small: Vec<u8>,
    cfg_app: Vec<u8>,
}

fn fixture() -> Fixture {
    let base = layer(&[("etc/os-release", b"berth test\n"), ("bin/sh", b"#!sh\n")]);
    let top = layer(&[("etc/motd", b"hello\n")]);
    let app = layer(&[("app/run", &[7u8; 70_000][..])]);
    let cfg_small = config(&[Digest::of(&base), Digest::of(&top)], "sh");
    let cfg_app = config(
        &[Digest::of(&base), Digest::of(&top), Digest::of(&app)],
        "/app/run",
    );
    Fixture {
        base,
        top,
        app,
        cfg_small,
        cfg_app,
    }
}

/// A Docker-style archive written by hand (layers before manifest.json, as
/// Docker 20.10 writes them; the app image's base layers are symlinks).
fn docker_archive(f: &Fixture) -> Vec<u8> {
    let small_hex = Digest::of(&f.cfg_small).hex().to_string();
    let app_hex = Digest::of(&f.cfg_app).hex().to_string();
    let manifest = json!([
        {"Config": format!("{small_hex}.json"), "RepoTags": ["small:1", "small:latest"],
         "Layers": ["a/layer.tar", "b/layer.tar"]},
        {"Config": format!("{app_hex}.json"), "RepoTags": ["example.com/app:v1"],
         "Layers": ["a2/layer.tar", "b2/layer.tar", "c/layer.tar"]},
    ]);
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let file = |b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data).unwrap();
    };
    let link = |b: &mut tar::Builder<Vec<u8>>, name: &str, target: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, name, target).unwrap();
    };
    // A symlink before its target, like Docker's lexical order can produce.
    link(&mut b, "a2/layer.tar", "../a/layer.tar");
    file(&mut b, "a/VERSION", b"1.0");
    file(&mut b, "a/json", b"{}");
    file(&mut b, "a/layer.tar", &f.base);
    file(&mut b, "b/layer.tar", &gzip(&f.top));
    link(&mut b, "b2/layer.tar", "../b/layer.tar");
    file(&mut b, "c/layer.tar", &f.app);
    file(&mut b, &format!("{small_hex}.json"), &f.cfg_small);
    file(&mut b, &format!("{app_hex}.json"), &f.cfg_app);
    file(&mut b, "manifest.json", &manifest);
    b.into_inner().unwrap()
}

fn count(dir: &Path) -> usize {
    fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

fn assert_empty_store(root: &Path) {
    assert_eq!(count(&root.join("content/blobs/sha256")), 0, "blobs left");
    assert_eq!(count(&root.join("content/ingest")), 0, "ingest left");
    assert_eq!(count(&root.join("snapshots")), 0, "snapshots left");
    let images = fs::read_to_string(root.join("images/images.json")).unwrap_or_default();
    assert!(
        images.trim().is_empty() || images.trim() == "{}",
        "{images}"
    );
}

/// Reads a tar archive into path → (entry type, data or link target).
fn entries(data: &[u8]) -> BTreeMap<String, (tar::EntryType, Vec<u8>)> {
    let mut a = tar::Archive::new(data);
    let mut out = BTreeMap::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().display().to_string();
        let kind = e.header().entry_type();
        let mut v = Vec::new();
        if kind.is_symlink() {
            v = e.link_name_bytes().unwrap().into_owned();
        } else {
            e.read_to_end(&mut v).unwrap();
        }
        out.insert(path, (kind, v));
    }
    out
}

fn reference(l: &LoadedImage) -> String {
    l.reference.clone().unwrap_or_else(|| l.id.to_string())
}

#[test]
fn docker_archive_load_save_round_trip() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("a")).unwrap();
    // The archive itself gzip-compressed.
    let loaded = store.load(&gzip(&docker_archive(&f))[..]).unwrap();
    let small = Digest::of(&f.cfg_small);
    let app = Digest::of(&f.cfg_app);
    assert_eq!(
        loaded.iter().map(reference).collect::<Vec<_>>(),
        vec!["small:1", "small:latest", "example.com/app:v1"]
    );
    assert_eq!(loaded[0].id, small);
    assert_eq!(loaded[2].id, app);
    let img = store.get("example.com/app:v1").unwrap();
    assert_eq!(img.id, app);
    assert_eq!(img.chain_ids.len(), 3);
    assert_eq!(img.broken, None);
    let dirs = store.lower_dirs(&img);
    assert_eq!(fs::read(dirs[0].join("app/run")).unwrap().len(), 70_000);
    assert_eq!(fs::read(dirs[1].join("etc/motd")).unwrap(), b"hello\n");
    assert_eq!(
        fs::read(dirs[2].join("etc/os-release")).unwrap(),
        b"berth test\n"
    );
    // Shared layers: 3 snapshots (each keeping its layer as a tar-split), 2 configs +
    // 2 manifests.
    assert_eq!(store.snapshots().list().unwrap().len(), 3);
    assert_eq!(store.content().list().unwrap().len(), 4);
    let hist = store.history("small").unwrap();
    assert_eq!(hist.len(), 2);
    assert_eq!(hist[0].size, 6);

    // Loading again only re-tags.
    let again = store.load(&docker_archive(&f)[..]).unwrap();
    assert_eq!(again, loaded);
    assert_eq!(store.list(true).len(), 2);

    // Save both (one by repo name: all its tags), Docker format.
    let mut out = Vec::new();
    store
        .save(
            &["small".into(), "example.com/app:v1".into()],
            ArchiveFormat::Docker,
            LayerCompression::Gzip,
            &mut out,
        )
        .unwrap();
    let e = entries(&out);
    let manifest: Value = serde_json::from_slice(&e["manifest.json"].1).unwrap();
    assert_eq!(manifest.as_array().unwrap().len(), 2);
    assert_eq!(manifest[0]["Config"], format!("{}.json", small.hex()));
    assert_eq!(manifest[0]["RepoTags"], json!(["small:1", "small:latest"]));
    assert_eq!(manifest[1]["RepoTags"], json!(["example.com/app:v1"]));
    let small_layers: Vec<String> = serde_json::from_value(manifest[0]["Layers"].clone()).unwrap();
    let app_layers: Vec<String> = serde_json::from_value(manifest[1]["Layers"].clone()).unwrap();
    // The base layer has the same v1 id in both images; small's top layer
    // (with the image's config) differs from app's middle layer.
    assert_eq!(small_layers[0], app_layers[0]);
    assert_ne!(small_layers[1], app_layers[1]);
    // Same content → written once, the other one is a symlink.
    let (k, target) = &e[&app_layers[1]];
    assert!(k.is_symlink());
    assert_eq!(
        String::from_utf8_lossy(target),
        format!("../{}", small_layers[1])
    );
    assert_eq!(e[&small_layers[1]].1, f.top);
    assert_eq!(e[&app_layers[2]].1, f.app);
    let v1_dir = small_layers[1].trim_end_matches("/layer.tar");
    assert_eq!(e[&format!("{v1_dir}/VERSION")].1, b"1.0");
    let v1: Value = serde_json::from_slice(&e[&format!("{v1_dir}/json")].1).unwrap();
    assert_eq!(v1["id"], v1_dir);
    assert_eq!(v1["parent"], small_layers[0].trim_end_matches("/layer.tar"));
    assert_eq!(v1["config"]["Cmd"], json!(["sh"]));
    assert_eq!(v1["created"], "2024-01-02T03:04:05.5Z");
    let repos: Value = serde_json::from_slice(&e["repositories"].1).unwrap();
    assert_eq!(repos["small"]["latest"], v1_dir);
    assert_eq!(
        repos["example.com/app"]["v1"],
        app_layers[2].trim_end_matches("/layer.tar")
    );
    assert_eq!(e[&format!("{}.json", app.hex())].1, f.cfg_app);
    // Exactly: 4 distinct v1 layers (dir, VERSION, json, layer.tar), configs,
    // manifest.json, repositories.
    assert_eq!(e.len(), 4 * 4 + 2 + 2);

    // Load the saved archive into a fresh store: same images.
    let store_b = ImageStore::open(&tmp.path().join("b")).unwrap();
    let loaded_b = store_b.load(&out[..]).unwrap();
    assert_eq!(loaded_b, loaded);
    assert_eq!(
        store_b.get("example.com/app:v1").unwrap().chain_ids,
        img.chain_ids
    );

    // By id: untagged.
    let mut out = Vec::new();
    store
        .save(
            &[app.short().to_string()],
            ArchiveFormat::Docker,
            LayerCompression::None,
            &mut out,
        )
        .unwrap();
    let e = entries(&out);
    let manifest: Value = serde_json::from_slice(&e["manifest.json"].1).unwrap();
    assert_eq!(manifest[0]["RepoTags"], Value::Null);
    assert!(!e.contains_key("repositories"));
    let store_c = ImageStore::open(&tmp.path().join("c")).unwrap();
    assert_eq!(
        store_c.load(&out[..]).unwrap(),
        vec![LoadedImage {
            id: app.clone(),
            reference: None
        }]
    );
    let err = store
        .save(
            &["nope".into()],
            ArchiveFormat::Docker,
            LayerCompression::None,
            Vec::new(),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.to_string(), "No such image: nope:latest");
}

#[test]
fn oci_layout_round_trips_with_each_compression() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("src")).unwrap();
    store.load(&docker_archive(&f)[..]).unwrap();
    for (i, (compression, media_type)) in [
        (LayerCompression::Gzip, MEDIA_TYPE_LAYER_GZIP),
        (LayerCompression::Zstd, MEDIA_TYPE_LAYER_ZSTD),
        (
            LayerCompression::None,
            "application/vnd.oci.image.layer.v1.tar",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let mut out = Vec::new();
        store
            .save(
                &[
                    "small:1".into(),
                    "small:latest".into(),
                    "example.com/app:v1".into(),
                ],
                ArchiveFormat::Oci,
                compression,
                &mut out,
            )
            .unwrap();
        let e = entries(&out);
        assert_eq!(e["oci-layout"].1, br#"{"imageLayoutVersion":"1.0.0"}"#);
        let index: Value = serde_json::from_slice(&e["index.json"].1).unwrap();
        let m = index["manifests"].as_array().unwrap();
        assert_eq!(m.len(), 3, "one descriptor per tag");
        assert_eq!(
            m[0]["annotations"]["io.containerd.image.name"],
            "docker.io/library/small:1"
        );
        assert_eq!(
            m[0]["annotations"]["org.opencontainers.image.ref.name"],
            "1"
        );
        assert_eq!(m[0]["digest"], m[1]["digest"]);
        // Every blob's name is its digest.
        let mut layer_blobs = 0;
        for (path, (_, data)) in &e {
            if let Some(hex) = path.strip_prefix("blobs/sha256/") {
                if !hex.is_empty() {
                    assert_eq!(Digest::of(data).hex(), hex, "{path}");
                }
            }
        }
        let mhex = m[2]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:");
        let manifest: Value =
            serde_json::from_slice(&e[&format!("blobs/sha256/{mhex}")].1).unwrap();
        for l in manifest["layers"].as_array().unwrap() {
            assert_eq!(l["mediaType"], media_type);
            layer_blobs += 1;
        }
        assert_eq!(layer_blobs, 3);
        assert!(
            e.contains_key("manifest.json"),
            "docker-compatible manifest"
        );

        let dst = ImageStore::open(&tmp.path().join(format!("dst{i}"))).unwrap();
        let loaded = dst.load(&out[..]).unwrap();
        assert_eq!(
            loaded.iter().map(reference).collect::<Vec<_>>(),
            vec!["small:1", "small:latest", "example.com/app:v1"]
        );
        let img = dst.get("example.com/app:v1").unwrap();
        assert_eq!(img.id, Digest::of(&f.cfg_app));
        assert_eq!(
            fs::read(dst.lower_dirs(&img)[0].join("app/run"))
                .unwrap()
                .len(),
            70_000
        );
        // Kept uncompressed, whatever the archive held.
        let top = img.chain_ids.len() - 1;
        assert!(layer_bytes(&dst, "example.com/app:v1", top) == f.app);
    }
}

/// An OCI layout by hand: nested index, one platform per architecture.
fn oci_archive(f: &Fixture, tamper: impl Fn(&mut Value, &mut Vec<(String, Vec<u8>)>)) -> Vec<u8> {
    let base_gz = gzip(&f.base);
    let top_gz = gzip(&f.top);
    let cfg = f.cfg_small.clone();
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": Digest::of(&cfg), "size": cfg.len()},
        "layers": [
            {"mediaType": MEDIA_TYPE_LAYER_GZIP, "digest": Digest::of(&base_gz), "size": base_gz.len()},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": Digest::of(&f.top), "size": f.top.len()},
        ],
    });
    let _ = top_gz;
    let mut blobs: Vec<(String, Vec<u8>)> = vec![
        (
            format!("blobs/sha256/{}", Digest::of(&base_gz).hex()),
            base_gz,
        ),
        (
            format!("blobs/sha256/{}", Digest::of(&f.top).hex()),
            f.top.clone(),
        ),
        (format!("blobs/sha256/{}", Digest::of(&cfg).hex()), cfg),
    ];
    tamper(&mut manifest, &mut blobs);
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let other = br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":1},"layers":[]}"#.to_vec();
    let list = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": Digest::of(&other),
             "size": other.len(), "platform": {"os": "linux", "architecture": "s390x"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": Digest::of(&manifest),
             "size": manifest.len(), "platform": {"os": "linux", "architecture": host_arch()}},
        ],
    }))
    .unwrap();
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
                        "digest": Digest::of(&list), "size": list.len(),
                        "annotations": {"org.opencontainers.image.ref.name": "localhost:5000/oci:7"}}],
    }))
    .unwrap();
    blobs.push((
        format!("blobs/sha256/{}", Digest::of(&manifest).hex()),
        manifest,
    ));
    blobs.push((format!("blobs/sha256/{}", Digest::of(&other).hex()), other));
    blobs.push((format!("blobs/sha256/{}", Digest::of(&list).hex()), list));
    let mut all: Vec<(&str, &[u8])> = blobs.iter().map(|(p, d)| (p.as_str(), &d[..])).collect();
    all.push(("index.json", &index));
    all.push(("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#));
    archive(&all)
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[test]
fn oci_index_with_platforms_and_zstd_archive() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path()).unwrap();
    let data = zstd::encode_all(&oci_archive(&f, |_, _| {})[..], 3).unwrap();
    let loaded = store.load(&data[..]).unwrap();
    assert_eq!(
        loaded,
        vec![LoadedImage {
            id: Digest::of(&f.cfg_small),
            reference: Some("localhost:5000/oci:7".into())
        }]
    );
    let img = store.get("localhost:5000/oci:7").unwrap();
    assert_eq!(
        fs::read(store.lower_dirs(&img)[1].join("bin/sh")).unwrap(),
        b"#!sh\n"
    );
}

fn expect_refused(data: &[u8], msg: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path()).unwrap();
    let err = store.load(data).unwrap_err();
    assert!(err.to_string().contains(msg), "{err} (wanted {msg:?})");
    assert_ne!(err.kind(), ErrorKind::NotFound);
    assert!(store.list(true).is_empty());
    drop(store);
    assert_empty_store(tmp.path());
}

fn set(v: &mut Value, path: &[&str], to: Value) {
    let mut cur = v;
    for p in path {
        cur = match p.parse::<usize>() {
            Ok(i) => &mut cur[i],
            Err(_) => &mut cur[*p],
        };
    }
    *cur = to;
}

#[test]
fn hostile_archives_leave_nothing() {
    let f = fixture();
    let small_hex = Digest::of(&f.cfg_small).hex().to_string();
    let cfg_name = format!("{small_hex}.json");
    let good_manifest =
        json!([{"Config": cfg_name, "RepoTags": ["x:1"], "Layers": ["a.tar", "b.tar"]}]);
    let docker = |manifest: &Value, extra: &[(&str, &[u8])]| {
        let m = serde_json::to_vec(manifest).unwrap();
        let mut all: Vec<(&str, &[u8])> = vec![
            ("a.tar", &f.base),
            ("b.tar", &f.top),
            (&cfg_name, &f.cfg_small),
        ];
        all.extend_from_slice(extra);
        all.push(("manifest.json", &m));
        archive(&all)
    };
    // Sanity: the good one loads.
    let tmp = tempfile::tempdir().unwrap();
    ImageStore::open(tmp.path())
        .unwrap()
        .load(&docker(&good_manifest, &[])[..])
        .unwrap();

    // Swapped layers: diff id mismatch.
    let mut m = good_manifest.clone();
    set(&mut m, &["0", "Layers"], json!(["b.tar", "a.tar"]));
    expect_refused(&docker(&m, &[]), "invalid diffID for layer 0: expected");
    // Missing layer file.
    set(&mut m, &["0", "Layers"], json!(["a.tar", "nope.tar"]));
    expect_refused(&docker(&m, &[]), "layer nope.tar not found in the archive");
    // Path escaping the archive.
    set(
        &mut m,
        &["0", "Layers"],
        json!(["a.tar", "../../etc/passwd"]),
    );
    expect_refused(&docker(&m, &[]), "escapes the archive");
    // Layers count mismatch.
    set(&mut m, &["0", "Layers"], json!(["a.tar"]));
    expect_refused(
        &docker(&m, &[]),
        "layers length mismatch: expected 1, got 2",
    );
    // Missing config.
    let mut m = good_manifest.clone();
    set(&mut m, &["0", "Config"], json!("missing.json"));
    expect_refused(&docker(&m, &[]), "config missing.json not found");
    // Config whose name is not its digest.
    let other = config(&[Digest::of(&f.base), Digest::of(&f.top)], "other");
    let name = format!("{small_hex}.json");
    let m = serde_json::to_vec(&good_manifest).unwrap();
    expect_refused(
        &archive(&[
            ("a.tar", &f.base),
            ("b.tar", &f.top),
            (&name, &other),
            ("manifest.json", &m),
        ]),
        "digest mismatch",
    );
    // Bad JSON.
    expect_refused(
        &archive(&[("manifest.json", b"{not json")]),
        "manifest.json",
    );
    expect_refused(
        &archive(&[("manifest.json", b"[{\"Config\": 3}]")]),
        "manifest.json",
    );
    // Bad tag.
    let mut m = good_manifest.clone();
    set(&mut m, &["0", "RepoTags"], json!(["UPPER:1"]));
    expect_refused(&docker(&m, &[]), "invalid tag \"UPPER:1\"");
    // Legacy and garbage.
    expect_refused(&archive(&[("repositories", b"{}")]), "legacy archive");
    expect_refused(
        &archive(&[("hello", b"world")]),
        "no manifest.json or index.json",
    );
    expect_refused(&vec![0x42u8; 4096], "invalid");
    let full = gzip(&docker(&good_manifest, &[]));
    expect_refused(&full[..full.len() / 2], "");

    // Hostile layer contents.
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..7].copy_from_slice(b"../evil");
    h.set_size(4);
    h.set_mode(0o644);
    h.set_cksum();
    let mut evil = h.as_bytes().to_vec();
    evil.extend_from_slice(b"evil");
    evil.resize(2048, 0);
    let evil_cfg = config(&[Digest::of(&evil)], "sh");
    let evil_name = format!("{}.json", Digest::of(&evil_cfg).hex());
    let m = serde_json::to_vec(
        &json!([{"Config": evil_name, "RepoTags": ["e:1"], "Layers": ["l.tar"]}]),
    )
    .unwrap();
    expect_refused(
        &archive(&[
            ("l.tar", &evil),
            (&evil_name, &evil_cfg),
            ("manifest.json", &m),
        ]),
        "path escapes the layer",
    );
    // Symlink escape then write through it.
    let mut b = tar::Builder::new(Vec::new());
    let mut hl = tar::Header::new_gnu();
    hl.set_entry_type(tar::EntryType::Symlink);
    hl.set_size(0);
    b.append_link(&mut hl, "esc", "/tmp").unwrap();
    let mut hf = tar::Header::new_gnu();
    hf.set_size(1);
    hf.set_mode(0o644);
    b.append_data(&mut hf, "esc/pwned", &b"x"[..]).unwrap();
    let sym = b.into_inner().unwrap();
    let sym_cfg = config(&[Digest::of(&sym)], "sh");
    let sym_name = format!("{}.json", Digest::of(&sym_cfg).hex());
    let m = serde_json::to_vec(
        &json!([{"Config": sym_name, "RepoTags": ["s:1"], "Layers": ["l.tar"]}]),
    )
    .unwrap();
    expect_refused(
        &archive(&[
            ("l.tar", &sym),
            (&sym_name, &sym_cfg),
            ("manifest.json", &m),
        ]),
        "is a symlink",
    );
    assert!(!Path::new("/tmp/pwned").exists());

    // OCI: wrong layer digest, wrong size, bad media type, bad config digest.
    expect_refused(
        &oci_archive(&f, |m, _| set(m, &["layers", "1", "size"], json!(1))),
        "size mismatch",
    );
    expect_refused(
        &oci_archive(&f, |m, _| {
            set(m, &["layers", "1", "digest"], json!(Digest::of(b"x")))
        }),
        "not found in the archive",
    );
    expect_refused(
        &oci_archive(&f, |m, _| {
            set(m, &["layers", "0", "mediaType"], json!("text/plain"))
        }),
        "unsupported layer media type",
    );
    expect_refused(
        &oci_archive(&f, |_, blobs| {
            // A blob whose content does not match its name.
            let (_, data) = blobs
                .iter_mut()
                .find(|(p, _)| p.ends_with(Digest::of(&f.top).hex()))
                .unwrap();
            data[600] ^= 1;
        }),
        "digest mismatch",
    );
}

#[test]
fn decompression_bomb_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = ImageStore::open(tmp.path()).unwrap();
    store.set_apply_options(berth_snapshot_opts(64 * 1024));
    let big = layer(&[("zeros", &vec![0u8; 1 << 20][..])]);
    let cfg = config(&[Digest::of(&big)], "sh");
    let name = format!("{}.json", Digest::of(&cfg).hex());
    let gz = gzip(&big);
    assert!(gz.len() < 64 * 1024);
    let m =
        serde_json::to_vec(&json!([{"Config": name, "RepoTags": ["b:1"], "Layers": ["l.tar"]}]))
            .unwrap();
    let err = store
        .load(&archive(&[("l.tar", &gz), (&name, &cfg), ("manifest.json", &m)])[..])
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("exceeds the maximum uncompressed size"),
        "{err}"
    );
    drop(store);
    assert_empty_store(tmp.path());
}

fn berth_snapshot_opts(max: u64) -> berth_snapshot::ApplyOptions {
    berth_snapshot::ApplyOptions { max_size: max }
}

#[test]
fn same_layer_at_two_positions() {
    // x alone, and y then x: x's content gets two snapshots (two chain ids).
    let x = layer(&[("x", b"x")]);
    let y = layer(&[("y", b"y")]);
    let c1 = config(&[Digest::of(&x)], "one");
    let c2 = config(&[Digest::of(&y), Digest::of(&x)], "two");
    let n1 = format!("{}.json", Digest::of(&c1).hex());
    let n2 = format!("{}.json", Digest::of(&c2).hex());
    let m = serde_json::to_vec(&json!([
        {"Config": n1, "RepoTags": ["one:1"], "Layers": ["x.tar"]},
        {"Config": n2, "RepoTags": ["two:1"], "Layers": ["y.tar", "x.tar"]},
    ]))
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path()).unwrap();
    store
        .load(
            &archive(&[
                ("x.tar", &x),
                ("y.tar", &y),
                (&n1, &c1),
                (&n2, &c2),
                ("manifest.json", &m),
            ])[..],
        )
        .unwrap();
    let two = store.get("two:1").unwrap();
    assert_eq!(fs::read(store.lower_dirs(&two)[0].join("x")).unwrap(), b"x");
    assert_eq!(store.snapshots().list().unwrap().len(), 3);
    // Save and reload: the same images.
    let mut out = Vec::new();
    store
        .save(
            &["one:1".into(), "two:1".into()],
            ArchiveFormat::Docker,
            LayerCompression::None,
            &mut out,
        )
        .unwrap();
    let dst = ImageStore::open(&tmp.path().join("dst")).unwrap();
    assert_eq!(dst.load(&out[..]).unwrap().len(), 2);
    assert_eq!(dst.get("two:1").unwrap().chain_ids, two.chain_ids);
}

/// `rmi -f` of an image a stopped container still uses, while the image is being saved: the
/// container's layers stay (the save's protection of the snapshots it reads removes nothing).
#[test]
fn save_racing_rmi_force_keeps_a_stopped_containers_layers() {
    struct RmiDuringSave<'a> {
        store: &'a ImageStore,
        id: String,
        done: bool,
    }
    impl Write for RmiDuringSave<'_> {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if !self.done {
                self.done = true;
                self.store
                    .delete(&self.id, true, &|_| vec![("ctr".to_string(), false)])
                    .unwrap();
            }
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let opts = berth_image::ImportOptions {
        reference: Some("x:1".into()),
        changes: vec![],
        message: None,
        source: "-".into(),
    };
    let img = store.import(&layer(&[("f", b"data")])[..], &opts).unwrap();
    let chain = store.get("x:1").unwrap().chain_ids[0].clone();
    let w = RmiDuringSave {
        store: &store,
        id: img.id.to_string(),
        done: false,
    };
    store
        .save(
            &["x:1".to_string()],
            ArchiveFormat::Docker,
            LayerCompression::None,
            w,
        )
        .unwrap();
    assert!(store.get("x:1").is_err(), "the image is gone");
    assert!(
        store.snapshots().exists(&chain),
        "the stopped container's layer must stay"
    );
}
