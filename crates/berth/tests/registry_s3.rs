//! End-to-end: `berth registry serve` over object storage, against real local servers
//! (moto's server mode for S3, Azurite for Azure; both installed by `scripts/deps --test`):
//! the OCI conformance suite over each, and two registry processes over one bucket sharing
//! uploads, blobs and manifests.

mod common;
use berth_registry::storage::testing::{
    AzureServer, S3Server, ACCESS_KEY, AZURITE_ACCOUNT, AZURITE_KEY, SECRET_KEY,
};
use common::registry::*;
use common::BERTH;
use std::process::Command;

/// The `storage` lines for a bucket of `s3`, keys under `root`.
fn s3_storage(s3: &S3Server, bucket: &str, root: &str) -> String {
    format!(
        "  storage: s3\n  s3_bucket: {bucket}\n  s3_region: us-east-1\n  s3_endpoint: {}\n  s3_access_key: {ACCESS_KEY}\n  s3_secret_key: {SECRET_KEY}\n  storage_path: {root}\n",
        s3.endpoint()
    )
}

#[test]
fn passes_the_oci_distribution_conformance_suite_over_s3() {
    let s3 = S3Server::start();
    s3.create_bucket("conformance");
    let r = Registry::start_on(
        |_| s3_storage(&s3, "conformance", "/registry"),
        "  delete: true\n",
    );
    let summary = run_conformance(
        &format!("http://{}", r.addr),
        &r.dir.path().join("report"),
        &[],
    );
    assert!(summary.contains("75 Passed | 0 Failed"), "{summary}");
    // it all went to the bucket, under the root
    let keys = s3.keys("conformance");
    assert!(!keys.is_empty());
    assert!(keys.iter().all(|k| k.starts_with("registry/")), "{keys:?}");
}

#[test]
fn passes_the_oci_distribution_conformance_suite_over_azure() {
    let az = AzureServer::start();
    az.create_container("conformance");
    // distribution's config.yml, as a registry:2 user would bring it (3.0's serviceurl)
    let config = format!(
        "version: 0.1\nlog: {{ level: info }}\nstorage:\n  delete: {{ enabled: true }}\n  azure:\n    accountname: {AZURITE_ACCOUNT}\n    accountkey: {AZURITE_KEY}\n    container: conformance\n    serviceurl: {}\n    rootdirectory: /registry\nhttp:\n  addr: 127.0.0.1:0\n",
        az.endpoint()
    );
    let r = Registry::start_with_config(&config);
    let summary = run_conformance(
        &format!("http://{}", r.addr),
        &r.dir.path().join("report"),
        &[],
    );
    assert!(summary.contains("75 Passed | 0 Failed"), "{summary}");
    // it all went to the container, under the root
    let blobs = az.blobs("conformance");
    assert!(!blobs.is_empty());
    assert!(
        blobs.iter().all(|k| k.starts_with("registry/")),
        "{blobs:?}"
    );
}

