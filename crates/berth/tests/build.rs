//! End-to-end: `berth build` (Docker's classic builder behind `POST /build`), its options,
//! contexts, every Dockerfile instruction, history, the build cache, failures, concurrent
//! builds, what builds leave behind, and the real docker CLI against berth.

mod common;
use common::{leftovers, Env, Out};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

/// A fresh directory under the test's temp dir holding `files` (parents created).
fn ctx(env: &Env, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = env.dir.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (path, content) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
    }
    dir
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// `berth build --progress=plain <args> <dir>`.
fn build(env: &Env, dir: &Path, args: &[&str]) -> Out {
    let mut a = vec!["build", "--progress=plain"];
    a.extend_from_slice(args);
    let d = s(dir);
    a.push(&d);
    env.berth(&a)
}

fn inspect(env: &Env, what: &str) -> Value {
    let o = env.berth(&["image", "inspect", what]).ok();
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    v[0].clone()
}

fn image_id(env: &Env, what: &str) -> String {
    inspect(env, what)["Id"].as_str().unwrap().to_string()
}

fn layers(env: &Env, what: &str) -> usize {
    inspect(env, what)["RootFS"]["Layers"]
        .as_array()
        .unwrap()
        .len()
}

/// `berth run --rm <image> <cmd...>`'s stdout (the run must succeed).
fn run(env: &Env, image: &str, cmd: &[&str]) -> String {
    let mut a = vec!["run", "--rm", image];
    a.extend_from_slice(cmd);
    env.berth(&a).ok().stdout
}

fn all_images(env: &Env) -> BTreeSet<String> {
    env.berth(&["images", "-a", "-q", "--no-trunc"])
        .ok()
        .stdout
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// The steps of a plain build output, in order: (the `Step n/m : ...` text, whether the step
/// said ` ---> Using cache`).
fn steps(out: &str) -> Vec<(String, bool)> {
    let mut v: Vec<(String, bool)> = Vec::new();
    for l in out.lines() {
        if l.starts_with("Step ") {
            v.push((l.to_string(), false));
        } else if l == " ---> Using cache" {
            v.last_mut().expect("a step before Using cache").1 = true;
        }
    }
    v
}

/// Whether every step but FROM came from the cache.
fn all_cached(out: &str) -> bool {
    let st = steps(out);
    !st.is_empty()
        && st
            .iter()
            .filter(|(s, _)| {
                !s.split(" : ")
                    .nth(1)
                    .is_some_and(|i| i.starts_with("FROM "))
            })
            .all(|(_, c)| *c)
}

/// The id `Successfully built <id>` names.
fn built_id(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("Successfully built "))
        .unwrap_or_else(|| panic!("no 'Successfully built' in {out}"))
        .trim()
        .to_string()
}

/// Nothing of any build is left: no containers, no mounts below the test's directory, and
/// the builder's scratch directory is empty.
fn assert_clean(env: &Env) {
    // RUN containers are removed in the background while later steps run, but the build
    // awaits them before it ends.
    assert_eq!(
        env.berth(&["ps", "-aq"]).ok().trimmed(),
        "",
        "containers left"
    );
    // The tests' own `run --rm` containers are reported removed before their shims have
    // unmounted their roots (ARCHITECTURE.md, "Exit and removal"): that teardown must end.
    let mounts = || -> Vec<String> {
        leftovers(env)
            .into_iter()
            .filter(|l| l.starts_with("mount "))
            .collect()
    };
    let mut left = mounts();
    for _ in 0..100 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        left = mounts();
    }
    assert!(left.is_empty(), "mounts left: {left:?}");
    let tmp = env.data_root.join("builder").join("tmp");
    if tmp.exists() {
        let entries: Vec<_> = std::fs::read_dir(&tmp)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(entries.is_empty(), "builder tmp not empty: {entries:?}");
    }
}

fn out_of(o: std::process::Output) -> Out {
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn both(o: &Out) -> String {
    format!("{}{}", o.stdout, o.stderr)
}

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

#[test]
fn tags_dockerfile_name_build_args_labels_quiet_and_iidfile() {
    let env = Env::new().with_busybox();
    let dir = ctx(
        &env,
        "c",
        &[
            (
                "other.Dockerfile",
                "ARG BASE=busybox\n\
                 FROM ${BASE}\n\
                 ARG GREETING=hello\n\
                 ARG WHO\n\
                 RUN echo \"$GREETING ${WHO:-nobody}\" > /greeting\n\
                 CMD [\"cat\", \"/greeting\"]\n",
            ),
            ("Dockerfile", "FROM busybox\nRUN exit 9\n"),
        ],
    );
    // -t twice, -f with another name, ARG defaults (and an ARG before FROM used in FROM).
    // (A relative -f is relative to the current directory, as docker's.)
    let mut o = env.cmd(&[
        "build",
        "--progress=plain",
        "-t",
        "one",
        "-t",
        "two:v2",
        "-f",
        "other.Dockerfile",
        ".",
    ]);
    let o = out_of(o.current_dir(&dir).output().unwrap()).ok();
    assert!(o.stdout.contains("Successfully tagged one:latest"), "{o:?}");
    assert!(o.stdout.contains("Successfully tagged two:v2"), "{o:?}");
    assert_eq!(image_id(&env, "one"), image_id(&env, "two:v2"));
    assert_eq!(run(&env, "one", &[]), "hello nobody\n");
    let other = s(&dir.join("other.Dockerfile"));

    // --build-arg overrides a default and sets an ARG without one; one nothing consumes is
    // warned about, and the build still succeeds.
    let o = build(
        &env,
        &dir,
        &[
            "-t",
            "args",
            "-f",
            &other,
            "--build-arg",
            "GREETING=hi",
            "--build-arg",
            "WHO=alice",
            "--build-arg",
            "UNUSED=1",
        ],
    )
    .ok();
    assert!(
        both(&o).contains("[Warning] One or more build-args [UNUSED] were not consumed"),
        "{o:?}"
    );
    assert_eq!(run(&env, "args", &[]), "hi alice\n");
    // The ARG before FROM picks the base: a base that does not exist fails the build.
    let o = build(
        &env,
        &dir,
        &["-f", &other, "--build-arg", "BASE=nosuchbase"],
    );
    assert_ne!(o.code, 0, "{o:?}");
    assert!(both(&o).contains("nosuchbase"), "{o:?}");

    // --label shows in inspect.
    build(
        &env,
        &dir,
        &[
            "-t",
            "labelled",
            "-f",
            &other,
            "--label",
            "com.example.a=1",
            "--label",
            "b=two words",
        ],
    )
    .ok();
    let labels = &inspect(&env, "labelled")["Config"]["Labels"];
    assert_eq!(labels["com.example.a"], "1", "{labels}");
    assert_eq!(labels["b"], "two words", "{labels}");

    // -q prints only the image id; --iidfile writes it.
    let iid = env.dir.path().join("iid");
    let o = env
        .berth(&[
            "build",
            "-q",
            "-f",
            &other,
            "--build-arg",
            "WHO=quiet",
            "--iidfile",
            &s(&iid),
            &s(&dir),
        ])
        .ok();
    let id = o.stdout.trim().to_string();
    assert!(
        id.starts_with("sha256:")
            && id.len() == 71
            && id[7..].bytes().all(|b| b.is_ascii_hexdigit()),
        "{o:?}"
    );
    assert_eq!(o.stdout, format!("{id}\n"), "only the id on stdout");
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), id);
    assert_eq!(run(&env, &id, &[]), "hello quiet\n");

    // -f naming a file outside the context directory.
    let elsewhere = ctx(
        &env,
        "elsewhere",
        &[(
            "Df",
            "FROM busybox\nCOPY data.txt /d\nCMD [\"cat\", \"/d\"]\n",
        )],
    );
    std::fs::write(dir.join("data.txt"), "from the dir\n").unwrap();
    build(
        &env,
        &dir,
        &["-t", "outsidedf", "-f", &s(&elsewhere.join("Df"))],
    )
    .ok();
    assert_eq!(run(&env, "outsidedf", &[]), "from the dir\n");

    // -f - with a directory context: the Dockerfile from stdin, the files from the directory.
    let o = env
        .berth_stdin(
            &["build", "-t", "stdinfile", "-f", "-", &s(&dir)],
            b"FROM busybox\nCOPY data.txt /data.txt\nCMD [\"cat\", \"/data.txt\"]\n",
        )
        .ok();
    assert!(
        o.stdout.contains("Successfully tagged stdinfile:latest"),
        "{o:?}"
    );
    assert_eq!(run(&env, "stdinfile", &[]), "from the dir\n");
    assert_clean(&env);
}

