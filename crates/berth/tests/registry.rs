//! End-to-end: `berth registry serve`, a real server on a loopback port, driven over HTTP by
//! curl and by the OCI distribution-spec conformance suite (v1.1.1, built offline from
//! third_party/oci-conformance).

mod common;
use common::registry::*;
use common::BERTH;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

#[test]
fn passes_the_oci_distribution_conformance_suite() {
    let r = Registry::start("  delete: true\n");
    // every area ran: 75 of the suite's 79 specs (the others are for pre-populated
    // registries and automatic cross-mounting, which berth does not do), all passed
    let summary = run_conformance(
        &format!("http://{}", r.addr),
        &r.dir.path().join("report"),
        &[],
    );
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

/// The registry's metric of bytes received.
fn bytes_received(r: &Registry) -> u64 {
    let a = curl("GET", &r.url("/metrics"), &[], None);
    a.text()
        .lines()
        .find_map(|l| l.strip_prefix("registry_http_request_bytes_total "))
        .unwrap_or_else(|| panic!("no request bytes in {}", a.text()))
        .parse()
        .unwrap()
}

#[test]
fn large_chunked_uploads_stream_in_whole_and_are_counted() {
    // A chunked body (how docker and skopeo push layers) raises the socket's low-water mark
    // while it streams; its last bytes, under the mark, must still come. Each upload's bytes
    // are counted although no Content-Length tells them.
    let r = Registry::start("");
    let mut data = Vec::with_capacity(24 << 20);
    let mut x: u32 = 1;
    while data.len() < (24 << 20) + 12_345 {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        data.extend_from_slice(&x.to_le_bytes());
    }
    let digest = sha256(&data);
    let before = bytes_received(&r);
    let a = curl("POST", &r.url("/v2/big/one/blobs/uploads/"), &[], None);
    assert_eq!(a.status, 202, "{}", a.text());
    let loc = r.url(&a.header("Location").unwrap());
    let a = curl(
        "PATCH",
        &loc,
        &[
            "Transfer-Encoding: chunked",
            "Content-Type: application/octet-stream",
        ],
        Some(&data),
    );
    let end = data.len() - 1;
    assert_eq!(
        (a.status, a.header("Range")),
        (202, Some(format!("0-{end}"))),
        "{}",
        a.text()
    );
    let a = curl("PUT", &format!("{loc}?digest={digest}"), &[], None);
    assert_eq!(a.status, 201, "{}", a.text());
    assert_eq!(bytes_received(&r) - before, data.len() as u64);
    let a = curl(
        "GET",
        &r.url(&format!("/v2/big/one/blobs/{digest}")),
        &[],
        None,
    );
    assert!(a.status == 200 && a.body == data, "status {}", a.status);
    // and the same again in one monolithic chunked POST
    let before = bytes_received(&r);
    let a = curl(
        "POST",
        &r.url(&format!("/v2/big/two/blobs/uploads/?digest={digest}")),
        &[
            "Transfer-Encoding: chunked",
            "Content-Type: application/octet-stream",
        ],
        Some(&data),
    );
    assert_eq!(a.status, 201, "{}", a.text());
    assert_eq!(bytes_received(&r) - before, data.len() as u64);
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
    // the v1 search API that `docker search` uses
    let a = curl("GET", &r.url("/v1/search?q=X"), &[], None);
    let v = a.json();
    assert_eq!(
        (v["num_results"].clone(), v["query"].clone()),
        (2.into(), "X".into())
    );
    assert_eq!(v["results"][0]["name"], "x/one");
    let a = curl("GET", &r.url("/v1/search?q=x&n=1&page=2"), &[], None);
    let v = a.json();
    assert_eq!(v["results"].as_array().unwrap().len(), 1);
    assert_eq!(
        (v["results"][0]["name"].clone(), v["num_pages"].clone()),
        ("x/two".into(), 2.into())
    );
    let a = curl("GET", &r.url("/v1/search?q=zzz"), &[], None);
    assert_eq!(a.json()["results"], serde_json::json!([]));
    let a = curl("GET", &r.url("/v1/search?q=x&n=many"), &[], None);
    assert_eq!(a.status, 400);
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

/// A free loopback port (for configurations that must name their own address).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Authorization: Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[test]
fn htpasswd_auth_guards_everything_and_leaks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("htpasswd");
    std::fs::write(
        &users,
        format!("alice:{}\n", bcrypt::hash("wonderland", 5).unwrap()),
    )
    .unwrap();
    let r = Registry::start_at(
        "127.0.0.1:0",
        &format!(
            "  delete: true\n  auth:\n    htpasswd:\n      realm: berth-test\n      path: {}\n",
            users.display()
        ),
        dir,
    );
    // the whole suite, logged in
    let summary = run_conformance(
        &format!("http://{}", r.addr),
        &r.dir.path().join("report"),
        &[("OCI_USERNAME", "alice"), ("OCI_PASSWORD", "wonderland")],
    );
    assert!(summary.contains("75 Passed | 0 Failed"), "{summary}");
    // without credentials, or with wrong ones: 401 and the challenge, the same for a
    // repository that exists and one that does not
    let mut answers = Vec::new();
    for url in ["/v2/berth/conformance/tags/list", "/v2/never/was/tags/list"] {
        for h in [
            None,
            Some(basic("alice", "nope")),
            Some(basic("mallory", "wonderland")),
        ] {
            let hs: Vec<&str> = h.iter().map(String::as_str).collect();
            let a = curl("GET", &r.url(url), &hs, None);
            assert_eq!(a.status, 401, "{url}: {}", a.text());
            assert_eq!(a.code(), "UNAUTHORIZED");
            assert_eq!(
                a.header("WWW-Authenticate").as_deref(),
                Some("Basic realm=\"berth-test\"")
            );
            answers.push(a.body);
        }
    }
    let (existing, absent) = answers.split_at(3);
    assert_eq!(
        existing, absent,
        "the answers tell a repository that exists from one that does not"
    );
    let a = curl("GET", &r.url("/v2/"), &[], None);
    assert_eq!(a.status, 401);
    let a = curl(
        "GET",
        &r.url("/v2/"),
        &[&basic("alice", "wonderland")],
        None,
    );
    assert_eq!(a.status, 200);
    // health and metrics stay open; metrics counted the 401s
    let a = curl("GET", &r.url("/health"), &[], None);
    assert_eq!((a.status, a.json()["status"].clone()), (200, "ok".into()));
    let a = curl("GET", &r.url("/metrics"), &[], None);
    assert!(
        a.text()
            .contains("registry_http_requests_total{method=\"GET\",code=\"401\"} "),
        "{}",
        a.text()
    );
    assert!(a
        .text()
        .contains("registry_http_request_duration_seconds_count "));
}

fn openssl(args: &[&str]) {
    let o = Command::new("openssl").args(args).output().unwrap();
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A P-256 key pair for signing tokens (`key.pem`, `pub.pem`) and an htpasswd file with one
/// user, in `d`.
fn token_setup(d: &Path, user: &str, password: &str) -> (PathBuf, PathBuf, PathBuf) {
    let (key, pubkey, users) = (d.join("key.pem"), d.join("pub.pem"), d.join("users"));
    let (k, p) = (key.to_str().unwrap(), pubkey.to_str().unwrap());
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        k,
    ]);
    openssl(&["pkey", "-in", k, "-pubout", "-out", p]);
    let hash = bcrypt::hash(password, 5).unwrap();
    std::fs::write(&users, format!("{user}:{hash}\n")).unwrap();
    (key, pubkey, users)
}

