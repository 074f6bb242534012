//! Start, stop, kill, restart, pause, remove, rename and wait; the exit monitor; reconciling
//! with shims after a daemon restart.

use crate::container::{Container, ContainerRecord, Status};
use crate::network::{EndpointRecord, Planned};
use crate::shim_client;
use crate::Daemon;
pub use berth_api::types::WaitCondition;
use berth_api::{ApiError, ErrorKind};
use berth_runtime::shim::Request;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// A failed [`Daemon::connect_planned`]: the endpoints made before the failure, what failed
/// (the bridge) and why.
type ConnectError = (Vec<EndpointRecord>, String, String);

/// The endpoints a [`Daemon::connect_planned`] made, whether or not it went through.
fn endpoints_made(r: Result<Vec<EndpointRecord>, ConnectError>) -> Vec<EndpointRecord> {
    r.unwrap_or_else(|(eps, _, _)| eps)
}

/// How long the daemon waits for a shim to clean up after its container exited (delete it
/// from the runtime, remove its cgroup, unmount its rootfs) before cleaning up without it.
const SHIM_CLEANUP_LIMIT: Duration = Duration::from_secs(30);

/// Stop the shim of a container it created and that was never started, and wait until the
/// shim has cleaned up (the runtime's state, the cgroup, the rootfs mount) and is gone: until
/// then it could unmount the rootfs or remove the cgroup of the container's next run (same
/// id, same paths). Its `wait` goes in before the kill (the answer to one that comes after
/// the exit is not held until the clean-up); the process is waited for too. A shim that does
/// not finish in time is killed.
async fn end_unstarted_shim(bundle: &Path) {
    // Its pid, from its state file, else its pid file (both written before its ready line);
    // read here, on the failure's path, not at every start.
    let shim_pid = shim_client::read_state(bundle)
        .map(|s| s.shim_pid)
        .filter(|p| *p > 0)
        .or_else(|| {
            let pid = std::fs::read_to_string(bundle.join(berth_runtime::shim::PID_FILE));
            pid.ok()?.trim().parse().ok()
        })
        .unwrap_or(0);
    // One deadline for all of it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let left = || deadline.saturating_duration_since(tokio::time::Instant::now());
    let waiter = tokio::time::timeout_at(deadline, shim_client::send(bundle, &Request::Wait))
        .await
        .ok()
        .and_then(Result::ok);
    let kill = shim_client::call(bundle, &Request::Kill { signal: 9 });
    let _ = tokio::time::timeout_at(deadline, kill).await;
    let closed = match waiter {
        Some(conn) => shim_client::closed(conn, left()).await,
        None => true,
    };
    if !closed || !shim_client::exited(shim_pid, left()).await {
        tracing::warn!(bundle = %bundle.display(), "the shim did not clean up in time: killing it");
        shim_client::kill_shim(shim_pid).await;
    }
}

/// Parse a signal as Docker accepts it: `KILL`, `SIGKILL`, `9`.
pub fn parse_signal(s: &str) -> Result<i32, ApiError> {
    let bad = || ApiError::invalid(format!("Invalid signal: {s}"));
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=64).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| bad())
}

/// The runtime's reason for a failed start, in Docker's words where it has some: the docker
/// CLI picks its exit code (127, 126) from them.
pub fn docker_start_error(msg: &str) -> String {
    let quoted = |m: &str| -> Option<String> {
        let start = m.find("executable '")? + "executable '".len();
        let end = m[start..].find('\'')? + start;
        Some(m[start..end].to_string())
    };
    if let Some(exe) = quoted(msg) {
        if msg.contains("not found in $PATH") {
            return if exe.contains('/') {
                format!("exec: \"{exe}\": stat {exe}: no such file or directory")
            } else {
                format!("exec: \"{exe}\": executable file not found in $PATH")
            };
        }
        if msg.contains("does not have correct permissions") {
            return format!("exec: \"{exe}\": permission denied");
        }
    }
    msg.to_string()
}

impl Daemon {
    /// `POST /containers/{id}/start`.
    pub async fn start_container(self: &Arc<Self>, name: &str) -> Result<(), ApiError> {
        let c = self.container(name)?;
        let _op = c.op.lock().await;
        // A user's start begins the restart policy's count and backoff again (Docker's).
        if !c.status().is_live() {
            *c.restart_delay.lock().unwrap_or_else(|e| e.into_inner()) = Duration::ZERO;
            if c.record().restart_count != 0 {
                c.set_state(&self.container_dir(&c.id), |r| r.restart_count = 0);
            }
        }
        self.start_locked(&c).await
    }

