//! Imports real tarballs into a store under a tempdir.

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use berth_image::{DeleteItem, ErrorKind, ImageStore, ImportOptions};

mod common;
use common::layer_bytes;

fn rootfs_tar(marker: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let dir = |name: &str, mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_size(0);
        h.set_mtime(1_700_000_000);
        (h, name.to_string())
    };
    let (mut h, n) = dir("bin/", 0o755);
    b.append_data(&mut h, n, &[][..]).unwrap();
    let (mut h, n) = dir("etc/", 0o755);
    b.append_data(&mut h, n, &[][..]).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o755);
    h.set_size(marker.len() as u64);
    h.set_mtime(1_700_000_000);
    b.append_data(&mut h, "bin/tool", marker.as_bytes())
        .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(6);
    b.append_data(&mut h, "etc/motd", &b"hello\n"[..]).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "bin/sh", "tool").unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Link);
    h.set_size(0);
    b.append_link(&mut h, "bin/tool2", "bin/tool").unwrap();
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

fn opts(reference: Option<&str>) -> ImportOptions {
    ImportOptions {
        reference: reference.map(str::to_string),
        changes: vec![],
        message: None,
        source: "-".into(),
    }
}

fn no_users(_: &str) -> Vec<(String, bool)> {
    Vec::new()
}

