//! The wiring: the engine (`berth_daemon::Daemon`) serves the routes' backend traits.

use berth_api::models::{
    ContainerCreateBody, ContainerSummary, ContainerTopResponse, ExecConfig, ExecInspectResponse,
};
use berth_api::types::{
    AttachOptions, CommitRequest, CopyToOptions, ImportRequest, ListOptions, LogOptions, Producer,
    SaveRequest, Stream, WaitCondition,
};
use berth_api::ApiError;
use berth_daemon::{blocking, Daemon};
use berth_server::backend::{
    BuildBackend, ContainerBackend, ExecBackend, ImageBackend, NetworkBackend, Pending,
    SystemBackend, VolumeBackend,
};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

type Res<T> = Result<T, ApiError>;

/// The daemon, as the API server sees it.
pub struct Engine(pub Arc<Daemon>);

impl ContainerBackend for Engine {
    fn list_containers(&self, opts: &ListOptions) -> Res<Vec<ContainerSummary>> {
        self.0.list_containers(opts)
    }
    async fn create_container(
        &self,
        name: Option<String>,
        body: ContainerCreateBody,
    ) -> Res<String> {
        self.0.create_container(name, body).await
    }
    fn inspect_container(&self, name: &str) -> Res<berth_api::types::ContainerInspect> {
        self.0.inspect_container(name)
    }
    async fn container_size(&self, name: &str) -> Res<(i64, i64)> {
        let d = self.0.clone();
        let name = name.to_string();
        blocking(move || d.container_size(&name)).await
    }
    async fn top(&self, name: &str, ps_args: Option<&str>) -> Res<ContainerTopResponse> {
        let d = self.0.clone();
        let (name, ps_args) = (name.to_string(), ps_args.map(str::to_string));
        blocking(move || d.top(&name, ps_args.as_deref())).await
    }
    fn logs_target(&self, name: &str) -> Res<bool> {
        self.0.logs_target(name).map(|(_, tty)| tty)
    }
    async fn write_logs(
        &self,
        name: &str,
        opts: LogOptions,
        mut out: tokio::io::DuplexStream,
    ) -> Res<()> {
        let (c, tty) = self.0.logs_target(name)?;
        let r = self.0.write_logs(&c, &opts, tty, &mut out).await;
        let _ = out.shutdown().await;
        r
    }
    async fn start_container(&self, name: &str) -> Res<()> {
        // On a task of its own: a client that hangs up mid-start (the request's future
        // dropped) must not leave a start half done, such as a shim created and not ended
        // after a port conflict.
        let (d, name) = (self.0.clone(), name.to_string());
        tokio::spawn(async move { d.start_container(&name).await })
            .await
            .map_err(|e| berth_api::ApiError::internal(e.to_string()))?
    }
    async fn stop_container(&self, name: &str, t: Option<i64>) -> Res<()> {
        self.0.stop_container(name, t).await
    }
    async fn restart_container(&self, name: &str, t: Option<i64>) -> Res<()> {
        self.0.restart_container(name, t).await
    }
    async fn kill_container(&self, name: &str, signal: Option<&str>) -> Res<()> {
        self.0.kill_container(name, signal).await
    }
    async fn pause_container(&self, name: &str) -> Res<()> {
        self.0.pause_container(name).await
    }
    async fn unpause_container(&self, name: &str) -> Res<()> {
        self.0.unpause_container(name).await
    }
    async fn rename_container(&self, name: &str, to: &str) -> Res<()> {
        self.0.rename_container(name, to).await
    }
    async fn resize_container(&self, name: &str, h: u16, w: u16) -> Res<()> {
        self.0.resize_container(name, h, w).await
    }
    fn wait_container(&self, name: &str, cond: WaitCondition) -> Res<Pending<i64>> {
        Ok(Box::pin(self.0.wait_container(name, cond)?))
    }
    fn attach_target(&self, name: &str) -> Res<bool> {
        self.0.attach_target(name).map(|(_, tty)| tty)
    }
    async fn attach(&self, name: &str, opts: AttachOptions, io: Box<dyn Stream>) -> Res<()> {
        let (c, _) = self.0.attach_target(name)?;
        self.0.attach(c, opts, io).await.map(|_| ())
    }
    async fn export_container(&self, name: &str) -> Res<Producer> {
        self.0.export_container(name).await
    }
    async fn container_changes(&self, name: &str) -> Res<Value> {
        self.0.container_changes(name).await
    }
    async fn stat_path(&self, name: &str, path: &str) -> Res<String> {
        self.0.stat_path(name, path).await
    }
    async fn archive_path(&self, name: &str, path: &str) -> Res<(String, Producer)> {
        self.0.archive_path(name, path).await
    }
    async fn extract_archive(
        &self,
        name: &str,
        opts: CopyToOptions,
        body: Box<dyn std::io::Read + Send>,
    ) -> Res<()> {
        self.0.extract_archive(name, opts, body).await
    }
    async fn commit_container(&self, req: CommitRequest) -> Res<String> {
        self.0.commit_container(req).await
    }
    async fn prune_containers(&self, filters: HashMap<String, Vec<String>>) -> Res<Value> {
        self.0.prune_containers(filters).await
    }
    async fn write_stats(&self, name: &str, stream: bool, out: tokio::io::DuplexStream) -> Res<()> {
        self.0.write_stats(name, stream, out).await
    }
    async fn update_container(&self, name: &str, body: Value) -> Res<Value> {
        self.0.update_container(name, body).await
    }
    async fn remove_container(&self, name: &str, force: bool, volumes: bool) -> Res<()> {
        self.0.remove_container_and_wait(name, force, volumes).await
    }
}

