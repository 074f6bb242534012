//! End-to-end: `berth registry serve`, a real server on a loopback port, driven over HTTP by
//! curl and by the OCI distribution-spec conformance suite (v1.1.1, built offline from
//! third_party/oci-conformance).

mod common;
use common::registry::*;
use common::BERTH;
use std::process::Command;

#[test]
fn passes_the_oci_distribution_conformance_suite() {
    let r = Registry::start("  delete: true\n");
    let summary = run_conformance(&r.addr, &r.dir.path().join("report"));
    // every area ran: 75 of the suite's 79 specs (the others are for pre-populated
    // registries and automatic cross-mounting, which berth does not do), all passed
    assert!(summary.contains("75 Passed | 0 Failed"), "{summary}");
}

#[test]
fn bad_uploads_are_refused_and_leave_nothing_behind() {
    let r = Registry::start("  delete: true\n");
    let data = vec![7u8; 100_000];
    let right = sha256(&data);
    let wrong = sha256(b"something else");
    // a monolithic upload whose digest does not match
    let a = curl(
        "POST",
        &r.url(&format!("/v2/a/b/blobs/uploads/?digest={wrong}")),
        &[],
        Some(&data),
    );
    assert_eq!(
        (a.status, a.code()),
        (400, "DIGEST_INVALID".into()),
        "{}",
        a.text()
    );
    // a chunked upload: a chunk out of order, a length that disagrees, then a wrong digest
    let a = curl("POST", &r.url("/v2/a/b/blobs/uploads/"), &[], None);
    assert_eq!(a.status, 202);
    let loc = r.url(&a.header("Location").unwrap());
    let a = curl("PATCH", &loc, &["Content-Range: 10-19"], Some(&data[..10]));
    assert_eq!((a.status, a.code()), (416, "RANGE_INVALID".into()));
    let a = curl("PATCH", &loc, &["Content-Range: 0-99"], Some(&data[..10]));
    assert_eq!(a.status, 416, "{}", a.text());
    let a = curl(
        "PATCH",
        &loc,
        &["Content-Range: 0-49999"],
        Some(&data[..50_000]),
    );
    assert_eq!((a.status, a.header("Range")), (202, Some("0-49999".into())));
    let a = curl(
        "PUT",
        &format!("{loc}?digest={wrong}"),
        &[],
        Some(&data[50_000..]),
    );
    assert_eq!((a.status, a.code()), (400, "DIGEST_INVALID".into()));
    // the failed upload is gone, and no blob, link or temporary file remains
    let a = curl("GET", &loc, &[], None);
    assert_eq!((a.status, a.code()), (404, "BLOB_UPLOAD_UNKNOWN".into()));
    let left = files(&r.data());
    assert!(left.is_empty(), "left behind: {left:?}");
    // the same bytes with the right digest, over the same two chunks
    let a = curl("POST", &r.url("/v2/a/b/blobs/uploads/"), &[], None);
    let loc = r.url(&a.header("Location").unwrap());
    curl(
        "PATCH",
        &loc,
        &["Content-Range: 0-49999"],
        Some(&data[..50_000]),
    );
    let a = curl(
        "PUT",
        &format!("{loc}?digest={right}"),
        &[],
        Some(&data[50_000..]),
    );
    assert_eq!(a.status, 201, "{}", a.text());
    let a = curl("GET", &r.url(&format!("/v2/a/b/blobs/{right}")), &[], None);
    assert_eq!(a.body, data);
    // a range of it
    let a = curl(
        "GET",
        &r.url(&format!("/v2/a/b/blobs/{right}")),
        &["Range: bytes=10-19"],
        None,
    );
    assert_eq!((a.status, a.body.len()), (206, 10));
    // names and digests outside the grammar
    let a = curl("GET", &r.url("/v2/Bad..Name/tags/list"), &[], None);
    assert_eq!((a.status, a.code()), (400, "NAME_INVALID".into()));
    let a = curl("GET", &r.url("/v2/a/b/blobs/sha256:xyz"), &[], None);
    assert_eq!((a.status, a.code()), (400, "DIGEST_INVALID".into()));
    let a = curl(
        "GET",
        &r.url("/v2/a/b/blobs/md5:d41d8cd98f00b204e9800998ecf8427e"),
        &[],
        None,
    );
    assert_eq!((a.status, a.code()), (400, "DIGEST_INVALID".into()));
}

