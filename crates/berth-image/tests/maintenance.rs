//! `check`, `prune`, `disk_usage` and crash leftovers on real stores.

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::process::Command;

use berth_image::{
    CommitRequest, ContainerConfig, DeleteItem, Digest, FindingKind, ImageStore, ImportOptions,
};

fn layer(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn import(store: &ImageStore, reference: Option<&str>, data: &[u8]) -> Digest {
    let opts = ImportOptions {
        reference: reference.map(str::to_string),
        changes: vec![],
        message: None,
        source: "-".into(),
    };
    store.import(&layer(&[("f", data)])[..], &opts).unwrap().id
}

fn commit(store: &ImageStore, parent: &Digest, reference: Option<&str>, data: &[u8]) -> Digest {
    let req = CommitRequest {
        parent: Some(parent.clone()),
        reference: reference.map(str::to_string),
        author: String::new(),
        comment: String::new(),
        config: ContainerConfig::default(),
        container_id: "c".into(),
        created_by: "sh".into(),
    };
    store.commit(req, &layer(&[("g", data)])[..]).unwrap().id
}

fn kinds(r: &berth_image::CheckReport) -> Vec<FindingKind> {
    let mut k: Vec<FindingKind> = r.findings.iter().map(|f| f.kind).collect();
    k.sort_by_key(|k| format!("{k:?}"));
    k
}

fn du(path: &Path) -> u64 {
    let out = Command::new("du")
        .arg("-s")
        .arg("-B1")
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn check_finds_orphans_leftovers_and_repairs() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let store = ImageStore::open(root).unwrap();
    let a = import(&store, Some("a"), b"aaaa");
    commit(&store, &a, Some("b"), b"bbbb");
    let r = store.check(&[], false).unwrap();
    assert!(r.findings.is_empty(), "{r:?}");
    assert_eq!((r.images_checked, r.snapshots_checked), (2, 2));
    // Two configs and two manifests: the layers are their snapshots' files and tar-splits.
    assert_eq!(r.blobs_checked, 2 + 2);
    assert!(r.is_consistent());

    // Orphans and leftovers.
    let orphan_blob = store.content().put(b"nobody needs me").unwrap();
    let orphan_tar = layer(&[("o", b"o")]);
    let orphan_snap = store
        .snapshots()
        .create_from_tar(None, None, &orphan_tar[..], &Default::default())
        .unwrap();
    let kept_tar = layer(&[("k", b"k")]);
    let kept = store
        .snapshots()
        .create_from_tar(None, None, &kept_tar[..], &Default::default())
        .unwrap();
    fs::create_dir_all(root.join("snapshots/tmp-crash/fs")).unwrap();
    fs::write(root.join("content/ingest/ingest-crash"), b"partial").unwrap();
    let r = store
        .check(std::slice::from_ref(&kept.chain_id), false)
        .unwrap();
    assert_eq!(
        kinds(&r),
        vec![
            FindingKind::OrphanBlob,
            FindingKind::OrphanSnapshot,
            FindingKind::TempLeftover,
            FindingKind::TempLeftover
        ],
        "{r:?}"
    );
    assert!(r.is_consistent());
    assert!(r
        .findings
        .iter()
        .any(|f| f.object == orphan_blob.to_string()));
    assert!(r
        .findings
        .iter()
        .any(|f| f.object == orphan_snap.chain_id.to_string()));
    let json = serde_json::to_value(&r).unwrap();
    assert!(json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["kind"] == "orphan_blob" && f["repaired"] == false));
    let r = store
        .check(std::slice::from_ref(&kept.chain_id), true)
        .unwrap();
    assert!(r.findings.iter().all(|f| f.repaired), "{r:?}");
    let r = store
        .check(std::slice::from_ref(&kept.chain_id), false)
        .unwrap();
    assert!(r.findings.is_empty(), "{r:?}");
    assert!(store.snapshots().exists(&kept.chain_id));
    assert!(!root.join("snapshots/tmp-crash").exists());
}

#[test]
fn corrupt_and_missing_content_marks_images_broken() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let store = ImageStore::open(root).unwrap();
    let a = import(&store, Some("a"), b"aaaa");
    let b = import(&store, Some("b"), b"bbbb");
    // Corrupt a's layer: a file of its snapshot changed, same size, so only the layer's
    // digest can tell. Remove b's snapshot: its layer goes with it (no blob copy).
    let a_chain = store.get("a").unwrap().chain_ids[0].clone();
    fs::write(store.snapshots().fs_path(&a_chain).join("f"), b"zzzz").unwrap();
    let b_chain = store.get("b").unwrap().chain_ids[0].clone();
    fs::remove_dir_all(store.snapshots().dir(&b_chain)).unwrap();

    let r = store.check(&[], false).unwrap();
    assert_eq!(
        kinds(&r),
        vec![
            FindingKind::BrokenImage,
            FindingKind::BrokenImage,
            FindingKind::CorruptSnapshot,
            FindingKind::MissingBlob,
            FindingKind::MissingSnapshot
        ],
        "{r:?}"
    );
    assert!(!r.is_consistent());
    assert_eq!(store.get("a").unwrap().broken, None, "not repaired yet");
    let r = store.check(&[], true).unwrap();
    assert!(
        r.findings.iter().all(|f| matches!(
            f.kind,
            FindingKind::MissingSnapshot | FindingKind::MissingBlob
        ) || f.repaired),
        "{r:?}"
    );
    let img = store.get("a").unwrap();
    assert!(
        img.broken.as_deref().unwrap().contains("corrupt"),
        "{:?}",
        img.broken
    );
    assert!(store.get("b").unwrap().broken.unwrap().contains("missing"));

    // Persisted, still listed and removable after a reopen.
    drop(store);
    let store = ImageStore::open(root).unwrap();
    assert_eq!(store.list(true).len(), 2);
    assert!(store.get(a.hex()).unwrap().broken.is_some());
    assert!(store.get(b.hex()).unwrap().broken.is_some());
    store.delete("a", false, &|_| Vec::new()).unwrap();
    store.delete("b", false, &|_| Vec::new()).unwrap();
    store.prune_unused(&[]).unwrap();
    let r = store.check(&[], false).unwrap();
    assert!(r.findings.is_empty(), "{r:?}");

    // Re-importing identical content heals a broken record.
    let a2 = import(&store, Some("a"), b"aaaa");
    assert_eq!(store.get(a2.hex()).unwrap().broken, None);
}