impl ExecBackend for Engine {
    fn create_exec(&self, container: &str, cfg: ExecConfig) -> Res<String> {
        self.0.create_exec(container, cfg)
    }
    fn exec_tty(&self, id: &str) -> Res<bool> {
        Ok(self.0.exec(id)?.config.tty.unwrap_or(false))
    }
    async fn start_exec(
        &self,
        id: &str,
        io: Option<Box<dyn Stream>>,
        console: Option<(u16, u16)>,
    ) -> Res<()> {
        let e = self.0.exec(id)?;
        self.0.start_exec(e, io, console).await
    }
    async fn resize_exec(&self, id: &str, h: u16, w: u16) -> Res<()> {
        self.0.resize_exec(id, h, w).await
    }
    fn inspect_exec(&self, id: &str) -> Res<ExecInspectResponse> {
        self.0.inspect_exec(id)
    }
}

impl ImageBackend for Engine {
    fn list_images(&self, all: bool, reference: Option<&str>) -> Vec<Value> {
        self.0.list_images(all, reference)
    }
    async fn import_image(
        &self,
        reader: Box<dyn std::io::Read + Send>,
        req: ImportRequest,
    ) -> Res<String> {
        self.0.import_image(reader, req).await
    }
    fn inspect_image(&self, name: &str) -> Res<Value> {
        self.0.inspect_image(name)
    }
    fn image_history(&self, name: &str) -> Res<Value> {
        self.0.image_history(name)
    }
    fn tag_image(&self, name: &str, repo: &str, tag: &str) -> Res<()> {
        self.0.tag_image(name, repo, tag)
    }
    async fn delete_image(&self, name: &str, force: bool) -> Res<Value> {
        self.0.delete_image(name, force).await
    }
    async fn save_images(&self, req: SaveRequest) -> Res<Producer> {
        self.0.save_images(req).await
    }
    async fn load_images(&self, reader: Box<dyn std::io::Read + Send>) -> Res<Vec<String>> {
        self.0.load_images(reader).await
    }
    async fn prune_images(&self, filters: HashMap<String, Vec<String>>) -> Res<Value> {
        self.0.prune_images(filters).await
    }
    async fn pull_image(
        &self,
        image: String,
        tag: Option<String>,
        auth: Option<String>,
        progress: tokio::sync::mpsc::Sender<Value>,
    ) -> Res<()> {
        let auth = berth_daemon::pull::registry_auth(auth.as_deref());
        let progress = berth_daemon::pull::Progress(progress);
        self.0
            .pull_image(&image, tag.as_deref(), auth, progress)
            .await
    }
    async fn search_images(&self, term: &str, limit: usize, auth: Option<&str>) -> Res<Vec<Value>> {
        let auth = berth_daemon::pull::registry_auth(auth);
        berth_daemon::login::search(term, limit, &auth, &self.0.config.insecure_registries).await
    }
    async fn push_image(
        &self,
        name: String,
        tag: Option<String>,
        auth: Option<String>,
        progress: tokio::sync::mpsc::Sender<Value>,
    ) -> Res<()> {
        let auth = berth_daemon::pull::registry_auth(auth.as_deref());
        let progress = berth_daemon::pull::Progress(progress);
        self.0
            .push_image(&name, tag.as_deref(), auth, progress)
            .await
    }
}

