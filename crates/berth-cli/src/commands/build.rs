//! `build`: docker's legacy builder client (`DOCKER_BUILDKIT=0 docker build`).
//!
//! The context (a directory, a tar or a Dockerfile on stdin, or a URL for the daemon to
//! fetch) goes to `POST /build` as a tar stream written while the directory is walked
//! (`build_context`); the JSON message stream that comes back is shown plainly, quietly,
//! or live on a terminal (`build_progress`).

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_builder::dockerignore::Matcher;
use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Map, Value};

use super::build_context::{
    dockerfile_only_tar, is_archive, random_dockerfile_name, write_dir_context, ContextError,
    DirContext, ExtraDockerfile, TarOut, CHUNK,
};
use super::build_progress::{stderr_size, Display, JsonSplitter, Msg, Plain, Quiet, Tty, Upload};
use crate::cli::BuildArgs;
use crate::client::{empty_body, Client, Query, ReqBody};
use crate::error::{CliError, Result};
use crate::opts::{expand_env, io_msg};

/// How the build is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Plain,
    Tty,
    Quiet,
}

impl Mode {
    /// `--progress` and `-q`; `auto` is the live display when stdout and stderr are both
    /// terminals (and `TERM` isn't `dumb`), else plain.
    pub(crate) fn choose(progress: &str, quiet: bool, terminal: bool) -> Result<Mode> {
        let m = match progress {
            "auto" if terminal => Mode::Tty,
            "auto" | "plain" => Mode::Plain,
            "tty" => Mode::Tty,
            "quiet" => Mode::Quiet,
            other => {
                return Err(CliError::msg(format!(
                    "invalid progress mode {other:?}: use auto, plain, tty or quiet"
                )))
            }
        };
        Ok(if quiet { Mode::Quiet } else { m })
    }
}

fn flag_error(value: &str, flag: &str, msg: &str) -> CliError {
    CliError::Coded {
        message: format!(
            "invalid argument {value:?} for \"{flag}\" flag: {msg}\nSee 'berth build --help'."
        ),
        code: 125,
    }
}

/// docker's `ParseNormalizedNamed` check of a `-t` value, with its messages.
pub(crate) fn validate_tag(s: &str) -> std::result::Result<(), String> {
    use std::sync::OnceLock;
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        let alnum = "[a-z0-9]+";
        let sep = "(?:[._]|__|[-]+)";
        let comp = format!("{alnum}(?:{sep}{alnum})*");
        let dcomp = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
        let host = format!(r"(?:{dcomp}(?:\.{dcomp})*|\[(?:[a-fA-F0-9:]+)\])");
        let name = format!(r"(?:({host}(?::[0-9]+)?)/)?({comp}(?:/{comp})*)");
        let tag = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
        let digest = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}";
        regex::Regex::new(&format!("^{name}(?::{tag})?(?:@{digest})?$")).expect("valid regex")
    });
    if s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!(
            "invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
        ));
    }
    // splitDockerDomain: a first part with '.', ':', "localhost" or capitals is a registry.
    let (domain, rest) = match s.split_once('/') {
        Some((d, r)) if d.contains(['.', ':']) || d == "localhost" || d.to_lowercase() != d => {
            (d.to_string(), r.to_string())
        }
        _ => ("docker.io".to_string(), s.to_string()),
    };
    let rest = if domain == "docker.io" && !rest.contains('/') {
        format!("library/{rest}")
    } else {
        rest
    };
    let remote = rest.split(':').next().unwrap_or_default();
    if remote.to_lowercase() != remote {
        return Err("invalid reference format: repository name must be lowercase".into());
    }
    let full = format!("{domain}/{rest}");
    match re.captures(&full) {
        None if s.is_empty() => Err("invalid reference format".into()),
        None => Err("invalid reference format".into()),
        Some(c) => {
            let len = c.get(1).map_or(0, |d| d.len() + 1) + c.get(2).map_or(0, |p| p.len());
            if len > 255 {
                Err("repository name must not be more than 255 characters".into())
            } else {
                Ok(())
            }
        }
    }
}

/// `--build-arg`: `k=v`, or `k` with the value from our environment (null when unset).
pub(crate) fn build_args_json(
    args: &[String],
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    for a in args {
        let v = expand_env(a, &lookup).map_err(|e| flag_error(a, "--build-arg", &e.to_string()))?;
        match v.split_once('=') {
            Some((k, val)) => m.insert(k.to_string(), Value::String(val.to_string())),
            None => m.insert(v.clone(), Value::Null),
        };
    }
    Ok(m)
}

