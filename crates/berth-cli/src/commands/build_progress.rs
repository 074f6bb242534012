//! Showing a legacy build's JSON message stream: plainly (docker's legacy output), quietly
//! (the image ID at the end), or as a live BuildKit-like display on a terminal.
//!
//! The stream is Docker's jsonmessage format: `{"stream": "Step 1/3 : FROM busybox\n"}`,
//! `{"stream": " ---> 3f57d9401f8d\n"}`, `{"status": …, "id": …}` while pulling,
//! `{"aux": {"ID": "sha256:…"}}`, and on failure
//! `{"errorDetail": {"code": 3, "message": "…"}, "error": "…"}`.

use std::collections::VecDeque;
use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::build_context::human_size;

/// One message of the stream, as the build output uses it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Msg {
    /// Text of the build (steps, RUN output), possibly in pieces of lines.
    Stream(String),
    /// Progress of a pull (`id: status progress`); `detail` when it carries counters.
    Status {
        id: String,
        status: String,
        progress: String,
        detail: bool,
    },
    /// The built image's ID (`{"aux":{"ID":…}}`).
    ImageId(String),
    /// Another aux message.
    Aux,
    /// The build failed: the message and the exit code (docker's `jerr.Code`, 1 if unset).
    Error { message: String, code: i32 },
}

impl Msg {
    pub(crate) fn from_value(v: &Value) -> Option<Msg> {
        let detail = v.get("errorDetail").filter(|d| !d.is_null());
        if let Some(d) = detail {
            let message = d
                .get("message")
                .and_then(Value::as_str)
                .or_else(|| v.get("error").and_then(Value::as_str))
                .unwrap_or_default()
                .to_string();
            let code = d.get("code").and_then(Value::as_i64).unwrap_or(0) as i32;
            return Some(Msg::Error {
                message,
                code: if code == 0 { 1 } else { code },
            });
        }
        if let Some(e) = v.get("error").and_then(Value::as_str) {
            return Some(Msg::Error {
                message: e.to_string(),
                code: 1,
            });
        }
        if let Some(aux) = v.get("aux").filter(|a| !a.is_null()) {
            return Some(match aux.get("ID").and_then(Value::as_str) {
                Some(id) => Msg::ImageId(id.to_string()),
                None => Msg::Aux,
            });
        }
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default();
        if let Some(text) = v.get("stream").and_then(Value::as_str) {
            if !text.is_empty() {
                return Some(Msg::Stream(text.to_string()));
            }
        }
        if !s("status").is_empty() || !s("id").is_empty() {
            let detail = v.get("progressDetail").is_some_and(|d| {
                d.get("current").and_then(Value::as_i64).unwrap_or(0) > 0
                    || d.get("total").and_then(Value::as_i64).unwrap_or(0) > 0
            });
            return Some(Msg::Status {
                id: s("id").to_string(),
                status: s("status").to_string(),
                progress: s("progress").to_string(),
                detail,
            });
        }
        None
    }
}

/// Splits a byte stream into JSON values (newline-delimited or just concatenated).
#[derive(Default)]
pub(crate) struct JsonSplitter {
    buf: Vec<u8>,
}

impl JsonSplitter {
    /// Feeds bytes; returns the complete values so far. `last` when no more will come.
    pub(crate) fn push(&mut self, data: &[u8], last: bool) -> Result<Vec<Value>, String> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        let mut consumed = 0;
        {
            let mut it = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Value>();
            loop {
                match it.next() {
                    Some(Ok(v)) => {
                        consumed = it.byte_offset();
                        out.push(v);
                    }
                    Some(Err(e)) if e.is_eof() && !last => break,
                    Some(Err(e)) if e.is_eof() => {
                        if self.buf[consumed..].iter().all(u8::is_ascii_whitespace) {
                            consumed = self.buf.len();
                            break;
                        }
                        return Err(format!("error decoding response: {e}"));
                    }
                    Some(Err(e)) => return Err(format!("error decoding response: {e}")),
                    None => {
                        consumed = self.buf.len();
                        break;
                    }
                }
            }
        }
        self.buf.drain(..consumed);
        Ok(out)
    }
}

