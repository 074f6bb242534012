//! `commit`: a container's diff on top of its image.

use std::fs;
use std::path::Path;

use berth_image::{CommitRequest, ContainerConfig, Digest, ErrorKind, ImageStore, ImportOptions};

mod common;
use common::layer_bytes;

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

fn base(store: &ImageStore) -> Digest {
    let opts = ImportOptions {
        reference: Some("base:1".into()),
        changes: vec!["CMD [\"sh\"]".into()],
        message: None,
        source: "-".into(),
    };
    store
        .import(&layer(&[("etc/motd", b"hi\n")])[..], &opts)
        .unwrap()
        .id
}

fn req(parent: &Digest, reference: Option<&str>) -> CommitRequest {
    CommitRequest {
        parent: Some(parent.clone()),
        reference: reference.map(str::to_string),
        author: "Jane <jane@example.com>".into(),
        comment: "added a file".into(),
        config: ContainerConfig {
            cmd: Some(vec!["/app".into()]),
            env: Some(vec!["A=1".into()]),
            ..Default::default()
        },
        container_id: "c0ffee".repeat(10) + "abcd",
        created_by: "sh -c echo > /app".into(),
    }
}

fn count(dir: &Path) -> usize {
    fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn commit_adds_a_layer_and_history() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path()).unwrap();
    let parent = base(&store);
    let diff = layer(&[("app", &[1u8; 1000][..]), (".wh.gone", b"")]);
    let res = store.commit(req(&parent, Some("app")), &diff[..]).unwrap();
    assert_eq!(res.reference.as_deref(), Some("app:latest"));
    let img = store.get("app").unwrap();
    assert_eq!(img.parent.as_ref(), Some(&parent));
    assert_eq!(img.chain_ids.len(), 2);
    assert_eq!(img.chain_ids[0], store.get("base:1").unwrap().chain_ids[0]);
    assert_eq!(img.config.rootfs.diff_ids[1], Digest::of(&diff));
    assert_eq!(
        img.config.author.as_deref(),
        Some("Jane <jane@example.com>")
    );
    assert_eq!(img.config.comment.as_deref(), Some("added a file"));
    assert_eq!(
        img.config.config.as_ref().unwrap().cmd,
        Some(vec!["/app".to_string()])
    );
    assert_eq!(img.config.extra["container"], "c0ffee".repeat(10) + "abcd");
    assert_eq!(img.config.extra["container_config"]["Cmd"][0], "/app");
    let dirs = store.lower_dirs(&img);
    assert_eq!(fs::read(dirs[0].join("app")).unwrap().len(), 1000);
    assert_eq!(layer_bytes(&store, "app", 1), diff);
    assert!(!store.content().exists(&Digest::of(&diff)));

    // History: newest first, the new layer's size, ids along the parent chain.
    let h = store.history("app").unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].id, res.id.to_string());
    assert_eq!(h[0].size, 1000);
    assert_eq!(h[0].created_by, "sh -c echo > /app");
    assert_eq!(h[0].comment, "added a file");
    assert_eq!(h[0].tags, vec!["app:latest".to_string()]);
    assert_eq!(h[1].id, parent.to_string());
    assert_eq!(h[1].size, 3);

    // A second commit on top; then an empty one (no layer, empty_layer history).
    let diff2 = layer(&[("more", b"12345")]);
    let second = store.commit(req(&res.id, None), &diff2[..]).unwrap();
    assert_eq!(second.reference, None);
    let empty = store
        .commit(req(&second.id, Some("empty:1")), &[0u8; 1024][..])
        .unwrap();
    let e = store.get("empty:1").unwrap();
    assert_eq!(e.chain_ids, store.get(second.id.hex()).unwrap().chain_ids);
    assert!(e.config.history.last().unwrap().empty_layer);
    let h = store.history("empty:1").unwrap();
    assert_eq!(
        h.iter().map(|i| i.size).collect::<Vec<_>>(),
        vec![0, 5, 1000, 3]
    );
    assert_eq!(h[0].id, empty.id.to_string());
    assert_eq!(h[1].id, second.id.to_string());
    // The intermediate untagged image is hidden from `images`, not from -a.
    assert!(!store.list(false).iter().any(|s| s.id == second.id));
    assert!(store.list(true).iter().any(|s| s.id == second.id));
    // The parent cannot go while children exist.
    let err = store.delete("base:1", false, &|_| Vec::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);

    // Survives a reopen.
    drop(store);
    let store = ImageStore::open(tmp.path()).unwrap();
    assert_eq!(store.get("empty:1").unwrap().id, empty.id);
    assert_eq!(store.history("app").unwrap()[0].size, 1000);
}