/// Bytes that differ from byte to byte, so that a misplaced chunk shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[test]
fn replicas_over_one_bucket_share_uploads_blobs_and_manifests() {
    let s3 = S3Server::start();
    s3.create_bucket("shared");
    let a = Registry::start_on(|_| s3_storage(&s3, "shared", "r"), "  delete: true\n");
    let b = Registry::start_on(|_| s3_storage(&s3, "shared", "r"), "  delete: true\n");

    // a layer of 12 MiB in two chunks, the first to A, the second to B; the blob is larger than
    // one part, so its assembly is a multipart upload of the chunks read back
    let layer = pattern((12 << 20) + 17);
    let (first, second) = layer.split_at(6 << 20);
    let digest = sha256(&layer);
    let x = curl("POST", &a.url("/v2/shared/img/blobs/uploads/"), &[], None);
    assert_eq!(x.status, 202, "{}", x.text());
    let loc = x.header("Location").unwrap();
    let x = curl(
        "PATCH",
        &a.url(&loc),
        &[&format!("Content-Range: 0-{}", first.len() - 1)],
        Some(first),
    );
    assert_eq!(x.status, 202, "{}", x.text());
    // B sees the upload where A left it, and takes the next chunk
    let x = curl("GET", &b.url(&loc), &[], None);
    assert_eq!(
        (x.status, x.header("Range")),
        (204, Some(format!("0-{}", first.len() - 1))),
        "{}",
        x.text()
    );
    let x = curl(
        "PATCH",
        &b.url(&loc),
        &[&format!(
            "Content-Range: {}-{}",
            first.len(),
            layer.len() - 1
        )],
        Some(second),
    );
    assert_eq!(
        (x.status, x.header("Range")),
        (202, Some(format!("0-{}", layer.len() - 1))),
        "{}",
        x.text()
    );
    // A finishes it, though one chunk never passed through it
    let x = curl("PUT", &a.url(&format!("{loc}?digest={digest}")), &[], None);
    assert_eq!(x.status, 201, "{}", x.text());
    // B serves the blob, whole and in part
    let x = curl(
        "GET",
        &b.url(&format!("/v2/shared/img/blobs/{digest}")),
        &[],
        None,
    );
    assert_eq!(x.status, 200);
    assert!(
        x.body == layer,
        "the blob B serves differs from the one pushed"
    );
    let x = curl(
        "GET",
        &b.url(&format!("/v2/shared/img/blobs/{digest}")),
        &["Range: bytes=6291450-6291460"],
        None,
    );
    assert_eq!(
        (x.status, x.body.as_slice()),
        (206, &layer[6291450..6291461])
    );

    // a one-chunk upload begun on B and finished on A with its body (a rename in the bucket)
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let config_digest = sha256(config);
    let x = curl("POST", &b.url("/v2/shared/img/blobs/uploads/"), &[], None);
    let loc = x.header("Location").unwrap();
    let x = curl(
        "PUT",
        &a.url(&format!("{loc}?digest={config_digest}")),
        &["Content-Type: application/octet-stream"],
        Some(config),
    );
    assert_eq!(x.status, 201, "{}", x.text());
    let x = curl(
        "GET",
        &b.url(&format!("/v2/shared/img/blobs/{config_digest}")),
        &[],
        None,
    );
    assert_eq!((x.status, x.body.as_slice()), (200, &config[..]));

    // a manifest pushed to A is served by B, listed by B, and deleted through B for A too
    let m = manifest_for(&config_digest, config.len(), &digest, layer.len());
    let ct = "Content-Type: application/vnd.oci.image.manifest.v1+json";
    let x = curl(
        "PUT",
        &a.url("/v2/shared/img/manifests/v1"),
        &[ct],
        Some(m.as_bytes()),
    );
    assert_eq!(x.status, 201, "{}", x.text());
    let x = curl("GET", &b.url("/v2/shared/img/manifests/v1"), &[], None);
    assert_eq!((x.status, x.text()), (200, m.clone()));
    assert_eq!(
        x.header("Content-Type").as_deref(),
        Some("application/vnd.oci.image.manifest.v1+json")
    );
    let x = curl("GET", &b.url("/v2/shared/img/tags/list"), &[], None);
    assert_eq!(
        x.json(),
        serde_json::json!({"name": "shared/img", "tags": ["v1"]})
    );
    let x = curl("GET", &b.url("/v2/_catalog"), &[], None);
    assert_eq!(
        x.json(),
        serde_json::json!({"repositories": ["shared/img"]})
    );
    let md = sha256(m.as_bytes());
    let x = curl(
        "DELETE",
        &b.url(&format!("/v2/shared/img/manifests/{md}")),
        &[],
        None,
    );
    assert_eq!(x.status, 202, "{}", x.text());
    // A trusts what it saw of tags and revisions for at most a second (cache::FRESH)
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let x = curl("GET", &a.url("/v2/shared/img/manifests/v1"), &[], None);
    assert_eq!((x.status, x.code()), (404, "MANIFEST_UNKNOWN".into()));

    // the bucket holds the registry's keys under its root, no upload's chunks, and no
    // multipart upload left open
    let keys = s3.keys("shared");
    assert!(keys.iter().all(|k| k.starts_with("r/")), "{keys:?}");
    assert!(keys.iter().all(|k| !k.contains("/_uploads/")), "{keys:?}");
    let hex = digest.trim_start_matches("sha256:");
    assert!(
        keys.contains(&format!("r/blobs/sha256/{}/{hex}/data", &hex[..2])),
        "{keys:?}"
    );
    assert!(s3.open_uploads("shared").is_empty());
}

#[test]
fn a_bucket_that_is_not_there_is_refused_at_start() {
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("config.yml");
    std::fs::write(
        &f,
        format!(
            "dev:\n{}  http: {{ addr: 127.0.0.1:0 }}\n",
            s3_storage(&s3, "absent", "")
        ),
    )
    .unwrap();
    let o = Command::new(BERTH)
        .args(["registry", "serve"])
        .arg(&f)
        .env_remove("SETTINGS_FLAVOR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("storage: cannot use s3://absent") && err.contains("NoSuchBucket"),
        "{err}"
    );
}

#[test]
fn gc_over_s3_deletes_only_what_nothing_needs() {
    let s3 = S3Server::start();
    s3.create_bucket("collect");
    let r = Registry::start_on(|_| s3_storage(&s3, "collect", "r"), "  delete: true\n");
    let config = br#"{"os":"linux"}"#;
    let layer = pattern(3 << 20);
    let (c, l) = (push_blob(&r, "app", config), push_blob(&r, "app", &layer));
    let m = manifest_for(&c, config.len(), &l, layer.len());
    let x = curl(
        "PUT",
        &r.url("/v2/app/manifests/v1"),
        &["Content-Type: application/vnd.oci.image.manifest.v1+json"],
        Some(m.as_bytes()),
    );
    assert_eq!(x.status, 201, "{}", x.text());
    let stray = push_blob(&r, "app", b"nothing needs me");
    // no grace: everything unreferenced and not being pushed right now goes
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let o = Command::new(BERTH)
        .args(["registry", "gc"])
        .arg(&r.config)
        .args(["--grace", "0s"])
        .env_remove("SETTINGS_FLAVOR")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains(&format!("blob deleted: {stray}")), "{out}");
    assert!(!out.contains(&l) && !out.contains(&c), "{out}");
    let x = curl("GET", &r.url(&format!("/v2/app/blobs/{stray}")), &[], None);
    assert_eq!(x.status, 404);
    let x = curl("GET", &r.url(&format!("/v2/app/blobs/{l}")), &[], None);
    assert_eq!(x.status, 200);
    assert!(x.body == layer);
    let x = curl("GET", &r.url("/v2/app/manifests/v1"), &[], None);
    assert_eq!(x.status, 200);
    // nothing is left in the bucket's trash
    let keys = s3.keys("collect");
    assert!(keys.iter().all(|k| !k.contains("_trash")), "{keys:?}");
}