/// What a display needs to know about the context upload.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Upload {
    /// Bytes sent so far.
    pub bytes: u64,
    /// Whether all of it went (or there was none to send).
    pub done: bool,
    /// Whether there is an upload at all.
    pub present: bool,
}

/// A way of showing the build.
pub(crate) trait Display {
    /// One message; errors end the stream and are reported by the caller.
    fn message(&mut self, m: &Msg, upload: Upload);
    /// Time passes (the terminal display redraws).
    fn tick(&mut self, _upload: Upload) {}
    /// The stream ended; `error` is the build's error, if any.
    fn finish(&mut self, _upload: Upload, _error: Option<&str>) {}
    /// Output to show before the error when the build failed (quiet mode).
    fn failure_output(&self) -> Option<String> {
        None
    }
}

/// docker's legacy output: the stream's text as it comes, pull status lines, to `out`.
pub(crate) struct Plain<W: Write> {
    out: W,
    announced: bool,
}

impl<W: Write> Plain<W> {
    pub(crate) fn new(out: W) -> Self {
        Plain {
            out,
            announced: false,
        }
    }

    #[cfg(test)]
    pub(crate) fn into_inner(self) -> W {
        self.out
    }

    fn announce(&mut self, upload: Upload) {
        if !self.announced && upload.present {
            self.announced = true;
            let _ = write!(
                self.out,
                "Sending build context to Docker daemon {:>8}\r\r\n",
                human_size(upload.bytes)
            );
        }
    }
}

impl<W: Write> Display for Plain<W> {
    fn message(&mut self, m: &Msg, upload: Upload) {
        self.announce(upload);
        match m {
            Msg::Stream(s) => {
                let _ = self.out.write_all(s.as_bytes());
            }
            // As docker does off a terminal: progress bars are left out.
            Msg::Status { detail: true, .. } => {}
            Msg::Status {
                id,
                status,
                progress,
                ..
            } => {
                if !id.is_empty() {
                    let _ = write!(self.out, "{id}: ");
                }
                if progress.is_empty() {
                    let _ = writeln!(self.out, "{status}");
                } else {
                    let _ = writeln!(self.out, "{status} {progress}");
                }
            }
            Msg::ImageId(_) | Msg::Aux | Msg::Error { .. } => {}
        }
        let _ = self.out.flush();
    }

    fn finish(&mut self, upload: Upload, _error: Option<&str>) {
        self.announce(upload);
        let _ = self.out.flush();
    }
}

/// `-q`: nothing while building; what the daemon said is kept for a failure.
#[derive(Default)]
pub(crate) struct Quiet {
    pub(crate) text: String,
}

impl Display for Quiet {
    fn message(&mut self, m: &Msg, _upload: Upload) {
        if let Msg::Stream(s) = m {
            self.text.push_str(s);
        }
    }

    fn failure_output(&self) -> Option<String> {
        (!self.text.is_empty()).then(|| self.text.clone())
    }
}

/// How many output lines a running step shows.
pub(crate) const TAIL_LINES: usize = 6;
/// How many output lines a step keeps.
const KEEP_LINES: usize = 64;

/// One `Step N/M` of the build.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub number: usize,
    pub total: usize,
    pub instruction: String,
    pub start: Instant,
    pub end: Option<Instant>,
    pub cached: bool,
    pub failed: bool,
    /// Its last lines of output.
    pub logs: VecDeque<String>,
    /// Pull progress lines, by layer id.
    pub pulls: Vec<(String, String)>,
}

impl Step {
    pub(crate) fn label(&self) -> String {
        let state = if self.failed {
            "ERROR "
        } else if self.cached {
            "CACHED "
        } else {
            ""
        };
        format!(
            "{state}[{}/{}] {}",
            self.number, self.total, self.instruction
        )
    }
}