#[test]
fn failed_commits_leave_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let store = ImageStore::open(root).unwrap();
    let parent = base(&store);
    let blobs = count(&root.join("content/blobs/sha256"));
    let snaps = count(&root.join("snapshots"));

    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..7].copy_from_slice(b"../evil");
    h.set_size(0);
    h.set_mode(0o644);
    h.set_cksum();
    let mut evil = h.as_bytes().to_vec();
    evil.resize(2048, 0);
    let err = store
        .commit(req(&parent, Some("x")), &evil[..])
        .unwrap_err();
    assert!(err.to_string().contains("path escapes the layer"), "{err}");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);

    let err = store
        .commit(req(&parent, Some("Bad:Ref")), &layer(&[("a", b"a")])[..])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let err = store
        .commit(req(&Digest::of(b"nope"), None), &layer(&[("a", b"a")])[..])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = store
        .commit(req(&parent, None), &[0x42u8; 4096][..])
        .unwrap_err();
    assert!(err.to_string().contains("invalid tar"), "{err}");

    assert_eq!(count(&root.join("content/blobs/sha256")), blobs);
    assert_eq!(count(&root.join("snapshots")), snaps);
    assert_eq!(count(&root.join("content/ingest")), 0);
    assert_eq!(store.list(true).len(), 1);
}

#[test]
fn build_steps_on_scratch_and_rmi_takes_untagged_parents() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path()).unwrap();
    let base_id = base(&store);
    // A build on scratch: no parent, the first layer.
    let mut r = req(&base_id, None);
    r.parent = None;
    r.container_id = String::new();
    let scratch = store.commit(r, &layer(&[("app", b"x")])[..]).unwrap();
    let s = store.get(scratch.id.hex()).unwrap();
    assert_eq!(s.parent, None);
    assert_eq!(s.chain_ids.len(), 1);
    assert_eq!(
        (s.config.os.as_str(), s.config.architecture.as_str()),
        ("linux", "amd64")
    );
    assert!(!s.config.extra.contains_key("container"));

    // base:1 <- a (untagged) <- b (untagged) <- c:1
    let a = store
        .commit(req(&base_id, None), &layer(&[("a", b"a")])[..])
        .unwrap();
    let b = store.commit(req(&a.id, None), &[0u8; 1024][..]).unwrap();
    let c = store
        .commit(req(&b.id, Some("c:1")), &layer(&[("c", b"c")])[..])
        .unwrap();
    // Another child of `a` keeps `a` alive.
    let other = store
        .commit(req(&a.id, Some("other:1")), &[0u8; 1024][..])
        .unwrap();
    let items = store.delete("c:1", false, &|_| Vec::new()).unwrap();
    let deleted: Vec<String> = items
        .iter()
        .filter_map(|i| match i {
            berth_image::DeleteItem::Deleted(d) => Some(d.clone()),
            _ => None,
        })
        .collect();
    assert!(deleted.contains(&c.id.to_string()));
    assert!(
        deleted.contains(&b.id.to_string()),
        "the untagged parent goes too"
    );
    assert!(!deleted.contains(&a.id.to_string()), "a has another child");
    assert!(store.get(a.id.hex()).is_ok());
    // Now `other` goes, and with it `a`, but never the tagged base.
    store.delete("other:1", false, &|_| Vec::new()).unwrap();
    assert!(store.get(other.id.hex()).is_err());
    assert!(store.get(a.id.hex()).is_err());
    assert!(store.get("base:1").is_ok());
    // A parent a container uses stays.
    let d = store.commit(req(&base_id, None), &[0u8; 1024][..]).unwrap();
    let e = store
        .commit(req(&d.id, Some("e:1")), &[0u8; 1024][..])
        .unwrap();
    let d_id = d.id.to_string();
    store
        .delete("e:1", false, &|i| {
            if i == d_id {
                vec![("ctr".to_string(), false)]
            } else {
                Vec::new()
            }
        })
        .unwrap();
    assert!(store.get(e.id.hex()).is_err());
    assert!(store.get(d.id.hex()).is_ok());
}