/// `--label k=v` (`k` alone is an empty value).
pub(crate) fn labels_json(labels: &[String]) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    for l in labels {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        if k.trim().is_empty() {
            return Err(flag_error(
                l,
                "--label",
                &format!("invalid label '{l}': empty name"),
            ));
        }
        m.insert(k.to_string(), Value::String(v.to_string()));
    }
    Ok(m)
}

/// Whether the context argument is something for the daemon to fetch.
fn is_remote(s: &str) -> bool {
    ["http://", "https://", "git://", "git@", "github.com/"]
        .iter()
        .any(|p| s.starts_with(p))
}

/// Where the context comes from.
pub(crate) enum Source {
    Dir(DirContext),
    /// A tar (perhaps compressed) on stdin: the bytes read to recognize it, then the rest.
    StdinArchive(Vec<u8>),
    /// A context made here (a Dockerfile from stdin).
    Memory(Vec<u8>),
    /// A URL for the daemon (`remote`); the body is empty.
    Remote(String),
}

/// The context and the `dockerfile` parameter that goes with it.
pub(crate) struct Prepared {
    pub source: Source,
    pub dockerfile: Option<String>,
}

fn read_stdin_head(max: usize) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(max);
    std::io::stdin()
        .lock()
        .take(max as u64)
        .read_to_end(&mut head)?;
    Ok(head)
}

fn read_stdin_all() -> std::io::Result<Vec<u8>> {
    let mut v = Vec::new();
    std::io::stdin().lock().read_to_end(&mut v)?;
    Ok(v)
}

/// A Dockerfile's path as an exact `.dockerignore` pattern (glob characters escaped).
fn literal_pattern(p: &str) -> String {
    let mut s = String::with_capacity(p.len());
    for c in p.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            s.push('\\');
        }
        s.push(c);
    }
    s
}

/// Reads `.dockerignore` and keeps the build files in the context, as docker's client does.
pub(crate) fn context_matcher(root: &Path, dockerfile: Option<&str>) -> Result<Matcher> {
    let mut m = match std::fs::read(root.join(".dockerignore")) {
        Ok(b) => Matcher::parse(&String::from_utf8_lossy(&b))
            .map_err(|e| CliError::msg(format!("error reading .dockerignore: {e}")))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Matcher::default(),
        Err(e) => {
            return Err(CliError::msg(format!(
                "error reading .dockerignore: {}",
                io_msg(&e)
            )))
        }
    };
    if m.excludes(".dockerignore") {
        let _ = m.add_exception(".dockerignore");
    }
    if let Some(d) = dockerfile {
        if m.excludes(d) {
            m.add_exception(&literal_pattern(d))
                .map_err(|e| CliError::msg(e.to_string()))?;
        }
    }
    Ok(m)
}

/// Go's `filepath.Abs`: absolute and cleaned (`a/../b` is `b`).
fn go_abs(p: &str) -> std::io::Result<PathBuf> {
    let abs = std::path::absolute(p)?;
    Ok(match abs.to_str() {
        Some(s) => PathBuf::from(berth_builder::dockerignore::clean(s)),
        None => abs,
    })
}