/// The state of a build as the terminal display shows it, made from the stream.
#[derive(Debug)]
pub(crate) struct TtyModel {
    pub start: Instant,
    pub end: Option<Instant>,
    pub steps: Vec<Step>,
    /// Lines that belong to no step (before the first, or warnings after the last).
    pub other: Vec<String>,
    pub built: Option<String>,
    pub image_id: Option<String>,
    pub tags: Vec<String>,
    pub error: Option<String>,
    /// The context upload: bytes, and when it started and ended.
    pub upload: Upload,
    pub upload_end: Option<Instant>,
    partial: String,
}

impl TtyModel {
    pub(crate) fn new(now: Instant) -> Self {
        TtyModel {
            start: now,
            end: None,
            steps: Vec::new(),
            other: Vec::new(),
            built: None,
            image_id: None,
            tags: Vec::new(),
            error: None,
            upload: Upload::default(),
            upload_end: None,
            partial: String::new(),
        }
    }

    fn running(&mut self) -> Option<&mut Step> {
        self.steps.last_mut().filter(|s| s.end.is_none())
    }

    fn end_running(&mut self, now: Instant) {
        if let Some(s) = self.running() {
            s.end = Some(now);
        }
    }

    pub(crate) fn set_upload(&mut self, u: Upload, now: Instant) {
        self.upload = u;
        if u.done && self.upload_end.is_none() {
            self.upload_end = Some(now);
        }
    }

    pub(crate) fn message(&mut self, m: &Msg, now: Instant) {
        match m {
            Msg::Stream(s) => {
                self.partial.push_str(s);
                while let Some(i) = self.partial.find('\n') {
                    let line: String = self.partial[..i].to_string();
                    self.partial.drain(..=i);
                    self.line(&line, now);
                }
            }
            Msg::Status {
                id,
                status,
                progress,
                ..
            } => {
                let text = if progress.is_empty() {
                    status.clone()
                } else {
                    format!("{status} {progress}")
                };
                match self.running() {
                    Some(step) if !id.is_empty() => {
                        match step.pulls.iter_mut().find(|(i, _)| i == id) {
                            Some(p) => p.1 = text,
                            None => step.pulls.push((id.clone(), text)),
                        }
                    }
                    Some(step) => push_log(step, text),
                    None if id.is_empty() => self.other.push(text),
                    None => self.other.push(format!("{id}: {text}")),
                }
            }
            Msg::ImageId(id) => self.image_id = Some(id.clone()),
            Msg::Aux => {}
            Msg::Error { message, .. } => {
                self.fail(message, now);
            }
        }
    }

    fn fail(&mut self, message: &str, now: Instant) {
        self.flush_partial(now);
        if let Some(s) = self.running() {
            s.failed = true;
            s.end = Some(now);
        }
        self.error = Some(message.to_string());
        self.end = Some(now);
    }

