//! `POST /build`: Docker's classic builder. The context is unpacked into a private
//! directory, the Dockerfile parsed (`berth_builder`), and the stages the target needs are
//! built in file order. Each step makes an image: RUN in a real container whose changes
//! are committed, COPY/ADD/WORKDIR in the image's root mounted over a fresh layer, the
//! rest as config-only images (a history entry, no layer). A step whose key (parent
//! image, what it does, the checksum of what it copies) is in the cache is not run again.

mod cache;
mod context;
mod fetch;
pub(crate) mod steps;

use crate::{blocking, layout, new_id, Daemon};
use berth_api::models::{ContainerCreateBody, HostConfig};
use berth_api::types::{BuildEvents, BuildRequest, LogOptions, WaitCondition};
use berth_api::ApiError;
use berth_builder::instructions::{
    ArgDecl, Command, Copy, Dockerfile, Healthcheck, Instruction, ShellOrExec,
};
use berth_builder::shell::Lex;
use berth_image::{ContainerConfig, Image};
use cache::{Cache, KeyParts};
use context::Context;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use steps::{Attrs, StepRoot};
use tokio::io::AsyncReadExt;

/// Docker's predefined proxy args: usable without an ARG, never in the history.
const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

const DEFAULT_SHELL: &[&str] = &["/bin/sh", "-c"];

/// Why a build stopped: the message, and the exit code of a failed RUN.
#[derive(Debug)]
struct Failure {
    message: String,
    code: Option<i64>,
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Failure {
        Failure {
            message: e.message,
            code: None,
        }
    }
}

fn fail(m: impl Into<String>) -> Failure {
    Failure {
        message: m.into(),
        code: None,
    }
}

type Res<T> = Result<T, Failure>;

/// The build's private directory. A build that ends removes it before it answers
/// ([`TmpDir::remove`]); one whose request is dropped midway removes it on drop.
struct TmpDir(Option<PathBuf>);

fn remove_tmp(p: &std::path::Path) {
    if let Err(e) = std::fs::remove_dir_all(p) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("remove {}: {e}", p.display());
        }
    }
}

impl TmpDir {
    /// Removes the directory and waits until it is gone.
    async fn remove(mut self) {
        if let Some(p) = self.0.take() {
            let _ = tokio::task::spawn_blocking(move || remove_tmp(&p)).await;
        }
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let Some(p) = self.0.take() else { return };
        let rm = move || remove_tmp(&p);
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn_blocking(rm);
            }
            Err(_) => rm(),
        }
    }
}

impl Daemon {
    /// Runs a build. Errors found before the first step (the context, the Dockerfile, the
    /// target) are returned; once steps have begun, a failure is reported on `events` as
    /// Docker's error message and `Ok` is returned.
    pub async fn build(
        self: &Arc<Self>,
        req: BuildRequest,
        body: Box<dyn std::io::Read + Send>,
        events: BuildEvents,
    ) -> Result<(), ApiError> {
        if let Err(e) = check_request(&req) {
            // Read what the client is still sending (up to a bound) so that it gets this
            // answer rather than a broken pipe.
            let _ = blocking(move || {
                let mut body = body;
                let _ = std::io::copy(
                    &mut std::io::Read::take(&mut body, EARLY_DRAIN),
                    &mut std::io::sink(),
                );
                Ok(())
            })
            .await;
            return Err(e);
        }
        let id = new_id();
        let tmp = layout::build_tmp(&self.config.data_root, &id);
        let guard = TmpDir(Some(tmp.clone()));
        let ran = self.build_in(req, body, events, tmp).await;
        guard.remove().await;
        let (events, result) = ran?;
        match result {
            Ok(()) => Ok(()),
            Err(f) => {
                let code = f.code.unwrap_or(1);
                let _ = events
                    .send(json!({
                        "errorDetail": {"code": code, "message": f.message},
                        "error": f.message,
                    }))
                    .await;
                Ok(())
            }
        }
    }