#[test]
fn target_no_cache_platform_and_network_none() {
    let env = Env::new().with_busybox();
    let dir = ctx(
        &env,
        "c",
        &[(
            "Dockerfile",
            "FROM busybox AS base\n\
             RUN echo base > /base\n\
             FROM busybox AS broken\n\
             RUN exit 7\n\
             FROM base AS app\n\
             RUN echo app > /app\n\
             FROM app AS last\n\
             RUN exit 8\n",
        )],
    );
    // --target app builds base and app; the broken stages are never run.
    let o = build(&env, &dir, &["-t", "app", "--target", "app"]).ok();
    assert!(!o.stdout.contains("exit 7"), "{o:?}");
    assert!(!o.stdout.contains("exit 8"), "{o:?}");
    assert_eq!(run(&env, "app", &["cat", "/base", "/app"]), "base\napp\n");
    // Unknown target.
    let o = build(&env, &dir, &["--target", "nope"]);
    assert_ne!(o.code, 0);
    assert!(both(&o).contains("nope"), "{o:?}");

    // --no-cache runs every step again: a new image, no step from the cache.
    let first = image_id(&env, "app");
    let o = build(&env, &dir, &["-t", "app", "--target", "app"]).ok();
    assert!(all_cached(&o.stdout), "{o:?}");
    assert_eq!(image_id(&env, "app"), first);
    let o = build(&env, &dir, &["-t", "app", "--target", "app", "--no-cache"]).ok();
    assert!(steps(&o.stdout).iter().all(|(_, c)| !*c), "{o:?}");
    assert!(!o.stdout.contains("Using cache"), "{o:?}");
    assert_ne!(image_id(&env, "app"), first);

    // --platform: the host's is fine, another is refused clearly.
    let p = ctx(
        &env,
        "p",
        &[("Dockerfile", "FROM busybox\nRUN echo plat > /plat\n")],
    );
    build(&env, &p, &["-t", "plat", "--platform", "linux/amd64"]).ok();
    assert_eq!(run(&env, "plat", &["cat", "/plat"]), "plat\n");
    let o = build(&env, &p, &["-t", "arm", "--platform", "linux/arm64"]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("arm64"), "{o:?}");
    assert_ne!(env.berth(&["image", "inspect", "arm"]).code, 0);
    // Refused before the context is read: a large one must still get the answer, not a
    // broken pipe.
    std::fs::write(p.join("big"), vec![7u8; 48 << 20]).unwrap();
    let o = build(&env, &p, &["-t", "arm", "--platform", "linux/arm64"]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("arm64"), "{o:?}");
    std::fs::remove_file(p.join("big")).unwrap();

    // --network=none: RUN sees only the loopback interface.
    let n = ctx(
        &env,
        "n",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN ls /sys/class/net > /nets\n",
        )],
    );
    build(&env, &n, &["-t", "nonet", "--network=none"]).ok();
    assert_eq!(run(&env, "nonet", &["cat", "/nets"]), "lo\n");
    // --network=host: RUN sees the daemon's own interfaces (one made for the test).
    let st = env
        .in_daemon_netns(&["ip", "link", "add", "buildhost0", "type", "bridge"])
        .status()
        .unwrap();
    assert!(st.success());
    build(&env, &n, &["-t", "hostnet", "--network=host"]).ok();
    assert!(
        run(&env, "hostnet", &["cat", "/nets"]).contains("buildhost0"),
        "RUN did not share the host's network"
    );
    // RUN --network=host on the instruction itself.
    std::fs::write(
        n.join("Dockerfile"),
        "FROM busybox\nRUN --network=host ls /sys/class/net > /nets\n",
    )
    .unwrap();
    build(&env, &n, &["-t", "hostnet2"]).ok();
    assert!(run(&env, "hostnet2", &["cat", "/nets"]).contains("buildhost0"));
    assert_clean(&env);
}

#[test]
fn plain_progress_lines() {
    let env = Env::new().with_busybox();
    let dir = ctx(
        &env,
        "c",
        &[
            ("a.txt", "a\n"),
            (
                "Dockerfile",
                "FROM busybox\nCOPY a.txt /a.txt\nRUN cat /a.txt\nENV X=1\nCMD [\"sh\"]\n",
            ),
        ],
    );
    let o = build(&env, &dir, &["-t", "x"]).ok();
    let base = image_id(&env, "busybox");
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert!(
        lines[0].starts_with("Sending build context to Docker daemon"),
        "{lines:?}"
    );
    let want_steps = [
        "Step 1/5 : FROM busybox",
        "Step 2/5 : COPY a.txt /a.txt",
        "Step 3/5 : RUN cat /a.txt",
        "Step 4/5 : ENV X=1",
        "Step 5/5 : CMD [\"sh\"]",
    ];
    let got: Vec<String> = steps(&o.stdout).into_iter().map(|(s, _)| s).collect();
    assert_eq!(got, want_steps, "{o:?}");
    assert!(
        lines.contains(&format!(" ---> {}", &base[7..19]).as_str()),
        "{lines:?}"
    );
    let running = lines
        .iter()
        .find_map(|l| l.strip_prefix(" ---> Running in "))
        .unwrap_or_else(|| panic!("no Running in: {lines:?}"));
    assert_eq!(running.len(), 12, "{running}");
    assert!(lines.contains(&"a"), "the RUN's output: {lines:?}");
    assert!(
        lines.contains(&format!("Removing intermediate container {running}").as_str()),
        "{lines:?}"
    );
    let id = built_id(&o.stdout);
    assert_eq!(id, &image_id(&env, "x")[7..19]);
    assert_eq!(lines[lines.len() - 1], "Successfully tagged x:latest");
    assert_eq!(
        lines[lines.len() - 2],
        format!("Successfully built {id}"),
        "{lines:?}"
    );

    // Again: every step after FROM from the cache, and nothing run.
    let o = build(&env, &dir, &["-t", "x"]).ok();
    let st = steps(&o.stdout);
    assert_eq!(st.len(), 5);
    assert!(!st[0].1 && st[1..].iter().all(|(_, c)| *c), "{o:?}");
    assert!(!o.stdout.contains("Running in"), "{o:?}");
    assert_eq!(built_id(&o.stdout), id);
}