#[test]
fn bearer_tokens_with_scopes_and_the_builtin_token_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, pubkey, users) = token_setup(d, "bob", "builder");
    let other = d.join("other.pem");
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        other.to_str().unwrap(),
    ]);
    let port = free_port();
    let extra = format!(
        "  delete: true\n  auth:\n    token:\n      realm: http://127.0.0.1:{port}/auth/token\n      service: berth-registry\n      issuer: berth-test\n      publickey: {}\n      signingkey: {}\n      htpasswd: {}\n",
        pubkey.display(),
        key.display(),
        users.display()
    );
    let r = Registry::start_at(&format!("127.0.0.1:{port}"), &extra, dir);
    // the suite does the whole token flow itself: challenge, token endpoint, bearer
    let summary = run_conformance(
        &format!("http://{}", r.addr),
        &r.dir.path().join("report"),
        &[("OCI_USERNAME", "bob"), ("OCI_PASSWORD", "builder")],
    );
    assert!(summary.contains("75 Passed | 0 Failed"), "{summary}");
    // no token: the challenge names the realm, the service and the scope this request needs
    let a = curl("GET", &r.url("/v2/berth/conformance/tags/list"), &[], None);
    assert_eq!(a.status, 401);
    assert_eq!(
        a.header("WWW-Authenticate").unwrap(),
        format!("Bearer realm=\"http://127.0.0.1:{port}/auth/token\",service=\"berth-registry\",scope=\"repository:berth/conformance:pull\"")
    );
    // a pull-only token from `berth registry token`: pulls, but cannot push or list the catalog
    let tok = |k: &Path, scopes: &[&str]| -> String {
        let o = Command::new(BERTH)
            .args(["registry", "token", "--key"])
            .arg(k)
            .args([
                "--issuer",
                "berth-test",
                "--service",
                "berth-registry",
                "--subject",
                "ci",
            ])
            .args(scopes)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        format!(
            "Authorization: Bearer {}",
            String::from_utf8_lossy(&o.stdout).trim()
        )
    };
    let pull = tok(
        &r.dir.path().join("key.pem"),
        &["repository:berth/conformance:pull"],
    );
    let a = curl(
        "GET",
        &r.url("/v2/berth/conformance/tags/list"),
        &[&pull],
        None,
    );
    assert_eq!(a.status, 200, "{}", a.text());
    let a = curl(
        "POST",
        &r.url("/v2/berth/conformance/blobs/uploads/"),
        &[&pull],
        None,
    );
    assert_eq!(a.status, 401);
    assert!(a
        .header("WWW-Authenticate")
        .unwrap()
        .contains("error=\"insufficient_scope\""));
    let a = curl("GET", &r.url("/v2/_catalog"), &[&pull], None);
    assert_eq!(a.status, 401);
    let cat = tok(&r.dir.path().join("key.pem"), &["registry:catalog:*"]);
    let a = curl("GET", &r.url("/v2/_catalog"), &[&cat], None);
    assert_eq!(a.status, 200);
    // a token signed by another key, and garbage
    let forged = tok(
        &r.dir.path().join("other.pem"),
        &["repository:berth/conformance:pull"],
    );
    for bad in [forged.as_str(), "Authorization: Bearer not.a.token"] {
        let a = curl(
            "GET",
            &r.url("/v2/berth/conformance/tags/list"),
            &[bad],
            None,
        );
        assert_eq!(a.status, 401);
        assert!(a
            .header("WWW-Authenticate")
            .unwrap()
            .contains("error=\"invalid_token\""));
    }
    // the token endpoint: wrong password, another service, and a good request
    let ep = |q: &str, h: &str| curl("GET", &r.url(&format!("/auth/token?{q}")), &[h], None);
    assert_eq!(
        ep("service=berth-registry", &basic("bob", "wrong")).status,
        401
    );
    assert_eq!(
        ep("service=elsewhere", &basic("bob", "builder")).status,
        403
    );
    let a = ep(
        "service=berth-registry&scope=repository:berth/conformance:pull,push",
        &basic("bob", "builder"),
    );
    assert_eq!(a.status, 200, "{}", a.text());
    let t = a.json()["token"].as_str().unwrap().to_string();
    assert_eq!(a.json()["access_token"].as_str(), Some(t.as_str()));
    let a = curl(
        "POST",
        &r.url("/v2/berth/conformance/blobs/uploads/"),
        &[&format!("Authorization: Bearer {t}")],
        None,
    );
    assert_eq!(a.status, 202, "{}", a.text());
    // bad scopes on the command line
    let o = Command::new(BERTH)
        .args([
            "registry",
            "token",
            "--key",
            "/dev/null",
            "--issuer",
            "i",
            "--service",
            "s",
            "nonsense",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125));
}

