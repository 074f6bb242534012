//! Attach: a hijacked client connection joined to the container's stdio through its shim.
//! The same stream proxy serves `exec`.

use crate::container::{Container, Status};
use crate::shim_client::{self, Conn};
use crate::{Daemon, Stream};
pub use berth_api::types::{parse_detach_keys, AttachOptions, StreamEnd};
use berth_api::ApiError;
use berth_runtime::shim::{FrameKind, Request};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const DEFAULT_DETACH_KEYS: &[u8] = &[0x10, 0x11];

impl Daemon {
    /// Checks made before the connection is hijacked; returns the container and whether it
    /// has a tty (which decides the stream's content type).
    pub fn attach_target(&self, name: &str) -> Result<(Arc<Container>, bool), ApiError> {
        let c = self.container(name)?;
        let rec = c.record();
        if rec.state.status == Status::Paused {
            return Err(ApiError::conflict(format!(
                "container {} is paused, unpause the container before attach",
                name
            )));
        }
        Ok((c.clone(), rec.config.tty.unwrap_or(false)))
    }

    /// Serve an attach on a hijacked connection until the container exits, the client
    /// detaches or goes away.
    pub async fn attach(
        self: &Arc<Self>,
        c: Arc<Container>,
        opts: AttachOptions,
        mut io: Box<dyn Stream>,
    ) -> Result<StreamEnd, ApiError> {
        let keys = match &opts.detach_keys {
            Some(k) if !k.is_empty() => parse_detach_keys(k)?,
            _ => DEFAULT_DETACH_KEYS.to_vec(),
        };
        let tty = c.record().config.tty.unwrap_or(false);
        if opts.logs {
            let d = self.clone();
            let lo = crate::logs::LogOptions {
                stdout: opts.stdout,
                stderr: opts.stderr,
                ..Default::default()
            };
            let mut tmp: Vec<u8> = Vec::new();
            d.write_logs(&c, &lo, tty, &mut tmp).await?;
            let _ = io.write_all(&tmp).await;
        }
        if !opts.stream {
            let _ = io.shutdown().await;
            return Ok(StreamEnd::Closed);
        }
        // (told before the attach is made, as dockerd tells it: a start it releases comes
        // after)
        self.container_event(&c.id, "attach", &[]);
        let conn = self.connect_attach(&c, &opts).await?;
        Ok(proxy(conn, io, tty, opts.stdin, keys, None).await)
    }

    /// Connect to the shim now if the container runs, or to the shim of its next start.
    async fn connect_attach(
        &self,
        c: &Arc<Container>,
        opts: &AttachOptions,
    ) -> Result<Conn, ApiError> {
        let req = Request::Attach {
            stdin: opts.stdin,
            stdout: opts.stdout,
            stderr: opts.stderr,
        };
        let bundle = self.bundle_dir(&c.id);
        if c.status().is_live() {
            let (resp, conn) = shim_client::open(&bundle, &req).await?;
            return ok_conn(resp, conn);
        }
        let mut rx = c.progress.subscribe();
        let seen = rx.borrow().shims;
        c.pending_attach.fetch_add(1, Ordering::SeqCst);
        let r = async {
            rx.wait_for(|p| p.shims > seen || p.removed)
                .await
                .map_err(|_| ApiError::internal("container went away"))?;
            if c.progress.borrow().removed {
                return Err(ApiError::not_found(format!("No such container: {}", c.id)));
            }
            let (resp, conn) = shim_client::open(&bundle, &req).await?;
            ok_conn(resp, conn)
        }
        .await;
        c.pending_attach.fetch_sub(1, Ordering::SeqCst);
        c.attach_settled.notify_waiters();
        r
    }