fn count_files(dir: &Path) -> usize {
    fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

fn assert_empty_store(root: &Path) {
    assert_eq!(
        count_files(&root.join("content/blobs/sha256")),
        0,
        "blobs left"
    );
    assert_eq!(count_files(&root.join("content/ingest")), 0, "ingest left");
    assert_eq!(count_files(&root.join("snapshots")), 0, "snapshots left");
}

#[test]
fn import_get_list_tag_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let store = ImageStore::open(root).unwrap();
    let tar = rootfs_tar("v1");
    let res = store
        .import(
            &gzip(&tar)[..],
            &ImportOptions {
                reference: Some("busybox".into()),
                changes: vec![
                    "CMD [\"/bin/sh\"]".into(),
                    "ENV A=1 B=\"two words\"".into(),
                    "LABEL com.example=yes".into(),
                ],
                message: None,
                source: "-".into(),
            },
        )
        .unwrap();
    assert_eq!(res.reference.as_deref(), Some("busybox:latest"));

    // get by name, full id, id without prefix, short prefix
    let img = store.get("busybox").unwrap();
    assert_eq!(img.id, res.id);
    for q in [
        "busybox:latest",
        "docker.io/library/busybox:latest",
        &res.id.to_string(),
        res.id.hex(),
        &res.id.hex()[..12],
        &res.id.hex()[..1],
        &format!("sha256:{}", &res.id.hex()[..5]),
    ] {
        assert_eq!(store.get(q).unwrap().id, res.id, "lookup {q}");
    }
    assert_eq!(img.repo_tags, vec!["busybox:latest".to_string()]);
    let diff_id = berth_content::Digest::of(&tar);
    assert_eq!(img.config.rootfs.diff_ids, vec![diff_id.clone()]);
    assert_eq!(img.chain_ids, vec![diff_id.clone()]);
    assert_eq!(img.config.os, "linux");
    let cfg = img.config.config.as_ref().unwrap();
    assert_eq!(cfg.cmd.as_deref(), Some(&["/bin/sh".to_string()][..]));
    assert_eq!(
        cfg.env.clone().unwrap(),
        vec!["A=1".to_string(), "B=two words".to_string()]
    );
    assert_eq!(
        img.config.history[0].comment.as_deref(),
        Some("Imported from -")
    );
    assert_eq!(img.size, 2 + 6);
    assert_eq!(berth_content::Digest::of(&img.raw_config), img.id);
    // The layer reads back as the uncompressed tar, byte for byte, and is not stored twice:
    // no blob, the snapshot's files and tar-split are the layer.
    assert_eq!(layer_bytes(&store, &res.id.to_string(), 0), tar);
    assert!(!store.content().exists(&diff_id));

    let lowers = store.lower_dirs(&img);
    assert_eq!(lowers.len(), 1);
    let l = &lowers[0];
    assert_eq!(fs::read(l.join("bin/tool")).unwrap(), b"v1");
    assert_eq!(fs::read(l.join("etc/motd")).unwrap(), b"hello\n");
    assert_eq!(fs::read_link(l.join("bin/sh")).unwrap(), Path::new("tool"));
    assert_eq!(
        fs::metadata(l.join("bin/tool2")).unwrap().ino(),
        fs::metadata(l.join("bin/tool")).unwrap().ino()
    );

    let list = store.list(false);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, res.id);
    assert_eq!(list[0].repo_tags, vec!["busybox:latest".to_string()]);
    assert_eq!(list[0].size, 8);
    assert_eq!(list[0].labels["com.example"], "yes");

    let hist = store.history("busybox").unwrap();
    assert_eq!(hist.len(), 1);
    assert_eq!(hist[0].id, res.id.to_string());
    assert_eq!(hist[0].comment, "Imported from -");
    assert_eq!(hist[0].created_by, "");
    assert_eq!(hist[0].size, 8);
    assert_eq!(hist[0].tags, vec!["busybox:latest".to_string()]);

    // tags
    store.tag("busybox", "localhost:5000/a/b:t").unwrap();
    store.tag(res.id.hex(), "other").unwrap();
    let img = store.get("other:latest").unwrap();
    assert_eq!(
        img.repo_tags,
        vec![
            "busybox:latest".to_string(),
            "localhost:5000/a/b:t".to_string(),
            "other:latest".to_string()
        ]
    );
    let err = store.tag("busybox", "Bad").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let err = store.tag("nope", "x").unwrap_err();
    assert_eq!(err.to_string(), "No such image: nope:latest");
    assert_eq!(err.kind(), ErrorKind::NotFound);

    // records survive a reopen
    drop(store);
    let store = ImageStore::open(root).unwrap();
    assert_eq!(store.get("localhost:5000/a/b:t").unwrap().id, res.id);

    // a second image sharing the layer, tag moves to it
    let res2 = store
        .import(&tar[..], &{
            let mut o = opts(Some("other"));
            o.message = Some("second".into());
            o
        })
        .unwrap();
    assert_ne!(res2.id, res.id);
    assert_eq!(store.get("other").unwrap().id, res2.id);
    assert_eq!(store.history("other").unwrap()[0].comment, "second");
    assert_eq!(store.list(true).len(), 2);
    assert_eq!(store.list(true)[0].id, res2.id, "newest first");

    // by id with several tags needs force
    let err = store.delete(res.id.hex(), false, &no_users).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(
        err.to_string(),
        format!(
            "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
            res.id.short()
        )
    );
    // untag one by reference
    assert_eq!(
        store
            .delete("localhost:5000/a/b:t", false, &no_users)
            .unwrap(),
        vec![DeleteItem::Untagged("localhost:5000/a/b:t".into())]
    );
    // a container using it blocks removing the last tag
    let users = |id: &str| {
        if id == res.id.to_string() {
            vec![("0a1b2c3d4e5f67890".to_string(), false)]
        } else {
            vec![]
        }
    };
    let err = store.delete("busybox", false, &users).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "conflict: unable to remove repository reference \"busybox\" (must force) - container 0a1b2c3d4e5f is using its referenced image {}",
            res.id.short()
        )
    );
    let running = |_: &str| vec![("0a1b2c3d4e5f67890".to_string(), true)];
    let err = store.delete("busybox", true, &running).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "conflict: unable to delete {} (cannot be forced) - image is being used by running container 0a1b2c3d4e5f",
            res.id.short()
        )
    );
    assert_eq!(
        store.get("busybox").unwrap().id,
        res.id,
        "tag kept on refusal"
    );

    // delete by reference: untag + delete; the shared layer stays
    let items = store.delete("busybox", false, &no_users).unwrap();
    assert_eq!(
        items,
        vec![
            DeleteItem::Untagged("busybox:latest".into()),
            DeleteItem::Deleted(res.id.to_string()),
        ]
    );
    assert!(store.snapshots().exists(&diff_id));
    let err = store.get("busybox").unwrap_err();
    assert_eq!(err.to_string(), "No such image: busybox:latest");
    assert_eq!(err.kind(), ErrorKind::NotFound);

    // last image: layer GC
    let items = store.delete("other", false, &no_users).unwrap();
    assert_eq!(
        items,
        vec![
            DeleteItem::Untagged("other:latest".into()),
            DeleteItem::Deleted(res2.id.to_string()),
            DeleteItem::Deleted(diff_id.to_string()),
        ]
    );
    assert!(store.list(true).is_empty());
    assert_empty_store(root);
    let refs: serde_json::Value =
        serde_json::from_slice(&fs::read(root.join("images/references.json")).unwrap()).unwrap();
    assert_eq!(refs, serde_json::json!({}));
}