    fn flush_partial(&mut self, now: Instant) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.line(&line, now);
        }
    }

    /// The stream ended.
    pub(crate) fn finish(&mut self, error: Option<&str>, now: Instant) {
        if self.upload.present && self.upload_end.is_none() {
            self.upload_end = Some(now);
        }
        match error {
            Some(e) if self.error.is_none() => self.fail(e, now),
            Some(_) => {}
            None => {
                self.flush_partial(now);
                self.end_running(now);
                self.end = Some(now);
            }
        }
    }

    fn line(&mut self, line: &str, now: Instant) {
        // Progress bars in RUN output redraw with \r: keep what shows last.
        let line = match line.rfind('\r') {
            Some(i) if !line[i + 1..].is_empty() => &line[i + 1..],
            Some(i) => line[..i].rsplit('\r').next().unwrap_or(""),
            None => line,
        };
        if let Some((n, m, instr)) = parse_step(line) {
            self.end_running(now);
            if self.upload.present && self.upload_end.is_none() {
                self.upload_end = Some(now);
            }
            self.steps.push(Step {
                number: n,
                total: m,
                instruction: instr.to_string(),
                start: now,
                end: None,
                cached: false,
                failed: false,
                logs: VecDeque::new(),
                pulls: Vec::new(),
            });
            return;
        }
        if line == " ---> Using cache" {
            if let Some(s) = self.running() {
                s.cached = true;
            }
            return;
        }
        if line.starts_with(" ---> Running in ")
            || line.starts_with("Removing intermediate container ")
        {
            return;
        }
        if let Some(id) = line.strip_prefix(" ---> ") {
            if !id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit()) {
                self.end_running(now);
                return;
            }
        }
        if let Some(id) = line.strip_prefix("Successfully built ") {
            self.end_running(now);
            self.built = Some(id.trim().to_string());
            return;
        }
        if let Some(t) = line.strip_prefix("Successfully tagged ") {
            self.tags.push(t.trim().to_string());
            return;
        }
        match self.running() {
            Some(step) => push_log(step, line.to_string()),
            None => {
                if !line.trim().is_empty() {
                    self.other.push(line.to_string());
                }
            }
        }
    }

    /// (steps done, steps known): `Step N/M` tells the total before the steps come.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let total = self
            .steps
            .iter()
            .map(|s| s.total)
            .max()
            .unwrap_or(0)
            .max(self.steps.len());
        let done = self
            .steps
            .iter()
            .filter(|s| s.end.is_some() && !s.failed)
            .count();
        let up = usize::from(self.upload.present);
        let up_done = usize::from(self.upload.present && self.upload_end.is_some());
        (done + up_done, total + up)
    }

    /// The lines of the display at `now`, `width` columns wide. `room` caps the number of
    /// lines (the oldest finished steps give way); the final display shows everything.
    pub(crate) fn render(&self, now: Instant, width: usize, room: Option<usize>) -> Vec<String> {
        let width = width.max(20);
        let (done, total) = self.counts();
        let elapsed = self
            .end
            .unwrap_or(now)
            .saturating_duration_since(self.start);
        let mut header = format!("[+] Building {} ({done}/{total})", secs(elapsed));
        if self.end.is_some() {
            header.push_str(if self.error.is_some() {
                " ERROR"
            } else {
                " FINISHED"
            });
        }
        let mut body: Vec<(bool, String)> = Vec::new(); // (may give way, line)
        if self.upload.present {
            let end = self.upload_end;
            let t = end.unwrap_or(now).saturating_duration_since(self.start);
            let label = format!(
                "[internal] load build context {}",
                human_size(self.upload.bytes)
            );
            body.push((end.is_some(), row(&label, Some(t), width)));
        }
        for line in &self.other {
            body.push((true, clip(&format!(" => # {line}"), width)));
        }
        let last = self.steps.len().saturating_sub(1);
        for (i, s) in self.steps.iter().enumerate() {
            let t = s.end.unwrap_or(now).saturating_duration_since(s.start);
            let t = if s.cached { Duration::ZERO } else { t };
            body.push((
                s.end.is_some() && !s.failed,
                row(&s.label(), Some(t), width),
            ));
            let show_tail = s.failed || (s.end.is_none() && i == last);
            if show_tail {
                let skip = s.pulls.len().saturating_sub(TAIL_LINES);
                for (id, text) in s.pulls.iter().skip(skip) {
                    body.push((false, clip(&format!(" => => {id}: {text}"), width)));
                }
                let skip = s.logs.len().saturating_sub(TAIL_LINES);
                for l in s.logs.iter().skip(skip) {
                    body.push((false, clip(&format!(" => => # {l}"), width)));
                }
            }
        }
        if self.error.is_none() {
            if let Some(id) = self.image_id.as_ref().or(self.built.as_ref()) {
                body.push((true, clip(&format!(" => => writing image {id}"), width)));
            }
            for t in &self.tags {
                body.push((true, clip(&format!(" => => naming to {t}"), width)));
            }
        }
        if let Some(room) = room {
            let mut extra = (body.len() + 1).saturating_sub(room);
            body.retain(|(may_go, _)| {
                if extra > 0 && *may_go {
                    extra -= 1;
                    false
                } else {
                    true
                }
            });
        }
        std::iter::once(header)
            .chain(body.into_iter().map(|(_, l)| l))
            .collect()
    }
}