/// docker's `GetContextFromLocalDir`: the context directory, the Dockerfile's path in it
/// (or the Dockerfile to add, when it is on stdin or outside the context).
pub(crate) fn prepare_dir(
    context: &str,
    file: Option<&str>,
    stdin: impl FnOnce() -> std::io::Result<Vec<u8>>,
) -> Result<Prepared> {
    let prep = |m: String| CliError::msg(format!("unable to prepare context: {m}"));
    let abs = go_abs(context).map_err(|e| prep(io_msg(&e)))?;
    let root = std::fs::canonicalize(&abs).map_err(|e| {
        prep(format!(
            "unable to evaluate symlinks in context path: lstat {}: {}",
            abs.display(),
            io_msg(&e)
        ))
    })?;
    if !root.is_dir() {
        return Err(prep(format!(
            "context must be a directory: {}",
            root.display()
        )));
    }
    let (rel, extra) = match file {
        Some("-") => {
            let content = stdin().map_err(|e| CliError::msg(io_msg(&e)))?;
            let name = random_dockerfile_name();
            (name.clone(), Some(ExtraDockerfile { name, content }))
        }
        _ => {
            let given: PathBuf = match file {
                Some(f) => go_abs(f).map_err(|e| prep(io_msg(&e)))?,
                None => {
                    let d = root.join("Dockerfile");
                    let lower = root.join("dockerfile");
                    if std::fs::symlink_metadata(&d).is_err() && lower.symlink_metadata().is_ok() {
                        lower
                    } else {
                        d
                    }
                }
            };
            let real = std::fs::canonicalize(&given).map_err(|e| {
                prep(format!(
                    "unable to evaluate symlinks in Dockerfile path: lstat {}: {}",
                    given.display(),
                    io_msg(&e)
                ))
            })?;
            match real.strip_prefix(&root) {
                Ok(r) => {
                    let r = r.to_string_lossy().into_owned();
                    (if r.is_empty() { ".".into() } else { r }, None)
                }
                Err(_) => {
                    // Outside the context: sent along under a random name.
                    let content = std::fs::read(&given).map_err(|e| {
                        CliError::msg(format!("unable to open Dockerfile: {}", io_msg(&e)))
                    })?;
                    let name = random_dockerfile_name();
                    (name.clone(), Some(ExtraDockerfile { name, content }))
                }
            }
        }
    };
    let matcher = context_matcher(&root, extra.is_none().then_some(rel.as_str()))?;
    Ok(Prepared {
        source: Source::Dir(DirContext {
            root,
            matcher,
            extra,
        }),
        dockerfile: Some(rel),
    })
}

/// The context argument: `-` (stdin), a directory, or a URL.
pub(crate) async fn prepare(context: &str, file: Option<&str>) -> Result<Prepared> {
    if context == "-" {
        if file == Some("-") {
            return Err(CliError::msg(
                "invalid argument: can't use stdin for both build context and dockerfile",
            ));
        }
        let file = file.map(str::to_string);
        return tokio::task::spawn_blocking(move || {
            let stdin_err =
                |m: String| CliError::msg(format!("unable to prepare context from STDIN: {m}"));
            let head = read_stdin_head(1024).map_err(|e| {
                stdin_err(format!(
                    "failed to peek context header from STDIN: {}",
                    io_msg(&e)
                ))
            })?;
            if is_archive(&head) {
                return Ok(Prepared {
                    source: Source::StdinArchive(head),
                    dockerfile: file,
                });
            }
            if file.is_some() {
                return Err(stdin_err(
                    "ambiguous Dockerfile source: both stdin and flag correspond to Dockerfiles"
                        .into(),
                ));
            }
            let mut all = head;
            all.extend(read_stdin_all().map_err(|e| stdin_err(io_msg(&e)))?);
            Ok(Prepared {
                source: Source::Memory(dockerfile_only_tar(&all)),
                dockerfile: Some("Dockerfile".into()),
            })
        })
        .await
        .map_err(|e| CliError::msg(e.to_string()))?;
    }
    if std::fs::metadata(context).is_ok() {
        let context = context.to_string();
        let file = file.map(str::to_string);
        return tokio::task::spawn_blocking(move || {
            prepare_dir(&context, file.as_deref(), read_stdin_all)
        })
        .await
        .map_err(|e| CliError::msg(e.to_string()))?;
    }
    if is_remote(context) {
        return Ok(Prepared {
            source: Source::Remote(context.to_string()),
            dockerfile: file.map(str::to_string),
        });
    }
    Err(CliError::msg(format!(
        "unable to prepare context: path {context:?} not found"
    )))
}

