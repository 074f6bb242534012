//! `exec`: extra processes in a running container, run by its shim.

use crate::attach::{parse_detach_keys, proxy, StreamEnd, DEFAULT_DETACH_KEYS};
use crate::container::Status;
use crate::{new_id, shim_client, Daemon, Stream};
use berth_api::models::{ExecConfig, ExecInspectResponse, ProcessConfig};
use berth_api::ApiError;
use berth_runtime::shim::{FrameKind, Request};
use std::sync::{Arc, Mutex};

/// An exec instance.
pub struct Exec {
    pub id: String,
    pub container: String,
    pub config: ExecConfig,
    state: Mutex<ExecState>,
}

impl Exec {
    /// An exec the daemon runs for itself (a health probe): not listed, not inspectable.
    pub(crate) fn internal(container: &str, config: ExecConfig) -> Exec {
        Exec {
            id: new_id(),
            container: container.to_string(),
            config,
            state: Mutex::new(ExecState::default()),
        }
    }
}

#[derive(Default)]
struct ExecState {
    running: bool,
    started: bool,
    pid: i32,
    exit_code: Option<i64>,
    resize: Option<tokio::sync::mpsc::Sender<(u16, u16)>>,
}

impl Daemon {
    /// `POST /containers/{id}/exec`.
    pub fn create_exec(&self, name: &str, config: ExecConfig) -> Result<String, ApiError> {
        let c = self.container(name)?;
        match c.status() {
            Status::Running => {}
            Status::Paused => {
                return Err(ApiError::conflict(format!(
                    "Container {} is paused, unpause the container before exec",
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
        if config.cmd.as_ref().map(|c| c.is_empty()).unwrap_or(true) {
            return Err(ApiError::invalid("No exec command specified"));
        }
        let id = new_id();
        let e = Arc::new(Exec {
            id: id.clone(),
            container: c.id.clone(),
            config,
            state: Mutex::new(ExecState::default()),
        });
        self.execs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), e);
        Ok(id)
    }

    /// Find an exec instance.
    pub fn exec(&self, id: &str) -> Result<Arc<Exec>, ApiError> {
        self.execs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))
    }

    /// The OCI process for an exec: the container's environment and user, the exec's overrides.
    pub(crate) fn exec_process(
        &self,
        e: &Exec,
        tty: bool,
    ) -> Result<oci_spec::runtime::Process, ApiError> {
        let c = self.container(&e.container)?;
        let rec = c.record();
        let user_s = e
            .config
            .user
            .clone()
            .filter(|u| !u.is_empty())
            .or(rec.config.user.clone())
            .unwrap_or_default();
        let rootfs = self.bundle_dir(&c.id).join("rootfs");
        let user = berth_runtime::user::resolve(&rootfs, &user_s)
            .map_err(|err| ApiError::invalid(err.to_string()))?;
        // Docker's: the container's environment (PATH, HOSTNAME, TERM with -t, its config's
        // variables), then the exec's variables replacing those of the same name; HOME last.
        let mut vars = rec.config.env.clone().unwrap_or_default();
        vars.extend(e.config.env.clone().unwrap_or_default());
        let hostname = rec.config.hostname.clone().unwrap_or_default();
        let env = berth_runtime::spec::process_env(&hostname, tty, &vars, &user.home_env());
        let cwd = e
            .config
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .or(rec.config.working_dir.clone().filter(|w| !w.is_empty()))
            .unwrap_or_else(|| "/".into());
        let mut u = oci_spec::runtime::User::default();
        u.set_uid(user.uid);
        u.set_gid(user.gid);
        u.set_additional_gids(Some(user.additional_gids.clone()));
        let mut p = oci_spec::runtime::Process::default();
        // oci-spec's defaults (three capabilities, an RLIMIT_NOFILE) are not the container's:
        // leave them unset so that the shim gives the exec the container's own.
        p.set_capabilities(None);
        p.set_rlimits(None);
        p.set_no_new_privileges(None);
        p.set_args(e.config.cmd.clone());
        p.set_env(Some(env));
        p.set_cwd(cwd.into());
        p.set_user(u);
        p.set_terminal(Some(tty));
        Ok(p)
    }

    /// `POST /exec/{id}/start` with a stream: runs until the process exits or the client
    /// detaches.
    pub async fn start_exec(
        self: &Arc<Self>,
        e: Arc<Exec>,
        io: Option<Box<dyn Stream>>,
        console: Option<(u16, u16)>,
    ) -> Result<(), ApiError> {
        let mut io = io;
        let tty = e.config.tty.unwrap_or(false);
        // (a second start of the same exec is refused, and changes nothing of the first)
        let first = !e.state.lock().unwrap_or_else(|x| x.into_inner()).started;
        let r = self.start_exec_inner(e.clone(), &mut io, console).await;
        if r.is_err() && first {
            // an exec that could not start ends with docker's 126 (a missing command has
            // its 127 already)
            let mut st = e.state.lock().unwrap_or_else(|x| x.into_inner());
            if st.exit_code.is_none() && !st.running {
                st.exit_code = Some(126);
            }
        }
        if let (Err(err), Some(mut io)) = (&r, io) {
            // As Docker does: the client reads the failure on the hijacked stream, on its
            // stdout (a frame of it, when the stream is multiplexed).
            use tokio::io::AsyncWriteExt;
            let text = format!("{}\r\n", err.message);
            let mut out = Vec::with_capacity(text.len() + 8);
            if !tty {
                out.extend_from_slice(&[1, 0, 0, 0]);
                out.extend_from_slice(&(text.len() as u32).to_be_bytes());
            }
            out.extend_from_slice(text.as_bytes());
            let _ = io.write_all(&out).await;
            let _ = io.shutdown().await;
        }
        r
    }

    async fn start_exec_inner(
        self: &Arc<Self>,
        e: Arc<Exec>,
        io: &mut Option<Box<dyn Stream>>,
        console: Option<(u16, u16)>,
    ) -> Result<(), ApiError> {
        {
            let mut st = e.state.lock().unwrap_or_else(|x| x.into_inner());
            if st.started {
                return Err(ApiError::conflict(format!(
                    "Error: Exec command {} has already run",
                    e.id
                )));
            }
            st.started = true;
        }
        let tty = e.config.tty.unwrap_or(false);
        let stdin = e.config.attach_stdin.unwrap_or(false) && io.is_some();
        let process = self.exec_process(&e, tty)?;
        let bundle = self.bundle_dir(&e.container);
        let req = Request::Exec {
            exec_id: e.id.clone(),
            process,
            stdin,
        };
        let (resp, conn) = shim_client::open(&bundle, &req).await?;
        if !resp.ok {
            let msg = resp.error.unwrap_or_default();
            let mut st = e.state.lock().unwrap_or_else(|x| x.into_inner());
            st.exit_code = Some(
                if msg.contains("not found") || msg.contains("no such file") {
                    127
                } else {
                    126
                },
            );
            return Err(ApiError::internal(format!(
                "OCI runtime exec failed: {msg}: unknown"
            )));
        }
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        {
            let mut st = e.state.lock().unwrap_or_else(|x| x.into_inner());
            st.running = true;
            st.pid = resp.pid.unwrap_or(0);
            st.resize = Some(tx.clone());
        }
        if let Some((h, w)) = console {
            let _ = tx.send((h, w)).await;
        }
        let end = match io.take() {
            Some(io) => {
                let keys = match e.config.detach_keys.as_deref() {
                    Some(k) if !k.is_empty() => parse_detach_keys(k)?,
                    _ => DEFAULT_DETACH_KEYS.to_vec(),
                };
                proxy(conn, io, tty, stdin, keys, Some(rx)).await
            }
            None => {
                let e2 = e.clone();
                tokio::spawn(async move {
                    let end = drain(conn).await;
                    finish(&e2, end);
                });
                return Ok(());
            }
        };
        finish(&e, end);
        Ok(())
    }

    /// `POST /exec/{id}/resize`.
    pub async fn resize_exec(&self, id: &str, h: u16, w: u16) -> Result<(), ApiError> {
        let e = self.exec(id)?;
        let tx = e
            .state
            .lock()
            .unwrap_or_else(|x| x.into_inner())
            .resize
            .clone();
        match tx {
            Some(tx) => {
                let _ = tx.send((h, w)).await;
                Ok(())
            }
            None => Err(ApiError::conflict(format!("Exec {id} is not running"))),
        }
    }

    /// `GET /exec/{id}/json`.
    pub fn inspect_exec(&self, id: &str) -> Result<ExecInspectResponse, ApiError> {
        let e = self.exec(id)?;
        let st = e.state.lock().unwrap_or_else(|x| x.into_inner());
        let cmd = e.config.cmd.clone().unwrap_or_default();
        Ok(ExecInspectResponse {
            can_remove: Some(false),
            container_id: Some(e.container.clone()),
            detach_keys: Some(e.config.detach_keys.clone().unwrap_or_default()),
            exit_code: st.exit_code,
            id: Some(e.id.clone()),
            open_stderr: e.config.attach_stderr,
            open_stdin: e.config.attach_stdin,
            open_stdout: e.config.attach_stdout,
            process_config: Some(ProcessConfig {
                privileged: e.config.privileged,
                user: e.config.user.clone(),
                tty: e.config.tty,
                entrypoint: cmd.first().cloned(),
                arguments: Some(cmd.iter().skip(1).cloned().collect()),
            }),
            running: Some(st.running),
            pid: Some(st.pid as i64),
        })
    }
}

fn finish(e: &Exec, end: StreamEnd) {
    let mut st = e.state.lock().unwrap_or_else(|x| x.into_inner());
    if let StreamEnd::Exited(code) = end {
        st.exit_code = Some(code as i64);
        st.running = false;
        st.resize = None;
    }
}

/// Read a detached exec's frames until its exit.
async fn drain(mut conn: shim_client::Conn) -> StreamEnd {
    read_to_exit(&mut conn, 0).await.0
}

/// Read an exec's frames until its exit, keeping the first `keep` bytes of its output
/// (stdout and stderr together).
pub(crate) async fn read_to_exit(
    conn: &mut shim_client::Conn,
    keep: usize,
) -> (StreamEnd, Vec<u8>) {
    let mut out = Vec::new();
    loop {
        match shim_client::read_frame(&mut conn.reader).await {
            Ok(Some((FrameKind::Exit, p))) => {
                let code = p
                    .get(..4)
                    .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                    .unwrap_or(0);
                return (StreamEnd::Exited(code), out);
            }
            Ok(Some((FrameKind::Stdout | FrameKind::Stderr, p))) => {
                let room = keep.saturating_sub(out.len());
                out.extend_from_slice(&p[..p.len().min(room)]);
            }
            Ok(Some(_)) => {}
            _ => return (StreamEnd::Closed, out),
        }
    }
}