    async fn start_locked(self: &Arc<Self>, c: &Arc<Container>) -> Result<(), ApiError> {
        let rec = c.record();
        match rec.state.status {
            Status::Running | Status::Paused => {
                return Err(ApiError::new(
                    ErrorKind::NotModified,
                    "container already started",
                ))
            }
            Status::Removing | Status::Dead => {
                return Err(ApiError::conflict(format!(
                    "container {} is marked for removal and cannot be started",
                    rec.id
                )))
            }
            _ => {}
        }
        let bundle = self.bundle_dir(&c.id);
        let dir = self.container_dir(&c.id);
        // The previous run's teardown (its shim, its bundle) ends before this run begins.
        drop(c.teardown.lock().await);
        let t0 = std::time::Instant::now();
        crate::cgroups::prime_migration_lock();
        // No network is removed while the container joins it (until its endpoints are in
        // its record, where `network rm` looks).
        let _networks = self.net.admin.read().await;
        let prepared = self.prepare_bundle(&rec).await;
        let t_prepare = t0.elapsed();
        let planned = match prepared {
            Ok(p) => p,
            Err(e) => {
                self.cleanup_bundle(&c.id);
                c.set_state(&dir, |r| {
                    r.state.error = e.message.clone();
                    r.state.exit_code = 128;
                });
                return Err(e);
            }
        };
        // The shim creates the container in the network namespace it made ahead; its networks
        // are plugged in meanwhile (the veth pairs, addresses and routes, ~1 ms of the kernel's
        // work on the bridge), not after the shim is ready. Not where that namespace is not
        // the container's (an external runtime makes its own), nor with `net.*` sysctls,
        // which the init writes late in its creation, before any interface but `lo` exists
        // (so that `net.*.conf.default.*` reaches `eth0`, as it always has).
        let early_ok = matches!(
            self.config.runtime_path(rec.host_config.runtime.as_deref()),
            Ok(None)
        ) && !rec
            .host_config
            .sysctls
            .iter()
            .flatten()
            .any(|(k, _)| k.starts_with("net."));
        let mut handed = match self.shims.hand(&bundle).await {
            Ok(h) => h,
            Err(e) => {
                self.release_network(c, &[]).await;
                Err(self.start_failed(c, e.message))?
            }
        };
        // The namespace and its identity (device, inode), to check the init's against.
        let early_ns = handed
            .netns
            .take()
            .filter(|_| early_ok && !planned.is_empty())
            .and_then(|ns| {
                let m = std::fs::File::from(ns);
                let id = m.metadata().ok().map(|md| (md.dev(), md.ino()))?;
                Some((m, id))
            });
        let early = async {
            match &early_ns {
                Some((ns, _)) => Some(self.connect_planned(c, &rec, &planned, ns.as_fd()).await),
                None => None,
            }
        };
        let (ready, early) = tokio::join!(handed.ready(), early);
        // (with the networks plugged in meanwhile, when they were)
        let t_shim = t0.elapsed();
        let ready = match ready {
            Ok(r) if r.ok => r,
            failed => {
                let made = early.map(endpoints_made).unwrap_or_default();
                self.release_network(c, &made).await;
                let msg = failed.map_or_else(|e| e.message, |r| r.error.unwrap_or_default());
                return Err(self.start_failed(c, msg));
            }
        };
        let pid = ready.pid.unwrap_or(0);
        // The init's namespace should be the one plugged in above; if it is not (it never
        // should be: the shim gives a container with a namespace of its own the premade one),
        // those veths go and the init's namespace is plugged in now.
        let joined = early_ns.as_ref().is_some_and(|(_, id)| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|m| (m.dev(), m.ino()) == *id)
        });
        let early = match early {
            Some(r) if joined => Some(r),
            Some(r) => {
                tracing::warn!(id = %c.id, "the container did not join its shim's network namespace");
                for ep in &endpoints_made(r) {
                    self.net.delete_veth(ep).await;
                }
                None
            }
            None => None,
        };
        // The init holds its namespace now; the daemon lets go of it.
        drop(early_ns);
        let connected = match early {
            Some(r) => r,
            None if planned.is_empty() => Ok(Vec::new()),
            None => match std::fs::File::open(format!("/proc/{pid}/ns/net")) {
                Ok(ns) => self.connect_planned(c, &rec, &planned, ns.as_fd()).await,
                Err(e) => Err((
                    Vec::new(),
                    "the container's network namespace".to_string(),
                    e.to_string(),
                )),
            },
        };
        let mut endpoints = match connected {
            Ok(eps) => eps,
            Err((eps, what, e)) => {
                end_unstarted_shim(&bundle).await;
                self.release_network(c, &eps).await;
                return Err(self.network_failed(c, &what, e));
            }
        };
        // Its published ports, on its first network: host ports held, DNAT rules written.
        if let Some(ep) = endpoints.first_mut() {
            let published = match crate::network::port_requests(
                &rec.host_config,
                rec.config.exposed_ports.as_ref(),
            ) {
                Ok(req) if req.is_empty() => Ok(Vec::new()),
                Ok(req) => {
                    let d = self.clone();
                    let (id, ip) = (c.id.clone(), ep.ip);
                    tokio::task::spawn_blocking(move || d.net.publish(&id, ip, &req))
                        .await
                        .unwrap_or_else(|e| Err(e.to_string()))
                }
                Err(e) => Err(e),
            };
            match published {
                Ok(p) => ep.ports = p,
                Err(e) => {
                    end_unstarted_shim(&bundle).await;
                    let endpoint_id = ep.endpoint_id.clone();
                    self.release_network(c, &endpoints).await;
                    return Err(self.ports_failed(c, &rec.name, &endpoint_id, e));
                }
            }
        }
        // The embedded DNS server, for a container on a user network.
        if planned.iter().any(|p| !p.net.builtin) {
            if let Err(e) = self.start_dns(&c.id, pid) {
                end_unstarted_shim(&bundle).await;
                self.release_network(c, &endpoints).await;
                return Err(self.network_failed(c, "the embedded DNS server", e));
            }
        }
        let t_net = t0.elapsed();
        // Let attach requests that wait for this start connect to the shim first.
        c.progress.send_modify(|p| p.shims += 1);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            let settled = c.attach_settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if c.pending_attach.load(Ordering::SeqCst) == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                break;
            }
        }
        // The monitor's `wait` goes in before the start: a container that exits at once is
        // then reported at its exit, not when its shim is done cleaning up (once the init
        // has exited, the shim takes no new connection).
        let waiter = shim_client::send(&bundle, &Request::Wait).await.ok();
        if let Err(e) = shim_client::call(&bundle, &Request::Start).await {
            end_unstarted_shim(&bundle).await;
            self.release_network(c, &endpoints).await;
            return Err(self.start_failed(c, e.message));
        }
        let connected = endpoints.clone();
        c.set_state(&dir, |r| {
            r.endpoints = endpoints;
            r.state.manually_stopped = false;
            r.state.health = None;
            r.state.status = Status::Running;
            r.state.pid = pid;
            r.state.exit_code = 0;
            r.state.error.clear();
            r.state.oom_killed = false;
            r.state.started_at = Some(chrono::Utc::now());
            r.state.finished_at = None;
        });
        self.net.bump_dns();
        // (before the monitor, which may see the exit at once and tell the die)
        self.network_events(&c.id, &connected, "connect");
        self.container_event(&c.id, "start", &[]);
        c.progress.send_modify(|p| p.starts += 1);
        self.spawn_monitor(c.clone(), waiter);
        self.spawn_health(c.clone());
        tracing::debug!(
            id = %c.id,
            prepare = ?t_prepare,
            shim_ready = ?t_shim,
            network = ?t_net,
            started = ?t0.elapsed(),
            "container started"
        );
        Ok(())
    }

    /// Plug the container into its planned networks inside the namespace `ns`: `eth0` first,
    /// the first network with a gateway gives the default route. On an error, the endpoints
    /// made so far, what failed (the bridge) and why ([`ConnectError`]).
    async fn connect_planned(
        &self,
        c: &Arc<Container>,
        rec: &ContainerRecord,
        planned: &[Planned],
        ns: std::os::fd::BorrowedFd<'_>,
    ) -> Result<Vec<EndpointRecord>, ConnectError> {
        let mut endpoints = Vec::new();
        let mut routed = false;
        for (i, p) in planned.iter().enumerate() {
            let mac = if i == 0 {
                rec.mac_address.as_deref()
            } else {
                None
            };
            let route = !routed && !p.net.cfg.internal;
            match self
                .net
                .connect_in(
                    &p.net,
                    &c.id,
                    ns,
                    &format!("eth{i}"),
                    (p.ip, p.ip6),
                    mac,
                    route,
                )
                .await
            {
                Ok(ep) => {
                    routed |= ep.gateway.is_some();
                    endpoints.push(ep);
                }
                Err(e) => return Err((endpoints, p.net.cfg.bridge.clone(), e)),
            }
        }
        Ok(endpoints)
    }

    /// Record a failed start the way Docker does and build the error the client sees.
    fn start_failed(&self, c: &Arc<Container>, msg: String) -> ApiError {
        self.cleanup_bundle(&c.id);
        let msg = docker_start_error(&msg);
        let code = if msg.contains("executable file not found")
            || msg.contains("no such file or directory")
        {
            127
        } else if msg.contains("permission denied") {
            126
        } else {
            128
        };
        let full = format!(
            "failed to create task for container: failed to create shim task: OCI runtime create failed: unable to start container process: {msg}: unknown"
        );
        c.set_state(&self.container_dir(&c.id), |r| {
            r.state.error = full.clone();
            r.state.exit_code = code;
        });
        ApiError::new(
            if code == 128 {
                ErrorKind::Internal
            } else {
                ErrorKind::InvalidArgument
            },
            full,
        )
    }

    /// Plugging the container into its network failed: record it, and build the error.
    fn network_failed(&self, c: &Arc<Container>, what: &str, msg: String) -> ApiError {
        self.cleanup_bundle(&c.id);
        let full = format!("failed to set up the container's network: connect to {what}: {msg}");
        c.set_state(&self.container_dir(&c.id), |r| {
            r.state.error = full.clone();
            r.state.exit_code = 128;
        });
        ApiError::internal(full)
    }

    /// Publishing the container's ports failed: record it, and build Docker's error.
    fn ports_failed(
        &self,
        c: &Arc<Container>,
        name: &str,
        endpoint: &str,
        msg: String,
    ) -> ApiError {
        self.cleanup_bundle(&c.id);
        let full = format!(
            "driver failed programming external connectivity on endpoint {name} ({endpoint}): {msg}"
        );
        c.set_state(&self.container_dir(&c.id), |r| {
            r.state.error = full.clone();
            r.state.exit_code = 128;
        });
        ApiError::internal(full)
    }

    /// Release a container's place on its networks: its ports, its leases, its DNS server,
    /// and its veths if they are still there (see `Networks::release`).
    pub(crate) async fn release_network(
        self: &Arc<Self>,
        c: &Arc<Container>,
        eps: &[crate::network::EndpointRecord],
    ) {
        self.stop_dns(&c.id);
        let d = self.clone();
        let id = c.id.clone();
        let eps = eps.to_vec();
        // An address or MAC the container asked for comes back with it at its next start.
        let rec = c.record();
        let pinned = rec.mac_address.is_some()
            || crate::network::attachments(&rec)
                .iter()
                .any(|a| a.ipv4_address.is_some() || a.ipv6_address.is_some());
        let handle = tokio::runtime::Handle::current();
        let _ = tokio::task::spawn_blocking(move || {
            let _rt = handle.enter();
            d.net.release(&id, &eps, pinned)
        })
        .await;
    }

    /// Unmount the rootfs and remove the bundle directory.
    pub(crate) fn cleanup_bundle(&self, id: &str) {
        let bundle = self.bundle_dir(id);
        let _ = berth_snapshot::unmount(&bundle.join("rootfs"));
        let _ = std::fs::remove_dir_all(&bundle);
        // The volumes it held mounted (driver options) and nobody else holds.
        self.volumes.release_all(id);
    }

    /// Watch for the container's exit, on `waiter` (a `wait` request sent already) or on a
    /// new `wait` request.
    fn spawn_monitor(self: &Arc<Self>, c: Arc<Container>, waiter: Option<shim_client::Conn>) {
        let d = self.clone();
        tokio::spawn(async move {
            let bundle = d.bundle_dir(&c.id);
            let answer = match waiter {
                Some(conn) => shim_client::response(conn).await,
                None => shim_client::open(&bundle, &Request::Wait).await,
            };
            let (code, shim) = match answer {
                Ok((r, conn)) if r.ok => (r.exit_code, Some(conn)),
                _ => (None, None),
            };
            d.on_exit(&c, code, shim).await;
        });
    }

    /// The container's init exited (or its shim vanished): record it, clean up, auto-remove.
    /// `shim` is the `wait` connection that reported the exit; the shim closes it once it
    /// has cleaned up (runtime state, cgroup, rootfs mount). The exit is recorded and reported
    /// at once; the bundle is removed in the background once the shim is done, under the
    /// container's `teardown` lock, which a start or a removal's clean-up waits for.
    async fn on_exit(
        self: &Arc<Self>,
        c: &Arc<Container>,
        code: Option<i32>,
        shim: Option<shim_client::Conn>,
    ) {
        let bundle = self.bundle_dir(&c.id);
        let auto_remove = c.record().host_config.auto_remove.unwrap_or(false);
        let teardown = c.teardown.clone().lock_owned().await;
        let st = shim_client::read_state(&bundle);
        let exit_code = code
            .or(st.as_ref().and_then(|s| s.exit_code))
            .unwrap_or(255);
        let finished = st
            .as_ref()
            .and_then(|s| s.finished_at.as_deref())
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_else(chrono::Utc::now);
        let oom = st.as_ref().map(|s| s.oom_killed).unwrap_or(false);
        // The bundle goes once the shim is done with it: its `wait` connection ends then. Without
        // one (the shim was already past its waiters when the monitor came: a container that
        // exits at once), the shim process itself is waited for, since the runtime's delete may
        // still read the bundle (runc's log file).
        let d = self.clone();
        let id = c.id.clone();
        let shim_pid = st.as_ref().map(|s| s.shim_pid).unwrap_or(0);
        self.cleanups.spawn(async move {
            let done = match shim {
                Some(conn) => shim_client::closed(conn, SHIM_CLEANUP_LIMIT).await,
                None => shim_client::exited(shim_pid, SHIM_CLEANUP_LIMIT).await,
            };
            if !done {
                tracing::warn!(%id, "the shim did not clean up in time: killing it");
                shim_client::kill_shim(shim_pid).await;
            }
            let _ = tokio::task::spawn_blocking(move || d.cleanup_bundle(&id)).await;
            drop(teardown);
        });
        let (endpoints, attached) = {
            let r = c.record();
            let attached = !crate::network::attachments(&r).is_empty();
            (r.endpoints, attached)
        };
        if !endpoints.is_empty() || attached {
            self.release_network(c, &endpoints).await;
        }
        let disconnected = endpoints;
        let exited = |r: &mut crate::container::ContainerRecord| {
            r.endpoints.clear();
            r.state.status = Status::Exited;
            r.state.pid = 0;
            r.state.exit_code = exit_code;
            r.state.finished_at = Some(finished);
            r.state.oom_killed = oom;
        };
        // An auto-removed container's record is not written again: its directory goes next
        // (`--rm` has no restart policy; start-up removes one left exited by a crash).
        if auto_remove || c.progress.borrow().removed {
            c.set_state_in_memory(exited);
        } else {
            c.set_state(&self.container_dir(&c.id), exited);
        }
        self.net.bump_dns();
        if oom {
            self.container_event(&c.id, "oom", &[]);
        }
        self.container_event(&c.id, "die", &[("exitCode", exit_code.to_string())]);
        self.network_events(&c.id, &disconnected, "disconnect");
        c.progress.send_modify(|p| {
            p.exits += 1;
            p.last_exit = exit_code;
        });
        if let Some(delay) = self.restart_delay(c) {
            self.schedule_restart(c.clone(), delay);
            return;
        }
        if auto_remove {
            let d = self.clone();
            let id = c.id.clone();
            tokio::spawn(async move {
                if let Err(e) = d.remove_container(&id, false, true).await {
                    tracing::warn!(%id, "auto-remove failed: {e}");
                }
            });
        }
    }

    /// Whether the container's restart policy restarts it now that it exited, and after which
    /// delay (Docker's rules and backoff; a container a user stopped or killed is not
    /// restarted, nor one that is being removed).
    fn restart_delay(&self, c: &Container) -> Option<Duration> {
        use berth_api::models::RestartPolicyNameEnum as P;
        let rec = c.record();
        if c.progress.borrow().removed || rec.state.status == Status::Removing {
            return None;
        }
        let policy = rec.host_config.restart_policy.clone().unwrap_or_default();
        let restart = match policy.name {
            Some(P::ALWAYS) | Some(P::UNLESS_STOPPED) => !rec.state.manually_stopped,
            Some(P::ON_FAILURE) => {
                let max = policy.maximum_retry_count.unwrap_or(0);
                !rec.state.manually_stopped
                    && rec.state.exit_code != 0
                    && (max <= 0 || rec.restart_count < max)
            }
            _ => false,
        };
        let mut delay = c.restart_delay.lock().unwrap_or_else(|e| e.into_inner());
        let ran = match (rec.state.started_at, rec.state.finished_at) {
            (Some(s), Some(f)) => (f - s).num_seconds(),
            _ => 0,
        };
        if ran >= 10 {
            *delay = Duration::ZERO;
        }
        if !restart {
            return None;
        }
        *delay = if delay.is_zero() {
            Duration::from_millis(100)
        } else {
            (*delay * 2).min(Duration::from_secs(60))
        };
        Some(*delay)
    }

    /// Restart the container after `delay`, unless a user stops, starts or removes it
    /// meanwhile. Its status is `restarting` until then.
    fn schedule_restart(self: &Arc<Self>, c: Arc<Container>, delay: Duration) {
        c.set_state(&self.container_dir(&c.id), |r| {
            r.state.status = Status::Restarting;
            r.restart_count += 1;
        });
        tracing::debug!(id = %c.id, ?delay, "restarting by its policy");
        let d = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _op = c.op.lock().await;
            if c.progress.borrow().removed || c.status() != Status::Restarting {
                return;
            }
            if let Err(e) = d.start_locked(&c).await {
                tracing::warn!(id = %c.id, "restart by its policy failed: {}", e.message);
                c.set_state(&d.container_dir(&c.id), |r| r.state.status = Status::Exited);
            }
        });
    }

    /// At daemon start: the containers whose policy says they should run, and do not, are
    /// started (`always`, `unless-stopped` unless a user stopped it, `on-failure` after a
    /// failure, within its count).
    pub(crate) async fn restart_policy_starts(self: &Arc<Self>) {
        use berth_api::models::RestartPolicyNameEnum as P;
        for c in self.all_containers() {
            let rec = c.record();
            if rec.state.status.is_live() {
                continue;
            }
            let policy = rec.host_config.restart_policy.clone().unwrap_or_default();
            let start = match policy.name {
                Some(P::ALWAYS) => true,
                Some(P::UNLESS_STOPPED) => !rec.state.manually_stopped,
                Some(P::ON_FAILURE) => {
                    let max = policy.maximum_retry_count.unwrap_or(0);
                    !rec.state.manually_stopped
                        && rec.state.exit_code != 0
                        && (max <= 0 || rec.restart_count < max)
                }
                _ => false,
            };
            // A created container was never started; a restarting one is on its way.
            if !start || matches!(rec.state.status, Status::Created | Status::Restarting) {
                continue;
            }
            let d = self.clone();
            tokio::spawn(async move {
                let _op = c.op.lock().await;
                if c.status().is_live() || c.progress.borrow().removed {
                    return;
                }
                if let Err(e) = d.start_locked(&c).await {
                    tracing::warn!(id = %c.id, "start by its restart policy: {}", e.message);
                }
            });
        }
    }

    /// After a daemon restart: find the shim of each live container again, or record the exit
    /// that happened while the daemon was away.
    pub(crate) async fn reconcile(self: &Arc<Self>, c: &Arc<Container>) {
        let status = c.status();
        let bundle = self.bundle_dir(&c.id);
        let shim = if bundle.exists() {
            shim_client::call(&bundle, &Request::State)
                .await
                .ok()
                .and_then(|r| r.state)
        } else {
            None
        };
        use berth_runtime::shim::Status as S;
        match (status.is_live(), shim) {
            // The daemon died between the shim's start and recording it: adopt the container.
            (_, Some(st)) if matches!(st.status, S::Running | S::Paused) => {
                let paused = st.status == S::Paused;
                c.set_state(&self.container_dir(&c.id), |rec| {
                    rec.state.status = if paused {
                        Status::Paused
                    } else {
                        Status::Running
                    };
                    rec.state.pid = st.pid;
                    if rec.state.started_at.is_none() {
                        rec.state.started_at = Some(chrono::Utc::now());
                    }
                });
                self.spawn_monitor(c.clone(), None);
                self.spawn_health(c.clone());
            }
            // Running when the daemon went away, its shim still cleaning up after the exit:
            // the exit (and, with `--rm`, the removal) the daemon did not record.
            (true, Some(st)) if st.status == S::Stopped => {
                self.on_exit(c, st.exit_code, None).await
            }
            // A shim whose container was never started (the daemon died mid-start): stop it.
            (_, Some(_)) => {
                end_unstarted_shim(&bundle).await;
                self.cleanup_bundle(&c.id);
            }
            // Running when the daemon went away, no shim now: it exited meanwhile.
            (true, None) => self.on_exit(c, None, None).await,
            (false, None) => {
                if bundle.exists() {
                    self.cleanup_bundle(&c.id);
                }
                // A removal the daemon did not finish, or an auto-removed container whose
                // exit it saw but not its removal (moby's start-up removes those too).
                let auto_remove = c.record().host_config.auto_remove.unwrap_or(false);
                if status == Status::Removing {
                    let _ = self.remove_container(&c.id, true, false).await;
                } else if auto_remove && status == Status::Exited {
                    // As its exit would have: with its anonymous volumes.
                    let _ = self.remove_container(&c.id, false, true).await;
                }
            }
        }
    }

    /// Send a signal to a live container.
    pub async fn kill_container(&self, name: &str, signal: Option<&str>) -> Result<(), ApiError> {
        // (dockerd says which kill failed, this too)
        let c = self.container(name).map_err(|mut e| {
            e.message = format!("Cannot kill container: {name}: {}", e.message);
            e
        })?;
        let sig = parse_signal(signal.filter(|s| !s.is_empty()).unwrap_or("KILL"))?;
        if !c.status().is_live() {
            return Err(ApiError::conflict(format!(
                "Cannot kill container: {name}: Container {} is not running",
                c.id
            )));
        }
        c.set_state(&self.container_dir(&c.id), |r| {
            r.state.manually_stopped = true
        });
        self.container_event(&c.id, "kill", &[("signal", sig.to_string())]);
        self.signal(&c, sig).await
    }

    async fn signal(&self, c: &Container, sig: i32) -> Result<(), ApiError> {
        shim_client::call(&self.bundle_dir(&c.id), &Request::Kill { signal: sig })
            .await
            .map(|_| ())
    }

    /// Wait until the container's exit counter passes `seen`, at most `timeout`.
    async fn wait_exit(c: &Container, seen: u64, timeout: Duration) -> bool {
        let mut rx = c.progress.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|p| p.exits > seen || p.removed))
            .await
            .map(|r| r.is_ok())
            .unwrap_or(false)
    }

    /// `POST /containers/{id}/stop`: the stop signal, then SIGKILL after the timeout.
    pub async fn stop_container(&self, name: &str, timeout: Option<i64>) -> Result<(), ApiError> {
        let c = self.container(name)?;
        let _op = c.op.lock().await;
        self.stop_locked(&c, timeout).await
    }

    async fn stop_locked(&self, c: &Container, timeout: Option<i64>) -> Result<(), ApiError> {
        let rec = c.record();
        if rec.state.status == Status::Restarting {
            // Waiting to be restarted by its policy: it stays stopped.
            c.set_state(&self.container_dir(&c.id), |r| {
                r.state.status = Status::Exited;
                r.state.manually_stopped = true;
            });
            return Ok(());
        }
        if !rec.state.status.is_live() {
            return Err(ApiError::new(
                ErrorKind::NotModified,
                "container already stopped",
            ));
        }
        c.set_state(&self.container_dir(&c.id), |r| {
            r.state.manually_stopped = true
        });
        let seen = c.progress.borrow().exits;
        let sig = match rec.config.stop_signal.as_deref() {
            Some(s) if !s.is_empty() => parse_signal(s)?,
            _ => libc::SIGTERM,
        };
        let secs = timeout.or(rec.config.stop_timeout).unwrap_or(10);
        self.container_event(&c.id, "kill", &[("signal", sig.to_string())]);
        let _ = self.signal(c, sig).await;
        if rec.state.status == Status::Paused {
            let _ = shim_client::call(&self.bundle_dir(&c.id), &Request::Resume).await;
        }
        if secs >= 0 && Self::wait_exit(c, seen, Duration::from_secs(secs as u64)).await {
            self.container_event(&c.id, "stop", &[]);
            return Ok(());
        }
        self.container_event(&c.id, "kill", &[("signal", libc::SIGKILL.to_string())]);
        let _ = self.signal(c, libc::SIGKILL).await;
        if Self::wait_exit(c, seen, Duration::from_secs(30)).await {
            self.container_event(&c.id, "stop", &[]);
            Ok(())
        } else {
            Err(ApiError::internal(format!(
                "cannot stop container: {}: tried to kill container, but did not receive an exit event",
                rec.id
            )))
        }
    }

    /// `POST /containers/{id}/restart`.
    pub async fn restart_container(
        self: &Arc<Self>,
        name: &str,
        timeout: Option<i64>,
    ) -> Result<(), ApiError> {
        let c = self.container(name)?;
        let _op = c.op.lock().await;
        if c.status().is_live() {
            self.stop_locked(&c, timeout).await?;
        }
        self.start_locked(&c).await?;
        self.container_event(&c.id, "restart", &[]);
        Ok(())
    }

    /// `POST /containers/{id}/pause`.
    pub async fn pause_container(&self, name: &str) -> Result<(), ApiError> {
        let c = self.container(name)?;
        let _op = c.op.lock().await;
        match c.status() {
            Status::Running => {}
            Status::Paused => {
                return Err(ApiError::conflict(format!(
                    "Container {} is already paused",
                    c.id
                )))
            }
            _ => {
                return Err(ApiError::conflict(format!(
                    "Container {} is not running",
                    c.id
                )))
            }
        }
        shim_client::call(&self.bundle_dir(&c.id), &Request::Pause).await?;
        self.container_event(&c.id, "pause", &[]);
        c.set_state(&self.container_dir(&c.id), |r| {
            r.state.status = Status::Paused
        });
        Ok(())
    }

    /// `POST /containers/{id}/unpause`.
    pub async fn unpause_container(&self, name: &str) -> Result<(), ApiError> {
        let c = self.container(name)?;
        let _op = c.op.lock().await;
        if c.status() != Status::Paused {
            return Err(ApiError::conflict(format!(
                "Container {} is not paused",
                c.id
            )));
        }
        shim_client::call(&self.bundle_dir(&c.id), &Request::Resume).await?;
        self.container_event(&c.id, "unpause", &[]);
        c.set_state(&self.container_dir(&c.id), |r| {
            r.state.status = Status::Running
        });
        Ok(())
    }

    /// `DELETE /containers/{id}`: [`Self::remove_container`], returning once the clean-up of
    /// the container's last run (the runtime's delete, which removes its cgroups, and the
    /// rootfs unmount) is done, as Docker's does; its files are still deleted in the
    /// background. (Auto-removal, prune and builds do not wait.)
    pub async fn remove_container_and_wait(
        self: &Arc<Self>,
        name: &str,
        force: bool,
        volumes: bool,
    ) -> Result<(), ApiError> {
        let teardown = self.container(name).ok().map(|c| c.teardown.clone());
        self.remove_container(name, force, volumes).await?;
        if let Some(t) = teardown {
            // Bounded: the teardown itself kills a shim that takes longer than its limit.
            let limit = SHIM_CLEANUP_LIMIT + Duration::from_secs(5);
            let _ = tokio::time::timeout(limit, t.lock()).await;
        }
        Ok(())
    }

    /// Remove a container (killing it first with `force`; its anonymous volumes too with
    /// `volumes`).
    pub async fn remove_container(
        self: &Arc<Self>,
        name: &str,
        force: bool,
        volumes: bool,
    ) -> Result<(), ApiError> {
        let c = self.container(name)?;
        let _op = c.op.lock().await;
        if c.progress.borrow().removed {
            return Ok(());
        }
        if c.status().is_live() {
            if !force {
                return Err(ApiError::conflict(format!(
                    "You cannot remove a running container {}. Stop the container before attempting removal or force remove",
                    c.id
                )));
            }
            let seen = c.progress.borrow().exits;
            let _ = self.signal(&c, libc::SIGKILL).await;
            if c.status() == Status::Paused {
                let _ = shim_client::call(&self.bundle_dir(&c.id), &Request::Resume).await;
            }
            if !Self::wait_exit(&c, seen, Duration::from_secs(30)).await {
                return Err(ApiError::internal(format!(
                    "could not kill running container {}, cannot remove",
                    c.id
                )));
            }
        }
        let dir = self.container_dir(&c.id);
        self.container_event(&c.id, "destroy", &[]);
        // Its files go to the trash in one rename and are deleted in the background (after
        // the shim, if it is still cleaning up, and the rootfs unmount): removing a
        // container does not wait for the disk. Where the rename cannot be done, at once, the
        // record saying so first (start-up finishes a removal a crash interrupted). Before the
        // rename, the status changes in memory only: the rename is the removal.
        c.set_state_in_memory(|r| r.state.status = Status::Removing);
        let trash = crate::layout::trash_dir(&self.config.data_root).join(&c.id);
        let moved = std::fs::create_dir_all(crate::layout::trash_dir(&self.config.data_root))
            .and_then(|_| std::fs::rename(&dir, &trash))
            .is_ok();
        if moved {
            self.volumes.release_all(&c.id);
            let d = self.clone();
            let id = c.id.clone();
            let teardown = c.teardown.clone();
            self.cleanups.spawn(async move {
                // After the teardown of its last run, if that is still going on.
                let _done = teardown.lock().await;
                let _ = tokio::task::spawn_blocking(move || {
                    d.cleanup_bundle(&id);
                    if let Err(e) = std::fs::remove_dir_all(&trash) {
                        tracing::warn!(%id, "cannot delete the removed container's files: {e}");
                    }
                })
                .await;
            });
        } else {
            c.set_state(&dir, |r| r.state.status = Status::Removing);
            let _done = c.teardown.lock().await;
            self.cleanup_bundle(&c.id);
            std::fs::remove_dir_all(&dir).map_err(|e| {
                ApiError::internal(format!("unable to remove filesystem for {}: {e}", c.id))
            })?;
        }
        self.release_name(&c.name());
        self.unregister(&c.id);
        if volumes {
            // `rm -v`: its anonymous volumes, unless another container uses one.
            for m in c.record().mounts.iter().filter(|m| m.anonymous) {
                if self.volume_users(&m.name).is_empty() {
                    if let Err(e) = self.volumes.remove(&m.name) {
                        tracing::warn!(volume = %m.name, "rm -v: {}", e.message);
                    }
                }
            }
        }
        self.execs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, e| e.container != c.id);
        c.progress.send_modify(|p| p.removed = true);
        if self.images.get(&c.record().image_id).is_err() {
            // Its image was deleted with -f: the layers may now be unused.
            self.collect_garbage().await;
        }
        Ok(())
    }

    /// `POST /containers/{id}/rename`.
    pub async fn rename_container(&self, name: &str, new_name: &str) -> Result<(), ApiError> {
        let c = self.container(name)?;
        let new_name = crate::names::validate(new_name).map_err(ApiError::invalid)?;
        let old = c.name();
        if old == new_name {
            return Err(ApiError::invalid(
                "Renaming a container with the same name as its current name",
            ));
        }
        self.reserve_name(&new_name, &c.id)?;
        self.release_name(&old);
        let old = c.record().name;
        c.update(&self.container_dir(&c.id), |r| r.name = new_name);
        self.container_event(&c.id, "rename", &[("oldName", format!("/{old}"))]);
        self.net.bump_dns();
        Ok(())
    }

    /// `POST /containers/{id}/wait`: registers the waiter at once (so a start that follows
    /// cannot be missed), and returns a future of the exit code.
    pub fn wait_container(
        &self,
        name: &str,
        cond: WaitCondition,
    ) -> Result<impl std::future::Future<Output = Result<i64, ApiError>> + Send + 'static, ApiError>
    {
        let c = self.container(name)?;
        let mut rx = c.progress.subscribe();
        let seen = rx.borrow().exits;
        let done_now = (cond == WaitCondition::NotRunning && !c.status().is_live())
            .then(|| c.record().state.exit_code as i64);
        Ok(async move {
            if let Some(code) = done_now {
                return Ok(code);
            }
            let p = rx
                .wait_for(|p| match cond {
                    WaitCondition::Removed => p.removed,
                    _ => p.exits > seen || p.removed,
                })
                .await
                .map_err(|_| ApiError::internal("container went away"))?
                .clone();
            Ok(p.last_exit as i64)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_errors_read_like_docker() {
        let m = "exec process failed with error error in executing process : executable 'nosuch' not found in $PATH";
        assert_eq!(
            docker_start_error(m),
            "exec: \"nosuch\": executable file not found in $PATH"
        );
        let m = "executable '/x' not found in $PATH";
        assert_eq!(
            docker_start_error(m),
            "exec: \"/x\": stat /x: no such file or directory"
        );
        let m = "executable '/etc' at path '\"/etc\"' does not have correct permissions";
        assert_eq!(docker_start_error(m), "exec: \"/etc\": permission denied");
        assert_eq!(docker_start_error("other"), "other");
    }

    #[test]
    fn signals_parse() {
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("sigterm").unwrap(), 15);
        assert_eq!(parse_signal("10").unwrap(), 10);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("99").is_err());
    }
}