/// The query of `POST /build`.
pub(crate) fn build_query(a: &BuildArgs, p: &Prepared, quiet: bool) -> Result<Query> {
    let mut q = Query::new();
    for t in &a.tag {
        validate_tag(t).map_err(|e| flag_error(t, "-t, --tag", &e))?;
        q = q.add("t", t);
    }
    if let Some(d) = &p.dockerfile {
        q = q.add("dockerfile", d);
    }
    if let Source::Remote(url) = &p.source {
        q = q.add("remote", url);
    }
    let args = build_args_json(&a.build_arg, |k| std::env::var(k).ok())?;
    let labels = labels_json(&a.label)?;
    q = q
        .add("buildargs", Value::Object(args))
        .add("labels", Value::Object(labels))
        .add_if(quiet, "q", 1)
        .add_if(a.no_cache, "nocache", 1)
        .add_if(a.pull, "pull", 1)
        .add("rm", if a.rm { 1 } else { 0 })
        .add_if(a.force_rm, "forcerm", 1)
        .add("networkmode", &a.network);
    let cache_from: Vec<&String> = a.cache_from.iter().filter(|s| !s.is_empty()).collect();
    if !cache_from.is_empty() {
        q = q.add("cachefrom", serde_json::json!(cache_from));
    }
    if let Some(p) = a.platform.as_deref().filter(|p| !p.is_empty()) {
        q = q.add("platform", p.to_lowercase());
    }
    if let Some(t) = a.target.as_deref().filter(|t| !t.is_empty()) {
        q = q.add("target", t);
    }
    Ok(q.add("version", 1))
}

/// The upload's progress, shared between the writer thread and the display.
#[derive(Default)]
struct UploadState {
    bytes: Arc<AtomicU64>,
    done: AtomicBool,
    present: bool,
    /// The writer's own error, which explains a failed request better than the request.
    error: Mutex<Option<String>>,
}

impl UploadState {
    fn snapshot(&self) -> Upload {
        Upload {
            bytes: self.bytes.load(Ordering::Relaxed),
            done: self.done.load(Ordering::Relaxed),
            present: self.present,
        }
    }

    fn error(&self) -> Option<String> {
        self.error.lock().ok().and_then(|e| e.clone())
    }
}

type Chunk = std::io::Result<Bytes>;

fn channel_body(rx: tokio::sync::mpsc::Receiver<Chunk>) -> ReqBody {
    let s = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|c| (c.map(Frame::data), rx))
    });
    BodyExt::boxed(StreamBody::new(s))
}

/// Starts sending the context: a thread writes it into a small channel the body reads.
fn start_upload(source: Source, state: &Arc<UploadState>) -> ReqBody {
    let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(4);
    let st = Arc::clone(state);
    let fail = move |tx: &tokio::sync::mpsc::Sender<Chunk>, msg: String| {
        if let Ok(mut e) = st.error.lock() {
            *e = Some(msg.clone());
        }
        let _ = tx.blocking_send(Err(std::io::Error::other(msg)));
    };
    let st = Arc::clone(state);
    let spawn = |f: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name("build-context".into())
            .stack_size(8 << 20)
            .spawn(f)
            .map(|_| ())
    };
    let r = match source {
        Source::Remote(_) => {
            st.done.store(true, Ordering::Relaxed);
            return empty_body();
        }
        Source::Memory(v) => {
            st.bytes.store(v.len() as u64, Ordering::Relaxed);
            st.done.store(true, Ordering::Relaxed);
            return crate::client::bytes_body(v);
        }
        Source::Dir(ctx) => spawn(Box::new(move || {
            let out = TarOut::new(tx.clone(), Some(Arc::clone(&st.bytes)));
            match write_dir_context(&ctx, out) {
                Ok(_) => st.done.store(true, Ordering::Relaxed),
                Err(ContextError::Cancelled) => {}
                Err(ContextError::Msg(m)) => fail(&tx, m),
            }
        })),
        Source::StdinArchive(head) => spawn(Box::new(move || {
            let mut total = head.len() as u64;
            if tx.blocking_send(Ok(Bytes::from(head))).is_err() {
                return;
            }
            st.bytes.store(total, Ordering::Relaxed);
            let mut stdin = std::io::stdin().lock();
            let mut buf = vec![0u8; CHUNK];
            loop {
                let mut fill = 0;
                while fill < CHUNK {
                    match stdin.read(&mut buf[fill..]) {
                        Ok(0) => break,
                        Ok(n) => fill += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return fail(&tx, format!("read stdin: {}", io_msg(&e))),
                    }
                }
                if fill == 0 {
                    break;
                }
                if tx
                    .blocking_send(Ok(Bytes::copy_from_slice(&buf[..fill])))
                    .is_err()
                {
                    return;
                }
                total += fill as u64;
                st.bytes.store(total, Ordering::Relaxed);
                if fill < CHUNK {
                    break;
                }
            }
            st.done.store(true, Ordering::Relaxed);
        })),
    };
    if let Err(e) = r {
        if let Ok(mut slot) = state.error.lock() {
            *slot = Some(format!("cannot start the context upload: {e}"));
        }
    }
    channel_body(rx)
}