impl SystemBackend for Engine {
    async fn login(&self, server: &str, username: &str, password: &str) -> Res<()> {
        if username.is_empty() {
            return Err(berth_api::ApiError::invalid(
                "a username is required to log in",
            ));
        }
        berth_daemon::login::check(
            server,
            username,
            password,
            &self.0.config.insecure_registries,
        )
        .await
    }
    async fn disk_usage(&self) -> Res<Value> {
        self.0.disk_usage().await
    }
    async fn write_events(
        &self,
        since: Option<f64>,
        until: Option<f64>,
        filters: HashMap<String, Vec<String>>,
        out: tokio::io::DuplexStream,
    ) -> Res<()> {
        self.0.write_events(since, until, filters, out).await
    }
    async fn system_check(&self, repair: bool) -> Res<Value> {
        self.0.system_check(repair).await
    }
    fn version(&self) -> Value {
        self.0.version()
    }
    async fn info(&self) -> Value {
        let d = self.0.clone();
        blocking(move || Ok(d.info())).await.unwrap_or_default()
    }
}

impl BuildBackend for Engine {
    async fn build(
        &self,
        req: berth_api::types::BuildRequest,
        body: Box<dyn std::io::Read + Send>,
        events: berth_api::types::BuildEvents,
    ) -> Res<()> {
        self.0.build(req, body, events).await
    }
    fn prune_build_cache(&self) -> Vec<String> {
        self.0.prune_build_cache()
    }
}

impl NetworkBackend for Engine {
    fn list_networks(&self, filters: &HashMap<String, Vec<String>>) -> Res<Vec<Value>> {
        self.0.list_networks(filters)
    }
    fn inspect_network(&self, name: &str) -> Res<Value> {
        self.0.inspect_network(name)
    }
    async fn create_network(&self, body: Value) -> Res<Value> {
        self.0.create_network(body).await
    }
    async fn remove_network(&self, name: &str) -> Res<()> {
        self.0.remove_network(name).await
    }
    async fn prune_networks(&self, filters: &HashMap<String, Vec<String>>) -> Res<Vec<String>> {
        self.0.prune_networks(filters).await
    }
    async fn connect_network(&self, name: &str, body: Value) -> Res<()> {
        self.0.connect_network(name, body).await
    }
    async fn disconnect_network(&self, name: &str, body: Value) -> Res<()> {
        self.0.disconnect_network(name, body).await
    }
}

impl VolumeBackend for Engine {
    fn list_volumes(&self, filters: &HashMap<String, Vec<String>>) -> Res<Value> {
        self.0.list_volumes(filters)
    }
    fn inspect_volume(&self, name: &str) -> Res<Value> {
        self.0.inspect_volume(name)
    }
    async fn create_volume(&self, body: Value) -> Res<Value> {
        self.0.create_volume(body).await
    }
    async fn remove_volume(&self, name: &str, force: bool) -> Res<()> {
        self.0.remove_volume(name, force).await
    }
    async fn prune_volumes(&self, filters: HashMap<String, Vec<String>>) -> Res<Value> {
        self.0.prune_volumes(filters).await
    }
}
