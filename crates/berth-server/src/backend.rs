//! What the routes need from the engine, one narrow trait per resource (moby's router
//! backends). The server sees these traits only; the binary wires the engine in.

use berth_api::models::{
    ContainerCreateBody, ContainerSummary, ContainerTopResponse, ExecConfig, ExecInspectResponse,
};
use berth_api::types::{
    AttachOptions, CommitRequest, CopyToOptions, ImportRequest, ListOptions, LogOptions, Producer,
    SaveRequest, Stream, WaitCondition,
};
use berth_api::ApiError;
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

type Res<T> = Result<T, ApiError>;

/// A future the server can hold past the request that made it.
pub type Pending<T> = Pin<Box<dyn Future<Output = Res<T>> + Send + 'static>>;

/// `/containers/...`
pub trait ContainerBackend: Send + Sync + 'static {
    fn list_containers(&self, opts: &ListOptions) -> Res<Vec<ContainerSummary>>;
    fn create_container(
        &self,
        name: Option<String>,
        body: ContainerCreateBody,
    ) -> impl Future<Output = Res<String>> + Send;
    fn inspect_container(&self, name: &str) -> Res<berth_api::types::ContainerInspect>;
    /// `?size=1`: the container's writable layer and, with its image, its whole root file
    /// system, in bytes (`SizeRw`, `SizeRootFs`).
    fn container_size(&self, name: &str) -> impl Future<Output = Res<(i64, i64)>> + Send;
    /// `ps_args`: what `ps` is run with (docker's), `-ef` when none.
    fn top(
        &self,
        name: &str,
        ps_args: Option<&str>,
    ) -> impl Future<Output = Res<ContainerTopResponse>> + Send;
    /// `GET /containers/{id}/stats`: samples as JSON lines into `out`.
    fn write_stats(
        &self,
        name: &str,
        stream: bool,
        out: tokio::io::DuplexStream,
    ) -> impl Future<Output = Res<()>> + Send;
    /// `POST /containers/{id}/update`: `{"Warnings": [...]}`.
    fn update_container(&self, name: &str, body: Value) -> impl Future<Output = Res<Value>> + Send;
    /// Checks a logs request; returns whether the container has a tty (raw stream).
    fn logs_target(&self, name: &str) -> Res<bool>;
    /// Writes the logs into `out`, following them if asked.
    fn write_logs(
        &self,
        name: &str,
        opts: LogOptions,
        out: tokio::io::DuplexStream,
    ) -> impl Future<Output = Res<()>> + Send;
    fn start_container(&self, name: &str) -> impl Future<Output = Res<()>> + Send;
    fn stop_container(&self, name: &str, t: Option<i64>) -> impl Future<Output = Res<()>> + Send;
    fn restart_container(&self, name: &str, t: Option<i64>)
        -> impl Future<Output = Res<()>> + Send;
    fn kill_container(
        &self,
        name: &str,
        signal: Option<&str>,
    ) -> impl Future<Output = Res<()>> + Send;
    fn pause_container(&self, name: &str) -> impl Future<Output = Res<()>> + Send;
    fn unpause_container(&self, name: &str) -> impl Future<Output = Res<()>> + Send;
    fn rename_container(&self, name: &str, to: &str) -> impl Future<Output = Res<()>> + Send;
    fn resize_container(&self, name: &str, h: u16, w: u16) -> impl Future<Output = Res<()>> + Send;
    /// Registers the waiter at once; the future gives the exit code.
    fn wait_container(&self, name: &str, cond: WaitCondition) -> Res<Pending<i64>>;
    /// Checks an attach request; returns whether the container has a tty.
    fn attach_target(&self, name: &str) -> Res<bool>;
    fn attach(
        &self,
        name: &str,
        opts: AttachOptions,
        io: Box<dyn Stream>,
    ) -> impl Future<Output = Res<()>> + Send;
    fn remove_container(
        &self,
        name: &str,
        force: bool,
        volumes: bool,
    ) -> impl Future<Output = Res<()>> + Send;
    /// `GET /containers/{id}/export`: the flattened filesystem as a tar.
    fn export_container(&self, name: &str) -> impl Future<Output = Res<Producer>> + Send;
    /// `GET /containers/{id}/changes`.
    fn container_changes(&self, name: &str) -> impl Future<Output = Res<Value>> + Send;
    /// `HEAD /containers/{id}/archive`: the `X-Docker-Container-Path-Stat` value.
    fn stat_path(&self, name: &str, path: &str) -> impl Future<Output = Res<String>> + Send;
    /// `GET /containers/{id}/archive`: the stat header value and the tar.
    fn archive_path(
        &self,
        name: &str,
        path: &str,
    ) -> impl Future<Output = Res<(String, Producer)>> + Send;
    /// `PUT /containers/{id}/archive`.
    fn extract_archive(
        &self,
        name: &str,
        opts: CopyToOptions,
        body: Box<dyn std::io::Read + Send>,
    ) -> impl Future<Output = Res<()>> + Send;
    /// `POST /commit`: the new image's id.
    fn commit_container(&self, req: CommitRequest) -> impl Future<Output = Res<String>> + Send;
    /// `POST /containers/prune`.
    fn prune_containers(
        &self,
        filters: HashMap<String, Vec<String>>,
    ) -> impl Future<Output = Res<Value>> + Send;
}