#[test]
fn interrupted_load_leaves_only_orphans() {
    // A crash after the blobs and snapshots are committed but before the
    // records are written: simulate by restoring the old records.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let store = ImageStore::open(root).unwrap();
    import(&store, Some("keep"), b"keep");
    let images = fs::read(root.join("images/images.json")).unwrap();
    let refs = fs::read(root.join("images/references.json")).unwrap();
    let a = import(&store, Some("a"), b"aaaa");
    commit(&store, &a, Some("b"), b"bbbb");
    drop(store);
    fs::write(root.join("images/images.json"), images).unwrap();
    fs::write(root.join("images/references.json"), refs).unwrap();
    fs::create_dir_all(root.join("snapshots/tmp-123/fs/x")).unwrap();
    fs::write(root.join("content/ingest/ingest-x"), b"x").unwrap();
    let store = ImageStore::open(root).unwrap();
    assert!(!root.join("snapshots/tmp-123").exists());
    let r = store.check(&[], false).unwrap();
    assert!(r.is_consistent(), "{r:?}");
    assert!(!r.findings.is_empty());
    store.prune_unused(&[]).unwrap();
    assert!(store.check(&[], false).unwrap().findings.is_empty());
    assert_eq!(store.list(true).len(), 1);
}

#[test]
fn prune_and_disk_usage() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let store = ImageStore::open(root).unwrap();
    let base = import(&store, Some("base"), &[1u8; 100_000]);
    let child = commit(&store, &base, Some("child"), &[2u8; 50_000]);
    let dangling = import(&store, None, &[3u8; 30_000]);
    let used = import(&store, None, &[4u8; 20_000]);
    let mid = commit(&store, &base, None, &[5u8; 10]);
    let top = commit(&store, &mid, None, &[6u8; 10]);

    let du_all = store.disk_usage().unwrap();
    let usage = |id: &Digest| du_all.images.iter().find(|u| u.id == *id).unwrap().clone();
    assert_eq!(usage(&base).size, 100_000);
    assert_eq!(usage(&base).shared_size, 100_000);
    assert_eq!(usage(&child).size, 150_000);
    assert_eq!(usage(&child).shared_size, 100_000);
    assert_eq!(usage(&child).unique_size, 50_000);
    assert_eq!(usage(&dangling).shared_size, 0);
    let real = du(&root.join("content")) + du(&root.join("snapshots")) + du(&root.join("images"));
    assert_eq!(du_all.layers_size, real);
    let whole = du(root);
    assert!(
        du_all.layers_size.abs_diff(whole) * 50 <= whole,
        "{} vs {whole}",
        du_all.layers_size
    );

    // Dangling only: `dangling`, then `top`, then its now-dangling parent `mid`.
    let in_use: HashSet<Digest> = [used.clone()].into();
    let r = store.prune(false, &in_use, &[]).unwrap();
    let deleted: Vec<String> = r
        .deleted
        .iter()
        .filter_map(|d| match d {
            DeleteItem::Deleted(id) => Some(id.clone()),
            _ => None,
        })
        .collect();
    for id in [&dangling, &top, &mid] {
        assert!(
            deleted.contains(&id.to_string()),
            "{id} not pruned: {deleted:?}"
        );
    }
    assert!(r.space_reclaimed >= 30_000, "{}", r.space_reclaimed);
    assert!(store.get("base").is_ok() && store.get("child").is_ok());
    assert!(store.get(used.hex()).is_ok());

    // All: everything not in use.
    let r = store.prune(true, &in_use, &[]).unwrap();
    assert!(r
        .deleted
        .contains(&DeleteItem::Untagged("child:latest".into())));
    assert!(r
        .deleted
        .contains(&DeleteItem::Untagged("base:latest".into())));
    assert_eq!(store.list(true).len(), 1);
    assert!(r.space_reclaimed >= 150_000);
    let r = store.check(&[], false).unwrap();
    assert!(r.findings.is_empty(), "{r:?}");
    assert_eq!(store.snapshots().list().unwrap().len(), 1);
}