// ---------------------------------------------------------------------------------------------
// Contexts
// ---------------------------------------------------------------------------------------------

#[test]
fn stdin_contexts_and_dockerignore() {
    let env = Env::new().with_busybox();
    // A Dockerfile on stdin, no context.
    let o = env
        .berth_stdin(
            &["build", "-t", "fromstdin", "-"],
            b"FROM busybox\nRUN echo stdin > /s\nCMD [\"cat\", \"/s\"]\n",
        )
        .ok();
    assert!(
        o.stdout.contains("Successfully tagged fromstdin:latest"),
        "{o:?}"
    );
    assert_eq!(run(&env, "fromstdin", &[]), "stdin\n");

    // A tar on stdin, plain and gzip-compressed.
    let src = ctx(
        &env,
        "tarctx",
        &[
            (
                "Dockerfile",
                "FROM busybox\nCOPY sub/f.txt /f.txt\nCMD [\"cat\", \"/f.txt\"]\n",
            ),
            ("sub/f.txt", "in the tar\n"),
        ],
    );
    for (flag, name) in [("-cf", "plain"), ("-czf", "gzip")] {
        let tar = env.dir.path().join(format!("ctx-{name}.tar"));
        let st = Command::new("tar")
            .arg("-C")
            .arg(&src)
            .arg(flag)
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success());
        let o = env
            .berth_stdin(
                &["build", "-t", &format!("tar-{name}"), "-"],
                &std::fs::read(&tar).unwrap(),
            )
            .ok();
        assert!(o.stdout.contains("Successfully built"), "{name}: {o:?}");
        assert_eq!(run(&env, &format!("tar-{name}"), &[]), "in the tar\n");
    }

    // .dockerignore: ignored files are not in the context, exceptions are; the Dockerfile and
    // .dockerignore are sent even when ignored (but are not copied).
    let dir = ctx(
        &env,
        "ign",
        &[
            (
                ".dockerignore",
                "# comment\n*.log\n!keep.log\nsecret/\nDockerfile\n.dockerignore\nsub/**/*.tmp\n",
            ),
            ("Dockerfile", "FROM busybox\nCOPY . /ctx\n"),
            ("a.log", "x"),
            ("keep.log", "kept"),
            ("secret/key", "k"),
            ("sub/deep/x.tmp", "t"),
            ("sub/deep/y.txt", "y"),
            ("top.txt", "top"),
        ],
    );
    build(&env, &dir, &["-t", "ign"]).ok();
    let listing = run(&env, "ign", &["find", "/ctx"]);
    let got: BTreeSet<&str> = listing.lines().collect();
    let want: BTreeSet<&str> = [
        "/ctx",
        "/ctx/keep.log",
        "/ctx/sub",
        "/ctx/sub/deep",
        "/ctx/sub/deep/y.txt",
        "/ctx/top.txt",
    ]
    .into_iter()
    .collect();
    assert_eq!(got, want);
    assert_clean(&env);
}

// ---------------------------------------------------------------------------------------------
// Instructions
// ---------------------------------------------------------------------------------------------

#[test]
fn scratch_stages_copy_from_chown_chmod_and_globs() {
    let env = Env::new().with_busybox();
    let dir = ctx(
        &env,
        "c",
        &[
            ("one.txt", "1\n"),
            ("two.txt", "2\n"),
            ("three.md", "3\n"),
            ("f", "f\n"),
            (
                "Dockerfile",
                "FROM busybox AS tools\n\
                 RUN echo made-in-tools > /made\n\
                 FROM busybox\n\
                 RUN echo made-in-1 > /made\n\
                 FROM scratch AS final\n\
                 COPY bin/busybox /busybox\n\
                 COPY --from=tools /made /from-name\n\
                 COPY --from=1 /made /from-index\n\
                 COPY --from=tools /etc/passwd /etc/group /etc/\n\
                 COPY --chown=alice:staff f /owned-by-name\n\
                 COPY --chown=123:456 f /owned-by-number\n\
                 COPY --chmod=0640 f /mode640\n\
                 COPY *.txt /globbed/\n\
                 ENTRYPOINT [\"/busybox\"]\n\
                 CMD [\"echo\", \"from scratch\"]\n",
            ),
        ],
    );
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    build(&env, &dir, &["-t", "scr"]).ok();
    assert_eq!(run(&env, "scr", &[]), "from scratch\n");
    let cat = |p: &str| run(&env, "scr", &["cat", p]);
    assert_eq!(cat("/from-name"), "made-in-tools\n");
    assert_eq!(cat("/from-index"), "made-in-1\n");
    let stat = |p: &str| run(&env, "scr", &["stat", "-c", "%u:%g %a", p]);
    assert_eq!(stat("/owned-by-name"), "1000:50 644\n");
    assert_eq!(stat("/owned-by-number"), "123:456 644\n");
    assert_eq!(stat("/mode640"), "0:0 640\n");
    assert_eq!(run(&env, "scr", &["ls", "/globbed"]), "one.txt\ntwo.txt\n");
    // Only the final stage's layers: busybox, the stage files, the owned and globbed files.
    let cfg = inspect(&env, "scr");
    assert_eq!(cfg["Config"]["Entrypoint"], serde_json::json!(["/busybox"]));
    assert!(
        cfg["RootFS"]["Layers"].as_array().unwrap().len() >= 2,
        "{cfg}"
    );
    assert_clean(&env);
}

/// An HTTP server in the daemon's network namespace (where the daemon fetches ADD URLs):
/// answers every GET with what `body` holds then. Its port.
fn serve_in_netns(pid: i32, body: Arc<Mutex<Vec<u8>>>) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    use std::os::fd::AsRawFd;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).unwrap();
        // SAFETY: setns(2) on this thread only, with a valid namespace fd.
        let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        tx.send(l.local_addr().unwrap().port()).unwrap();
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                if line == "\r\n" || line == "\n" {
                    break;
                }
                line.clear();
            }
            let body = body.lock().unwrap().clone();
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(&body);
        }
    });
    rx.recv().unwrap()
}

