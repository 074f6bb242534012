//! attach, start, exec, and the attach-start-wait sequence `run` uses.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;

use crate::cli::{AttachArgs, ExecArgs, StartArgs};
use crate::client::{seg, Client, Query};
use crate::error::{CliError, Result};
use crate::opts;
use crate::stream::{self, DetachWatch, RawGuard};

pub const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

/// How to attach to a container's streams.
#[derive(Debug, Clone)]
pub struct AttachOpts {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
    pub detach_keys: Option<String>,
    pub sig_proxy: bool,
    pub auto_remove: bool,
}

/// What ended an attached session.
pub enum Outcome {
    /// The container exited with this code.
    Exited(i32),
    /// The user typed the detach sequence.
    Detached,
}

fn detach_bytes(keys: &Option<String>) -> Result<Vec<u8>> {
    stream::parse_detach_keys(keys.as_deref().unwrap_or(DEFAULT_DETACH_KEYS)).map_err(CliError::msg)
}

/// Send the terminal size now and on every SIGWINCH.
fn spawn_resize(c: &Client, path: String) -> Option<tokio::task::JoinHandle<()>> {
    if !stream::is_tty(1) && !stream::is_tty(0) {
        return None;
    }
    let c = c.clone();
    Some(tokio::spawn(async move {
        let send = |c: Client, path: String| async move {
            if let Some((h, w)) = stream::term_size() {
                let _ = c.post(&path, &Query::new().add("h", h).add("w", w)).await;
            }
        };
        send(c.clone(), path.clone()).await;
        let Ok(mut sig) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        else {
            return;
        };
        while sig.recv().await.is_some() {
            send(c.clone(), path.clone()).await;
        }
    }))
}

/// Forward signals we receive to the container (`--sig-proxy`).
fn spawn_sig_proxy(c: &Client, id: &str) -> tokio::task::JoinHandle<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let c = c.clone();
    let id = id.to_string();
    tokio::spawn(async move {
        let kinds = [
            (SignalKind::interrupt(), "SIGINT"),
            (SignalKind::terminate(), "SIGTERM"),
            (SignalKind::hangup(), "SIGHUP"),
            (SignalKind::quit(), "SIGQUIT"),
            (SignalKind::user_defined1(), "SIGUSR1"),
            (SignalKind::user_defined2(), "SIGUSR2"),
        ];
        let (tx, mut rx) = tokio::sync::mpsc::channel::<&'static str>(8);
        for (k, name) in kinds {
            if let Ok(mut s) = signal(k) {
                let tx = tx.clone();
                tokio::spawn(async move {
                    while s.recv().await.is_some() {
                        if tx.send(name).await.is_err() {
                            break;
                        }
                    }
                });
            }
        }
        drop(tx);
        while let Some(name) = rx.recv().await {
            let _ = c
                .post(
                    &format!("/containers/{id}/kill"),
                    &Query::new().add("signal", name),
                )
                .await;
        }
    })
}

type WaitHandle = tokio::task::JoinHandle<Result<i32>>;

/// Start waiting for the container's next exit (or removal) before it starts.
async fn spawn_wait(c: &Client, id: &str, auto_remove: bool) -> WaitHandle {
    let c = c.clone();
    let path = format!("/containers/{}/wait", seg(id));
    let cond = if auto_remove { "removed" } else { "next-exit" };
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let h = tokio::spawn(async move {
        let resp = c
            .send(
                http::Method::POST,
                &path,
                &Query::new().add("condition", cond),
                crate::client::empty_body(),
                None,
            )
            .await;
        let _ = ready_tx.send(());
        let body = crate::client::read_all(resp?).await?;
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        if let Some(msg) = v.pointer("/Error/Message").and_then(|m| m.as_str()) {
            if !msg.is_empty() {
                return Err(CliError::msg(msg.to_string()));
            }
        }
        Ok(v["StatusCode"].as_i64().unwrap_or(0) as i32)
    });
    // Docker's daemon answers the headers at once; don't hang if another doesn't.
    let _ = tokio::time::timeout(Duration::from_secs(2), ready_rx).await;
    h
}

/// docker's `runStartContainerErr`: the exit code a failed start means.
pub fn start_error_code(msg: &str) -> i32 {
    let m = msg.trim_start_matches("Error response from daemon: ");
    if m.contains("executable file not found")
        || m.contains("no such file or directory")
        || m.contains("system cannot find the file specified")
    {
        127
    } else if m.contains("permission denied") || m.contains("is a directory") {
        126
    } else {
        125
    }
}