/// `/containers/{id}/exec` and `/exec/...`
pub trait ExecBackend: Send + Sync + 'static {
    fn create_exec(&self, container: &str, cfg: ExecConfig) -> Res<String>;
    /// Whether the exec has a tty.
    fn exec_tty(&self, id: &str) -> Res<bool>;
    fn start_exec(
        &self,
        id: &str,
        io: Option<Box<dyn Stream>>,
        console: Option<(u16, u16)>,
    ) -> impl Future<Output = Res<()>> + Send;
    fn resize_exec(&self, id: &str, h: u16, w: u16) -> impl Future<Output = Res<()>> + Send;
    fn inspect_exec(&self, id: &str) -> Res<ExecInspectResponse>;
}

/// `/images/...`
pub trait ImageBackend: Send + Sync + 'static {
    fn list_images(&self, all: bool, reference: Option<&str>) -> Vec<Value>;
    fn import_image(
        &self,
        reader: Box<dyn std::io::Read + Send>,
        req: ImportRequest,
    ) -> impl Future<Output = Res<String>> + Send;
    fn inspect_image(&self, name: &str) -> Res<Value>;
    fn image_history(&self, name: &str) -> Res<Value>;
    fn tag_image(&self, name: &str, repo: &str, tag: &str) -> Res<()>;
    fn delete_image(&self, name: &str, force: bool) -> impl Future<Output = Res<Value>> + Send;
    /// `GET /images/get`, `GET /images/{name}/get`: checks the names, then writes the archive.
    fn save_images(&self, req: SaveRequest) -> impl Future<Output = Res<Producer>> + Send;
    /// `POST /images/load`: the lines to print (`Loaded image: busybox:latest`).
    fn load_images(
        &self,
        reader: Box<dyn std::io::Read + Send>,
    ) -> impl Future<Output = Res<Vec<String>>> + Send;
    /// `POST /images/create?fromImage=…`: pull from a registry, docker's progress messages
    /// sent on `progress` (errors before the first are the request's). `auth` is the
    /// client's `X-Registry-Auth` header.
    fn pull_image(
        &self,
        image: String,
        tag: Option<String>,
        auth: Option<String>,
        progress: tokio::sync::mpsc::Sender<Value>,
    ) -> impl Future<Output = Res<()>> + Send;
    /// `GET /images/search?term=…&limit=…`: a registry's search results.
    fn search_images(
        &self,
        term: &str,
        limit: usize,
        auth: Option<&str>,
    ) -> impl Future<Output = Res<Vec<Value>>> + Send;
    /// `POST /images/{name}/push?tag=…`: push to a registry, progress as for a pull.
    fn push_image(
        &self,
        name: String,
        tag: Option<String>,
        auth: Option<String>,
        progress: tokio::sync::mpsc::Sender<Value>,
    ) -> impl Future<Output = Res<()>> + Send;
    /// `POST /images/prune`.
    fn prune_images(
        &self,
        filters: HashMap<String, Vec<String>>,
    ) -> impl Future<Output = Res<Value>> + Send;
}