#[test]
fn remote_contexts_a_dockerfile_or_a_tar_by_url() {
    let env = Env::new().with_busybox();
    let served = Arc::new(Mutex::new(
        b"FROM busybox\nRUN echo remote > /r\nCMD [\"cat\", \"/r\"]\n".to_vec(),
    ));
    let port = serve_in_netns(env.daemon_pid(), served.clone());
    let url = format!("http://127.0.0.1:{port}/Dockerfile");
    let o = env.berth(&["build", "-t", "rem", &url]).ok();
    assert!(o.stdout.contains("Successfully tagged rem:latest"), "{o:?}");
    assert_eq!(run(&env, "rem", &[]), "remote\n");
    // A tar.gz at the URL is the whole context.
    let dir = ctx(
        &env,
        "remote-ctx",
        &[
            (
                "Dockerfile",
                "FROM busybox\nCOPY f /f\nCMD [\"cat\", \"/f\"]\n",
            ),
            ("f", "from the remote tar\n"),
        ],
    );
    let tgz = env.dir.path().join("ctx.tgz");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .arg("-czf")
        .arg(&tgz)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    *served.lock().unwrap() = std::fs::read(&tgz).unwrap();
    let url = format!("http://127.0.0.1:{port}/ctx.tgz");
    env.berth(&["build", "-t", "rem2", &url]).ok();
    assert_eq!(run(&env, "rem2", &[]), "from the remote tar\n");
    // A git repository is refused clearly.
    let o = env.berth(&["build", "http://127.0.0.1:1/repo.git"]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("not supported"), "{o:?}");
    assert_clean(&env);
}

#[test]
fn add_local_archive_and_url() {
    let env = Env::new().with_busybox();
    let served = Arc::new(Mutex::new(b"downloaded content\n".to_vec()));
    let port = serve_in_netns(env.daemon_pid(), served.clone());
    let dir = ctx(&env, "c", &[("src/inner/a.txt", "in the archive\n")]);
    let st = Command::new("tar")
        .arg("-C")
        .arg(dir.join("src"))
        .arg("-czf")
        .arg(dir.join("arch.tar.gz"))
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM busybox\n\
             ADD arch.tar.gz /unpacked/\n\
             ADD http://127.0.0.1:{port}/dl/file.txt /web/\n\
             ADD http://127.0.0.1:{port}/other /web/renamed.txt\n"
        ),
    )
    .unwrap();
    build(&env, &dir, &["-t", "added"]).ok();
    assert_eq!(
        run(&env, "added", &["cat", "/unpacked/inner/a.txt"]),
        "in the archive\n"
    );
    // The archive itself is not there, only what it holds.
    assert_eq!(run(&env, "added", &["ls", "/unpacked"]), "inner\n");
    assert_eq!(
        run(&env, "added", &["cat", "/web/file.txt", "/web/renamed.txt"]),
        "downloaded content\ndownloaded content\n"
    );
    // Downloads are 0600 (as Docker's).
    assert_eq!(
        run(&env, "added", &["stat", "-c", "%a", "/web/file.txt"]),
        "600\n"
    );
    // Downloaded again on every build, the cache keyed on the content: the same content is
    // a cache hit, new content runs the ADD again.
    let o = build(&env, &dir, &["-t", "added"]).ok();
    assert!(all_cached(&o.stdout), "{o:?}");
    *served.lock().unwrap() = b"new content\n".to_vec();
    let o = build(&env, &dir, &["-t", "added"]).ok();
    let cached: Vec<bool> = steps(&o.stdout).into_iter().map(|(_, c)| c).collect();
    assert_eq!(cached, [false, true, false, false], "{o:?}");
    assert_eq!(
        run(&env, "added", &["cat", "/web/file.txt", "/web/renamed.txt"]),
        "new content\nnew content\n"
    );
    assert_clean(&env);
}