#[test]
fn untagged_delete_by_id_and_prefix_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path()).unwrap();
    let res = store.import(&rootfs_tar("x")[..], &opts(None)).unwrap();
    let list = store.list(false);
    assert_eq!(list.len(), 1);
    assert!(list[0].repo_tags.is_empty());
    // stopped container: must be forced
    let stopped = |_: &str| vec![("abcdef0123456789".to_string(), false)];
    let err = store
        .delete(&res.id.hex()[..6], false, &stopped)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "conflict: unable to delete {} (must be forced) - image is being used by stopped container abcdef012345",
            res.id.short()
        )
    );
    // forced: image goes away, layers stay for the container until pruned
    let items = store.delete(&res.id.hex()[..6], true, &stopped).unwrap();
    assert_eq!(items, vec![DeleteItem::Deleted(res.id.to_string())]);
    assert_eq!(store.snapshots().list().unwrap().len(), 1);
    let removed = store.prune_unused(&[]).unwrap();
    assert_eq!(removed.len(), 1);
    assert_empty_store(tmp.path());
    let err = store.delete("nothing", false, &no_users).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[test]
fn hostile_or_corrupt_imports_leave_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let store = ImageStore::open(root).unwrap();

    // ../ entry (raw header: the tar builder refuses such names)
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..7].copy_from_slice(b"../evil");
    h.set_size(4);
    h.set_mode(0o644);
    h.set_cksum();
    let mut evil = h.as_bytes().to_vec();
    evil.extend_from_slice(b"evil");
    evil.resize(1024 + 1024, 0);
    let err = store
        .import(&gzip(&evil)[..], &opts(Some("evil")))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid tar entry \"../evil\": path escapes the layer"
    );
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(!root.join("evil").exists());
    assert!(!root.join("snapshots/evil").exists());

    // truncated gzip
    let gz = gzip(&rootfs_tar("x"));
    let err = store
        .import(&gz[..gz.len() / 2], &opts(Some("trunc")))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");

    // garbage
    let err = store
        .import(&vec![0x42u8; 4096][..], &opts(None))
        .unwrap_err();
    assert!(err.to_string().starts_with("invalid tar archive"), "{err}");

    // bad change / reference are rejected before reading anything
    let err = store
        .import(&rootfs_tar("x")[..], &{
            let mut o = opts(None);
            o.changes = vec!["FOO bar".into()];
            o
        })
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "dockerfile parse error line 1: unknown instruction: FOO"
    );
    let err = store
        .import(&rootfs_tar("x")[..], &opts(Some("UPPER")))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid reference format: repository name (library/UPPER) must be lowercase"
    );

    assert!(store.list(true).is_empty());
    assert!(store.get("evil").is_err());
    assert_empty_store(root);
}

#[test]
fn ambiguous_prefix_and_concurrency() {
    let tmp = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(ImageStore::open(tmp.path()).unwrap());
    let mut handles = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        handles.push(std::thread::spawn(move || {
            store
                .import(
                    &rootfs_tar(&format!("t{}", i % 2))[..],
                    &opts(Some(&format!("img{i}"))),
                )
                .unwrap()
        }));
    }
    let ids: Vec<_> = handles.into_iter().map(|h| h.join().unwrap().id).collect();
    assert_eq!(store.list(true).len(), 8);
    // with 8 ids, some 1-char prefix is likely shared; find one that is
    for c in "0123456789abcdef".chars() {
        let n = ids.iter().filter(|id| id.hex().starts_with(c)).count();
        let r = store.get(&c.to_string());
        match n {
            0 => assert_eq!(r.unwrap_err().kind(), ErrorKind::NotFound),
            1 => assert!(r.is_ok()),
            _ => assert_eq!(r.unwrap_err().kind(), ErrorKind::InvalidArgument),
        }
    }
    assert_eq!(store.snapshots().list().unwrap().len(), 2);
    for i in 0..8 {
        store.delete(&format!("img{i}"), false, &no_users).unwrap();
    }
    assert_empty_store(tmp.path());
}