#[test]
fn manifests_are_checked_and_sha512_works() {
    let r = Registry::start("  delete: true\n");
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let layer = b"not really a tar, but bytes";
    let (c, l) = (push_blob(&r, "img", config), push_blob(&r, "img", layer));
    let m = manifest_for(&c, config.len(), &l, layer.len());
    let ct = "Content-Type: application/vnd.oci.image.manifest.v1+json";
    // malformed, mistyped, and missing blobs
    let a = curl(
        "PUT",
        &r.url("/v2/img/manifests/v1"),
        &[ct],
        Some(b"{not json"),
    );
    assert_eq!((a.status, a.code()), (400, "MANIFEST_INVALID".into()));
    let a = curl(
        "PUT",
        &r.url("/v2/img/manifests/v1"),
        &["Content-Type: application/vnd.oci.image.index.v1+json"],
        Some(m.as_bytes()),
    );
    assert_eq!((a.status, a.code()), (400, "MANIFEST_INVALID".into()));
    let missing = manifest_for(&c, config.len(), &sha256(b"absent"), 6);
    let a = curl(
        "PUT",
        &r.url("/v2/img/manifests/v1"),
        &[ct],
        Some(missing.as_bytes()),
    );
    assert_eq!((a.status, a.code()), (400, "MANIFEST_BLOB_UNKNOWN".into()));
    let a = curl(
        "PUT",
        &r.url("/v2/img/manifests/Bad:tag!"),
        &[ct],
        Some(m.as_bytes()),
    );
    assert_eq!(a.status, 400);
    let a = curl("GET", &r.url("/v2/img/tags/list"), &[], None);
    assert_eq!(
        a.json(),
        serde_json::json!({"name": "img", "tags": []}),
        "nothing was tagged"
    );
    // a good one, under a tag and fetched back byte for byte, with its type
    let a = curl(
        "PUT",
        &r.url("/v2/img/manifests/v1"),
        &[ct],
        Some(m.as_bytes()),
    );
    assert_eq!(a.status, 201, "{}", a.text());
    assert_eq!(
        a.header("Docker-Content-Digest"),
        Some(sha256(m.as_bytes()))
    );
    let a = curl("GET", &r.url("/v2/img/manifests/v1"), &[], None);
    assert_eq!(a.text(), m);
    assert_eq!(
        a.header("Content-Type").as_deref(),
        Some("application/vnd.oci.image.manifest.v1+json")
    );
    // sha512: a blob and a manifest addressed by sha512 digests
    use sha2::Digest;
    let d512 = format!("sha512:{}", hex::encode(sha2::Sha512::digest(layer)));
    let a = curl(
        "POST",
        &r.url(&format!("/v2/img/blobs/uploads/?digest={d512}")),
        &[],
        Some(layer),
    );
    assert_eq!(a.status, 201, "{}", a.text());
    let a = curl("HEAD", &r.url(&format!("/v2/img/blobs/{d512}")), &[], None);
    assert_eq!(
        (a.status, a.header("Content-Length")),
        (200, Some(layer.len().to_string()))
    );
    let m512 = format!("sha512:{}", hex::encode(sha2::Sha512::digest(m.as_bytes())));
    let a = curl(
        "PUT",
        &r.url(&format!("/v2/img/manifests/{m512}")),
        &[ct],
        Some(m.as_bytes()),
    );
    assert_eq!(a.status, 201, "{}", a.text());
    let a = curl(
        "GET",
        &r.url(&format!("/v2/img/manifests/{m512}")),
        &[],
        None,
    );
    assert_eq!((a.status, a.text()), (200, m.clone()));
    // a manifest whose digest reference does not match its bytes
    let a = curl(
        "PUT",
        &r.url(&format!("/v2/img/manifests/{}", sha256(b"other"))),
        &[ct],
        Some(m.as_bytes()),
    );
    assert_eq!((a.status, a.code()), (400, "DIGEST_INVALID".into()));
}