/// Attach to `id`, optionally start it, pump the streams, and wait for the exit.
/// Start errors are returned as `Err((error, started_failed=true))`.
pub async fn attach_session(
    c: &Client,
    id: &str,
    o: &AttachOpts,
    start: bool,
) -> std::result::Result<Outcome, (CliError, bool)> {
    let keys = detach_bytes(&o.detach_keys).map_err(|e| (e, false))?;
    let q = Query::new()
        .add("stream", 1)
        .add_if(o.stdin, "stdin", 1)
        .add_if(o.stdout, "stdout", 1)
        .add_if(o.stderr, "stderr", 1)
        .add_if(
            o.detach_keys.is_some(),
            "detachKeys",
            o.detach_keys.clone().unwrap_or_default(),
        );
    let path = format!("/containers/{}/attach", seg(id));
    let attach = c.hijack(&path, &q, None);
    // Before a start, the attach and the wait go in side by side; both are in place before
    // the start request.
    let (conn, wait) = if start {
        let (conn, wait) = tokio::join!(attach, spawn_wait(c, id, o.auto_remove));
        (conn, Some(wait))
    } else {
        (attach.await, None)
    };
    let conn = match conn {
        Ok(conn) => conn,
        Err(e) => {
            if let Some(w) = wait {
                w.abort();
            }
            return Err((e, false));
        }
    };
    let raw = if o.tty && o.stdin && stream::is_tty(0) {
        RawGuard::new()
    } else {
        None
    };
    let (rd, wr) = tokio::io::split(conn);
    let watch = DetachWatch::new(keys);
    let detached = watch.seen.clone();
    let stdin_task = o
        .stdin
        .then(|| tokio::spawn(stream::forward_stdin(wr, o.tty, watch)));
    let out_task = tokio::spawn(stream::copy_output(rd, o.tty));
    if start {
        if let Err(e) = c
            .post(&format!("/containers/{}/start", seg(id)), &Query::new())
            .await
        {
            drop(raw);
            out_task.abort();
            if let Some(t) = stdin_task {
                t.abort();
            }
            return Err((e, true));
        }
    }
    let resize = if o.tty {
        spawn_resize(c, format!("/containers/{}/resize", seg(id)))
    } else {
        None
    };
    let sig = (o.sig_proxy && !o.tty).then(|| spawn_sig_proxy(c, id));
    let _ = out_task.await;
    drop(raw);
    for t in [resize, sig].into_iter().flatten() {
        t.abort();
    }
    if let Some(t) = stdin_task {
        t.abort();
    }
    if detached.load(Ordering::SeqCst) {
        return Ok(Outcome::Detached);
    }
    let code = match wait {
        Some(w) => match w.await {
            Ok(Ok(code)) => code,
            Ok(Err(e)) => return Err((e, false)),
            Err(_) => 0,
        },
        None => exit_code_of(c, id).await.map_err(|e| (e, false))?,
    };
    Ok(Outcome::Exited(code))
}

/// The exit code of a stopped container, waiting for it to stop.
async fn exit_code_of(c: &Client, id: &str) -> Result<i32> {
    let v: serde_json::Value = c
        .post_json(
            &format!("/containers/{}/wait", seg(id)),
            &Query::new().add("condition", "not-running"),
            &serde_json::Value::Null,
        )
        .await?;
    Ok(v["StatusCode"].as_i64().unwrap_or(0) as i32)
}

async fn inspect_container(c: &Client, name: &str) -> Result<serde_json::Value> {
    c.get(&format!("/containers/{}/json", seg(name)), &Query::new())
        .await
}

pub async fn attach(c: &Client, a: AttachArgs) -> Result<i32> {
    let v = inspect_container(c, &a.container).await?;
    if v.pointer("/State/Running").and_then(|r| r.as_bool()) != Some(true) {
        return Err(CliError::msg(
            "You cannot attach to a stopped container, start it first",
        ));
    }
    if v.pointer("/State/Paused").and_then(|r| r.as_bool()) == Some(true) {
        return Err(CliError::msg(
            "You cannot attach to a paused container, unpause it first",
        ));
    }
    let id = v["Id"].as_str().unwrap_or(&a.container).to_string();
    let tty = v
        .pointer("/Config/Tty")
        .and_then(|t| t.as_bool())
        .unwrap_or(false);
    let open_stdin = v
        .pointer("/Config/OpenStdin")
        .and_then(|t| t.as_bool())
        .unwrap_or(false);
    let o = AttachOpts {
        stdin: open_stdin && !a.no_stdin,
        stdout: true,
        stderr: true,
        tty,
        detach_keys: a.detach_keys,
        sig_proxy: a.sig_proxy,
        auto_remove: false,
    };
    if tty && stream::is_tty(1) {
        if let Some((h, w)) = stream::term_size() {
            let _ = c
                .post(
                    &format!("/containers/{}/resize", seg(&id)),
                    &Query::new().add("h", h).add("w", w),
                )
                .await;
        }
    }
    match attach_session(c, &id, &o, false).await {
        Ok(Outcome::Detached) => Err(CliError::msg("read escape sequence")),
        Ok(Outcome::Exited(code)) => Ok(code),
        Err((e, _)) => Err(e),
    }
}