    /// The build proper, in its private directory `tmp`; the caller removes it. Returns the
    /// steps' outcome once every step container is gone.
    async fn build_in(
        self: &Arc<Self>,
        req: BuildRequest,
        body: Box<dyn std::io::Read + Send>,
        events: BuildEvents,
        tmp: PathBuf,
    ) -> Result<(BuildEvents, Res<()>), ApiError> {
        let ctx_dir = tmp.join("context");
        let mut dockerfile = req.dockerfile.clone();
        let mut body = body;
        if !req.remote.is_empty() {
            // A remote context: a tar (plain or compressed), or a Dockerfile alone.
            let file = fetch::download(
                &req.remote,
                &tmp.join("remote"),
                "context",
                "unable to prepare context",
            )
            .await?;
            let archive = steps::is_archive(&file);
            body = blocking(move || -> Result<Box<dyn std::io::Read + Send>, ApiError> {
                let f = std::fs::File::open(&file)
                    .map_err(|e| ApiError::internal(format!("open {}: {e}", file.display())))?;
                if archive {
                    return Ok(Box::new(f));
                }
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut std::io::Read::take(f, 16 << 20), &mut data)
                    .map_err(|e| ApiError::internal(format!("read the remote Dockerfile: {e}")))?;
                let mut h = tar::Header::new_gnu();
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                let mut b = tar::Builder::new(Vec::new());
                b.append_data(&mut h, "Dockerfile", &data[..])
                    .and_then(|_| b.finish())
                    .map_err(|e| ApiError::internal(format!("wrap the remote Dockerfile: {e}")))?;
                let tar = b
                    .into_inner()
                    .map_err(|e| ApiError::internal(format!("wrap the remote Dockerfile: {e}")))?;
                Ok(Box::new(std::io::Cursor::new(tar)))
            })
            .await?;
            if !archive {
                dockerfile = "Dockerfile".into();
            }
        }
        let (ctx, text) = blocking(move || {
            let mut body = body;
            let ctx = Context::receive(&ctx_dir, &mut body)?;
            let text = ctx.read_dockerfile(&dockerfile)?;
            // Docker sends the Dockerfile and .dockerignore even when ignored, then hides
            // them from COPY.
            if let Some(rules) = ctx.read_dockerignore() {
                let m = berth_builder::dockerignore::Matcher::parse(&rules)
                    .map_err(|e| ApiError::invalid(format!("parse .dockerignore: {e}")))?;
                let df = if dockerfile.is_empty() {
                    "Dockerfile".to_string()
                } else {
                    dockerfile.clone()
                };
                for f in [df.as_str(), ".dockerignore"] {
                    if let Some(rel) = context::clean_rel(f) {
                        if m.excludes(&rel) {
                            ctx.remove(&rel);
                        }
                    }
                }
            }
            Ok((ctx, text))
        })
        .await?;
        let df = berth_builder::dockerfile::parse(&text)
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        let mut b = Builder::new(self.clone(), req, events, ctx, tmp, df)?;
        let result = b.run().await;
        for r in b.removals.drain(..) {
            let _ = r.await;
        }
        // A failed build's steps are images too (people run them to debug it): durable now.
        if result.is_err() {
            let images = self.images.clone();
            if let Err(e) =
                blocking(move || images.sync_deferred().map_err(crate::images::map_err)).await
            {
                tracing::warn!("syncing a failed build's images: {e}");
            }
        }
        Ok((b.events, result))
    }

    /// `POST /build/prune`: forgets the build cache; returns the entries' keys.
    pub fn prune_build_cache(&self) -> Vec<String> {
        Cache::new(&layout::build_cache(&self.config.data_root)).clear()
    }

    /// Removes what builds interrupted by a crash left (their private directories).
    pub(crate) fn clean_build_leftovers(&self) {
        let dir = layout::build_tmp(&self.config.data_root, "");
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// How much of a refused build's context is read before answering.
const EARLY_DRAIN: u64 = 256 << 20;

/// The checks made before the context is read: the remote, the platform, the tags.
fn check_request(req: &BuildRequest) -> Result<(), ApiError> {
    let is_git = |r: &str| {
        r.starts_with("git://")
            || r.starts_with("git@")
            || r.starts_with("github.com/")
            || r.split('#').next().is_some_and(|u| u.ends_with(".git"))
    };
    if !req.remote.is_empty()
        && (is_git(&req.remote)
            || !(req.remote.starts_with("http://") || req.remote.starts_with("https://")))
    {
        return Err(ApiError::invalid(format!(
                "unable to prepare context: building from {} is not supported: berth builds from a directory, a tar, or an http URL of a tar or a Dockerfile",
                req.remote
            )));
    }
    check_platform(&req.platform)?;
    for t in &req.tags {
        let r = berth_image::Reference::parse(t)
            .map_err(|e| ApiError::invalid(format!("invalid tag {t:?}: {e}")))?;
        if r.digest().is_some() {
            return Err(ApiError::invalid(format!(
                "invalid tag {t:?}: a tag cannot hold a digest"
            )));
        }
    }
    Ok(())
}

fn check_platform(p: &str) -> Result<(), ApiError> {
    match p.trim() {
        "" | "linux" | "linux/amd64" | "amd64" | "linux/x86_64" => Ok(()),
        other => Err(ApiError::invalid(format!(
            "unsupported platform {other:?}: berth builds linux/amd64 images only"
        ))),
    }
}

/// The state of the stage being built.
struct StageState {
    /// The current image (`None` on `scratch` before any step).
    image: Option<Image>,
    config: ContainerConfig,
    author: String,
    /// CMD was set in this stage (ENTRYPOINT then keeps it).
    cmd_set: bool,
    /// ARGs declared in this stage, with their values.
    args: Vec<(String, Option<String>)>,
}

impl StageState {
    fn shell(&self) -> Vec<String> {
        st_shell(&self.config)
    }

    fn env_value(&self, name: &str) -> Option<String> {
        self.config
            .env
            .as_ref()?
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix(name)?.strip_prefix('=').map(str::to_string))
    }

    fn arg_value(&self, name: &str) -> Option<Option<String>> {
        self.args
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    fn workdir(&self) -> String {
        st_workdir(&self.config)
    }

    /// The ARGs with values that ENV does not override, sorted (the RUN prefix and env).
    fn run_args(&self) -> Vec<(String, String)> {
        let mut out: BTreeMap<String, String> = BTreeMap::new();
        for (n, v) in &self.args {
            match v {
                Some(v) if self.env_value(n).is_none() => {
                    out.insert(n.clone(), v.clone());
                }
                _ => {
                    out.remove(n);
                }
            }
        }
        out.into_iter().collect()
    }
}

struct Builder {
    d: Arc<Daemon>,
    req: BuildRequest,
    events: BuildEvents,
    ctx: Arc<Context>,
    tmp: PathBuf,
    cache: Arc<Cache>,
    lex: Lex,
    df: Dockerfile,
    /// Meta ARGs (before the first FROM) with their values.
    meta: Vec<(String, Option<String>)>,
    /// Build args some ARG declared.
    used_args: BTreeSet<String>,
    /// Each built stage's final image.
    results: HashMap<usize, Option<Image>>,
    plan: Vec<usize>,
    step: usize,
    total: usize,
    seq: usize,
    /// RUN containers being removed in the background (awaited before the build ends).
    removals: Vec<tokio::task::JoinHandle<()>>,
    /// The step being made (from a cache miss to its cache entry): see `cache::lock_step`.
    step_lock: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Builder {
    fn new(
        d: Arc<Daemon>,
        req: BuildRequest,
        events: BuildEvents,
        ctx: Context,
        tmp: PathBuf,
        df: Dockerfile,
    ) -> Result<Builder, ApiError> {
        let lex = Lex::new(df.escape);
        let cache = Arc::new(Cache::new(&layout::build_cache(&d.config.data_root)));
        let mut b = Builder {
            d,
            req,
            events,
            ctx: Arc::new(ctx),
            tmp,
            cache,
            lex,
            df,
            meta: Vec::new(),
            used_args: BTreeSet::new(),
            results: HashMap::new(),
            plan: Vec::new(),
            step: 0,
            total: 0,
            seq: 0,
            removals: Vec::new(),
            step_lock: None,
        };
        b.resolve_meta_args()?;
        b.plan = b.plan_stages()?;
        b.total = b
            .plan
            .iter()
            .map(|&i| 1 + b.df.stages[i].commands.len())
            .sum::<usize>()
            + usize::from(!b.req.labels.is_empty());
        Ok(b)
    }

    fn resolve_meta_args(&mut self) -> Result<(), ApiError> {
        let decls: Vec<ArgDecl> = self.df.meta_args.clone();
        for a in decls {
            let value = match self.req.build_args.get(&a.name) {
                Some(Some(v)) => Some(v.clone()),
                _ => match &a.default {
                    Some(def) => {
                        let meta = self.meta.clone();
                        let v = self
                            .lex
                            .process_word(def, &|n| lookup_pairs(&meta, n))
                            .map_err(|e| ApiError::invalid(e.to_string()))?;
                        Some(v)
                    }
                    None => None,
                },
            };
            if self.req.build_args.contains_key(&a.name) {
                self.used_args.insert(a.name.clone());
            }
            self.meta.push((a.name, value));
        }
        Ok(())
    }

    /// Finds a stage by name (case-insensitive) or index, among those before `before`.
    fn stage_ref(&self, name: &str, before: usize) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        if let Some(i) = self.df.stages[..before]
            .iter()
            .rposition(|s| s.name.as_deref() == Some(lower.as_str()))
        {
            return Some(i);
        }
        match name.parse::<usize>() {
            Ok(i) if i < before => Some(i),
            _ => None,
        }
    }

    /// The stages the target needs, in file order.
    fn plan_stages(&self) -> Result<Vec<usize>, ApiError> {
        if self.df.stages.is_empty() {
            return Err(ApiError::invalid(
                "the Dockerfile has no FROM instruction: nothing to build",
            ));
        }
        // Refused even when the stage is not needed (as Docker's builders do).
        let mut names = BTreeSet::new();
        for n in self.df.stages.iter().filter_map(|s| s.name.as_deref()) {
            if !names.insert(n) {
                return Err(ApiError::invalid(format!("{n} stage name already used")));
            }
        }
        let target = if self.req.target.is_empty() {
            self.df.stages.len() - 1
        } else {
            let t = self.req.target.to_ascii_lowercase();
            self.df
                .stages
                .iter()
                .position(|s| s.name.as_deref() == Some(t.as_str()))
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "failed to reach build target {} in Dockerfile",
                        self.req.target
                    ))
                })?
        };
        let mut needed = BTreeSet::new();
        let mut todo = vec![target];
        while let Some(i) = todo.pop() {
            if !needed.insert(i) {
                continue;
            }
            let s = &self.df.stages[i];
            let base = self
                .lex
                .process_word(&s.base, &|n| lookup_pairs(&self.meta, n))
                .unwrap_or_else(|_| s.base.clone());
            if let Some(j) = self.stage_ref(&base, i) {
                todo.push(j);
            }
            for c in &s.commands {
                if let Instruction::Copy(Copy { from: Some(f), .. }) = &c.instr {
                    if let Some(j) = self.stage_ref(f, i) {
                        todo.push(j);
                    }
                }
            }
        }
        Ok(needed.into_iter().collect())
    }

    async fn say(&self, text: impl Into<String>) -> Res<()> {
        if self.req.quiet {
            return Ok(());
        }
        self.events
            .send(json!({ "stream": text.into() }))
            .await
            .map_err(|_| fail("the client went away: build cancelled"))
    }

    async fn run(&mut self) -> Res<()> {
        for w in self.df.warnings.clone() {
            self.say(format!("[WARNING]: {w}\n")).await?;
        }
        let plan = self.plan.clone();
        let last = *plan.last().unwrap_or(&0);
        let mut final_image = None;
        for i in plan {
            let mut st = self.run_stage(i).await?;
            if i == last && !self.req.labels.is_empty() {
                self.step += 1;
                let labels: Vec<(String, String)> = self
                    .req
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let text = format!("LABEL {}", kv_text(&labels));
                self.say(format!("Step {}/{} : {text}\n", self.step, self.total))
                    .await?;
                self.meta_step(&mut st, &Instruction::Label(labels)).await?;
            }
            final_image = Some(st.image.clone());
            self.results.insert(i, st.image);
        }
        let Some(Some(image)) = final_image else {
            return Err(fail("No image was generated. Is your Dockerfile empty?"));
        };
        let unused: Vec<&String> = self
            .req
            .build_args
            .keys()
            .filter(|k| !self.used_args.contains(*k) && !PROXY_ARGS.contains(&k.as_str()))
            .collect();
        if !unused.is_empty() {
            let list = unused
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            self.say(format!(
                "[Warning] One or more build-args [{list}] were not consumed\n"
            ))
            .await?;
        }
        // The steps' images were stored without fsyncs (`ImageStore::commit_dir`): make them
        // durable, all at once, before the image is reported.
        let images = self.d.images.clone();
        blocking(move || images.sync_deferred().map_err(crate::images::map_err)).await?;
        let id = image.id.to_string();
        self.events
            .send(json!({"aux": {"ID": id}}))
            .await
            .map_err(|_| fail("the client went away"))?;
        if self.req.quiet {
            // dockerd's quiet build prints only the id, which the docker CLI shows.
            self.events
                .send(json!({"stream": format!("{id}\n")}))
                .await
                .map_err(|_| fail("the client went away"))?;
        }
        self.say(format!("Successfully built {}\n", image.id.short()))
            .await?;
        for t in self.req.tags.clone() {
            let images = self.d.images.clone();
            let id2 = id.clone();
            let t2 = t.clone();
            blocking(move || images.tag(&id2, &t2).map_err(crate::images::map_err)).await?;
            let shown = berth_image::Reference::parse(&t)
                .map(|r| r.with_default_tag().familiar())
                .unwrap_or(t);
            self.say(format!("Successfully tagged {shown}\n")).await?;
        }
        Ok(())
    }

    fn env_lookup<'a>(&'a self, st: &'a StageState) -> impl Fn(&str) -> Option<String> + 'a {
        move |name: &str| {
            if let Some(v) = st.env_value(name) {
                return Some(v);
            }
            if let Some(v) = st.arg_value(name) {
                return v;
            }
            if PROXY_ARGS.contains(&name) {
                if let Some(Some(v)) = self.req.build_args.get(name) {
                    return Some(v.clone());
                }
            }
            None
        }
    }

    async fn image(&self, id: &str) -> Res<Image> {
        let images = self.d.images.clone();
        let id = id.to_string();
        Ok(blocking(move || images.get(&id).map_err(crate::images::map_err)).await?)
    }

    async fn run_stage(&mut self, index: usize) -> Res<StageState> {
        let stage = self.df.stages[index].clone();
        self.step += 1;
        self.say(format!(
            "Step {}/{} : {}\n",
            self.step, self.total, stage.original
        ))
        .await?;
        let base = self
            .lex
            .process_word(&stage.base, &|n| lookup_pairs(&self.meta, n))
            .map_err(|e| fail(format!("FROM {}: {e}", stage.base)))?;
        if let Some(p) = &stage.platform {
            let p = self
                .lex
                .process_word(p, &|n| lookup_pairs(&self.meta, n))
                .map_err(|e| fail(e.to_string()))?;
            check_platform(&p)?;
        }
        let image = if base.eq_ignore_ascii_case("scratch") {
            None
        } else if let Some(j) = self.stage_ref(&base, index) {
            self.results
                .get(&j)
                .cloned()
                .ok_or_else(|| fail(format!("stage {base} was not built")))?
        } else {
            Some(self.base_image(&base).await?)
        };
        let mut st = StageState {
            config: image
                .as_ref()
                .and_then(|i| i.config.config.clone())
                .unwrap_or_default(),
            author: image
                .as_ref()
                .and_then(|i| i.config.author.clone())
                .unwrap_or_default(),
            image,
            cmd_set: false,
            args: Vec::new(),
        };
        match &st.image {
            Some(i) => self.say(format!(" ---> {}\n", i.id.short())).await?,
            None => self.say(" ---> \n").await?,
        }
        // ONBUILD triggers of the base run first, and are not inherited.
        let triggers = st.config.on_build.take().unwrap_or_default();
        if !triggers.is_empty() {
            self.say(format!(
                "# Executing {} build trigger{}\n",
                triggers.len(),
                if triggers.len() == 1 { "" } else { "s" }
            ))
            .await?;
            for t in triggers {
                let parsed = berth_builder::dockerfile::parse(&format!("FROM scratch\n{t}\n"))
                    .map_err(|e| fail(format!("invalid ONBUILD trigger {t:?}: {e}")))?;
                for c in parsed.stages.into_iter().flat_map(|s| s.commands) {
                    self.dispatch(&mut st, &c, index).await?;
                }
            }
        }
        for c in &stage.commands {
            self.step += 1;
            self.say(format!(
                "Step {}/{} : {}\n",
                self.step, self.total, c.original
            ))
            .await?;
            self.dispatch(&mut st, c, index).await?;
        }
        Ok(st)
    }

    async fn base_image(&self, name: &str) -> Res<Image> {
        let images = self.d.images.clone();
        let n = name.to_string();
        match blocking(move || images.get(&n).map_err(crate::images::map_err)).await {
            Ok(i) => {
                if let Some(why) = &i.broken {
                    return Err(fail(format!(
                        "image {name} is broken ({why}): remove it with `rmi` and load or import it again"
                    )));
                }
                Ok(i)
            }
            Err(e) if e.kind == berth_api::ErrorKind::NotFound => {
                let r = berth_image::Reference::parse(name)
                    .map(|r| r.with_default_tag().familiar())
                    .unwrap_or_else(|_| name.to_string());
                Err(fail(format!(
                    "pull access denied for {r}: the image is not present locally and pulling from registries is not available in this berth build yet"
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn dispatch(&mut self, st: &mut StageState, c: &Command, stage: usize) -> Res<()> {
        let lookup = self.env_lookup(st);
        let instr = c
            .instr
            .expand(&self.lex, &lookup)
            .map_err(|e| fail(format!("{}: {e}", c.original)))?;
        drop(lookup);
        match &instr {
            Instruction::Run(run) => self.run_step(st, run).await,
            Instruction::Copy(cp) => self.copy_step(st, cp, false, stage).await,
            Instruction::Add(cp) => self.copy_step(st, cp, true, stage).await,
            Instruction::Workdir(_) => self.workdir_step(st, &instr).await,
            _ => self.meta_step(st, &instr).await,
        }
    }

    /// Looks the step up in the cache; on a hit the stage moves to the cached image.
    async fn cached(&mut self, st: &mut StageState, key: &str) -> Res<bool> {
        if self.req.no_cache {
            return Ok(false);
        }
        // Another build making this very step now: wait for it, then take its image.
        self.step_lock = None;
        self.step_lock = Some(cache::lock_step(key).await);
        let mut hit = None;
        for id in self.cache.get(key) {
            if let Ok(image) = self.image(&id).await {
                if image.broken.is_none() {
                    hit = Some(image);
                    break;
                }
            }
        }
        let Some(image) = hit else {
            return Ok(false);
        };
        self.step_lock = None;
        self.say(" ---> Using cache\n").await?;
        self.say(format!(" ---> {}\n", image.id.short())).await?;
        st.image = Some(image);
        Ok(true)
    }

    fn key(&self, st: &StageState, created_by: &str, extra: &str) -> String {
        let config = serde_json::to_string(&st.config).unwrap_or_default();
        let parent = st.image.as_ref().map(|i| i.id.to_string());
        Cache::key(&KeyParts {
            parent: parent.as_deref(),
            created_by,
            config: &format!("{config}\0{}", st.author),
            extra,
        })
    }

    fn commit_request(
        &self,
        st: &StageState,
        created_by: String,
        container: &str,
    ) -> berth_image::CommitRequest {
        berth_image::CommitRequest {
            parent: st.image.as_ref().map(|i| i.id.clone()),
            reference: None,
            author: st.author.clone(),
            comment: String::new(),
            config: st.config.clone(),
            container_id: container.to_string(),
            created_by,
        }
    }

    /// Records the new image of a step and moves the stage to it.
    async fn finish_step(
        &mut self,
        st: &mut StageState,
        key: &str,
        id: berth_image::Digest,
    ) -> Res<()> {
        let image = self.image(&id.to_string()).await?;
        self.cache.put(key, &image.id.to_string());
        self.step_lock = None;
        self.say(format!(" ---> {}\n", image.id.short())).await?;
        st.image = Some(image);
        Ok(())
    }

    /// A step that changes only the config: a new image with a history entry and no layer.
    async fn meta_step(&mut self, st: &mut StageState, instr: &Instruction) -> Res<()> {
        let text = self.apply_meta(st, instr)?;
        let created_by = format!("/bin/sh -c #(nop)  {text}");
        let key = self.key(st, &created_by, "");
        if self.cached(st, &key).await? {
            return Ok(());
        }
        let icr = self.commit_request(st, created_by, "");
        let images = self.d.images.clone();
        let id = blocking(move || {
            images
                .commit(icr, &[0u8; 1024][..])
                .map(|r| r.id)
                .map_err(crate::images::map_err)
        })
        .await?;
        self.finish_step(st, &key, id).await
    }

    /// Applies a config-only instruction to the stage; returns its history text.
    fn apply_meta(&mut self, st: &mut StageState, instr: &Instruction) -> Res<String> {
        let cfg = &mut st.config;
        Ok(match instr {
            Instruction::Cmd(c) => {
                let v = self.command(st_shell(cfg), c);
                let text = format!("CMD {}", go_quoted(&v));
                cfg.cmd = Some(v);
                st.cmd_set = true;
                text
            }
            Instruction::Entrypoint(c) => {
                let v = self.command(st_shell(cfg), c);
                let text = format!("ENTRYPOINT {}", go_quoted(&v));
                cfg.entrypoint = Some(v);
                if !st.cmd_set {
                    cfg.cmd = None;
                }
                text
            }
            Instruction::Shell(v) => {
                cfg.shell = Some(v.clone());
                format!("SHELL [{}]", v.join(" "))
            }
            Instruction::Env(pairs) => {
                let mut env = cfg.env.take().unwrap_or_default();
                for (k, v) in pairs {
                    env.retain(|e| e.split('=').next() != Some(k.as_str()));
                    env.push(format!("{k}={v}"));
                }
                cfg.env = Some(env);
                format!("ENV {}", kv_text(pairs))
            }
            Instruction::Label(pairs) => {
                let mut labels = cfg.labels.take().unwrap_or_default();
                for (k, v) in pairs {
                    labels.insert(k.clone(), v.clone());
                }
                cfg.labels = Some(labels);
                format!("LABEL {}", kv_text(pairs))
            }
            Instruction::Arg(decls) => {
                let mut parts = Vec::new();
                for a in decls {
                    let value = match self.req.build_args.get(&a.name) {
                        Some(Some(v)) => Some(v.clone()),
                        _ => match &a.default {
                            Some(d) => Some(d.clone()),
                            None => lookup_pairs(&self.meta, &a.name),
                        },
                    };
                    if self.req.build_args.contains_key(&a.name) {
                        self.used_args.insert(a.name.clone());
                    }
                    parts.push(match &a.default {
                        Some(d) => format!("{}={d}", a.name),
                        None => a.name.clone(),
                    });
                    st.args.push((a.name.clone(), value));
                }
                format!("ARG {}", parts.join(" "))
            }
            Instruction::Maintainer(m) => {
                st.author = m.clone();
                format!("MAINTAINER {m}")
            }
            Instruction::Expose(ports) => {
                let mut map = cfg.exposed_ports.take().unwrap_or_default();
                for p in ports {
                    for port in expand_ports(p)? {
                        map.insert(port, json!({}));
                    }
                }
                cfg.exposed_ports = Some(map);
                format!("EXPOSE {}", ports.join(" "))
            }
            Instruction::Volume(vols) => {
                let mut map = cfg.volumes.take().unwrap_or_default();
                for v in vols {
                    if v.trim().is_empty() {
                        return Err(fail("VOLUME specified can not be an empty string"));
                    }
                    map.insert(v.clone(), json!({}));
                }
                cfg.volumes = Some(map);
                format!("VOLUME [{}]", vols.join(" "))
            }
            Instruction::User(u) => {
                cfg.user = Some(u.clone());
                format!("USER {u}")
            }
            Instruction::StopSignal(s) => {
                crate::lifecycle::parse_signal(s).map_err(|e| fail(e.message))?;
                cfg.stop_signal = Some(s.clone());
                format!("STOPSIGNAL {s}")
            }
            Instruction::Healthcheck(h) => {
                let v = match h {
                    Healthcheck::None => json!({"Test": ["NONE"]}),
                    Healthcheck::Check {
                        test,
                        interval,
                        timeout,
                        start_period,
                        start_interval,
                        retries,
                    } => {
                        let mut m = serde_json::Map::new();
                        m.insert("Test".into(), json!(test));
                        for (k, v) in [
                            ("Interval", interval),
                            ("Timeout", timeout),
                            ("StartPeriod", start_period),
                            ("StartInterval", start_interval),
                            ("Retries", retries),
                        ] {
                            if *v != 0 {
                                m.insert(k.into(), json!(v));
                            }
                        }
                        Value::Object(m)
                    }
                };
                let text = format!("HEALTHCHECK {v}");
                cfg.healthcheck = Some(v);
                text
            }
            Instruction::Onbuild(t) => {
                let mut ob = cfg.on_build.take().unwrap_or_default();
                ob.push(t.clone());
                cfg.on_build = Some(ob);
                format!("ONBUILD {t}")
            }
            Instruction::Workdir(w) => {
                let dir = resolve_workdir(&st_workdir(cfg), w);
                cfg.working_dir = Some(dir.clone());
                format!("WORKDIR {dir}")
            }
            Instruction::Run(_) | Instruction::Copy(_) | Instruction::Add(_) => {
                return Err(fail("internal: not a config instruction"))
            }
        })
    }

    /// CMD/ENTRYPOINT/RUN argv: the shell form goes through the stage's shell.
    fn command(&self, shell: Vec<String>, c: &ShellOrExec) -> Vec<String> {
        match c {
            ShellOrExec::Exec(v) => v.clone(),
            ShellOrExec::Shell(s) => {
                let mut v = shell;
                v.push(s.clone());
                v
            }
        }
    }

    fn next_dir(&mut self) -> (PathBuf, PathBuf) {
        self.seq += 1;
        let name = format!("step-{}", self.seq);
        let dir = self.tmp.join(&name);
        let target = layout::scratch_mount(
            &self.d.config.exec_root,
            &format!(
                "build-{}-{}",
                self.tmp.file_name().and_then(|n| n.to_str()).unwrap_or(""),
                self.seq
            ),
        );
        (dir, target)
    }

    /// WORKDIR: the config changes, and the directory is made if the image lacks it.
    async fn workdir_step(&mut self, st: &mut StageState, instr: &Instruction) -> Res<()> {
        let text = self.apply_meta(st, instr)?;
        let created_by = format!("/bin/sh -c #(nop)  {text}");
        let key = self.key(st, &created_by, "");
        if self.cached(st, &key).await? {
            return Ok(());
        }
        let icr = self.commit_request(st, created_by, "");
        let (dir, target) = self.next_dir();
        let images = self.d.images.clone();
        let image = st.image.clone();
        let workdir = st.workdir();
        let id = blocking(move || {
            let mut root = StepRoot::mount(&images, image.as_ref(), dir, target)?;
            steps::mkdir_in_root(root.path(), &workdir, None)?;
            root.unmount()?;
            crate::transfer::commit_upper_owned(&images, &root.upper(), icr)
        })
        .await?;
        self.finish_step(st, &key, id).await
    }

    async fn run_step(
        &mut self,
        st: &mut StageState,
        run: &berth_builder::instructions::Run,
    ) -> Res<()> {
        let shell = st.shell();
        let argv = match &run.cmd {
            ShellOrExec::Exec(v) => v.clone(),
            ShellOrExec::Shell(s) => {
                let mut v = shell;
                v.push(heredoc_script(s, &run.heredocs));
                v
            }
        };
        let args = st.run_args();
        let mut created_by = String::new();
        if !args.is_empty() {
            created_by.push_str(&format!("|{} ", args.len()));
            for (k, v) in &args {
                created_by.push_str(&format!("{k}={v} "));
            }
        }
        created_by.push_str(&argv.join(" "));
        let network = run
            .network
            .clone()
            .filter(|n| !n.is_empty())
            .or_else(|| Some(self.req.network.clone()).filter(|n| !n.is_empty()))
            .unwrap_or_else(|| "default".into());
        let key = self.key(st, &created_by, &format!("network={network}"));
        if self.cached(st, &key).await? {
            return Ok(());
        }
        let Some(image) = st.image.clone() else {
            return Err(fail(
                "RUN on an empty image (FROM scratch): there is no shell to run it",
            ));
        };
        let mut env = st.config.env.clone().unwrap_or_default();
        for (k, v) in &args {
            env.push(format!("{k}={v}"));
        }
        for p in PROXY_ARGS {
            if st.env_value(p).is_none() && st.arg_value(p).is_none() {
                if let Some(Some(v)) = self.req.build_args.get(*p) {
                    env.push(format!("{p}={v}"));
                }
            }
        }
        let body = ContainerCreateBody {
            image: Some(image.id.to_string()),
            cmd: Some(argv.clone()),
            entrypoint: Some(Vec::new()),
            env: Some(env),
            user: st.config.user.clone(),
            working_dir: st.config.working_dir.clone(),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            host_config: Some(HostConfig {
                network_mode: Some(network),
                ..Default::default()
            }),
            ..Default::default()
        };
        let t0 = std::time::Instant::now();
        let cid = self.d.create_container_as(None, body, true).await?;
        let t_create = t0.elapsed();
        let r = self.run_container(&cid).await;
        let t_run = t0.elapsed();
        let outcome = match r {
            Ok(0) => {
                let icr = self.commit_request(st, created_by, &cid);
                let images = self.d.images.clone();
                let upper = self.d.container_dir(&cid).join("rw/upper");
                blocking(move || crate::transfer::commit_upper_owned(&images, &upper, icr))
                    .await
                    .map_err(Failure::from)
            }
            Ok(code) => Err(Failure {
                message: format!(
                    "The command '{}' returned a non-zero code: {code}",
                    argv.join(" ")
                ),
                code: Some(code),
            }),
            Err(e) => Err(e),
        };
        let t_commit = t0.elapsed();
        // The step's overlay is unmounted by its shim after the exit was reported: wait for
        // it before the next step mounts the committed layer (overlay refuses, or warns, when
        // a lower dir is still another mount's upper).
        if let Ok(c) = self.d.container(&cid) {
            drop(c.teardown.lock().await);
        }
        tracing::debug!(
            create = ?t_create,
            run = ?(t_run - t_create),
            commit = ?(t_commit - t_run),
            teardown = ?(t0.elapsed() - t_commit),
            "build RUN step"
        );
        // The container goes while the next steps run; the build waits for it at the end.
        let d = self.d.clone();
        let id2 = cid.clone();
        self.removals.push(tokio::spawn(async move {
            if let Err(e) = d.remove_container(&id2, true, true).await {
                tracing::warn!(id = %id2, "remove build container: {}", e.message);
            }
        }));
        let id = outcome?;
        self.say(format!("Removing intermediate container {}\n", &cid[..12]))
            .await?;
        self.finish_step(st, &key, id).await
    }

    /// Starts the container, streams its output as it comes, returns its exit code.
    async fn run_container(&self, cid: &str) -> Res<i64> {
        self.say(format!(" ---> Running in {}\n", &cid[..12]))
            .await?;
        let wait = self.d.wait_container(cid, WaitCondition::NextExit)?;
        let t0 = std::time::Instant::now();
        self.d.start_container(cid).await?;
        tracing::debug!(start = ?t0.elapsed(), "build RUN container started");
        let (c, tty) = self.d.logs_target(cid)?;
        let (mut rd, mut wr) = tokio::io::duplex(64 << 10);
        let d = self.d.clone();
        let opts = LogOptions {
            stdout: true,
            stderr: true,
            follow: true,
            ..Default::default()
        };
        let writer = tokio::spawn(async move {
            let _ = d.write_logs(&c, &opts, tty, &mut wr).await;
        });
        // Docker's multiplexed frames: 8-byte header, then the payload.
        loop {
            let mut head = [0u8; 8];
            tokio::select! {
                r = rd.read_exact(&mut head) => if r.is_err() {
                    break;
                },
                // The client went away (docker kills the step's container then): the caller
                // removes the container with force, and nothing is committed.
                _ = self.events.closed() => {
                    writer.abort();
                    return Err(fail("the client went away: build cancelled"));
                }
            }
            let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
            let mut payload = vec![0u8; len];
            if rd.read_exact(&mut payload).await.is_err() {
                break;
            }
            self.say(String::from_utf8_lossy(&payload).into_owned())
                .await?;
        }
        let _ = writer.await;
        Ok(wait.await?)
    }

    async fn copy_step(
        &mut self,
        st: &mut StageState,
        cp: &Copy,
        add: bool,
        stage: usize,
    ) -> Res<()> {
        let keyword = if add { "ADD" } else { "COPY" };
        let heredoc_names: BTreeSet<&str> = cp.heredocs.iter().map(|h| h.name.as_str()).collect();
        let mut file_sources: Vec<String> = cp
            .sources
            .iter()
            .filter(|s| !heredoc_names.contains(s.as_str()))
            .cloned()
            .collect();
        let is_url = |s: &String| s.starts_with("http://") || s.starts_with("https://");
        let urls = file_sources.iter().filter(|s| is_url(s)).count();
        let mut ctx = self.ctx.clone();
        let mut downloaded = false;
        if urls > 0 {
            if !add {
                return Err(fail(format!(
                    "{keyword} failed: source can't be a URL for COPY"
                )));
            }
            if urls != file_sources.len() || cp.from.is_some() {
                return Err(fail(
                    "ADD failed: berth cannot mix URLs with other sources in one ADD: use one ADD per kind",
                ));
            }
            // Downloaded each time, as Docker does; the cache then keys on the content.
            self.seq += 1;
            let dl = self.tmp.join(format!("download-{}", self.seq));
            let mut names = Vec::new();
            for u in &file_sources {
                let name = fetch::url_file_name(u).ok_or_else(|| {
                    fail(format!(
                        "ADD failed: cannot determine a file name from {u}: give the destination a name"
                    ))
                })?;
                let one = dl.join(names.len().to_string());
                fetch::download(u, &one, &name, "ADD failed").await?;
                names.push(format!("{}/{name}", names.len()));
            }
            ctx = Arc::new(Context::scoped(&dl));
            file_sources = names;
            downloaded = true;
        }
        // Where the sources come from: the context, an earlier stage, or an image.
        let from_image = match cp.from.as_deref() {
            None => None,
            Some(f) => Some(match self.stage_ref(f, stage) {
                Some(j) => self.results.get(&j).cloned().ok_or_else(|| {
                    fail(format!("{keyword} --from={f}: stage {f} was not built"))
                })?,
                None => {
                    if f.parse::<usize>().is_ok() {
                        return Err(fail(format!(
                            "{keyword} --from={f}: invalid stage index: it must refer to an earlier stage"
                        )));
                    }
                    Some(self.base_image(f).await?)
                }
            }),
        };
        // The destination made absolute against the WORKDIR.
        let dest = resolve_workdir(&st.workdir(), &cp.dest);
        let dest_is_dir = cp.dest.ends_with('/') || cp.dest.ends_with("/.") || cp.dest == ".";
        let chmod = match &cp.chmod {
            Some(m) => Some(
                u32::from_str_radix(m, 8)
                    .ok()
                    .filter(|v| *v <= 0o7777)
                    .ok_or_else(|| fail(format!("invalid chmod parameter: {m}")))?,
            ),
            None => None,
        };

        // Resolve the sources and their checksum (blocking: it reads the files).
        let ctx2 = ctx.clone();
        let (dir, target) = self.next_dir();
        let src_mount_dir = dir.with_extension("src");
        let src_target = target.with_extension("src");
        let images = self.d.images.clone();
        let from_img = from_image.clone();
        let kw = keyword.to_string();
        let files = file_sources.clone();
        let (sources, sum, src_root) = blocking(move || match from_img {
            None => {
                let sources = ctx2.sources(&files, &kw)?;
                let sum = ctx2.checksum(&sources)?;
                Ok((sources, sum, None))
            }
            Some(img) => {
                let root = StepRoot::mount(&images, img.as_ref(), src_mount_dir, src_target)?;
                let c = Context::scoped(root.path());
                let sources = c.sources(&files, &kw)?;
                let sum = format!(
                    "{}:{}",
                    img.as_ref().map(|i| i.id.to_string()).unwrap_or_default(),
                    sources
                        .iter()
                        .map(|s| s.rel.clone())
                        .collect::<Vec<_>>()
                        .join(",")
                );
                Ok((sources, sum, Some(root)))
            }
        })
        .await?;
        let count = sources.len() + cp.heredocs.len();
        let many = count > 1;
        if many && !dest_is_dir {
            return Err(fail(format!(
                "When using {keyword} with more than one source file, the destination must be a directory and end with a /"
            )));
        }
        let kind = if many {
            "multi"
        } else if sources.first().is_some_and(|s| s.is_dir) {
            "dir"
        } else {
            "file"
        };
        let mut h = <sha2::Sha256 as sha2::Digest>::new();
        sha2::Digest::update(&mut h, sum.as_bytes());
        for hd in &cp.heredocs {
            sha2::Digest::update(&mut h, hd.name.as_bytes());
            sha2::Digest::update(&mut h, [0]);
            sha2::Digest::update(&mut h, hd.content.as_bytes());
            sha2::Digest::update(&mut h, [0]);
        }
        let sum = hex::encode(sha2::Digest::finalize(h));
        let created_by = format!("/bin/sh -c #(nop) {keyword} {kind}:{sum} in {} ", cp.dest);
        let extra = format!("chown={:?} chmod={:?} dest={dest}", cp.chown, cp.chmod);
        let key = self.key(st, &created_by, &extra);
        if self.cached(st, &key).await? {
            return Ok(());
        }

        let icr = self.commit_request(st, created_by, "");
        let (dir, target) = self.next_dir();
        let images = self.d.images.clone();
        let image = st.image.clone();
        let chown = cp.chown.clone();
        let heredocs = cp.heredocs.clone();
        let id = blocking(move || {
            let src_root = src_root;
            let src_path: PathBuf = match &src_root {
                Some(r) => r.path().to_path_buf(),
                None => ctx.root().to_path_buf(),
            };
            let mut root = StepRoot::mount(&images, image.as_ref(), dir, target)?;
            let owner = match &chown {
                Some(c) => {
                    let u = berth_runtime::user::resolve(root.path(), c).map_err(|e| {
                        ApiError::invalid(format!(
                            "unable to convert uid/gid chown string to host mapping: {e}"
                        ))
                    })?;
                    (u.uid, u.gid)
                }
                None => (0, 0),
            };
            let attrs = Attrs {
                owner: Some(owner),
                mode: chmod,
            };
            let into_dir = dest_is_dir || many || steps::is_dir_in_root(root.path(), &dest);
            for s in &sources {
                if s.is_dir {
                    steps::mkdir_in_root(root.path(), &dest, None)?;
                    steps::copy_tree(&src_path, &s.rel, root.path(), &dest, None, attrs)?;
                    continue;
                }
                let (dir, name) = if into_dir {
                    (dest.clone(), base_name(&s.name))
                } else {
                    split_dest(&dest)
                };
                steps::mkdir_in_root(root.path(), &dir, None)?;
                if add
                    && !downloaded
                    && src_root.is_none()
                    && steps::is_archive(&src_path.join(&s.rel))
                {
                    // An archive is unpacked into the destination as a directory.
                    let adir = dest.clone();
                    steps::mkdir_in_root(root.path(), &adir, None)?;
                    steps::extract_archive(
                        &src_path.join(&s.rel),
                        root.path(),
                        &adir,
                        Attrs {
                            owner: chown.as_ref().map(|_| owner),
                            mode: None,
                        },
                    )?;
                    continue;
                }
                steps::copy_tree(&src_path, &s.rel, root.path(), &dir, Some(&name), attrs)?;
            }
            for hd in &heredocs {
                let (dir, name) = if into_dir {
                    (dest.clone(), hd.name.clone())
                } else {
                    split_dest(&dest)
                };
                steps::mkdir_in_root(root.path(), &dir, None)?;
                steps::write_file(root.path(), &dir, &name, hd.content.as_bytes(), attrs)?;
            }
            drop(src_root);
            root.unmount()?;
            crate::transfer::commit_upper_owned(&images, &root.upper(), icr)
        })
        .await?;
        self.finish_step(st, &key, id).await
    }
}

/// `k=v k2=v2`, as ENV and LABEL show in the history.
fn kv_text(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn st_shell(cfg: &ContainerConfig) -> Vec<String> {
    match &cfg.shell {
        Some(s) if !s.is_empty() => s.clone(),
        _ => DEFAULT_SHELL.iter().map(|s| s.to_string()).collect(),
    }
}

fn st_workdir(cfg: &ContainerConfig) -> String {
    match cfg.working_dir.as_deref() {
        Some(w) if !w.is_empty() => w.to_string(),
        _ => "/".to_string(),
    }
}

fn lookup_pairs(pairs: &[(String, Option<String>)], name: &str) -> Option<String> {
    pairs
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v.clone())
}

/// Go's `%q` of a string slice: `["/bin/sh" "-c" "echo hi"]`.
fn go_quoted(v: &[String]) -> String {
    let items: Vec<String> = v
        .iter()
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .collect();
    format!("[{}]", items.join(" "))
}

/// EXPOSE's forms: `80`, `80/udp`, `8000-8002` → `80/tcp`…
fn expand_ports(p: &str) -> Res<Vec<String>> {
    let (range, proto) = match p.split_once('/') {
        Some((r, proto)) => (r, proto.to_ascii_lowercase()),
        None => (p, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(fail(format!("invalid proto: {proto}")));
    }
    let bad = || fail(format!("invalid containerPort: {range}"));
    let (lo, hi) = match range.split_once('-') {
        Some((a, b)) => (
            a.parse::<u16>().map_err(|_| bad())?,
            b.parse::<u16>().map_err(|_| bad())?,
        ),
        None => {
            let v = range.parse::<u16>().map_err(|_| bad())?;
            (v, v)
        }
    };
    if hi < lo {
        return Err(fail(format!(
            "invalid range specified for container: {range}"
        )));
    }
    Ok((lo..=hi).map(|n| format!("{n}/{proto}")).collect())
}

/// Joins a WORKDIR onto the current one and cleans it.
fn resolve_workdir(current: &str, w: &str) -> String {
    let joined = if w.starts_with('/') {
        w.to_string()
    } else {
        format!("{current}/{w}")
    };
    let mut out: Vec<&str> = Vec::new();
    for c in joined.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}

fn split_dest(dest: &str) -> (String, String) {
    match dest.rsplit_once('/') {
        Some((dir, name)) => (
            if dir.is_empty() {
                "/".into()
            } else {
                dir.to_string()
            },
            name.to_string(),
        ),
        None => ("/".into(), dest.to_string()),
    }
}

fn base_name(p: &str) -> String {
    p.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(p)
        .to_string()
}

/// RUN with heredocs: a command that is only `<<EOF` runs the document as the script;
/// otherwise the command line and its documents go to the shell together (BuildKit's way).
fn heredoc_script(cmd: &str, heredocs: &[berth_builder::instructions::Heredoc]) -> String {
    if heredocs.is_empty() {
        return cmd.to_string();
    }
    let only = cmd.trim();
    if heredocs.len() == 1 {
        let h = &heredocs[0];
        let forms = [
            format!("<<{}", h.name),
            format!("<<-{}", h.name),
            format!("<<\"{}\"", h.name),
            format!("<<'{}'", h.name),
            format!("<<-\"{}\"", h.name),
            format!("<<-'{}'", h.name),
        ];
        if forms.iter().any(|f| f == only) {
            return h.content.clone();
        }
    }
    let mut s = cmd.to_string();
    s.push('\n');
    for h in heredocs {
        s.push_str(&h.content);
        if !h.content.is_empty() && !h.content.ends_with('\n') {
            s.push('\n');
        }
        s.push_str(&h.name);
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_paths() {
        assert_eq!(expand_ports("80").unwrap(), ["80/tcp"]);
        assert_eq!(expand_ports("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(
            expand_ports("8000-8002").unwrap(),
            ["8000/tcp", "8001/tcp", "8002/tcp"]
        );
        assert!(expand_ports("x").is_err());
        assert!(expand_ports("80/foo").is_err());
        assert_eq!(resolve_workdir("/", "app"), "/app");
        assert_eq!(resolve_workdir("/app", "sub/../x"), "/app/x");
        assert_eq!(resolve_workdir("/app", "/abs/"), "/abs");
        assert_eq!(split_dest("/a/b"), ("/a".to_string(), "b".to_string()));
        assert_eq!(split_dest("/b"), ("/".to_string(), "b".to_string()));
        assert_eq!(
            go_quoted(&["/bin/sh".into(), "-c".into(), "echo \"x\"".into()]),
            "[\"/bin/sh\" \"-c\" \"echo \\\"x\\\"\"]"
        );
    }

    #[test]
    fn heredoc_scripts() {
        use berth_builder::instructions::Heredoc;
        let h = vec![Heredoc {
            name: "EOF".into(),
            content: "echo a\necho b\n".into(),
            expand: true,
        }];
        assert_eq!(heredoc_script("<<EOF", &h), "echo a\necho b\n");
        assert_eq!(
            heredoc_script("cat <<EOF > /x", &h),
            "cat <<EOF > /x\necho a\necho b\nEOF\n"
        );
        assert_eq!(heredoc_script("echo hi", &[]), "echo hi");
    }

    #[test]
    fn platforms() {
        assert!(check_platform("").is_ok());
        assert!(check_platform("linux/amd64").is_ok());
        let e = check_platform("linux/arm64").unwrap_err();
        assert!(e.message.contains("linux/amd64"), "{}", e.message);
    }
}