#[test]
fn pages_are_capped_and_linked_and_data_survives_a_crash() {
    let mut r = Registry::start("  delete: false\n");
    let config = b"{}";
    let c = push_blob(&r, "x/one", config);
    for name in ["x/one", "x/two", "y"] {
        if name != "x/one" {
            let a = curl(
                "POST",
                &r.url(&format!("/v2/{name}/blobs/uploads/?mount={c}&from=x/one")),
                &[],
                None,
            );
            assert_eq!(a.status, 201, "cross-mount into {name}: {}", a.text());
        }
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{c}","size":2}},"layers":[]}}"#
        );
        for t in ["a", "b", "c"] {
            let a = curl(
                "PUT",
                &r.url(&format!("/v2/{name}/manifests/{t}")),
                &["Content-Type: application/vnd.oci.image.manifest.v1+json"],
                Some(m.as_bytes()),
            );
            assert_eq!(a.status, 201, "{}", a.text());
        }
    }
    let a = curl("GET", &r.url("/v2/_catalog?n=2"), &[], None);
    assert_eq!(
        a.json()["repositories"],
        serde_json::json!(["x/one", "x/two"])
    );
    assert_eq!(
        a.header("Link").as_deref(),
        Some("</v2/_catalog?n=2&last=x/two>; rel=\"next\"")
    );
    let a = curl("GET", &r.url("/v2/_catalog?n=2&last=x/two"), &[], None);
    assert_eq!(a.json()["repositories"], serde_json::json!(["y"]));
    assert!(a.header("Link").is_none());
    // an enormous n is served as a capped page, not as a denial of service
    let a = curl(
        "GET",
        &r.url("/v2/_catalog?n=18446744073709551615"),
        &[],
        None,
    );
    assert_eq!(
        (a.status, a.json()["repositories"].as_array().unwrap().len()),
        (200, 3)
    );
    let a = curl("GET", &r.url("/v2/_catalog?n=-1"), &[], None);
    assert_eq!(
        (a.status, a.code()),
        (400, "PAGINATION_NUMBER_INVALID".into())
    );
    let a = curl("GET", &r.url("/v2/y/tags/list?n=1&last=a"), &[], None);
    assert_eq!(a.json(), serde_json::json!({"name": "y", "tags": ["b"]}));
    assert!(a
        .header("Link")
        .unwrap()
        .contains("/v2/y/tags/list?n=1&last=b"));
    // deletion is off in this configuration
    let a = curl("DELETE", &r.url("/v2/y/manifests/a"), &[], None);
    assert_eq!((a.status, a.code()), (405, "UNSUPPORTED".into()));
    // kill -9 and start again: everything is still served
    r.crash_and_restart();
    let a = curl("GET", &r.url("/v2/x/two/tags/list"), &[], None);
    assert_eq!(a.json()["tags"], serde_json::json!(["a", "b", "c"]));
    let a = curl("GET", &r.url(&format!("/v2/y/blobs/{c}")), &[], None);
    assert_eq!((a.status, a.body.as_slice()), (200, &config[..]));
}

#[test]
fn readonly_mode_and_bad_configurations() {
    let r = Registry::start("  readonly: true\n");
    let a = curl("POST", &r.url("/v2/a/blobs/uploads/"), &[], None);
    assert_eq!((a.status, a.code()), (405, "UNSUPPORTED".into()));
    let a = curl("GET", &r.url("/v2/_catalog"), &[], None);
    assert_eq!(a.json(), serde_json::json!({"repositories": []}));
    // configurations that cannot work are refused with the reason, before listening
    let dir = tempfile::tempdir().unwrap();
    for (text, want) in [
        ("dev: { storage: floppy }\n", "unknown storage \"floppy\""),
        ("dev: { delete: maybe }\n", "delete must be true or false"),
        ("dev: { storage: s3 }\n", "s3_bucket is required"),
        ("common: {}\n", "no flavor \"qa\""),
        ("dev: [unclosed\n", "registry configuration"),
    ] {
        let f = dir.path().join("bad.yml");
        std::fs::write(&f, text).unwrap();
        let o = Command::new(BERTH)
            .args(["registry", "serve"])
            .arg(&f)
            .env(
                "SETTINGS_FLAVOR",
                if text.starts_with("common") {
                    "qa"
                } else {
                    "dev"
                },
            )
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{text}: {err}");
        assert!(err.contains(want), "{text}: {err}");
    }
    let o = Command::new(BERTH)
        .args(["registry", "serve", "/nonexistent/config.yml"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read /nonexistent/config.yml"));
}