fn push_log(step: &mut Step, line: String) {
    if step.logs.len() == KEEP_LINES {
        step.logs.pop_front();
    }
    step.logs.push_back(line);
}

/// `Step 3/7 : RUN make` → (3, 7, "RUN make").
pub(crate) fn parse_step(line: &str) -> Option<(usize, usize, &str)> {
    let rest = line.strip_prefix("Step ")?;
    let (nums, instr) = rest.split_once(" : ")?;
    let (n, m) = nums.split_once('/')?;
    Some((n.parse().ok()?, m.parse().ok()?, instr))
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Cuts a line to the width (in characters).
fn clip(s: &str, width: usize) -> String {
    let s: String = s.chars().filter(|c| !c.is_control()).collect();
    if s.chars().count() <= width {
        s
    } else {
        s.chars().take(width).collect()
    }
}

/// ` => label                      1.2s`, the time at the right edge.
fn row(label: &str, t: Option<Duration>, width: usize) -> String {
    let time = t.map(secs).unwrap_or_default();
    let room = width.saturating_sub(time.len() + 1);
    let mut left = clip(&format!(" => {label}"), room);
    let pad = room.saturating_sub(left.chars().count());
    left.push_str(&" ".repeat(pad));
    left.push(' ');
    left.push_str(&time);
    left
}

/// The live display: redraws the model in place with ANSI cursor movement.
pub(crate) struct Tty<W: Write> {
    out: W,
    pub(crate) model: TtyModel,
    drawn: usize,
    size: Box<dyn Fn() -> (usize, usize) + Send>,
}

impl<W: Write> Tty<W> {
    pub(crate) fn new(out: W, size: Box<dyn Fn() -> (usize, usize) + Send>) -> Self {
        Tty {
            out,
            model: TtyModel::new(Instant::now()),
            drawn: 0,
            size,
        }
    }

    fn draw(&mut self, final_frame: bool) {
        let (rows, cols) = (self.size)();
        let room = (!final_frame).then(|| rows.saturating_sub(1).max(3));
        // One column spare: a line that fills the width would wrap on some terminals.
        let lines = self
            .model
            .render(Instant::now(), cols.saturating_sub(1), room);
        let mut s = String::new();
        if self.drawn > 0 {
            s.push_str(&format!("\x1b[{}A", self.drawn));
        }
        for l in &lines {
            s.push('\r');
            s.push_str(l);
            s.push_str("\x1b[K\n");
        }
        s.push_str("\x1b[J");
        self.drawn = lines.len();
        let _ = self.out.write_all(s.as_bytes());
        let _ = self.out.flush();
    }

    #[cfg(test)]
    pub(crate) fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> Display for Tty<W> {
    fn message(&mut self, m: &Msg, upload: Upload) {
        let now = Instant::now();
        self.model.set_upload(upload, now);
        self.model.message(m, now);
    }

    fn tick(&mut self, upload: Upload) {
        self.model.set_upload(upload, Instant::now());
        self.draw(false);
    }

    fn finish(&mut self, upload: Upload, error: Option<&str>) {
        let now = Instant::now();
        self.model.set_upload(upload, now);
        self.model.finish(error, now);
        self.draw(true);
    }
}

/// The size of the terminal on stderr as (rows, columns); 24x80 when unknown.
pub(crate) fn stderr_size() -> (usize, usize) {
    // SAFETY: winsize is plain old data; all-zero is a valid value.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a winsize into the struct we own.
    if unsafe { libc::ioctl(2, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_col > 0 {
        (ws.ws_row.max(1) as usize, ws.ws_col as usize)
    } else {
        (24, 80)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msgs(lines: &[Value]) -> Vec<Msg> {
        lines.iter().filter_map(Msg::from_value).collect()
    }

    fn sample() -> Vec<Value> {
        vec![
            json!({"stream": "Step 1/3 : FROM busybox\n"}),
            json!({"stream": " ---> 3f57d9401f8d\n"}),
            json!({"stream": "Step 2/3 : RUN echo hello\n"}),
            json!({"stream": " ---> Running in 9c1d2f3e4a5b\n"}),
            json!({"stream": "hello\n"}),
            json!({"stream": "Removing intermediate container 9c1d2f3e4a5b\n"}),
            json!({"stream": " ---> 1234567890ab\n"}),
            json!({"stream": "Step 3/3 : CMD [\"sh\"]\n"}),
            json!({"stream": " ---> Using cache\n"}),
            json!({"stream": " ---> abcdefabcdef\n"}),
            json!({"aux": {"ID": "sha256:abcdefabcdef0000"}}),
            json!({"stream": "Successfully built abcdefabcdef\n"}),
            json!({"stream": "Successfully tagged foo:latest\n"}),
        ]
    }

    #[test]
    fn messages_are_classified() {
        assert_eq!(
            Msg::from_value(&json!({"stream": "x\n"})),
            Some(Msg::Stream("x\n".into()))
        );
        assert_eq!(
            Msg::from_value(&json!({"aux": {"ID": "sha256:1"}})),
            Some(Msg::ImageId("sha256:1".into()))
        );
        assert_eq!(
            Msg::from_value(
                &json!({"errorDetail": {"code": 3, "message": "boom"}, "error": "boom"})
            ),
            Some(Msg::Error {
                message: "boom".into(),
                code: 3
            })
        );
        assert_eq!(
            Msg::from_value(&json!({"errorDetail": {"message": "x"}, "error": "x"})),
            Some(Msg::Error {
                message: "x".into(),
                code: 1
            })
        );
        assert_eq!(
            Msg::from_value(&json!({"error": "plain"})),
            Some(Msg::Error {
                message: "plain".into(),
                code: 1
            })
        );
        assert_eq!(
            Msg::from_value(
                &json!({"status": "Downloading", "id": "a1", "progress": "[=>  ]", "progressDetail": {"current": 5, "total": 10}})
            ),
            Some(Msg::Status {
                id: "a1".into(),
                status: "Downloading".into(),
                progress: "[=>  ]".into(),
                detail: true
            })
        );
        assert_eq!(Msg::from_value(&json!({})), None);
    }

    #[test]
    fn splitter_handles_pieces() {
        let mut s = JsonSplitter::default();
        let all = b"{\"stream\":\"a\\n\"}\n{\"stream\":\"b\\n\"}\r\n{\"aux\":{\"ID\":\"x\"}}";
        let mut got = Vec::new();
        for piece in all.chunks(5) {
            got.extend(s.push(piece, false).unwrap());
        }
        got.extend(s.push(b"\n", true).unwrap());
        assert_eq!(got.len(), 3);
        assert_eq!(got[2]["aux"]["ID"], "x");
        let mut s = JsonSplitter::default();
        assert!(s.push(b"{\"stream\":", true).is_err());
        let mut s = JsonSplitter::default();
        assert!(s.push(b"nonsense", false).is_err());
    }

    #[test]
    fn plain_output_is_the_stream() {
        let mut p = Plain::new(Vec::new());
        let up = Upload {
            bytes: 2048,
            done: true,
            present: true,
        };
        for m in msgs(&sample()) {
            p.message(&m, up);
        }
        p.message(
            &Msg::from_value(&json!({"status": "Pulling fs layer", "id": "a1"})).unwrap(),
            up,
        );
        p.message(
            &Msg::from_value(&json!({"status": "Downloading", "id": "a1", "progress": "[=> ]", "progressDetail": {"current": 1, "total": 9}})).unwrap(),
            up,
        );
        p.message(
            &Msg::from_value(&json!({"status": "Digest: sha256:00"})).unwrap(),
            up,
        );
        p.finish(up, None);
        let out = String::from_utf8(p.into_inner()).unwrap();
        assert_eq!(
            out,
            "Sending build context to Docker daemon  2.048kB\r\r\n\
             Step 1/3 : FROM busybox\n ---> 3f57d9401f8d\n\
             Step 2/3 : RUN echo hello\n ---> Running in 9c1d2f3e4a5b\nhello\n\
             Removing intermediate container 9c1d2f3e4a5b\n ---> 1234567890ab\n\
             Step 3/3 : CMD [\"sh\"]\n ---> Using cache\n ---> abcdefabcdef\n\
             Successfully built abcdefabcdef\nSuccessfully tagged foo:latest\n\
             a1: Pulling fs layer\nDigest: sha256:00\n"
        );
        // No context upload (a URL): no "Sending" line.
        let mut p = Plain::new(Vec::new());
        p.message(&Msg::Stream("x\n".into()), Upload::default());
        assert_eq!(p.into_inner(), b"x\n");
    }

    #[test]
    fn quiet_keeps_text_for_failures() {
        let mut q = Quiet::default();
        for m in msgs(&sample()[..5]) {
            q.message(&m, Upload::default());
        }
        assert!(q.failure_output().unwrap().ends_with("hello\n"));
    }

    #[test]
    fn tty_model_follows_steps() {
        let t0 = Instant::now();
        let mut m = TtyModel::new(t0);
        m.set_upload(
            Upload {
                bytes: 10,
                done: true,
                present: true,
            },
            t0,
        );
        let all = msgs(&sample());
        for (i, msg) in all.iter().enumerate() {
            m.message(msg, t0 + Duration::from_millis(100 * i as u64));
            if i == 4 {
                // During RUN: step 2 runs and shows its output.
                let s = &m.steps[1];
                assert!(s.end.is_none());
                assert_eq!(s.instruction, "RUN echo hello");
                assert_eq!(s.logs, vec!["hello".to_string()]);
                assert_eq!(m.counts(), (2, 4));
                let lines = m.render(t0 + Duration::from_millis(500), 60, None);
                assert_eq!(lines[0], "[+] Building 0.5s (2/4)");
                assert!(lines.iter().any(|l| l == " => => # hello"), "{lines:?}");
                assert!(lines
                    .iter()
                    .any(|l| l.starts_with(" => [2/3] RUN echo hello") && l.ends_with("0.3s")));
            }
        }
        m.finish(None, t0 + Duration::from_secs(2));
        assert_eq!(m.steps.len(), 3);
        assert!(m.steps.iter().all(|s| s.end.is_some()));
        assert!(!m.steps[1].cached);
        assert!(m.steps[2].cached);
        assert_eq!(m.built.as_deref(), Some("abcdefabcdef"));
        assert_eq!(m.image_id.as_deref(), Some("sha256:abcdefabcdef0000"));
        assert_eq!(m.tags, vec!["foo:latest"]);
        assert_eq!(m.counts(), (4, 4));
        let lines = m.render(t0 + Duration::from_secs(9), 60, None);
        assert_eq!(lines[0], "[+] Building 2.0s (4/4) FINISHED");
        assert!(lines
            .iter()
            .any(|l| l.starts_with(" => CACHED [3/3] CMD [\"sh\"]") && l.ends_with("0.0s")));
        // Finished steps don't show their output.
        assert!(!lines.iter().any(|l| l.contains("hello") && l.contains('#')));
        assert!(lines.contains(&" => => writing image sha256:abcdefabcdef0000".to_string()));
        assert!(lines.contains(&" => => naming to foo:latest".to_string()));
        assert!(lines.iter().all(|l| l.chars().count() <= 60));
    }

    #[test]
    fn tty_model_failure_and_partial_lines() {
        let t0 = Instant::now();
        let mut m = TtyModel::new(t0);
        let lines = [
            json!({"stream": "Step 1/2 : FROM busybox\n ---> 3f57d9401f8d\nStep 2/2 : RUN for i in 1 2 3 4 5 6 7 8; do echo l$i; done; exit 3\n"}),
            json!({"stream": " ---> Running in 0123456789ab\n"}),
            json!({"stream": "l1\nl2\nl3\nl4\nl5\nl6\nl7\nl"}),
            json!({"stream": "8\n"}),
            json!({"stream": "progress 10%\rprogress 100%\n"}),
            json!({"errorDetail": {"code": 3, "message": "The command '/bin/sh -c exit 3' returned a non-zero code: 3"}, "error": "The command '/bin/sh -c exit 3' returned a non-zero code: 3"}),
        ];
        for msg in msgs(&lines) {
            m.message(&msg, t0 + Duration::from_millis(300));
        }
        m.finish(Some("ignored: the stream's error came first"), t0);
        let s = &m.steps[1];
        assert!(s.failed);
        assert_eq!(s.logs.len(), 9);
        assert_eq!(s.logs.back().unwrap(), "progress 100%");
        assert_eq!(
            m.error.as_deref(),
            Some("The command '/bin/sh -c exit 3' returned a non-zero code: 3")
        );
        let out = m.render(t0 + Duration::from_secs(1), 100, None);
        assert!(out[0].ends_with("(1/2) ERROR"), "{out:?}");
        assert!(out
            .iter()
            .any(|l| l.starts_with(" => ERROR [2/2] RUN for i")));
        // The failed step's last lines stay on screen.
        let tail: Vec<_> = out.iter().filter(|l| l.starts_with(" => => # ")).collect();
        assert_eq!(tail.len(), TAIL_LINES);
        assert_eq!(tail[0], " => => # l4");
        assert_eq!(tail[5], " => => # progress 100%");
        assert!(!out.iter().any(|l| l.contains("writing image")));
    }

    #[test]
    fn tty_pulls_and_room() {
        let t0 = Instant::now();
        let mut m = TtyModel::new(t0);
        for n in 1..=10 {
            m.message(
                &Msg::Stream(format!("Step {n}/12 : RUN true\n ---> 0000000000{n:02}\n")),
                t0,
            );
        }
        m.message(&Msg::Stream("Step 11/12 : FROM alpine\n".into()), t0);
        for (id, st) in [
            ("l1", "Downloading"),
            ("l2", "Waiting"),
            ("l1", "Pull complete"),
        ] {
            m.message(
                &Msg::Status {
                    id: id.into(),
                    status: st.into(),
                    progress: String::new(),
                    detail: false,
                },
                t0,
            );
        }
        assert_eq!(
            m.steps[10].pulls,
            vec![
                ("l1".to_string(), "Pull complete".to_string()),
                ("l2".to_string(), "Waiting".to_string())
            ]
        );
        let out = m.render(t0, 80, Some(6));
        assert_eq!(out.len(), 6);
        assert_eq!(out[0], "[+] Building 0.0s (10/12)");
        // The running step and its pulls stay; old finished steps give way.
        assert!(out.iter().any(|l| l.contains("[11/12] FROM alpine")));
        assert!(out.iter().any(|l| l == " => => l2: Waiting"));
        assert!(!out.iter().any(|l| l.contains("[1/12]")));
        assert_eq!(m.render(t0, 80, None).len(), 14);
        assert_eq!(
            parse_step("Step 10/12 : COPY . /app"),
            Some((10, 12, "COPY . /app"))
        );
        assert_eq!(parse_step("Step x"), None);
    }

    #[test]
    fn tty_draws_in_place() {
        let mut t = Tty::new(Vec::new(), Box::new(|| (24, 80)));
        let up = Upload::default();
        t.message(&Msg::Stream("Step 1/1 : FROM busybox\n".into()), up);
        t.tick(up);
        t.tick(up);
        t.finish(up, None);
        let out = String::from_utf8(t.into_inner()).unwrap();
        // Two redraws move up over the two lines drawn before.
        assert_eq!(out.matches("\x1b[2A").count(), 2);
        assert!(out.contains("FINISHED"));
    }
}