pub async fn start(c: &Client, a: StartArgs) -> Result<i32> {
    if a.attach || a.interactive {
        if a.containers.len() > 1 {
            return Err(CliError::msg(
                "you cannot start and attach multiple containers at once",
            ));
        }
        let v = inspect_container(c, &a.containers[0]).await?;
        let id = v["Id"].as_str().unwrap_or_default().to_string();
        let cfg = &v["Config"];
        let o = AttachOpts {
            stdin: a.interactive && cfg["OpenStdin"].as_bool().unwrap_or(false),
            stdout: cfg["AttachStdout"].as_bool().unwrap_or(true) || a.attach,
            stderr: cfg["AttachStderr"].as_bool().unwrap_or(true) || a.attach,
            tty: cfg["Tty"].as_bool().unwrap_or(false),
            detach_keys: a.detach_keys,
            sig_proxy: true,
            auto_remove: v
                .pointer("/HostConfig/AutoRemove")
                .and_then(|x| x.as_bool())
                .unwrap_or(false),
        };
        return match attach_session(c, &id, &o, true).await {
            Ok(Outcome::Detached) => Err(CliError::msg("read escape sequence")),
            Ok(Outcome::Exited(code)) => Ok(code),
            Err((e, _)) => Err(e),
        };
    }
    let mut failed = Vec::new();
    for name in &a.containers {
        match c
            .post(&format!("/containers/{}/start", seg(name)), &Query::new())
            .await
        {
            Ok(_) => println!("{name}"),
            Err(e) => failed.push(e.to_string()),
        }
    }
    if failed.is_empty() {
        Ok(0)
    } else {
        eprintln!("{}", failed.join("\n"));
        eprintln!(
            "Error: failed to start containers: {}",
            a.containers.join(", ")
        );
        Ok(1)
    }
}

pub async fn exec(c: &Client, a: ExecArgs) -> Result<i32> {
    if a.tty && a.interactive && !a.detach && !stream::is_tty(0) {
        eprintln!("the input device is not a TTY");
        return Ok(1);
    }
    let container = a.args[0].clone();
    let cmd: Vec<String> = a.args[1..].to_vec();
    let lookup = |k: &str| std::env::var(k).ok();
    let mut env = opts::read_kv_files(&a.env_file, true).map_err(CliError::msg)?;
    for e in &a.env {
        env.push(opts::expand_env(e, lookup).map_err(CliError::msg)?);
    }
    let attach_out = !a.detach;
    let mut body = json!({
        "AttachStdin": a.interactive && !a.detach,
        "AttachStdout": attach_out,
        "AttachStderr": attach_out,
        "Tty": a.tty,
        "Cmd": cmd,
        "Privileged": a.privileged,
    });
    if !env.is_empty() {
        body["Env"] = json!(env);
    }
    if let Some(u) = &a.user {
        body["User"] = json!(u);
    }
    if let Some(w) = &a.workdir {
        body["WorkingDir"] = json!(w);
    }
    if let Some(k) = &a.detach_keys {
        body["DetachKeys"] = json!(k);
    }
    let created: serde_json::Value = c
        .post_json(
            &format!("/containers/{}/exec", seg(&container)),
            &Query::new(),
            &body,
        )
        .await?;
    let exec_id = created["Id"].as_str().unwrap_or_default().to_string();
    if a.detach {
        c.post_json::<serde_json::Value>(
            &format!("/exec/{exec_id}/start"),
            &Query::new(),
            &json!({"Detach": true, "Tty": a.tty}),
        )
        .await
        .or_else(|e| match e {
            CliError::Msg(_) => Ok(serde_json::Value::Null),
            e => Err(e),
        })?;
        return Ok(0);
    }
    let keys = detach_bytes(&a.detach_keys)?;
    let conn = c
        .hijack(
            &format!("/exec/{exec_id}/start"),
            &Query::new(),
            Some(&json!({"Detach": false, "Tty": a.tty})),
        )
        .await?;
    let raw = if a.tty && a.interactive && stream::is_tty(0) {
        RawGuard::new()
    } else {
        None
    };
    let resize = if a.tty {
        spawn_resize(c, format!("/exec/{exec_id}/resize"))
    } else {
        None
    };
    let (rd, wr) = tokio::io::split(conn);
    let watch = DetachWatch::new(keys);
    let detached = watch.seen.clone();
    let stdin_task = a
        .interactive
        .then(|| tokio::spawn(stream::forward_stdin(wr, a.tty, watch)));
    let _ = stream::copy_output(rd, a.tty).await;
    drop(raw);
    if let Some(t) = resize {
        t.abort();
    }
    if let Some(t) = stdin_task {
        t.abort();
    }
    if detached.load(Ordering::SeqCst) {
        return Ok(0);
    }
    let v: serde_json::Value = c
        .get(&format!("/exec/{exec_id}/json"), &Query::new())
        .await?;
    Ok(v["ExitCode"].as_i64().unwrap_or(0) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_error_codes() {
        assert_eq!(
            start_error_code(
                "Error response from daemon: exec: \"nosuch\": executable file not found in $PATH"
            ),
            127
        );
        assert_eq!(start_error_code("open /x: no such file or directory"), 127);
        assert_eq!(start_error_code("exec /etc/passwd: permission denied"), 126);
        assert_eq!(start_error_code("something else"), 125);
    }
}