#[test]
fn commit_dir_adopts_the_upper_and_matches_the_tar_path() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let base_id = base(&store);
    // An overlay upper: a file, a directory, a whiteout (char 0/0) for etc/motd.
    let make = |dir: &Path| {
        fs::create_dir_all(dir.join("app/sub")).unwrap();
        fs::write(dir.join("app/f"), b"hello").unwrap();
        fs::write(dir.join("app/sub/g"), vec![7u8; 3000]).unwrap();
        fs::create_dir_all(dir.join("etc")).unwrap();
        nix::sys::stat::mknod(
            &dir.join("etc/motd"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            0,
        )
        .unwrap();
        // The same times in both trees: tar keeps mtimes in seconds, and the two trees may be
        // made either side of a second's boundary.
        for p in [
            "app/sub/g",
            "app/sub",
            "app/f",
            "app",
            "etc/motd",
            "etc",
            ".",
        ] {
            let t = nix::sys::time::TimeSpec::new(1_700_000_000, 0);
            nix::sys::stat::utimensat(
                None,
                &dir.join(p),
                &t,
                &t,
                nix::sys::stat::UtimensatFlags::NoFollowSymlink,
            )
            .unwrap();
        }
    };
    // The same tree through both paths must give the same layer.
    let via_tar_dir = tmp.path().join("upper-tar");
    make(&via_tar_dir);
    let mut tar_bytes = Vec::new();
    berth_snapshot::write_layer(&via_tar_dir, &mut tar_bytes).unwrap();
    let a = store
        .commit(req(&base_id, Some("a:1")), &tar_bytes[..])
        .unwrap();
    let upper = tmp.path().join("store").join("upper");
    make(&upper);
    let b = store
        .commit_dir(req(&base_id, Some("b:1")), &upper)
        .unwrap();
    assert!(!upper.exists(), "the directory became the snapshot");
    let (ia, ib) = (store.get("a:1").unwrap(), store.get("b:1").unwrap());
    assert_eq!(ia.config.rootfs.diff_ids, ib.config.rootfs.diff_ids);
    assert_eq!(ia.chain_ids, ib.chain_ids);
    assert_eq!(ia.size, ib.size);
    assert_ne!(
        a.id, b.id,
        "different tags, configs created at different times"
    );
    // The snapshot holds the whiteout as overlay wants it.
    let top = store.lower_dirs(&ib)[0].clone();
    let md = fs::symlink_metadata(top.join("etc/motd")).unwrap();
    assert!(md.file_type().is_char_device() && md.rdev() == 0);
    assert_eq!(fs::read(top.join("app/f")).unwrap(), b"hello");
    // An empty directory adds no layer.
    let empty = tmp.path().join("store").join("empty");
    fs::create_dir_all(&empty).unwrap();
    let e = store.commit_dir(req(&b.id, Some("e:1")), &empty).unwrap();
    let ie = store.get(e.id.hex()).unwrap();
    assert_eq!(ie.chain_ids, ib.chain_ids);
    assert!(ie.config.history.last().unwrap().empty_layer);
    // Its checks pass.
    assert!(store.check(&[], false).unwrap().findings.is_empty());
    // The two commits' configs and manifests wait for the build's sync (no fsync per step);
    // the layer of b reads back as the tar path's layer.
    assert_eq!(store.content().deferred_len(), 4);
    store.sync_deferred().unwrap();
    assert_eq!(store.content().deferred_len(), 0);
    let (mut r, _) = store.layer_tar("b:1", 1).unwrap();
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut r, &mut got).unwrap();
    assert_eq!(berth_image::Digest::of(&got), ib.config.rootfs.diff_ids[1]);
}

#[test]
fn a_build_steps_index_write_waits_for_the_sync_and_a_lost_one_falls_back() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let images = root.join("images");
    let store = ImageStore::open(&root).unwrap();
    let base_id = base(&store);
    let durable = fs::read(images.join("images.json")).unwrap();
    // An untagged build step: images.json is replaced, its durable copy stays.
    let upper = root.join("upper");
    fs::create_dir_all(upper.join("app")).unwrap();
    fs::write(upper.join("app/f"), b"step").unwrap();
    let step = store.commit_dir(req(&base_id, None), &upper).unwrap();
    assert_ne!(fs::read(images.join("images.json")).unwrap(), durable);
    assert_eq!(
        fs::read(images.join("images.json.durable")).unwrap(),
        durable
    );
    // A power failure before the sync: the new images.json never reached the disk.
    fs::write(images.join("images.json"), b"").unwrap();
    drop(store);
    let store = ImageStore::open(&root).unwrap();
    assert!(store.get(base_id.hex()).is_ok(), "the durable copy is read");
    assert_eq!(
        store.get(step.id.hex()).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    // The build's sync makes the index durable: the copy follows.
    let upper = root.join("upper2");
    fs::create_dir_all(upper.join("app")).unwrap();
    fs::write(upper.join("app/g"), b"step 2").unwrap();
    let step = store.commit_dir(req(&base_id, None), &upper).unwrap();
    store.sync_deferred().unwrap();
    assert_eq!(
        fs::read(images.join("images.json")).unwrap(),
        fs::read(images.join("images.json.durable")).unwrap()
    );
    drop(store);
    let store = ImageStore::open(&root).unwrap();
    assert!(store.get(step.id.hex()).is_ok());
    // The step that was lost left its config, manifest and snapshot behind, unreferenced:
    // orphans, which a repair deletes; nothing else is amiss.
    let findings = store.check(&[], false).unwrap().findings;
    assert_eq!(findings.len(), 3, "{findings:?}");
    assert!(findings
        .iter()
        .all(|f| format!("{:?}", f.kind).starts_with("Orphan")));
    store.check(&[], true).unwrap();
    assert!(store.check(&[], false).unwrap().findings.is_empty());
}