#[test]
fn config_instructions_and_history() {
    let env = Env::new().with_busybox();
    let base_layers = layers(&env, "busybox");
    let dir = ctx(
        &env,
        "c",
        &[(
            "Dockerfile",
            "FROM busybox\n\
             ENV A=1 B=\"two words\"\n\
             ENV C 3 4\n\
             LABEL a=b \"c d\"=\"e f\"\n\
             MAINTAINER Jane Doe <jane@example.com>\n\
             EXPOSE 80 53/udp\n\
             VOLUME [\"/data\", \"/v2\"]\n\
             VOLUME /v3 /v4\n\
             STOPSIGNAL SIGUSR1\n\
             HEALTHCHECK --interval=5s --timeout=3s --retries=2 CMD wget -q localhost || exit 1\n\
             USER alice\n\
             ENTRYPOINT [\"/bin/sh\", \"-c\"]\n\
             CMD [\"echo $A $C\"]\n",
        )],
    );
    let o = build(&env, &dir, &["-t", "meta"]).ok();
    assert_eq!(steps(&o.stdout).len(), 13);
    let i = inspect(&env, "meta");
    let c = &i["Config"];
    let envs: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for want in ["A=1", "B=two words", "C=3 4"] {
        assert!(envs.contains(&want), "{envs:?}");
    }
    assert_eq!(c["Labels"]["a"], "b");
    assert_eq!(c["Labels"]["c d"], "e f");
    assert_eq!(i["Author"], "Jane Doe <jane@example.com>");
    assert_eq!(
        c["ExposedPorts"],
        serde_json::json!({"80/tcp": {}, "53/udp": {}})
    );
    assert_eq!(
        c["Volumes"],
        serde_json::json!({"/data": {}, "/v2": {}, "/v3": {}, "/v4": {}})
    );
    assert_eq!(c["StopSignal"], "SIGUSR1");
    assert_eq!(
        c["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "wget -q localhost || exit 1"])
    );
    assert_eq!(c["Healthcheck"]["Interval"], 5_000_000_000u64);
    assert_eq!(c["Healthcheck"]["Timeout"], 3_000_000_000u64);
    assert_eq!(c["Healthcheck"]["Retries"], 2);
    assert_eq!(c["User"], "alice");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(c["Cmd"], serde_json::json!(["echo $A $C"]));
    assert_eq!(run(&env, "meta", &[]), "1 3 4\n");
    // Not one of them adds a layer.
    assert_eq!(layers(&env, "meta"), base_layers);
    // But each is in the history, newest first, with Docker's CREATED BY text.
    let h = env
        .berth(&[
            "history",
            "--no-trunc",
            "--format",
            "{{.CreatedBy}}",
            "meta",
        ])
        .ok()
        .stdout;
    // Oldest first: the base's import, then one entry per instruction.
    let h: Vec<&str> = h.lines().rev().collect();
    let nop = |i: &str| format!("/bin/sh -c #(nop)  {i}");
    let want = [
        nop("ENV A=1 B=two words"),
        nop("ENV C=3 4"),
        nop("LABEL a=b c d=e f"),
        nop("MAINTAINER Jane Doe <jane@example.com>"),
        nop("EXPOSE 80 53/udp"),
        nop("VOLUME [/data /v2]"),
        nop("VOLUME [/v3 /v4]"),
        nop("STOPSIGNAL SIGUSR1"),
        nop("HEALTHCHECK"),
        nop("USER alice"),
        nop("ENTRYPOINT [\"/bin/sh\" \"-c\"]"),
        nop("CMD [\"echo $A $C\"]"),
    ];
    assert_eq!(h.len(), 1 + want.len(), "{h:#?}");
    for (got, want) in h[1..].iter().zip(&want) {
        if want.ends_with("HEALTHCHECK") {
            // Docker prints its Go struct here; only the start is stable.
            assert!(got.starts_with(&format!("{want} ")), "{got} vs {want}");
        } else {
            assert_eq!(got, want, "{h:#?}");
        }
    }
    // Empty layers are shown as 0B.
    let sizes = env
        .berth(&["history", "--format", "{{.Size}}", "meta"])
        .ok()
        .stdout;
    assert!(sizes.lines().take(12).all(|l| l == "0B"), "{sizes}");

    // USER, WORKDIR (relative paths join, directories are made), SHELL, RUN in both forms,
    // ENTRYPOINT resetting the base's CMD.
    let dir = ctx(
        &env,
        "d",
        &[(
            "Dockerfile",
            "FROM busybox\n\
             WORKDIR /a\n\
             WORKDIR b\n\
             WORKDIR c\n\
             RUN pwd > /a/pwd\n\
             RUN [\"/bin/sh\", \"-c\", \"echo exec form > /a/exec\"]\n\
             USER alice\n\
             RUN whoami\n\
             USER root\n\
             SHELL [\"/bin/echo\", \"via-shell\"]\n\
             RUN argument\n\
             CMD [\"pwd\"]\n",
        )],
    );
    let o = build(&env, &dir, &["-t", "wd"]).ok();
    let out: Vec<&str> = o.stdout.lines().collect();
    assert!(out.contains(&"alice"), "whoami as USER alice: {o:?}");
    assert!(
        out.contains(&"via-shell argument"),
        "RUN through SHELL: {o:?}"
    );
    let c = inspect(&env, "wd")["Config"].clone();
    assert_eq!(c["WorkingDir"], "/a/b/c");
    assert_eq!(c["Shell"], serde_json::json!(["/bin/echo", "via-shell"]));
    assert_eq!(run(&env, "wd", &[]), "/a/b/c\n");
    assert_eq!(
        run(&env, "wd", &["cat", "/a/pwd", "/a/exec"]),
        "/a/b/c\nexec form\n"
    );
    let h = env
        .berth(&["history", "--no-trunc", "--format", "{{.CreatedBy}}", "wd"])
        .ok()
        .stdout;
    assert!(
        h.lines().any(|l| l == "/bin/echo via-shell argument"),
        "{h}"
    );
    assert!(h.lines().any(|l| l == "/bin/sh -c whoami"), "{h}");

    let dir = ctx(
        &env,
        "e",
        &[("Dockerfile", "FROM wd\nENTRYPOINT [\"echo\", \"entry\"]\n")],
    );
    build(&env, &dir, &["-t", "ep"]).ok();
    let c = inspect(&env, "ep")["Config"].clone();
    assert!(c["Cmd"].is_null(), "ENTRYPOINT resets the base's CMD: {c}");
    assert_eq!(run(&env, "ep", &[]), "entry\n");
    // Shell form ENTRYPOINT: through /bin/sh -c, arguments to run are ignored.
    let dir = ctx(
        &env,
        "f",
        &[(
            "Dockerfile",
            "FROM busybox\nENV W=world\nENTRYPOINT echo hello $W\n",
        )],
    );
    build(&env, &dir, &["-t", "epshell"]).ok();
    let c = inspect(&env, "epshell")["Config"].clone();
    assert_eq!(
        c["Entrypoint"],
        serde_json::json!(["/bin/sh", "-c", "echo hello $W"])
    );
    assert_eq!(run(&env, "epshell", &["ignored"]), "hello world\n");
    assert_clean(&env);
}

#[test]
fn onbuild_triggers_run_in_the_child() {
    let env = Env::new().with_busybox();
    let dir = ctx(
        &env,
        "p",
        &[
            ("x.txt", "from the child's context\n"),
            (
                "Dockerfile",
                "FROM busybox\nONBUILD COPY x.txt /x.txt\nONBUILD RUN echo triggered > /trig\n",
            ),
        ],
    );
    build(&env, &dir, &["-t", "parent"]).ok();
    let p = inspect(&env, "parent");
    assert_eq!(
        p["Config"]["OnBuild"],
        serde_json::json!(["COPY x.txt /x.txt", "RUN echo triggered > /trig"])
    );
    assert_eq!(layers(&env, "parent"), layers(&env, "busybox"));
    // The parent itself has not run them.
    assert_ne!(
        env.berth(&["run", "--rm", "parent", "cat", "/trig"]).code,
        0
    );
    let child = ctx(
        &env,
        "c",
        &[
            ("x.txt", "from the child's context\n"),
            ("Dockerfile", "FROM parent\nRUN cat /trig /x.txt > /both\n"),
        ],
    );
    let o = build(&env, &child, &["-t", "child"]).ok();
    assert!(o.stdout.contains("# Executing 2 build triggers"), "{o:?}");
    assert_eq!(
        run(&env, "child", &["cat", "/both"]),
        "triggered\nfrom the child's context\n"
    );
    // Triggers are not inherited by the child.
    let c = inspect(&env, "child");
    let ob = &c["Config"]["OnBuild"];
    assert!(
        ob.is_null() || ob.as_array().is_some_and(|a| a.is_empty()),
        "{ob}"
    );
    assert_clean(&env);
}

#[test]
fn directives_continuations_heredocs_and_substitution() {
    let env = Env::new().with_busybox();
    // escape=` : the backtick continues lines, a backslash is an ordinary character.
    let dir = ctx(
        &env,
        "esc",
        &[(
            "Dockerfile",
            "# escape=`\n\
             FROM busybox\n\
             RUN echo 'c:\\dir' `\n\
             \x20   > /esc\n",
        )],
    );
    build(&env, &dir, &["-t", "esc"]).ok();
    assert_eq!(run(&env, "esc", &["cat", "/esc"]), "c:\\dir\n");

    // syntax= is noted, and the build goes on with the built-in frontend.
    let dir = ctx(
        &env,
        "syn",
        &[(
            "Dockerfile",
            "# syntax=docker/dockerfile:1\nFROM busybox\nRUN echo syn > /syn\n",
        )],
    );
    let o = build(&env, &dir, &["-t", "syn"]).ok();
    assert!(both(&o).to_lowercase().contains("syntax"), "{o:?}");
    assert_eq!(run(&env, "syn", &["cat", "/syn"]), "syn\n");

    // Continuations with comments and blank lines inside, comments elsewhere, heredocs,
    // ${VAR:-default} and ${VAR:+alt}.
    let df = "# a comment\n\
              FROM busybox\n\
              ARG X\n\
              ENV D=${X:-dflt} E=${X:+alt} F=\"${X}\"\n\
              RUN echo one \\\n\
              # a comment inside\n\
              \x20   two \\\n\
              \n\
              \x20   three > /cont\n\
              RUN <<EOF\n\
              echo first > /heredoc\n\
              echo second >> /heredoc\n\
              EOF\n\
              COPY <<EOF /copied\n\
              line one\n\
              line two\n\
              EOF\n\
              CMD [\"sh\", \"-c\", \"echo D=$D E=$E F=$F\"]\n";
    let dir = ctx(&env, "misc", &[("Dockerfile", df)]);
    build(&env, &dir, &["-t", "misc"]).ok();
    assert_eq!(run(&env, "misc", &["cat", "/cont"]), "one two three\n");
    assert_eq!(run(&env, "misc", &["cat", "/heredoc"]), "first\nsecond\n");
    assert_eq!(
        run(&env, "misc", &["cat", "/copied"]),
        "line one\nline two\n"
    );
    assert_eq!(run(&env, "misc", &[]), "D=dflt E= F=\n");
    build(&env, &dir, &["-t", "misc2", "--build-arg", "X=given"]).ok();
    assert_eq!(run(&env, "misc2", &[]), "D=given E=alt F=given\n");
    assert_clean(&env);
}

#[test]
fn stage_and_variable_scoping() {
    let env = Env::new().with_busybox();
    let dir = ctx(
        &env,
        "c",
        &[(
            "Dockerfile",
            "ARG V=meta\n\
             FROM busybox AS Builder\n\
             RUN echo \"[$V]\" > /v1\n\
             ARG V\n\
             RUN echo \"[$V]\" > /v2\n\
             FROM busybox\n\
             CMD [\"kept\"]\n\
             ENTRYPOINT [\"echo\"]\n\
             ENV D=/x A=1\n\
             ENV A=2 B=$A\n\
             WORKDIR $D/y\n\
             COPY --from=builder /v1 /v2 /vs/\n\
             COPY --from=busybox /etc/group /group\n\
             EXPOSE ${A}0\n\
             LABEL l=$B\n",
        )],
    );
    build(&env, &dir, &["-t", "scoped"]).ok();
    let c = inspect(&env, "scoped")["Config"].clone();
    // A meta ARG is seen in a stage only when the stage declares it again.
    let cat = |files: &[&str]| -> String {
        let mut a = vec!["run", "--rm", "--entrypoint", "cat", "scoped"];
        a.extend_from_slice(files);
        env.berth(&a).ok().stdout
    };
    assert_eq!(cat(&["/vs/v1", "/vs/v2"]), "[]\n[meta]\n");
    // ENV sees the values from before the instruction.
    let envs: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(envs.contains(&"A=2") && envs.contains(&"B=1"), "{envs:?}");
    assert_eq!(c["WorkingDir"], "/x/y");
    assert_eq!(c["ExposedPorts"], serde_json::json!({"20/tcp": {}}));
    assert_eq!(c["Labels"]["l"], "1");
    // A CMD of this stage survives its ENTRYPOINT (only a base's CMD is reset).
    assert_eq!(c["Cmd"], serde_json::json!(["kept"]));
    assert_eq!(run(&env, "scoped", &[]), "kept\n");
    // Stage names are case-insensitive; --from also takes an image.
    assert_eq!(
        cat(&["/group"]),
        run(&env, "busybox", &["cat", "/etc/group"])
    );
    // Two stages with one name are refused.
    let dup = ctx(
        &env,
        "dup",
        &[("Dockerfile", "FROM busybox AS a\nFROM busybox AS A\n")],
    );
    let o = build(&env, &dup, &[]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("a stage name already used"), "{o:?}");
    assert_clean(&env);
}

// ---------------------------------------------------------------------------------------------
// The cache
// ---------------------------------------------------------------------------------------------

#[test]
fn cache_is_never_wrong() {
    let env = Env::new().with_busybox();
    let dir = ctx(
        &env,
        "c",
        &[
            ("a.txt", "version 1\n"),
            (
                "Dockerfile",
                "FROM busybox\n\
                 ARG V=0\n\
                 RUN echo early > /early\n\
                 COPY a.txt /a.txt\n\
                 RUN cat /a.txt > /copy-of-a\n\
                 RUN echo v=$V > /v\n\
                 CMD [\"cat\", \"/copy-of-a\", \"/v\"]\n",
            ),
        ],
    );
    let o = build(&env, &dir, &["-t", "c"]).ok();
    let id1 = image_id(&env, "c");
    assert!(steps(&o.stdout).iter().all(|(_, c)| !*c), "{o:?}");
    assert_eq!(run(&env, "c", &[]), "version 1\nv=0\n");

    // Unchanged: every step from the cache, the same image.
    let o = build(&env, &dir, &["-t", "c"]).ok();
    let st = steps(&o.stdout);
    assert_eq!(st.len(), 7);
    assert!(st[1..].iter().all(|(_, c)| *c), "{o:?}");
    assert_eq!(image_id(&env, "c"), id1);

    // Only the mtime changes: still all from the cache.
    let a = dir.join("a.txt");
    let st = Command::new("touch")
        .args(["-d", "2001-02-03 04:05:06"])
        .arg(&a)
        .status()
        .unwrap();
    assert!(st.success());
    let o = build(&env, &dir, &["-t", "c"]).ok();
    assert!(all_cached(&o.stdout), "{o:?}");

    // A --no-cache build makes new images for the same steps; removing them leaves the
    // older ones, which the cache still finds.
    let o = build(&env, &dir, &["--no-cache", "-t", "fresh"]).ok();
    assert!(steps(&o.stdout).iter().all(|(_, c)| !*c), "{o:?}");
    assert_ne!(image_id(&env, "fresh"), id1);
    env.berth(&["rmi", "fresh"]).ok();
    let o = build(&env, &dir, &["-t", "c"]).ok();
    assert!(all_cached(&o.stdout), "{o:?}");
    assert_eq!(image_id(&env, "c"), id1);
    assert_eq!(image_id(&env, "c"), id1);

    // One byte changes: the steps before the COPY from the cache, the COPY and all after it
    // run again, and the image has the new content.
    std::fs::write(&a, "version 2\n").unwrap();
    let o = build(&env, &dir, &["-t", "c"]).ok();
    let cached: Vec<bool> = steps(&o.stdout).into_iter().map(|(_, c)| c).collect();
    assert_eq!(
        cached,
        [false, true, true, false, false, false, false],
        "{o:?}"
    );
    let id2 = image_id(&env, "c");
    assert_ne!(id2, id1);
    assert_eq!(run(&env, "c", &[]), "version 2\nv=0\n");

    // Only the mode changes: the COPY runs again and the new mode is in the image.
    let o = build(&env, &dir, &["-t", "c"]).ok();
    assert!(all_cached(&o.stdout), "{o:?}");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&a, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = build(&env, &dir, &["-t", "c"]).ok();
    let cached: Vec<bool> = steps(&o.stdout).into_iter().map(|(_, c)| c).collect();
    assert_eq!(
        cached,
        [false, true, true, false, false, false, false],
        "{o:?}"
    );
    assert_eq!(run(&env, "c", &["stat", "-c", "%a", "/a.txt"]), "600\n");
    let id3 = image_id(&env, "c");
    assert_ne!(id3, id2);

    // A different --build-arg: the steps that use it run again (docker: every RUN after the
    // ARG has the args in its key), the image has the new value.
    let o = build(&env, &dir, &["-t", "c", "--build-arg", "V=7"]).ok();
    let st = steps(&o.stdout);
    assert!(!st[5].1, "RUN echo v=$V must run again: {o:?}");
    assert_eq!(run(&env, "c", &[]), "version 2\nv=7\n");
    let h = env
        .berth(&["history", "--no-trunc", "--format", "{{.CreatedBy}}", "c"])
        .ok()
        .stdout;
    let h: Vec<&str> = h.lines().collect();
    assert_eq!(h[1], "|1 V=7 /bin/sh -c echo v=$V > /v", "{h:#?}");
    assert!(h.contains(&"/bin/sh -c #(nop)  ARG V=0"), "{h:#?}");
    // And with it again: from the cache.
    let o = build(&env, &dir, &["-t", "c", "--build-arg", "V=7"]).ok();
    assert!(all_cached(&o.stdout), "{o:?}");
    // Back to the default: the image of before.
    build(&env, &dir, &["-t", "c"]).ok();
    assert_eq!(image_id(&env, "c"), id3);

    // A directory copied whole: a file deep inside it changing, or a new one, runs it again.
    let d = ctx(
        &env,
        "d",
        &[
            ("tree/sub/deep.txt", "deep 1\n"),
            ("tree/top.txt", "top\n"),
            (
                "Dockerfile",
                "FROM busybox\nCOPY tree /tree\nRUN ls -R /tree > /ls\n",
            ),
        ],
    );
    build(&env, &d, &["-t", "tree"]).ok();
    let o = build(&env, &d, &["-t", "tree"]).ok();
    assert!(all_cached(&o.stdout), "{o:?}");
    std::fs::write(d.join("tree/sub/deep.txt"), "deep 2\n").unwrap();
    let o = build(&env, &d, &["-t", "tree"]).ok();
    assert!(steps(&o.stdout).iter().all(|(_, c)| !*c), "{o:?}");
    assert_eq!(
        run(&env, "tree", &["cat", "/tree/sub/deep.txt"]),
        "deep 2\n"
    );
    std::fs::write(d.join("tree/sub/new.txt"), "new\n").unwrap();
    let o = build(&env, &d, &["-t", "tree"]).ok();
    assert!(steps(&o.stdout).iter().all(|(_, c)| !*c), "{o:?}");
    assert_eq!(run(&env, "tree", &["cat", "/tree/sub/new.txt"]), "new\n");

    // The base image changing under its tag: nothing from the cache.
    let base = ctx(
        &env,
        "base",
        &[("Dockerfile", "FROM busybox\nRUN echo other base > /base\n")],
    );
    build(&env, &base, &["-t", "busybox"]).ok();
    let o = build(&env, &d, &["-t", "tree"]).ok();
    assert!(steps(&o.stdout).iter().all(|(_, c)| !*c), "{o:?}");
    assert_eq!(
        run(&env, "tree", &["cat", "/base", "/tree/sub/new.txt"]),
        "other base\nnew\n"
    );
    assert_clean(&env);
}

// ---------------------------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------------------------

#[test]
fn failing_run_reports_the_code_and_leaves_nothing() {
    let env = Env::new().with_busybox();
    let before = all_images(&env);
    let dir = ctx(&env, "c", &[("Dockerfile", "FROM busybox\nRUN exit 3\n")]);
    let o = build(&env, &dir, &["-t", "failed"]);
    // docker's CLI exits with the code of the errorDetail: the command's.
    assert_eq!(o.code, 3, "{o:?}");
    assert!(
        o.stderr
            .contains("The command '/bin/sh -c exit 3' returned a non-zero code: 3"),
        "{o:?}"
    );
    assert_eq!(all_images(&env), before);
    assert_ne!(env.berth(&["image", "inspect", "failed"]).code, 0);
    assert_clean(&env);

    // Exec form.
    let dir = ctx(
        &env,
        "d",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN [\"sh\", \"-c\", \"exit 5\"]\n",
        )],
    );
    let o = build(&env, &dir, &[]);
    assert_eq!(o.code, 5, "{o:?}");
    assert!(
        o.stderr
            .contains("The command 'sh -c exit 5' returned a non-zero code: 5"),
        "{o:?}"
    );
    assert_eq!(all_images(&env), before);
    assert_clean(&env);
}