/// What came of the message stream.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Outcome {
    pub image_id: Option<String>,
    /// The build's error: message and exit code.
    pub failure: Option<(String, i32)>,
}

/// Feeds JSON values to the display; stops at the first error, as docker does.
pub(crate) fn feed(
    values: Vec<Value>,
    disp: &mut dyn Display,
    up: Upload,
    out: &mut Outcome,
) -> bool {
    for v in values {
        let Some(m) = Msg::from_value(&v) else {
            continue;
        };
        disp.message(&m, up);
        match m {
            Msg::ImageId(id) => out.image_id = Some(id),
            Msg::Error { message, code } => {
                out.failure = Some((message, code));
                return false;
            }
            _ => {}
        }
    }
    true
}

pub async fn build(host: Option<String>, a: BuildArgs) -> Result<i32> {
    let terminal = std::io::stdout().is_terminal()
        && std::io::stderr().is_terminal()
        && std::env::var("TERM").map_or(true, |t| t != "dumb");
    let mode = Mode::choose(&a.progress, a.quiet, terminal)?;
    for t in &a.tag {
        validate_tag(t).map_err(|e| flag_error(t, "-t, --tag", &e))?;
    }
    if let Some(f) = &a.iidfile {
        match std::fs::remove_file(f) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(CliError::msg(format!(
                    "removing image ID file: {}",
                    io_msg(&e)
                )))
            }
            _ => {}
        }
    }
    let prepared = prepare(&a.context, a.file.as_deref()).await?;
    let q = build_query(&a, &prepared, mode == Mode::Quiet)?;
    let state = Arc::new(UploadState {
        present: !matches!(prepared.source, Source::Remote(_)),
        ..Default::default()
    });
    let remote = matches!(prepared.source, Source::Remote(_));
    let c = Client::connect(host).await?;
    let body = start_upload(prepared.source, &state);

    let mut disp: Box<dyn Display> = match mode {
        Mode::Plain => Box::new(Plain::new(std::io::stdout())),
        Mode::Quiet => Box::new(Quiet::default()),
        Mode::Tty => Box::new(Tty::new(std::io::stderr(), Box::new(stderr_size))),
    };
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);

    let ct = (!remote).then_some("application/x-tar");
    let send = c.send(Method::POST, "/build", &q, body, ct);
    tokio::pin!(send);
    let resp = loop {
        tokio::select! {
            r = &mut send => break r,
            _ = ticker.tick() => disp.tick(state.snapshot()),
        }
    };
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            let e = state.error().map(CliError::Msg).unwrap_or(e);
            disp.finish(state.snapshot(), Some(&e.to_string()));
            return Err(e);
        }
    };

    let mut body = resp.into_body();
    let mut split = JsonSplitter::default();
    let mut outcome = Outcome::default();
    let mut broken: Option<String> = None;
    loop {
        tokio::select! {
            f = body.frame() => match f {
                None => {
                    match split.push(&[], true) {
                        Ok(vals) => { feed(vals, disp.as_mut(), state.snapshot(), &mut outcome); }
                        Err(e) => broken = Some(e),
                    }
                    break;
                }
                Some(Err(e)) => {
                    broken = Some(format!("error reading the response: {e}"));
                    break;
                }
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else { continue };
                    match split.push(&data, false) {
                        Ok(vals) => {
                            if !feed(vals, disp.as_mut(), state.snapshot(), &mut outcome) {
                                break;
                            }
                        }
                        Err(e) => {
                            broken = Some(e);
                            break;
                        }
                    }
                }
            },
            _ = ticker.tick() => disp.tick(state.snapshot()),
        }
    }

    let up = state.snapshot();
    if let Some(m) = state.error() {
        disp.finish(up, Some(&m));
        return Err(CliError::Msg(m));
    }
    if let Some((message, code)) = outcome.failure {
        disp.finish(up, Some(&message));
        if let Some(text) = disp.failure_output() {
            eprint!("{text}");
        }
        return Err(CliError::Coded { message, code });
    }
    if let Some(m) = broken {
        disp.finish(up, Some(&m));
        return Err(CliError::Msg(m));
    }
    disp.finish(up, None);

    let id = outcome.image_id.clone().or_else(|| {
        // Without an aux message, -q's output is the ID the daemon printed.
        disp.failure_output()
            .map(|t| t.trim().to_string())
            .filter(|t| t.starts_with("sha256:"))
    });
    if mode == Mode::Quiet {
        if let Some(id) = &id {
            println!("{id}");
        }
    }
    if let Some(f) = &a.iidfile {
        let Some(id) = &id else {
            return Err(CliError::msg(format!(
                "Server did not provide an image ID. Cannot write {f}"
            )));
        };
        std::fs::write(f, id).map_err(|e| CliError::msg(format!("open {f}: {}", io_msg(&e))))?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(argv: &[&str]) -> BuildArgs {
        let mut full = vec!["berth", "build"];
        full.extend_from_slice(argv);
        match crate::cli::Cli::parse_from(full).cmd {
            Some(crate::cli::Cmd::Build(b)) => b,
            other => panic!("{other:?}"),
        }
    }

    fn query_of(a: &BuildArgs, p: &Prepared, quiet: bool) -> Vec<(String, String)> {
        let q = build_query(a, p, quiet).unwrap().encode();
        url::form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    #[test]
    fn tags_are_checked_like_docker() {
        assert!(validate_tag("foo").is_ok());
        assert!(validate_tag("foo:1.0").is_ok());
        assert!(validate_tag("localhost:5000/a/b:c").is_ok());
        assert!(validate_tag("Registry.Example.com/a/b").is_ok());
        assert_eq!(
            validate_tag("Foo").unwrap_err(),
            "invalid reference format: repository name must be lowercase"
        );
        assert_eq!(
            validate_tag("foo:").unwrap_err(),
            "invalid reference format"
        );
        assert_eq!(validate_tag("a b").unwrap_err(), "invalid reference format");
        // Go's \w is ASCII: docker refuses a non-ASCII tag.
        assert!(validate_tag("foo:\u{e9}").is_err());
        assert_eq!(validate_tag("").unwrap_err(), "invalid reference format");
        assert!(validate_tag(&"a".repeat(64).replace('a', "b"))
            .unwrap_err()
            .contains("64-byte hexadecimal"));
        let e = flag_error(
            "Foo",
            "-t, --tag",
            "invalid reference format: repository name must be lowercase",
        );
        assert_eq!(
            e.to_string(),
            "invalid argument \"Foo\" for \"-t, --tag\" flag: invalid reference format: repository name must be lowercase\nSee 'berth build --help'."
        );
        assert_eq!(e.exit_code(), 125);
    }

    #[test]
    fn flags_and_query() {
        let a = args(&[
            "-t",
            "foo:1",
            "--tag=bar",
            "-f",
            "sub/Dockerfile",
            "--build-arg",
            "A=1",
            "--build-arg",
            "B_FROM_ENV_BERTH_TEST_UNSET",
            "--label",
            "l=v",
            "--target",
            "stage",
            "--no-cache",
            "--pull",
            "--rm=false",
            "--force-rm",
            "--network",
            "host",
            "--platform",
            "Linux/AMD64",
            "--cache-from",
            "a,b",
            "--iidfile",
            "/tmp/x",
            "--progress",
            "plain",
            ".",
        ]);
        assert_eq!(a.context, ".");
        assert_eq!(a.file.as_deref(), Some("sub/Dockerfile"));
        let p = Prepared {
            source: Source::Memory(vec![]),
            dockerfile: Some("sub/Dockerfile".into()),
        };
        let q = query_of(&a, &p, false);
        let get = |k: &str| -> Vec<String> {
            q.iter()
                .filter(|(kk, _)| kk == k)
                .map(|(_, v)| v.clone())
                .collect()
        };
        assert_eq!(get("t"), vec!["foo:1", "bar"]);
        assert_eq!(get("dockerfile"), vec!["sub/Dockerfile"]);
        assert_eq!(
            get("buildargs"),
            vec![r#"{"A":"1","B_FROM_ENV_BERTH_TEST_UNSET":null}"#]
        );
        assert_eq!(get("labels"), vec![r#"{"l":"v"}"#]);
        assert_eq!(get("target"), vec!["stage"]);
        assert_eq!(get("nocache"), vec!["1"]);
        assert_eq!(get("pull"), vec!["1"]);
        assert_eq!(get("rm"), vec!["0"]);
        assert_eq!(get("forcerm"), vec!["1"]);
        assert_eq!(get("networkmode"), vec!["host"]);
        assert_eq!(get("platform"), vec!["linux/amd64"]);
        assert_eq!(get("cachefrom"), vec![r#"["a","b"]"#]);
        assert_eq!(get("version"), vec!["1"]);
        assert!(get("q").is_empty());
        assert!(get("remote").is_empty());

        // Defaults.
        let a = args(&["-q", "ctx"]);
        assert!(a.rm && a.quiet && a.progress == "auto" && a.network == "default");
        let p = Prepared {
            source: Source::Remote("https://example.com/ctx.tar".into()),
            dockerfile: None,
        };
        let q = query_of(&a, &p, true);
        assert!(q.contains(&("q".into(), "1".into())));
        assert!(q.contains(&("rm".into(), "1".into())));
        assert!(q.contains(&("remote".into(), "https://example.com/ctx.tar".into())));
        assert!(q.contains(&("buildargs".into(), "{}".into())));
        assert!(!q.iter().any(|(k, _)| k == "dockerfile" || k == "platform"));

        // image build is the same command.
        let c = crate::cli::Cli::parse_from(["berth", "image", "build", "-t", "x", "."]);
        assert!(matches!(
            c.cmd,
            Some(crate::cli::Cmd::ImageGroup(crate::cli::ImageCmd::Build(_)))
        ));
    }

    #[test]
    fn build_args_from_the_environment() {
        let lookup = |k: &str| (k == "HOME_X").then(|| "/root".to_string());
        let m = build_args_json(&["HOME_X".into(), "Y".into(), "Z=a=b".into()], lookup).unwrap();
        assert_eq!(
            Value::Object(m).to_string(),
            r#"{"HOME_X":"/root","Y":null,"Z":"a=b"}"#
        );
        assert!(build_args_json(&["=x".into()], |_| None).is_err());
        assert!(labels_json(&["=x".into()]).is_err());
        assert_eq!(
            Value::Object(labels_json(&["a".into(), "b=c=d".into()]).unwrap()).to_string(),
            r#"{"a":"","b":"c=d"}"#
        );
    }

    #[test]
    fn progress_modes() {
        assert_eq!(Mode::choose("auto", false, true).unwrap(), Mode::Tty);
        assert_eq!(Mode::choose("auto", false, false).unwrap(), Mode::Plain);
        assert_eq!(Mode::choose("plain", false, true).unwrap(), Mode::Plain);
        assert_eq!(Mode::choose("tty", false, false).unwrap(), Mode::Tty);
        assert_eq!(Mode::choose("quiet", false, true).unwrap(), Mode::Quiet);
        assert_eq!(Mode::choose("tty", true, true).unwrap(), Mode::Quiet);
        assert!(Mode::choose("fancy", false, true).is_err());
    }

    fn no_stdin() -> std::io::Result<Vec<u8>> {
        panic!("stdin read")
    }

    #[test]
    fn context_directories() {
        let d = tempfile::tempdir().unwrap();
        let ctx = d.path().join("ctx");
        std::fs::create_dir(&ctx).unwrap();
        let ctx_s = ctx.to_str().unwrap();

        // No Dockerfile: docker's client message.
        let e = prepare_dir(ctx_s, None, no_stdin)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.starts_with(
                "unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat "
            ) && e.ends_with("/Dockerfile: no such file or directory"),
            "{e}"
        );
        // The lowercase name is found too.
        std::fs::write(ctx.join("dockerfile"), "FROM a").unwrap();
        let p = prepare_dir(ctx_s, None, no_stdin).unwrap();
        assert_eq!(p.dockerfile.as_deref(), Some("dockerfile"));
        std::fs::write(ctx.join("Dockerfile"), "FROM a").unwrap();
        let p = prepare_dir(ctx_s, None, no_stdin).unwrap();
        assert_eq!(p.dockerfile.as_deref(), Some("Dockerfile"));

        // -f inside the context (given relative to the current directory: absolute here).
        std::fs::create_dir(ctx.join("sub")).unwrap();
        std::fs::write(ctx.join("sub/Build.df"), "FROM b").unwrap();
        std::fs::write(ctx.join(".dockerignore"), "sub\n").unwrap();
        let f = ctx.join("sub/Build.df");
        let p = prepare_dir(ctx_s, f.to_str(), no_stdin).unwrap();
        assert_eq!(p.dockerfile.as_deref(), Some("sub/Build.df"));
        let Source::Dir(dc) = &p.source else { panic!() };
        assert!(dc.extra.is_none());
        assert!(!dc.matcher.excludes("sub/Build.df"));
        assert!(dc.matcher.excludes("sub/other"));

        // -f outside the context: added under a random name.
        let outside = d.path().join("Outside.df");
        std::fs::write(&outside, "FROM outside").unwrap();
        let p = prepare_dir(ctx_s, outside.to_str(), no_stdin).unwrap();
        let Source::Dir(dc) = &p.source else { panic!() };
        let extra = dc.extra.as_ref().unwrap();
        assert!(extra.name.starts_with(".dockerfile."));
        assert_eq!(p.dockerfile.as_deref(), Some(extra.name.as_str()));
        assert_eq!(extra.content, b"FROM outside");

        // -f - : the Dockerfile from stdin.
        let p = prepare_dir(ctx_s, Some("-"), || Ok(b"FROM stdin".to_vec())).unwrap();
        let Source::Dir(dc) = &p.source else { panic!() };
        assert_eq!(dc.extra.as_ref().unwrap().content, b"FROM stdin");

        // A missing -f file, and a context that is a file.
        let e = prepare_dir(ctx_s, Some("/nonexistent/Dockerfile"), no_stdin)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("unable to evaluate symlinks in Dockerfile path"),
            "{e}"
        );
        let e = prepare_dir(ctx.join("Dockerfile").to_str().unwrap(), None, no_stdin)
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with("unable to prepare context: context must be a directory: "));

        // A bad .dockerignore.
        std::fs::write(ctx.join(".dockerignore"), "[oops\n").unwrap();
        let e = prepare_dir(ctx_s, None, no_stdin)
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with("error reading .dockerignore: line 1: syntax error in pattern"));
    }

    #[tokio::test]
    async fn context_argument_kinds() {
        let e = prepare("nope-berth-test", None).await.err().unwrap();
        assert_eq!(
            e.to_string(),
            "unable to prepare context: path \"nope-berth-test\" not found"
        );
        let e = prepare("-", Some("-")).await.err().unwrap();
        assert_eq!(
            e.to_string(),
            "invalid argument: can't use stdin for both build context and dockerfile"
        );
        let p = prepare("https://example.com/x.tar.gz", Some("df"))
            .await
            .unwrap();
        assert!(matches!(p.source, Source::Remote(_)));
        assert_eq!(p.dockerfile.as_deref(), Some("df"));
    }

    #[test]
    fn dockerfile_names_are_literal_patterns() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(".dockerignore"), "*\n").unwrap();
        let m = context_matcher(d.path(), Some("Docker[file]")).unwrap();
        assert!(!m.excludes("Docker[file]"));
        assert!(m.excludes("Dockerf"));
        assert!(!m.excludes(".dockerignore"));
    }

    #[test]
    fn outcome_of_a_stream() {
        let vals = vec![
            serde_json::json!({"stream": "Step 1/1 : RUN exit 3\n"}),
            serde_json::json!({"errorDetail": {"code": 3, "message": "The command '/bin/sh -c exit 3' returned a non-zero code: 3"}, "error": "x"}),
            serde_json::json!({"stream": "never shown\n"}),
        ];
        let mut p = Plain::new(Vec::new());
        let mut out = Outcome::default();
        assert!(!feed(vals, &mut p, Upload::default(), &mut out));
        assert_eq!(
            out.failure,
            Some((
                "The command '/bin/sh -c exit 3' returned a non-zero code: 3".into(),
                3
            ))
        );
        assert_eq!(p.into_inner(), b"Step 1/1 : RUN exit 3\n");
        let mut q = Quiet::default();
        let mut out = Outcome::default();
        let vals = vec![
            serde_json::json!({"stream": "sha256:abc\n"}),
            serde_json::json!({"aux": {"ID": "sha256:abc"}}),
        ];
        assert!(feed(vals, &mut q, Upload::default(), &mut out));
        assert_eq!(out.image_id.as_deref(), Some("sha256:abc"));
    }
}