#[test]
fn https_with_http2_and_the_suite_over_it() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
    ]);
    let extra = format!(
        "  delete: true\n  http:\n    tls:\n      certificate: {}\n      key: {}\n",
        cert.display(),
        key.display()
    );
    let r = Registry::start_at("127.0.0.1:0", &extra, dir);
    // curl trusts the certificate, negotiates HTTP/2, and gets the API version header
    let o = Command::new("curl")
        .args([
            "-s",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version}",
            "--cacert",
        ])
        .arg(&cert)
        .arg(format!("https://{}/v2/", r.addr))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.ends_with('2'), "not HTTP/2: {out}");
    assert!(
        out.to_ascii_lowercase()
            .contains("docker-distribution-api-version: registry/2.0"),
        "{out}"
    );
    // plain HTTP on the TLS port is refused, and so is a client that does not trust the cert
    let a = curl("GET", &r.url("/v2/"), &[], None);
    assert_ne!(a.status, 200);
    let o = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("https://{}/v2/", r.addr))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "000");
    // the whole suite over HTTPS (Go reads SSL_CERT_FILE for its trusted roots)
    let summary = run_conformance(
        &format!("https://{}", r.addr),
        &r.dir.path().join("report"),
        &[("SSL_CERT_FILE", cert.to_str().unwrap())],
    );
    assert!(summary.contains("75 Passed | 0 Failed"), "{summary}");
    // a key that does not match the certificate: refused at start, with the reason
    let other = r.dir.path().join("other.pem");
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        other.to_str().unwrap(),
    ]);
    let cfg = r.dir.path().join("bad.yml");
    std::fs::write(
        &cfg,
        format!(
            "dev:\n  storage_path: {}\n  http:\n    addr: 127.0.0.1:0\n    tls:\n      certificate: {}\n      key: {}\n",
            r.data().display(),
            cert.display(),
            other.display()
        ),
    )
    .unwrap();
    let o = Command::new(BERTH)
        .args(["registry", "serve"])
        .arg(&cfg)
        .env_remove("SETTINGS_FLAVOR")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("do not go together"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Make files look written two hours ago (older than the collector's grace period).
fn backdate(paths: &[PathBuf]) {
    let o = Command::new("touch")
        .args(["-h", "-d", "2 hours ago"])
        .args(paths)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn gc(r: &Registry, args: &[&str]) -> String {
    let o = Command::new(BERTH)
        .args(["registry", "gc"])
        .arg(&r.config)
        .args(args)
        .env_remove("SETTINGS_FLAVOR")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "gc {args:?}: {out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// Push a manifest; its digest.
fn push_manifest(r: &Registry, name: &str, reference: &str, media: &str, body: &str) -> String {
    let a = curl(
        "PUT",
        &r.url(&format!("/v2/{name}/manifests/{reference}")),
        &[&format!("Content-Type: {media}")],
        Some(body.as_bytes()),
    );
    assert_eq!(a.status, 201, "{}", a.text());
    a.header("Docker-Content-Digest").unwrap()
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

#[test]
fn gc_removes_what_nothing_needs_and_keeps_the_rest() {
    let r = Registry::start("  delete: true\n");
    let image = |tag: &str, layer: &[u8]| -> (String, String, String) {
        let config = format!("{{\"tag\":\"{tag}\"}}");
        let c = push_blob(&r, "app", config.as_bytes());
        let l = push_blob(&r, "app", layer);
        let m = manifest_for(&c, config.len(), &l, layer.len());
        let d = push_manifest(&r, "app", tag, OCI_MANIFEST, &m);
        (d, c, l)
    };
    let (m1, c1, l1) = image("v1", b"layer one");
    let (m2, _c2, l2) = image("v2", b"layer two, soon untagged");
    let (m3, _, l3) = image("v2", b"layer three");
    // an index tagged "multi", whose child manifest has no tag of its own
    let (m4, _, l4) = image("child", b"layer four");
    let a = curl("DELETE", &r.url("/v2/app/manifests/child"), &[], None);
    assert_eq!(a.status, 202);
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{m4}","size":1}}]}}"#
    );
    push_manifest(
        &r,
        "app",
        "multi",
        "application/vnd.oci.image.index.v1+json",
        &index,
    );
    // a signature-like referrer of v1, untagged
    let referrer = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"application/x-sig","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{c1}","size":1}},"layers":[],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{m1}","size":1}}}}"#
    );
    let rd = push_manifest(
        &r,
        "app",
        &sha256(referrer.as_bytes()),
        OCI_MANIFEST,
        &referrer,
    );
    // a blob nothing uses, and an upload abandoned long ago
    let stray = push_blob(&r, "app", b"stray bytes");
    let a = curl("POST", &r.url("/v2/app/blobs/uploads/"), &[], None);
    let upload = a.header("Docker-Upload-UUID").unwrap();
    let started = r
        .data()
        .join(format!("repositories/app/_uploads/{upload}/startedat"));
    std::fs::write(&started, "1000000000").unwrap();
    // everything is older than the grace period
    let all: Vec<PathBuf> = files(&r.data()).iter().map(|f| r.data().join(f)).collect();
    backdate(&all);

    // a dry run names what would go and changes nothing
    let before = files(&r.data());
    let out = gc(&r, &["--dry-run", "--delete-untagged"]);
    assert!(
        out.contains(&format!("manifest would delete: app@{m2}")),
        "{out}"
    );
    assert!(out.contains(&format!("blob would delete: {l2}")), "{out}");
    assert!(
        out.contains(&format!("blob would delete: {stray}")),
        "{out}"
    );
    assert!(
        !out.contains(&l1) && !out.contains(&l4) && !out.contains(&rd),
        "{out}"
    );
    assert_eq!(files(&r.data()), before);

    // without --delete-untagged: only the stray blob and the abandoned upload go
    let out = gc(&r, &[]);
    assert!(out.contains(&format!("blob deleted: {stray}")), "{out}");
    assert!(!out.contains(&l2), "{out}");
    assert!(!started.exists(), "the abandoned upload is gone");
    let a = curl("GET", &r.url(&format!("/v2/app/manifests/{m2}")), &[], None);
    assert_eq!(a.status, 200);
    // with it: the manifest v2 no longer names, and its layer
    let out = gc(&r, &["--delete-untagged"]);
    assert!(
        out.contains(&format!("manifest deleted: app@{m2}")),
        "{out}"
    );
    assert!(out.contains(&format!("blob deleted: {l2}")), "{out}");
    // the server sees another process's deletions within a second (its cache's FRESH)
    std::thread::sleep(Duration::from_millis(1100));
    for (what, url, want) in [
        ("v1", "/v2/app/manifests/v1".to_string(), 200),
        ("v2", "/v2/app/manifests/v2".to_string(), 200),
        ("multi", "/v2/app/manifests/multi".to_string(), 200),
        ("the index's child", format!("/v2/app/manifests/{m4}"), 200),
        ("v1's referrer", format!("/v2/app/manifests/{rd}"), 200),
        ("layer 1", format!("/v2/app/blobs/{l1}"), 200),
        ("layer 3", format!("/v2/app/blobs/{l3}"), 200),
        ("layer 4", format!("/v2/app/blobs/{l4}"), 200),
        (
            "the untagged manifest",
            format!("/v2/app/manifests/{m2}"),
            404,
        ),
        ("its layer", format!("/v2/app/blobs/{l2}"), 404),
        ("the stray blob", format!("/v2/app/blobs/{stray}"), 404),
    ] {
        let a = curl("GET", &r.url(&url), &[], None);
        assert_eq!(a.status, want, "{what}: {}", a.text());
    }
    assert_eq!(
        m3,
        curl("HEAD", &r.url("/v2/app/manifests/v2"), &[], None)
            .header("Docker-Content-Digest")
            .unwrap()
    );
    let a = curl("GET", &r.url(&format!("/v2/app/referrers/{m1}")), &[], None);
    assert_eq!(a.json()["manifests"][0]["digest"], rd.as_str());
    // nothing is left in the trash, and a second collection finds nothing more
    assert!(!r.data().join("_trash").exists() || files(&r.data().join("_trash")).is_empty());
    let out = gc(&r, &["--delete-untagged"]);
    assert!(out.contains(" 0 blobs and 0 manifests deleted"), "{out}");
}

/// The race distribution's collector loses: a client finds an old, unreferenced blob in the
/// registry (HEAD), skips its upload, and pushes a manifest naming it, while a collection
/// runs. Every manifest the registry accepts must keep its blobs.
#[test]
fn online_gc_never_loses_a_blob_a_push_needs() {
    let r = Registry::start("  delete: true\n");
    let mut accepted = Vec::new();
    let mut refused = 0;
    for i in 0..24 {
        let config = format!("{{\"round\":{i}}}");
        let layer: Vec<u8> = (0..65536u32).map(|x| (x * 7 + i) as u8).collect();
        let (c, l) = (
            push_blob(&r, "race", config.as_bytes()),
            push_blob(&r, "race", &layer),
        );
        let old: Vec<PathBuf> = files(&r.data())
            .iter()
            .filter(|f| f.contains(&c[7..]) || f.contains(&l[7..]))
            .map(|f| r.data().join(f))
            .collect();
        backdate(&old);
        let m = manifest_for(&c, config.len(), &l, layer.len());
        let config_path = r.config.clone();
        // rounds 3 and 4 of every 4: the collection waits 300 ms between marking and
        // sweeping, and the push lands in that window
        let pause = if i % 4 >= 2 { "300" } else { "0" };
        let spawn_collector = move || {
            std::thread::spawn(move || {
                Command::new(BERTH)
                    .args(["registry", "gc", "--pause-after-mark", pause])
                    .arg(&config_path)
                    .env_remove("SETTINGS_FLAVOR")
                    .output()
                    .unwrap()
            })
        };
        // the pusher asks whether the blobs are there, then pushes only the manifest; the
        // collection starts before or between, in turn (or the client asked long ago)
        let head = |d: &str| curl("HEAD", &r.url(&format!("/v2/race/blobs/{d}")), &[], None);
        let (collector, head_l, head_c) = match i % 4 {
            0 => {
                let g = spawn_collector();
                (g, head(&l), head(&c))
            }
            1 => {
                let hl = head(&l);
                let g = spawn_collector();
                (g, hl, head(&c))
            }
            2 => {
                let g = spawn_collector();
                std::thread::sleep(Duration::from_millis(150));
                (g, head(&l), head(&c))
            }
            _ => {
                let (hl, hc) = (head(&l), head(&c));
                backdate(&old);
                let g = spawn_collector();
                std::thread::sleep(Duration::from_millis(150));
                (g, hl, hc)
            }
        };
        let put = curl(
            "PUT",
            &r.url(&format!("/v2/race/manifests/r{i}")),
            &[&format!("Content-Type: {OCI_MANIFEST}")],
            Some(m.as_bytes()),
        );
        let o = collector.join().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        match put.status {
            201 => accepted.push((i, c, l, layer)),
            _ if head_l.status == 0 || head_c.status == 0 => panic!("round {i}: HEAD failed"),
            400 => {
                assert_eq!(put.code(), "MANIFEST_BLOB_UNKNOWN", "{}", put.text());
                refused += 1;
            }
            s => panic!("round {i}: manifest push answered {s}: {}", put.text()),
        }
    }
    // every accepted manifest still has all its bytes, now and after another collection
    for round in 0..2 {
        for (i, c, l, layer) in &accepted {
            let a = curl(
                "GET",
                &r.url(&format!("/v2/race/manifests/r{i}")),
                &[],
                None,
            );
            assert_eq!(a.status, 200, "round {i}");
            let a = curl("GET", &r.url(&format!("/v2/race/blobs/{l}")), &[], None);
            assert_eq!(
                (a.status, &a.body),
                (200, layer),
                "round {i}: its layer is gone"
            );
            let a = curl("GET", &r.url(&format!("/v2/race/blobs/{c}")), &[], None);
            assert_eq!(a.status, 200, "round {i}: its config is gone");
        }
        if round == 0 {
            gc(&r, &[]);
        }
    }
    assert!(
        !accepted.is_empty(),
        "no push got through ({refused} refused)"
    );
    eprintln!("{} pushes accepted, {refused} refused", accepted.len());
}

/// berth's own engine pushes to a registry, pulls back (by tag and by digest, and when `run`
/// finds no image), runs what it pulled, and tells a missing image or registry apart.
#[test]
fn berth_pushes_pulls_and_runs_through_a_registry() {
    let env = common::Env::new().with_busybox();
    let r = Registry::start_in_netns_of(env.daemon_pid(), "  delete: true\n");
    let image = format!("{}/tools/busybox:1.0", r.addr);
    let id = env
        .berth(&["inspect", "--format", "{{.Id}}", "busybox"])
        .ok()
        .trimmed()
        .to_string();
    env.berth(&["tag", "busybox", &image]).ok();
    let o = env.berth(&["push", &image]).ok();
    assert!(
        o.stdout.contains(&format!(
            "The push refers to repository [{}/tools/busybox]",
            r.addr
        )) && o.stdout.contains("Pushed")
            && o.stdout.contains("1.0: digest: sha256:"),
        "{}",
        o.stdout
    );
    let digest = o
        .stdout
        .split("digest: ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .to_string();
    // the registry has it, as a gzip-layered OCI manifest
    let m = curl_in(
        &env,
        &format!("http://{}/v2/tools/busybox/manifests/1.0", r.addr),
    );
    assert!(
        m.contains("application/vnd.oci.image.layer.v1.tar+gzip"),
        "{m}"
    );
    // search finds it, in docker's columns
    let o = env.berth(&["search", &format!("{}/busy", r.addr)]).ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert!(
        lines.len() == 2
            && lines[0].split_whitespace().collect::<Vec<_>>()
                == ["NAME", "DESCRIPTION", "STARS", "OFFICIAL", "AUTOMATED"]
            && lines[1].starts_with("tools/busybox "),
        "{}",
        o.stdout
    );
    let o = env
        .berth(&[
            "search",
            "--format",
            "{{.Name}}:{{.StarCount}}",
            &format!("{}/tools", r.addr),
        ])
        .ok();
    assert_eq!(o.trimmed(), "tools/busybox:0");
    let o = env.berth(&["search", "--limit", "0", &format!("{}/busy", r.addr)]);
    assert!(
        o.code != 0 && o.stderr.contains("outside the range"),
        "{o:?}"
    );
    // a second push sends no layer again
    let o = env.berth(&["push", &image]).ok();
    assert!(o.stdout.contains("Layer already exists"), "{}", o.stdout);
    assert!(!o.stdout.contains("Pushed"), "{}", o.stdout);

    env.berth(&["rmi", &image, "busybox"]).ok();
    let o = env.berth(&["pull", &image]).ok();
    assert!(
        o.stdout.contains("Pulling fs layer")
            && o.stdout.contains("Pull complete")
            && o.stdout.contains(&format!("Digest: {digest}"))
            && o.stdout
                .contains(&format!("Status: Downloaded newer image for {image}"))
            && o.trimmed().ends_with(&image),
        "{}",
        o.stdout
    );
    // the same image (its config, hence its id, came back byte for byte), and it runs
    let o = env.berth(&["inspect", "--format", "{{.Id}}", &image]).ok();
    assert_eq!(o.trimmed(), id);
    let o = env.berth(&["run", "--rm", &image, "echo", "pulled"]).ok();
    assert_eq!(o.trimmed(), "pulled");
    let o = env.berth(&["pull", &image]).ok();
    assert!(o.stdout.contains("Image is up to date"), "{}", o.stdout);
    assert!(
        o.stdout.contains("1.0: Pulling from tools/busybox"),
        "{}",
        o.stdout
    );
    // by id: its tag and digest references are one reference to docker, two tags are not
    let second = format!("{}/tools/busybox:1.1", r.addr);
    env.berth(&["tag", &image, &second]).ok();
    let o = env.berth(&["rmi", &id]);
    assert!(o.code != 0 && o.stderr.contains("must be forced"), "{o:?}");
    env.berth(&["rmi", &second]).ok();
    // by digest, into a store without it; and `run` pulls what it does not find
    env.berth(&["rmi", &image]).ok();
    let by_digest = format!("{}/tools/busybox@{digest}", r.addr);
    env.berth(&["pull", &by_digest]).ok();
    // (untagged, as docker leaves an image pulled by digest)
    let o = env.berth(&["images", "--digests"]).ok();
    assert!(
        o.stdout.contains("<none>") && o.stdout.contains(&digest),
        "{}",
        o.stdout
    );
    assert_eq!(
        env.berth(&["inspect", "--format", "{{.Id}}", &by_digest])
            .ok()
            .trimmed(),
        id
    );
    env.berth(&["rmi", &by_digest]).ok();
    let o = env.berth(&["run", "--rm", &image, "echo", "again"]).ok();
    assert_eq!(o.trimmed(), "again");
    assert!(o.stderr.contains("Unable to find image"), "{}", o.stderr);

    // the real docker CLI, talking to berth's daemon, pushes and pulls through it too
    let other = format!("{}/tools/busybox:docker", r.addr);
    if let Some(o) = env.docker(&["tag", &image, &other]) {
        o.ok();
        let o = env.docker(&["push", &other]).unwrap().ok();
        assert!(o.stdout.contains("docker: digest: sha256:"), "{o:?}");
        env.docker(&["rmi", &other]).unwrap().ok();
        let o = env.docker(&["pull", &other]).unwrap().ok();
        assert!(
            o.stdout
                .contains(&format!("Status: Downloaded newer image for {other}")),
            "{o:?}"
        );
        let o = env
            .docker(&["search", &format!("{}/tools", r.addr)])
            .unwrap()
            .ok();
        assert!(o.stdout.contains("tools/busybox"), "{o:?}");
        env.docker(&["rmi", &other]).unwrap().ok();
    }
    // what is not there: a tag, a repository, a registry; nothing is stored
    let before = env.berth(&["images", "-q"]).ok().stdout;
    let o = env.berth(&["pull", &format!("{}/tools/busybox:2.0", r.addr)]);
    assert_ne!(o.code, 0);
    // (an error before any progress is the request's own status, as dockerd answers)
    assert!(
        o.stderr.contains("Error response from daemon"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("manifest unknown") || o.stderr.contains("not found"),
        "{}",
        o.stderr
    );
    let o = env.berth(&["pull", &format!("{}/nothing/here", r.addr)]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("not found") || o.stderr.contains("unknown"),
        "{}",
        o.stderr
    );
    let o = env.berth(&["pull", "127.0.0.1:1/tools/busybox:1.0"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.to_lowercase().contains("connect"), "{}", o.stderr);
    // a plain-HTTP registry on an address that is neither loopback nor listed insecure:
    // docker's words (the bridge's gateway address is the daemon's own)
    let plain = Registry::start_in_netns_of_at(env.daemon_pid(), "172.17.0.1:0", "");
    let o = env.berth(&["pull", &format!("{}/tools/busybox:1.0", plain.addr)]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr
            .contains("http: server gave HTTP response to HTTPS client"),
        "{}",
        o.stderr
    );
    let o = env.berth(&["push", &format!("{}/absent:1", r.addr)]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("Error response from daemon"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("does not exist locally"), "{}", o.stderr);
    assert_eq!(env.berth(&["images", "-q"]).ok().stdout, before);
    // a layer that the registry serves corrupted: the pull fails (and ends), nothing stored
    let m = curl_in(
        &env,
        &format!("http://{}/v2/tools/busybox/manifests/1.0", r.addr),
    );
    let m: serde_json::Value = serde_json::from_str(&m).unwrap();
    let layer = m["layers"][0]["digest"].as_str().unwrap().to_string();
    let hex = layer.trim_start_matches("sha256:");
    let rel = files(&r.data())
        .into_iter()
        .find(|f| f.contains(hex) && f.ends_with("/data"))
        .unwrap_or_else(|| panic!("no data file for {layer}"));
    let path = r.data().join(rel);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    let tmp = path.with_extension("corrupt");
    std::fs::write(&tmp, &bytes).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    env.berth(&["rmi", "-f", &image]).ok();
    let before = env.berth(&["images", "-q"]).ok().stdout;
    let o = env.berth(&["pull", &image]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(
        o.stderr.contains("digest") || o.stderr.contains("mismatch") || o.stderr.contains("verif"),
        "{}",
        o.stderr
    );
    assert_eq!(env.berth(&["images", "-q"]).ok().stdout, before);
    // nothing of the pushes is left in the daemon's data root (what they compressed)
    assert!(
        push_leftovers(&env).is_empty(),
        "{:?}",
        push_leftovers(&env)
    );
}

/// A replica, in the test's namespace, of a registry that serves the daemon's namespace,
/// over the same storage: what seeds it over plain HTTP.
fn seed_of(r: &Registry, extra: &str) -> Registry {
    let data = r.data();
    Registry::start_on(
        move |_| format!("  storage: local\n  storage_path: {}\n", data.display()),
        extra,
    )
}

/// A layer of one file: its tar, and that gzipped at level 1 (berth uses 6).
fn one_file_layer(name: &str, body: &[u8]) -> (Vec<u8>, Vec<u8>) {
    use std::io::Write;
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(body.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, name, body).unwrap();
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    (tar, gz.finish().unwrap())
}

/// What pushes left in the daemon's data root (what they compressed).
fn push_leftovers(env: &common::Env) -> Vec<std::fs::DirEntry> {
    std::fs::read_dir(env.data_root.join("tmp/push"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default()
}

/// A push names again the layers the registry has, in the compressed form a pull or a push
/// left on record: a pulled image pushed to another repository of the same registry mounts
/// its layer there (with the digest it was pulled with, whatever compressed it), a second
/// push sends nothing, and a registry that has none of it gets the layer compressed by
/// berth, which a push to another of its repositories then mounts.
#[test]
fn a_push_reuses_or_mounts_the_layers_it_knows_of() {
    let env = common::Env::new();
    let r = Registry::start_in_netns_of(env.daemon_pid(), "  delete: true\n");
    let seed = seed_of(&r, "  delete: true\n");
    // a layer compressed by another tool (gzip at level 1; berth uses 6), in a docker
    // schema 2 manifest
    let (tar, gz) = one_file_layer("hello.txt", &b"made elsewhere\n".repeat(4000));
    let layer = push_blob(&seed, "elsewhere/app", &gz);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["/hello"]}},"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        sha256(&tar)
    );
    let config_digest = push_blob(&seed, "elsewhere/app", config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{layer}","size":{}}}]}}"#,
        config.len(),
        gz.len()
    );
    push_manifest(
        &seed,
        "elsewhere/app",
        "1",
        "application/vnd.docker.distribution.manifest.v2+json",
        &manifest,
    );
    let layer_of = |addr: &str, repo: &str| -> serde_json::Value {
        let m = curl_in(&env, &format!("http://{addr}/v2/{repo}/manifests/1"));
        let m: serde_json::Value = serde_json::from_str(&m).unwrap();
        assert_eq!(m["config"]["digest"], config_digest.as_str(), "{m}");
        m["layers"][0].clone()
    };

    let src = format!("{}/elsewhere/app:1", r.addr);
    env.berth(&["pull", &src]).ok();
    let dst = format!("{}/mine/app:1", r.addr);
    env.berth(&["tag", &src, &dst]).ok();
    let o = env.berth(&["push", &dst]).ok();
    // (a push names a layer by its diff id, as docker's does)
    let short = &sha256(&tar)[7..19];
    assert!(
        o.stdout
            .contains(&format!("{short}: Mounted from elsewhere/app"))
            && !o.stdout.contains("Pushed"),
        "{}",
        o.stdout
    );
    let l = layer_of(&r.addr, "mine/app");
    assert_eq!(l["digest"], layer.as_str(), "{l}");
    assert_eq!(
        l["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    // again: nothing to send, nothing to mount
    let o = env.berth(&["push", &dst]).ok();
    assert!(
        o.stdout.contains("Layer already exists")
            && !o.stdout.contains("Pushed")
            && !o.stdout.contains("Mounted"),
        "{}",
        o.stdout
    );
    // a record gone stale: the layer is deleted from both repositories that had it; the
    // registry starts uploads instead of the mounts, which the push cancels before it sends
    // the layer itself
    for repo in ["elsewhere/app", "mine/app"] {
        let a = curl(
            "DELETE",
            &seed.url(&format!("/v2/{repo}/blobs/{layer}")),
            &[],
            None,
        );
        assert_eq!(a.status, 202, "{}", a.text());
    }
    let fifth = format!("{}/third/app:1", r.addr);
    env.berth(&["tag", &src, &fifth]).ok();
    let o = env.berth(&["push", &fifth]).ok();
    assert!(
        o.stdout.contains(&format!("{short}: Pushed")) && !o.stdout.contains("Mounted"),
        "{}",
        o.stdout
    );
    let uploads: Vec<String> = files(&r.data())
        .into_iter()
        .filter(|f| f.contains("_uploads/"))
        .collect();
    assert!(uploads.is_empty(), "{uploads:?}");
    env.berth(&["rmi", &fifth]).ok();
    // a registry that has none of it: berth compresses the layer and sends it
    let r2 = Registry::start_in_netns_of(env.daemon_pid(), "");
    let third = format!("{}/mine/app:1", r2.addr);
    env.berth(&["tag", &src, &third]).ok();
    let o = env.berth(&["push", &third]).ok();
    assert!(
        o.stdout.contains(&format!("{short}: Preparing"))
            && o.stdout.contains(&format!("{short}: Pushed")),
        "{}",
        o.stdout
    );
    let ours = layer_of(&r2.addr, "mine/app");
    assert_ne!(ours["digest"], layer.as_str(), "{ours}");
    // and another of its repositories mounts what that push sent
    let fourth = format!("{}/other/app:1", r2.addr);
    env.berth(&["tag", &src, &fourth]).ok();
    let o = env.berth(&["push", &fourth]).ok();
    assert!(
        o.stdout.contains("Mounted from mine/app") && !o.stdout.contains("Pushed"),
        "{}",
        o.stdout
    );
    assert_eq!(layer_of(&r2.addr, "other/app"), ours);
    // what was pushed pulls back as the same image
    let id = env
        .berth(&["inspect", "--format", "{{.Id}}", &src])
        .ok()
        .trimmed()
        .to_string();
    env.berth(&["rmi", &src, &dst, &third, &fourth]).ok();
    env.berth(&["pull", &fourth]).ok();
    let o = env.berth(&["inspect", "--format", "{{.Id}}", &fourth]).ok();
    assert_eq!(o.trimmed(), id);
    assert!(
        push_leftovers(&env).is_empty(),
        "{:?}",
        push_leftovers(&env)
    );
}

/// A pull or a push whose client hangs up is cancelled, as dockerd cancels them: the pull
/// stores nothing, the push puts no manifest, and nothing of either is left.
#[test]
fn a_pull_or_push_whose_client_hangs_up_is_cancelled() {
    use std::io::BufRead;
    use std::time::Instant;
    let env = common::Env::new();
    let r = Registry::start_in_netns_of(env.daemon_pid(), "");
    let seed = seed_of(&r, "");
    // one layer of 24 MiB of random bytes (which gzip cannot shrink)
    let mut body = vec![0u8; 24 << 20];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut body);
    let (tar, gz) = one_file_layer("random", &body);
    let layer = push_blob(&seed, "big/app", &gz);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        sha256(&tar)
    );
    let config_digest = push_blob(&seed, "big/app", config.as_bytes());
    push_manifest(
        &seed,
        "big/app",
        "1",
        OCI_MANIFEST,
        &format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{layer}","size":{}}}]}}"#,
            config.len(),
            gz.len()
        ),
    );
    let image = format!("{}/big/app:1", r.addr);
    // A whole pull, timed; its progress, which a terminal shows, is left out of a pipe, as
    // docker leaves it out
    let t = Instant::now();
    let o = env.berth(&["pull", &image]).ok();
    let whole = t.elapsed();
    eprintln!("a whole pull: {whole:?}");
    assert!(
        o.stdout.contains("Download complete") && !o.stdout.contains("Downloading"),
        "{}",
        o.stdout
    );
    // what the API streams (and docker's CLI draws on a terminal): the counts
    env.berth(&["rmi", &image]).ok();
    let host = env.host();
    let o = Command::new("curl")
        .args([
            "-sf",
            "--unix-socket",
            host.trim_start_matches("unix://"),
            "-X",
            "POST",
            &format!("http://x/images/create?fromImage={}/big/app&tag=1", r.addr),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains(r#""status":"Downloading""#)
            && text.contains(&format!(r#""total":{}"#, gz.len())),
        "{text}"
    );
    env.berth(&["rmi", &image]).ok();

    // Hang-ups: the CLI is killed as soon as it shows the layer coming (the pull) or being
    // prepared (the push); then, in twice a whole pull's time, nothing of either may finish.
    let hang_up = |args: &[&str], seen: &str| {
        let mut child = env
            .cmd(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut shown = Vec::new();
        for l in lines.by_ref() {
            let l = l.unwrap();
            let done = l.contains(seen);
            shown.push(l);
            if done {
                break;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(shown.iter().any(|l| l.contains(seen)), "{shown:?}");
        std::thread::sleep(whole * 2 + Duration::from_secs(1));
    };
    hang_up(&["pull", &image], "Pulling fs layer");
    let o = env.berth(&["image", "inspect", &image]);
    assert_ne!(o.code, 0, "the pull went on after its client had gone");
    let o = env.berth(&["images", "-q"]).ok();
    assert_eq!(o.trimmed(), "");

    // the push: to a registry that has none of it, so the layer is compressed and sent
    env.berth(&["pull", &image]).ok();
    let r2 = Registry::start_in_netns_of(env.daemon_pid(), "");
    let other = format!("{}/big/copy:1", r2.addr);
    env.berth(&["tag", &image, &other]).ok();
    hang_up(&["push", &other], "Preparing");
    // (the compression, on a thread of its own, runs to its end, then its files go; a push
    // that went on would then put its manifest)
    let until = Instant::now() + Duration::from_secs(120);
    while !push_leftovers(&env).is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        push_leftovers(&env).is_empty(),
        "{:?}",
        push_leftovers(&env)
    );
    std::thread::sleep(Duration::from_secs(1));
    let o = env
        .in_daemon_netns(&[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://{}/v2/big/copy/manifests/1", r2.addr),
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "404",
        "the push went on after its client had gone"
    );
    // and a push that is left alone goes through
    let o = env.berth(&["push", &other]).ok();
    assert!(o.stdout.contains("1: digest: sha256:"), "{}", o.stdout);
}

/// `argv` run in the daemon's network namespace as an HTTP server on `port`, once its
/// `/v2/` answers; killed when the test ends.
fn http_server_in(env: &common::Env, argv: &[&str], port: u16) -> common::KillOnDrop {
    let server = common::KillOnDrop(
        env.in_daemon_netns(argv)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let up = std::time::Instant::now();
    while !env
        .in_daemon_netns(&["curl", "-sf", &format!("http://127.0.0.1:{port}/v2/")])
        .output()
        .unwrap()
        .status
        .success()
    {
        assert!(
            up.elapsed() < Duration::from_secs(20),
            "no server: {argv:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

/// A registry that answers with a manifest of gigabytes (here a plain file server, serving a
/// sparse file where the manifest should be) gets a clear error at once: the manifest is
/// refused past 4 MiB as it comes, never read whole into memory, by a pull and by the
/// registry's pull-through cache.
#[test]
fn a_huge_manifest_is_refused_as_it_comes() {
    let env = common::Env::new();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("v2/huge/app/manifests")).unwrap();
    std::fs::write(root.join("v2/index.html"), "{}").unwrap();
    let f = std::fs::File::create(root.join("v2/huge/app/manifests/1")).unwrap();
    f.set_len(8 << 30).unwrap();
    let port = free_port();
    let server = http_server_in(
        &env,
        &[
            "python3",
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            "--directory",
            root.to_str().unwrap(),
            &port.to_string(),
        ],
        port,
    );
    let t = std::time::Instant::now();
    let o = env.berth(&["pull", &format!("127.0.0.1:{port}/huge/app:1")]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(
        o.stderr.contains("over the 4194304 bytes accepted"),
        "{}",
        o.stderr
    );
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    assert_eq!(env.berth(&["images", "-q"]).ok().trimmed(), "");
    // a server that says no length and streams a manifest without end: refused past 4 MiB
    // as it comes
    let endless = r#"
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path == "/v2/":
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")
            return
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"x" * 65536
        try:
            for _ in range(1 << 16):
                self.wfile.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        except Exception:
            pass
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;
    let port2 = free_port();
    let server2 = http_server_in(&env, &["python3", "-c", endless, &port2.to_string()], port2);
    let t = std::time::Instant::now();
    let o = env.berth(&["pull", &format!("127.0.0.1:{port2}/endless/app:1")]);
    drop(server2);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(
        o.stderr.contains("over the 4194304 bytes accepted"),
        "{}",
        o.stderr
    );
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    // the same server as the upstream of a pull-through cache: the cache refuses it too
    let cache = Registry::start_in_netns_of(
        env.daemon_pid(),
        &format!("  proxy:\n    remoteurl: http://127.0.0.1:{port}\n"),
    );
    let t = std::time::Instant::now();
    let o = env
        .in_daemon_netns(&[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://{}/v2/huge/app/manifests/1", cache.addr),
        ])
        .output()
        .unwrap();
    drop(server);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "502");
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
}

/// `berth login`, then pushes and pulls with the credentials it kept (in docker's
/// config.json), against a registry with basic auth and one with the Docker token flow; wrong
/// credentials and no credentials are refused; `logout` forgets them.
#[test]
fn berth_logs_in_then_pushes_and_pulls_with_basic_and_token_auth() {
    let env = common::Env::new().with_busybox();
    let conf = tempfile::tempdir().unwrap();
    let run = |args: &[&str], stdin: Option<&str>| {
        use std::io::Write;
        let mut c = env.cmd(args);
        c.env("DOCKER_CONFIG", conf.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        // a command that refuses before it reads its input (login next to a credential
        // helper) closes the pipe first: that is not the test's failure
        if let Err(e) = input.write_all(stdin.unwrap_or("").as_bytes()) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        }
        drop(input);
        common::Out::from(child.wait_with_output().unwrap())
    };
    // a registry with htpasswd (basic auth), one with bearer tokens from its own endpoint
    let dir = tempfile::tempdir().unwrap();
    let (key, pubkey, users) = token_setup(dir.path(), "alice", "wonderland");
    let basic_reg = Registry::start_in_netns_of(
        env.daemon_pid(),
        &format!(
            "  auth:\n    htpasswd:\n      realm: berth-test\n      path: {}\n",
            users.display()
        ),
    );
    let port = free_port();
    let token_reg = Registry::start_in_netns_of_at(
        env.daemon_pid(),
        &format!("127.0.0.1:{port}"),
        &format!(
            "  auth:\n    token:\n      realm: http://127.0.0.1:{port}/auth/token\n      service: berth-registry\n      issuer: berth-test\n      publickey: {}\n      signingkey: {}\n      htpasswd: {}\n",
            pubkey.display(),
            key.display(),
            users.display()
        ),
    );
    // a config that keeps docker's passwords in a credential helper: berth will not write
    // one in plain text beside it
    std::fs::write(conf.path().join("config.json"), r#"{"credsStore":"pass"}"#).unwrap();
    let o = run(
        &["login", "-u", "alice", "--password-stdin", &basic_reg.addr],
        Some("wonderland\n"),
    );
    assert!(
        o.code != 0 && o.stderr.contains("credential helper"),
        "{o:?}"
    );
    std::fs::remove_file(conf.path().join("config.json")).unwrap();
    // prompts need a terminal, as docker says
    let o = run(&["login", &basic_reg.addr], None);
    assert!(
        o.code != 0
            && o.stderr
                .contains("Cannot perform an interactive login from a non TTY device"),
        "{o:?}"
    );
    for r in [&basic_reg, &token_reg] {
        let image = format!("{}/private/busybox:1", r.addr);
        run(&["tag", "busybox", &image], None).ok();
        // no credentials yet
        let o = run(&["push", &image], None);
        assert!(
            o.code != 0 && o.stderr.contains("denied"),
            "{}: {o:?}",
            r.addr
        );
        let o = run(
            &["login", "-u", "alice", "--password-stdin", &r.addr],
            Some("nope\n"),
        );
        assert!(o.code != 0 && o.stderr.contains("401"), "{}: {o:?}", r.addr);
        let o = run(
            &["login", "-u", "alice", "--password-stdin", &r.addr],
            Some("wonderland\n"),
        )
        .ok();
        assert!(o.stdout.contains("Login Succeeded"), "{o:?}");
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(conf.path().join("config.json")).unwrap())
                .unwrap();
        use base64::Engine;
        assert_eq!(
            cfg["auths"][&r.addr]["auth"],
            base64::engine::general_purpose::STANDARD.encode("alice:wonderland")
        );
        let o = run(&["push", &image], None).ok();
        assert!(o.stdout.contains("1: digest: sha256:"), "{o:?}");
        if r.addr == basic_reg.addr {
            // search with the credentials login kept
            let o = run(&["search", &format!("{}/private", r.addr)], None).ok();
            assert!(o.stdout.contains("private/busybox"), "{o:?}");
        }
        run(&["rmi", &image], None).ok();
        let o = run(&["pull", &image], None).ok();
        assert!(o.stdout.contains("Downloaded newer image"), "{o:?}");
        let o = run(&["run", "--rm", &image, "echo", "private"], None).ok();
        assert_eq!(o.trimmed(), "private");
        // another repository mounts the layer from this one: the token asked for it must
        // let it read this one too
        let copy = format!("{}/private/copy:1", r.addr);
        run(&["tag", &image, &copy], None).ok();
        let o = run(&["push", &copy], None).ok();
        assert!(
            o.stdout.contains("Mounted from private/busybox") && !o.stdout.contains("Pushed"),
            "{}: {o:?}",
            r.addr
        );
        run(&["rmi", &copy], None).ok();
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(conf.path().join("config.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // the same server under another spelling: logout forgets both
        let mut cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(conf.path().join("config.json")).unwrap())
                .unwrap();
        cfg["auths"][format!("http://{}", r.addr)] = cfg["auths"][&r.addr].clone();
        std::fs::write(conf.path().join("config.json"), cfg.to_string()).unwrap();
        let o = run(&["logout", &r.addr], None).ok();
        assert_eq!(
            o.trimmed(),
            format!("Removing login credentials for {}", r.addr)
        );
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(conf.path().join("config.json")).unwrap())
                .unwrap();
        assert_eq!(cfg["auths"].as_object().map(|m| m.len()), Some(0), "{cfg}");
        run(&["rmi", &image], None).ok();
        let o = run(&["pull", &image], None);
        assert!(o.code != 0, "{}: pulled after logout: {o:?}", r.addr);
    }
}

/// curl run in the test daemon's network namespace (where its registry listens).
fn curl_in(env: &common::Env, url: &str) -> String {
    let o = env
        .in_daemon_netns(&[
            "curl",
            "-sf",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
            url,
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The real docker: a dockerd of the test's own pushes to berth's registry, pulls back, runs
/// what it pulled, searches, and logs in (127.0.0.1 registries are plain HTTP to Docker).
#[test]
fn docker_pushes_pulls_searches_and_logs_in() {
    let Some(d) = common::Dockerd::start() else {
        return;
    };
    let env = common::Env::new();
    d.import_busybox(&env.busybox_tar());
    let r = Registry::start_in_netns_of(d.pid(), "  delete: true\n");
    let image = format!("{}/tools/busybox:1.0", r.addr);
    d.docker(&["tag", "busybox", &image]).ok();
    let o = d.docker(&["push", &image]).ok();
    assert!(o.stdout.contains("digest: sha256:"), "{}", o.stdout);
    d.docker(&["rmi", &image, "busybox"]).ok();
    let o = d.docker(&["pull", &image]).ok();
    assert!(o.stdout.contains("Downloaded newer image"), "{}", o.stdout);
    let o = d
        .docker(&[
            "run",
            "--rm",
            "--network",
            "none",
            &image,
            "echo",
            "pulled from berth",
        ])
        .ok();
    assert_eq!(o.stdout.trim(), "pulled from berth");
    let o = d.docker(&["search", &format!("{}/busy", r.addr)]).ok();
    assert!(o.stdout.contains("tools/busybox"), "{}", o.stdout);
    // with htpasswd: docker login, then push
    let users = r.dir.path().join("users");
    std::fs::write(
        &users,
        format!("carol:{}\n", bcrypt::hash("pa55", 5).unwrap()),
    )
    .unwrap();
    let guarded = Registry::start_in_netns_of(
        d.pid(),
        &format!(
            "  auth:\n    htpasswd:\n      realm: berth\n      path: {}\n",
            users.display()
        ),
    );
    let image = format!("{}/private/busybox:1", guarded.addr);
    d.docker(&["tag", &format!("{}/tools/busybox:1.0", r.addr), &image])
        .ok();
    let o = d.docker(&["push", &image]);
    assert_ne!(o.code, 0, "pushed without logging in");
    let o = d.docker(&["login", &guarded.addr, "-u", "carol", "-p", "wrong"]);
    assert_ne!(o.code, 0);
    let o = d
        .docker(&["login", &guarded.addr, "-u", "carol", "-p", "pa55"])
        .ok();
    assert!(o.stdout.contains("Login Succeeded"), "{}", o.stdout);
    d.docker(&["push", &image]).ok();
}

/// `berth registry image`, then the registry as a berth container, as Docker users run
/// `registry:2`: published on 5000, restarted always, its data in a volume, configured by
/// `REGISTRY_*` variables.
#[test]
fn the_registry_runs_as_a_berth_container() {
    let env = common::Env::new();
    let o = Command::new(BERTH)
        .args(["registry", "image", "-H", &env.host()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = env
        .berth(&[
            "image",
            "inspect",
            "--format",
            "{{json .Config.Entrypoint}} {{json .Config.ExposedPorts}}",
            "berth-registry",
        ])
        .ok();
    assert_eq!(
        o.stdout.trim(),
        r#"["/berth","registry","serve"] {"5000/tcp":{}}"#
    );
    // a host address in the daemon's namespace, to reach the published ports from outside
    for cmd in [
        &[
            "ip", "link", "add", "hostif0", "type", "veth", "peer", "name", "hostif1",
        ][..],
        &["ip", "addr", "add", "10.78.0.1/24", "dev", "hostif0"],
        &["ip", "link", "set", "hostif0", "up"],
        &["ip", "link", "set", "hostif1", "up"],
    ] {
        let o = env.in_daemon_netns(cmd).output().unwrap();
        assert!(o.status.success(), "{cmd:?}: {o:?}");
    }
    env.berth(&[
        "run",
        "-d",
        "-p",
        "5000:5000",
        "--restart=always",
        "--name",
        "registry",
        "berth-registry",
    ])
    .ok();
    env.berth(&[
        "run",
        "-d",
        "-p",
        "5001:5000",
        "-e",
        "REGISTRY_STORAGE_DELETE_ENABLED=true",
        "--name",
        "deletable",
        "berth-registry",
    ])
    .ok();
    let http = |method: &str, url: &str, body: Option<&[u8]>| -> (u16, String) {
        let mut args = vec![
            "curl".to_string(),
            "-s".into(),
            "-o".into(),
            "-".into(),
            "-w".into(),
            "\n%{http_code}".into(),
            "-X".into(),
            method.into(),
        ];
        let f = env.dir.path().join("body");
        if let Some(b) = body {
            std::fs::write(&f, b).unwrap();
            args.push("--data-binary".into());
            args.push(format!("@{}", f.display()));
            args.push("-H".into());
            args.push(format!("Content-Type: {OCI_MANIFEST}"));
        }
        args.push(url.into());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = env.in_daemon_netns(&argv).output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let (body, code) = out.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    };
    let base = "http://10.78.0.1:5000";
    env.eventually("the registry container answers", || {
        http("GET", &format!("{base}/v2/"), None).0 == 200
    });
    // push a blob and a manifest through the published port
    let config = br#"{"os":"linux"}"#;
    let c = sha256(config);
    let (code, _) = http(
        "POST",
        &format!("{base}/v2/in/box/blobs/uploads/?digest={c}"),
        Some(config),
    );
    assert_eq!(code, 201);
    let m = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{c}","size":{}}},"layers":[]}}"#,
        config.len()
    );
    let (code, body) = http(
        "PUT",
        &format!("{base}/v2/in/box/manifests/v1"),
        Some(m.as_bytes()),
    );
    assert_eq!(code, 201, "{body}");
    // its data lives in the image's volume: a restart keeps it
    env.berth(&["restart", "registry"]).ok();
    env.eventually("the registry is back", || {
        http("GET", &format!("{base}/v2/_catalog"), None)
            .1
            .contains("in/box")
    });
    let o = env
        .berth(&[
            "inspect",
            "--format",
            "{{.HostConfig.RestartPolicy.Name}} {{range .Mounts}}{{.Type}}:{{.Destination}}{{end}}",
            "registry",
        ])
        .ok();
    assert_eq!(o.stdout.trim(), "always volume:/var/lib/registry");
    // REGISTRY_* variables configure it, as with registry:2 (deletion is off by default)
    let other = "http://10.78.0.1:5001";
    env.eventually("the second registry answers", || {
        http("GET", &format!("{other}/v2/"), None).0 == 200
    });
    let (code, _) = http(
        "POST",
        &format!("{other}/v2/x/blobs/uploads/?digest={c}"),
        Some(config),
    );
    assert_eq!(code, 201);
    let (code, _) = http(
        "PUT",
        &format!("{other}/v2/x/manifests/v1"),
        Some(m.as_bytes()),
    );
    assert_eq!(code, 201);
    let (code, _) = http("DELETE", &format!("{other}/v2/x/manifests/v1"), None);
    assert_eq!(code, 202);
    let (code, _) = http("DELETE", &format!("{base}/v2/in/box/manifests/v1"), None);
    assert_eq!(code, 405);
    env.berth(&["rm", "-f", "-v", "registry", "deletable"]).ok();
}

/// The pull-through cache: a registry with `proxy.remoteurl` serves what its upstream has
/// (here a berth registry behind the token flow), keeps it, and goes on serving it when the
/// upstream is gone; pushes to it are refused.
#[test]
fn a_pull_through_cache_serves_and_keeps_what_its_upstream_has() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, pubkey, users) = token_setup(d, "mirror", "m1rror");
    let port = free_port();
    let mut upstream = Some(Registry::start_at(
        &format!("127.0.0.1:{port}"),
        &format!(
            "  auth:\n    token:\n      realm: http://127.0.0.1:{port}/auth/token\n      service: up\n      issuer: up\n      publickey: {}\n      signingkey: {}\n      htpasswd: {}\n",
            pubkey.display(),
            key.display(),
            users.display()
        ),
        dir,
    ));
    let up = upstream.as_ref().unwrap();
    // the image upstream, pushed with a token of `berth registry token`
    let o = Command::new(BERTH)
        .args(["registry", "token", "--key"])
        .arg(&key)
        .args([
            "--issuer",
            "up",
            "--service",
            "up",
            "repository:library/tool:pull,push",
        ])
        .output()
        .unwrap();
    let bearer = format!(
        "Authorization: Bearer {}",
        String::from_utf8_lossy(&o.stdout).trim()
    );
    let config = br#"{"os":"linux"}"#;
    let layer: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    let mut digests = Vec::new();
    for data in [&config[..], &layer[..]] {
        let dg = sha256(data);
        let a = curl(
            "POST",
            &up.url(&format!("/v2/library/tool/blobs/uploads/?digest={dg}")),
            &[&bearer],
            Some(data),
        );
        assert_eq!(a.status, 201, "{}", a.text());
        digests.push(dg);
    }
    let m = manifest_for(&digests[0], config.len(), &digests[1], layer.len());
    let a = curl(
        "PUT",
        &up.url("/v2/library/tool/manifests/stable"),
        &[&bearer, &format!("Content-Type: {OCI_MANIFEST}")],
        Some(m.as_bytes()),
    );
    assert_eq!(a.status, 201, "{}", a.text());

    let cache = Registry::start(&format!(
        "  proxy:\n    remoteurl: http://127.0.0.1:{port}\n    username: mirror\n    password: m1rror\n"
    ));
    // pulled through: the manifest by tag, the blobs streamed
    let a = curl(
        "GET",
        &cache.url("/v2/library/tool/manifests/stable"),
        &[],
        None,
    );
    assert_eq!((a.status, a.text()), (200, m.clone()));
    assert_eq!(a.header("Content-Type").as_deref(), Some(OCI_MANIFEST));
    let a = curl(
        "HEAD",
        &cache.url(&format!("/v2/library/tool/blobs/{}", digests[1])),
        &[],
        None,
    );
    assert_eq!(
        (a.status, a.header("Content-Length")),
        (200, Some(layer.len().to_string()))
    );
    let a = curl(
        "GET",
        &cache.url(&format!("/v2/library/tool/blobs/{}", digests[1])),
        &[],
        None,
    );
    assert_eq!(a.status, 200);
    assert!(a.body == layer, "the layer came through changed");
    let a = curl(
        "GET",
        &cache.url(&format!("/v2/library/tool/blobs/{}", digests[0])),
        &[],
        None,
    );
    assert_eq!(a.body, config);
    // the tag list is the upstream's
    let a = curl("GET", &cache.url("/v2/library/tool/tags/list"), &[], None);
    assert_eq!(
        a.json(),
        serde_json::json!({"name": "library/tool", "tags": ["stable"]})
    );
    // what is not upstream either
    let a = curl(
        "GET",
        &cache.url("/v2/library/none/manifests/stable"),
        &[],
        None,
    );
    assert_eq!((a.status, a.code()), (404, "MANIFEST_UNKNOWN".into()));
    // pushes go to the upstream, not here
    let a = curl(
        "POST",
        &cache.url("/v2/library/tool/blobs/uploads/"),
        &[],
        None,
    );
    assert_eq!((a.status, a.code()), (405, "UNSUPPORTED".into()));
    // a cache with the wrong password: the upstream's refusal, as a bad gateway
    let bad = Registry::start(&format!(
        "  proxy:\n    remoteurl: http://127.0.0.1:{port}\n    username: mirror\n    password: nope\n"
    ));
    let a = curl(
        "GET",
        &bad.url("/v2/library/tool/manifests/stable"),
        &[],
        None,
    );
    assert_eq!(a.status, 502, "{}", a.text());
    assert!(a.text().contains("401"), "{}", a.text());
    // the upstream goes away: everything pulled once is still served
    let kept = cache.data().join(format!(
        "blobs/sha256/{}/{}/data",
        &digests[1][7..9],
        &digests[1][7..]
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !kept.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(kept.exists(), "the layer was not kept");
    upstream.take();
    let a = curl("GET", &cache.url("/v2/library/tool/tags/list"), &[], None);
    assert_eq!(
        a.json()["tags"],
        serde_json::json!(["stable"]),
        "the kept tags"
    );
    let a = curl(
        "GET",
        &cache.url("/v2/library/tool/manifests/stable"),
        &[],
        None,
    );
    assert_eq!((a.status, a.text()), (200, m));
    let a = curl(
        "GET",
        &cache.url(&format!("/v2/library/tool/blobs/{}", digests[1])),
        &[],
        None,
    );
    assert!(a.status == 200 && a.body == layer);
    // with nothing kept and no upstream: a bad gateway
    let gone = Registry::start(&format!(
        "  proxy:\n    remoteurl: http://127.0.0.1:{}\n",
        free_port()
    ));
    let a = curl(
        "GET",
        &gone.url("/v2/library/tool/manifests/stable"),
        &[],
        None,
    );
    assert_eq!(a.status, 502, "{}", a.text());
}

/// `registry-mirrors`: a dockerd whose mirror is a berth pull-through cache pulls `busybox`
/// (docker.io/library/busybox) through it, from the cache's upstream (another berth registry,
/// standing in for Docker Hub, which this machine cannot reach).
#[test]
fn docker_pulls_through_a_berth_mirror() {
    let Some(d) =
        common::Dockerd::start_with_config(r#"{"registry-mirrors": ["http://127.0.0.1:5001"]}"#)
    else {
        return;
    };
    let env = common::Env::new();
    d.import_busybox(&env.busybox_tar());
    let hub = Registry::start_in_netns_of_at(d.pid(), "127.0.0.1:5000", "");
    d.docker(&["tag", "busybox", "127.0.0.1:5000/library/busybox:latest"])
        .ok();
    d.docker(&["push", "127.0.0.1:5000/library/busybox:latest"])
        .ok();
    let mirror = Registry::start_in_netns_of_at(
        d.pid(),
        "127.0.0.1:5001",
        &format!("  proxy:\n    remoteurl: http://{}\n", hub.addr),
    );
    d.docker(&["rmi", "busybox", "127.0.0.1:5000/library/busybox:latest"])
        .ok();
    let o = d.docker(&["pull", "busybox"]).ok();
    assert!(
        o.stdout.contains("docker.io/library/busybox:latest"),
        "{}",
        o.stdout
    );
    let o = d
        .docker(&[
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "echo",
            "mirrored",
        ])
        .ok();
    assert_eq!(o.stdout.trim(), "mirrored");
    // the mirror kept what it passed on
    let kept = files(&mirror.data());
    assert!(
        kept.iter()
            .any(|f| f.starts_with("repositories/library/busybox/_manifests/tags/latest")),
        "{kept:?}"
    );
    assert!(
        kept.iter()
            .filter(|f| f.starts_with("blobs/") && f.ends_with("/data"))
            .count()
            >= 3,
        "{kept:?}"
    );
}