#[test]
fn bad_dockerfiles_and_paths_are_refused() {
    let env = Env::new().with_busybox();
    let before = all_images(&env);
    let fails = |name: &str, files: &[(&str, &str)]| -> Out {
        let dir = ctx(&env, name, files);
        let o = build(&env, &dir, &["-t", name]);
        assert_ne!(o.code, 0, "{name}: {o:?}");
        o
    };
    let o = fails(
        "unknown",
        &[("Dockerfile", "FROM busybox\nRUN true\nFOO bar\n")],
    );
    assert!(o.stderr.contains("line 3"), "{o:?}");
    assert!(
        o.stderr.to_lowercase().contains("unknown instruction"),
        "{o:?}"
    );
    assert!(o.stderr.to_uppercase().contains("FOO"), "{o:?}");
    // Nothing ran: a parse error comes before any step.
    assert!(!o.stdout.contains("Step 1/"), "{o:?}");

    let o = fails(
        "badflag",
        &[
            ("a", "a"),
            ("Dockerfile", "FROM busybox\nCOPY --bogus=1 a b\n"),
        ],
    );
    assert!(o.stderr.contains("line 2"), "{o:?}");
    assert!(o.stderr.contains("Unknown flag: bogus"), "{o:?}");

    std::fs::write(env.dir.path().join("x"), "outside").unwrap();
    let o = fails("outside", &[("Dockerfile", "FROM busybox\nCOPY ../x /x\n")]);
    assert!(o.stderr.contains("outside the build context"), "{o:?}");

    let o = fails(
        "missing",
        &[("Dockerfile", "FROM busybox\nCOPY missing.txt /m\n")],
    );
    assert!(o.stderr.contains("missing.txt"), "{o:?}");
    assert!(o.stderr.contains("not found"), "{o:?}");

    // Symlinks in the context that point outside it never reach outside: docker resolves them
    // inside the context (where there is nothing of that name) and fails.
    std::fs::write(env.dir.path().join("secret"), "do not copy").unwrap();
    for (name, target) in [("abs", "/etc/passwd"), ("rel", "../secret")] {
        let dir = ctx(
            &env,
            &format!("link-{name}"),
            &[("Dockerfile", "FROM busybox\nCOPY link /copied\n")],
        );
        std::os::unix::fs::symlink(target, dir.join("link")).unwrap();
        let o = build(&env, &dir, &["-t", &format!("link-{name}")]);
        assert_ne!(o.code, 0, "{name}: {o:?}");
        assert!(o.stderr.contains("link"), "{name}: {o:?}");
        assert!(!both(&o).contains("do not copy") && !both(&o).contains("root:x:0"));
        assert_ne!(
            env.berth(&["image", "inspect", &format!("link-{name}")])
                .code,
            0
        );
    }
    // No image was made by any of them (the failures came before or at the first step).
    assert_eq!(all_images(&env), before);
    assert_clean(&env);
}