/// `/_ping`, `/version`, `/info`
pub trait SystemBackend: Send + Sync + 'static {
    fn version(&self) -> Value;
    fn info(&self) -> impl Future<Output = Value> + Send;
    /// `GET /system/df`.
    fn disk_usage(&self) -> impl Future<Output = Res<Value>> + Send;
    /// `POST /auth`: check credentials against a registry (nothing is kept).
    fn login(
        &self,
        server: &str,
        username: &str,
        password: &str,
    ) -> impl Future<Output = Res<()>> + Send;
    /// `POST /system/check` (berth's own): the store's consistency report.
    fn system_check(&self, repair: bool) -> impl Future<Output = Res<Value>> + Send;
    /// `GET /events`: the events since `since` (seconds), then the new ones until `until`,
    /// as JSON lines into `out`.
    fn write_events(
        &self,
        since: Option<f64>,
        until: Option<f64>,
        filters: HashMap<String, Vec<String>>,
        out: tokio::io::DuplexStream,
    ) -> impl Future<Output = Res<()>> + Send;
}

/// `/build`
pub trait BuildBackend: Send + Sync + 'static {
    /// Runs a build: errors before its first message are returned, later ones are sent
    /// on `events` as Docker's error message.
    fn build(
        &self,
        req: berth_api::types::BuildRequest,
        body: Box<dyn std::io::Read + Send>,
        events: berth_api::types::BuildEvents,
    ) -> impl Future<Output = Res<()>> + Send;
    /// `POST /build/prune`: the cache entries forgotten.
    fn prune_build_cache(&self) -> Vec<String>;
}

/// `/networks/...` (the built-in networks)
pub trait NetworkBackend: Send + Sync + 'static {
    /// `GET /networks`: Docker's network resources, filtered.
    fn list_networks(&self, filters: &HashMap<String, Vec<String>>) -> Res<Vec<Value>>;
    /// `GET /networks/{id}`: by name, id or unique id prefix, with its running containers.
    fn inspect_network(&self, name: &str) -> Res<Value>;
    /// `POST /networks/create` (Docker's body): `{"Id", "Warning"}`.
    fn create_network(&self, body: Value) -> impl Future<Output = Res<Value>> + Send;
    /// `DELETE /networks/{id}`.
    fn remove_network(&self, name: &str) -> impl Future<Output = Res<()>> + Send;
    /// `POST /networks/prune`: the names of the networks removed.
    fn prune_networks(
        &self,
        filters: &HashMap<String, Vec<String>>,
    ) -> impl Future<Output = Res<Vec<String>>> + Send;
    /// `POST /networks/{id}/connect` (Docker's body).
    fn connect_network(&self, name: &str, body: Value) -> impl Future<Output = Res<()>> + Send;
    /// `POST /networks/{id}/disconnect` (Docker's body).
    fn disconnect_network(&self, name: &str, body: Value) -> impl Future<Output = Res<()>> + Send;
}

/// `/volumes/...`
pub trait VolumeBackend: Send + Sync + 'static {
    /// `GET /volumes`: `{"Volumes": [...], "Warnings": null}`, filtered.
    fn list_volumes(&self, filters: &HashMap<String, Vec<String>>) -> Res<Value>;
    /// `GET /volumes/{name}`.
    fn inspect_volume(&self, name: &str) -> Res<Value>;
    /// `POST /volumes/create` (Docker's body): the volume.
    fn create_volume(&self, body: Value) -> impl Future<Output = Res<Value>> + Send;
    /// `DELETE /volumes/{name}`.
    fn remove_volume(&self, name: &str, force: bool) -> impl Future<Output = Res<()>> + Send;
    /// `POST /volumes/prune`: `{"VolumesDeleted", "SpaceReclaimed"}`.
    fn prune_volumes(
        &self,
        filters: HashMap<String, Vec<String>>,
    ) -> impl Future<Output = Res<Value>> + Send;
}

/// Everything the API serves.
pub trait Backend:
    ContainerBackend
    + ExecBackend
    + ImageBackend
    + SystemBackend
    + BuildBackend
    + NetworkBackend
    + VolumeBackend
{
}
impl<
        T: ContainerBackend
            + ExecBackend
            + ImageBackend
            + SystemBackend
            + BuildBackend
            + NetworkBackend
            + VolumeBackend,
    > Backend for T
{
}