    /// `POST /containers/{id}/resize`.
    pub async fn resize_container(&self, name: &str, h: u16, w: u16) -> Result<(), ApiError> {
        let c = self.container(name)?;
        if !c.status().is_live() {
            return Err(ApiError::conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        shim_client::call(
            &self.bundle_dir(&c.id),
            &Request::Resize {
                height: h,
                width: w,
            },
        )
        .await
        .map(|_| ())
    }
}

fn ok_conn(resp: berth_runtime::shim::Response, conn: Conn) -> Result<Conn, ApiError> {
    if resp.ok {
        Ok(conn)
    } else {
        Err(ApiError::internal(resp.error.unwrap_or_default()))
    }
}

/// Join a client stream and a shim stream: output frames to the client (raw with a tty,
/// multiplexed without), client bytes to the process's stdin, watching for the detach keys.
pub async fn proxy(
    conn: Conn,
    io: Box<dyn Stream>,
    tty: bool,
    stdin: bool,
    keys: Vec<u8>,
    mut resize: Option<tokio::sync::mpsc::Receiver<(u16, u16)>>,
) -> StreamEnd {
    let Conn {
        mut reader,
        mut writer,
    } = conn;
    let (mut cr, mut cw) = tokio::io::split(io);
    let (detach_tx, mut detach_rx) = tokio::sync::oneshot::channel::<()>();
    let input = tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        let mut held: Vec<u8> = Vec::new();
        loop {
            let read = async {
                if stdin {
                    cr.read(&mut buf).await
                } else {
                    std::future::pending().await
                }
            };
            let resized = async {
                match resize.as_mut() {
                    Some(r) => r.recv().await,
                    None => std::future::pending().await,
                }
            };
            let got = tokio::select! {
                r = read => r,
                Some((h, w)) = resized => {
                    let p = berth_runtime::shim::resize_payload(h, w);
                    let _ = shim_client::write_frame(&mut writer, FrameKind::Resize, &p).await;
                    continue;
                }
            };
            let n = match got {
                Ok(0) | Err(_) => {
                    if !held.is_empty() {
                        let _ =
                            shim_client::write_frame(&mut writer, FrameKind::Stdin, &held).await;
                    }
                    // End of the client's input: close the process's stdin.
                    let _ = shim_client::write_frame(&mut writer, FrameKind::Stdin, &[]).await;
                    // Keep the shim connection open for the output side.
                    std::future::pending::<()>().await;
                    return;
                }
                Ok(n) => n,
            };
            let mut out = Vec::with_capacity(n);
            for &b in &buf[..n] {
                if !keys.is_empty() && b == keys[held.len()] {
                    held.push(b);
                    if held.len() == keys.len() {
                        if !out.is_empty() {
                            let _ =
                                shim_client::write_frame(&mut writer, FrameKind::Stdin, &out).await;
                        }
                        let _ = detach_tx.send(());
                        return;
                    }
                    continue;
                }
                out.append(&mut held);
                if !keys.is_empty() && b == keys[0] {
                    held.push(b);
                } else {
                    out.push(b);
                }
            }
            if !out.is_empty()
                && shim_client::write_frame(&mut writer, FrameKind::Stdin, &out)
                    .await
                    .is_err()
            {
                return;
            }
        }
    });
    let end = loop {
        tokio::select! {
            f = shim_client::read_frame(&mut reader) => match f {
                Ok(Some((FrameKind::Stdout, p))) | Ok(Some((FrameKind::Stderr, p))) if p.is_empty() => {}
                Ok(Some((kind @ (FrameKind::Stdout | FrameKind::Stderr), p))) => {
                    let r = if tty {
                        cw.write_all(&p).await
                    } else {
                        let mut b = berth_runtime::shim::frame_header(kind, p.len()).to_vec();
                        b.extend_from_slice(&p);
                        cw.write_all(&b).await
                    };
                    if r.is_err() {
                        break StreamEnd::Closed;
                    }
                }
                Ok(Some((FrameKind::Exit, p))) => {
                    let code = p.get(..4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]])).unwrap_or(0);
                    break StreamEnd::Exited(code);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break StreamEnd::Closed,
            },
            _ = &mut detach_rx => break StreamEnd::Detached,
        }
    };
    input.abort();
    let _ = cw.flush().await;
    let _ = cw.shutdown().await;
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(parse_detach_keys("ctrl-a,x").unwrap(), vec![1, b'x']);
        assert!(parse_detach_keys("ctrl-").is_err());
        assert!(parse_detach_keys("abc").is_err());
    }
}