#[test]
fn a_cancelled_build_stops_its_step_and_leaves_nothing() {
    let env = Env::new().with_busybox();
    let before = all_images(&env);
    let dir = ctx(
        &env,
        "c",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo started; sleep 60; echo finished\n",
        )],
    );
    let mut b = common::Streaming::spawn(env.cmd(&["build", "--progress=plain", &s(&dir)]));
    assert!(
        b.wait_line(20, |l| l == "started").is_some(),
        "{:?}",
        b.seen
    );
    assert_eq!(env.berth(&["ps", "-q"]).ok().stdout.lines().count(), 1);
    // ^C in the client: docker kills the step's container and removes it, and commits
    // nothing.
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(b.child.id() as i32, libc::SIGINT);
    }
    assert!(b.wait_exit(10).is_some_and(|c| c != 0));
    env.eventually("the build's container to go", || {
        env.berth(&["ps", "-aq"]).ok().stdout.is_empty()
    });
    env.eventually("the build's directory to go", || {
        std::fs::read_dir(env.data_root.join("builder/tmp"))
            .map(|mut d| d.next().is_none())
            .unwrap_or(true)
    });
    assert_clean(&env);
    assert_eq!(all_images(&env), before);
}

// ---------------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------------

#[test]
fn concurrent_builds_share_steps_and_keep_their_content() {
    let env = Env::new().with_busybox();
    let dirs: Vec<PathBuf> = (0..3)
        .map(|n| {
            ctx(
                &env,
                &format!("c{n}"),
                &[
                    ("own.txt", &format!("content {n}\n")),
                    (
                        "Dockerfile",
                        "FROM busybox\n\
                         RUN echo shared > /shared\n\
                         ENV SHARED=1\n\
                         COPY own.txt /own.txt\n\
                         RUN cat /shared /own.txt > /result\n\
                         CMD [\"cat\", \"/result\"]\n",
                    ),
                ],
            )
        })
        .collect();
    let build_all = || -> Vec<Out> {
        std::thread::scope(|sc| {
            let hs: Vec<_> = dirs
                .iter()
                .enumerate()
                .map(|(n, d)| {
                    let env = &env;
                    sc.spawn(move || build(env, d, &["-t", &format!("conc{n}")]))
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        })
    };
    for o in build_all() {
        assert_eq!(o.code, 0, "{o:?}");
    }
    let ids: Vec<String> = (0..3)
        .map(|n| image_id(&env, &format!("conc{n}")))
        .collect();
    for n in 0..3 {
        assert_eq!(
            run(&env, &format!("conc{n}"), &[]),
            format!("shared\ncontent {n}\n")
        );
    }
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 3);
    // Again, together: everything from the cache, the same images.
    for o in build_all() {
        assert_eq!(o.code, 0, "{o:?}");
        assert!(all_cached(&o.stdout), "{o:?}");
    }
    let again: Vec<String> = (0..3)
        .map(|n| image_id(&env, &format!("conc{n}")))
        .collect();
    assert_eq!(again, ids);
    assert_clean(&env);
}

// ---------------------------------------------------------------------------------------------
// rmi of built images
// ---------------------------------------------------------------------------------------------

#[test]
fn rmi_takes_the_untagged_parents_but_not_the_tagged_base() {
    let env = Env::new().with_busybox();
    let base = image_id(&env, "busybox");
    let dir = ctx(
        &env,
        "c",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo 1 > /1\nENV X=1\nRUN echo 2 > /2\n",
        )],
    );
    build(&env, &dir, &["-t", "built"]).ok();
    let all = all_images(&env);
    assert_eq!(
        all.len(),
        4,
        "busybox, two intermediates, the image: {all:?}"
    );
    let o = env.berth(&["rmi", "built"]).ok();
    for id in all.iter().filter(|i| **i != base) {
        assert!(o.stdout.contains(&format!("Deleted: {id}")), "{id}: {o:?}");
    }
    assert_eq!(all_images(&env), BTreeSet::from([base.clone()]));
    assert_eq!(run(&env, "busybox", &["echo", "still"]), "still\n");

    // A tagged intermediate stays (and keeps its own parents).
    build(&env, &dir, &["-t", "built"]).ok();
    let h = env
        .berth(&["history", "-q", "--no-trunc", "built"])
        .ok()
        .stdout;
    let chain: Vec<&str> = h.lines().collect();
    assert_eq!(chain.len(), 4, "{chain:?}");
    env.berth(&["tag", chain[2], "mid"]).ok();
    env.berth(&["rmi", "built"]).ok();
    let left = all_images(&env);
    assert!(
        left.contains(chain[2]) && left.contains(chain[3]),
        "{left:?}"
    );
    assert!(
        !left.contains(chain[0]) && !left.contains(chain[1]),
        "{left:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The docker CLI against berth
// ---------------------------------------------------------------------------------------------

#[test]
fn docker_cli_legacy_build() {
    if !common::docker_cli() {
        return;
    }
    let env = Env::new().with_busybox();
    let dir = ctx(
        &env,
        "c",
        &[
            ("msg", "built by docker\n"),
            (
                "Dockerfile",
                "FROM busybox\nCOPY msg /msg\nRUN cat /msg > /out\nCMD [\"cat\", \"/out\"]\n",
            ),
        ],
    );
    let docker = |args: &[&str]| -> Out {
        let mut c = env.docker_cmd("docker", args);
        c.env("DOCKER_BUILDKIT", "0").current_dir(&dir);
        out_of(c.output().unwrap())
    };
    let o = docker(&["build", "-t", "dk", "."]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.contains("Step 3/4 : RUN cat /msg > /out"), "{o:?}");
    assert!(o.stdout.contains("Successfully tagged dk:latest"), "{o:?}");
    assert_eq!(run(&env, "dk", &[]), "built by docker\n");

    let o = docker(&["build", "-q", "-t", "dkq", "."]);
    assert_eq!(o.code, 0, "{o:?}");
    let id = o.stdout.trim();
    assert_eq!(id, image_id(&env, "dkq"), "{o:?}");
    assert_eq!(id, image_id(&env, "dk"), "the same, from the cache");

    // A failing RUN: docker exits with the command's code.
    std::fs::write(dir.join("Dockerfile"), "FROM busybox\nRUN exit 4\n").unwrap();
    let o = docker(&["build", "."]);
    assert_eq!(o.code, 4, "{o:?}");
    assert!(
        o.stderr
            .contains("The command '/bin/sh -c exit 4' returned a non-zero code: 4"),
        "{o:?}"
    );
    assert_clean(&env);
}
