//! Typed Dockerfile instructions: what [`crate::dockerfile::parse`] produces and the
//! executor consumes. Words are kept as written (quotes included where Docker keeps
//! them) until [`Instruction::expand`] applies the build's variables.

use crate::shell::{Lex, LexMode, ShellError};

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq)]
pub struct Dockerfile {
    /// The `# escape=` directive (`\` by default).
    pub escape: char,
    /// The `# syntax=` directive, which berth ignores (with a warning).
    pub syntax: Option<String>,
    /// Warnings to print before the build (e.g. the ignored syntax directive, empty
    /// continuation lines).
    pub warnings: Vec<String>,
    /// `ARG`s before the first `FROM` (usable only in `FROM` lines, and by `ARG name`
    /// redeclared inside a stage).
    pub meta_args: Vec<ArgDecl>,
    /// The stages, in file order.
    pub stages: Vec<Stage>,
}

/// One `FROM` and what follows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// Position in the file, from 0.
    pub index: usize,
    /// `AS name`, lowercased.
    pub name: Option<String>,
    /// The base image reference as written (unexpanded; may use meta args).
    pub base: String,
    /// `--platform=` as written.
    pub platform: Option<String>,
    /// The FROM's line (1-based) and original text (continuations joined).
    pub line: usize,
    pub original: String,
    pub commands: Vec<Command>,
}

/// One instruction with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// First line (1-based) of the instruction.
    pub line: usize,
    /// The instruction as written, continuations joined, e.g. `RUN echo hi` (what
    /// `Step N/M : …` prints).
    pub original: String,
    pub instr: Instruction,
}

/// The shell form (a string for the shell) or the exec form (a JSON array).
#[derive(Debug, Clone, PartialEq)]
pub enum ShellOrExec {
    Shell(String),
    Exec(Vec<String>),
}

/// A `<<EOF` here-document attached to RUN or COPY/ADD.
#[derive(Debug, Clone, PartialEq)]
pub struct Heredoc {
    /// The delimiter word (`EOF`), which is also the file name for COPY.
    pub name: String,
    /// The body, each line ending in `\n` (tabs stripped for `<<-`).
    pub content: String,
    /// False when the delimiter was quoted (`<<"EOF"`, `<<'EOF'`): no expansion.
    pub expand: bool,
}

/// `RUN`.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub cmd: ShellOrExec,
    /// Here-documents named on the RUN line, in order.
    pub heredocs: Vec<Heredoc>,
    /// `--network=` (default, none, host).
    pub network: Option<String>,
}

/// `COPY` and `ADD`.
#[derive(Debug, Clone, PartialEq)]
pub struct Copy {
    /// Source words; for heredoc sources, the heredoc's name (see `heredocs`).
    pub sources: Vec<String>,
    pub dest: String,
    /// `--from=` (a stage name or index, or an image).
    pub from: Option<String>,
    /// `--chown=user[:group]`.
    pub chown: Option<String>,
    /// `--chmod=` as written (octal).
    pub chmod: Option<String>,
    /// Here-documents used as sources (`COPY <<EOF /dest`).
    pub heredocs: Vec<Heredoc>,
}

/// `ARG name[=default]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ArgDecl {
    pub name: String,
    pub default: Option<String>,
}

/// `HEALTHCHECK`.
#[derive(Debug, Clone, PartialEq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: `Test: ["NONE"]`.
    None,
    Check {
        /// `["CMD", args…]` (exec form) or `["CMD-SHELL", "cmd"]` (shell form).
        test: Vec<String>,
        /// Durations in nanoseconds; 0 when not given.
        interval: i64,
        timeout: i64,
        start_period: i64,
        start_interval: i64,
        /// 0 when not given.
        retries: i64,
    },
}

/// Every Dockerfile instruction except FROM (which starts a [`Stage`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Instruction {
    Run(Run),
    Cmd(ShellOrExec),
    Entrypoint(ShellOrExec),
    /// `SHELL ["executable", "args"…]` (exec form only).
    Shell(Vec<String>),
    Copy(Copy),
    Add(Copy),
    /// `ENV k=v …` or the legacy `ENV k v`.
    Env(Vec<(String, String)>),
    Arg(Vec<ArgDecl>),
    Label(Vec<(String, String)>),
    Maintainer(String),
    /// Ports as written (`80`, `53/udp`, `8000-8010`).
    Expose(Vec<String>),
    Volume(Vec<String>),
    User(String),
    Workdir(String),
    StopSignal(String),
    Healthcheck(Healthcheck),
    /// `ONBUILD <instruction>`: the trigger's text (`RUN echo hi`), stored in the image
    /// config and parsed again when a child build starts FROM it.
    Onbuild(String),
}

impl Instruction {
    /// Docker's instruction keyword, upper case (`RUN`, `COPY`…).
    pub fn keyword(&self) -> &'static str {
        match self {
            Instruction::Run(_) => "RUN",
            Instruction::Cmd(_) => "CMD",
            Instruction::Entrypoint(_) => "ENTRYPOINT",
            Instruction::Shell(_) => "SHELL",
            Instruction::Copy(_) => "COPY",
            Instruction::Add(_) => "ADD",
            Instruction::Env(_) => "ENV",
            Instruction::Arg(_) => "ARG",
            Instruction::Label(_) => "LABEL",
            Instruction::Maintainer(_) => "MAINTAINER",
            Instruction::Expose(_) => "EXPOSE",
            Instruction::Volume(_) => "VOLUME",
            Instruction::User(_) => "USER",
            Instruction::Workdir(_) => "WORKDIR",
            Instruction::StopSignal(_) => "STOPSIGNAL",
            Instruction::Healthcheck(_) => "HEALTHCHECK",
            Instruction::Onbuild(_) => "ONBUILD",
        }
    }

    /// Applies the build's variables where Docker does (ENV, ARG defaults, LABEL,
    /// COPY/ADD sources, destination, `--chown`, `--chmod` and `--from`, EXPOSE,
    /// VOLUME, USER, WORKDIR, STOPSIGNAL; and the bodies of heredocs whose delimiter
    /// was not quoted, for COPY only), removing quotes as Docker's shell lexer does.
    /// RUN, CMD, ENTRYPOINT, SHELL, HEALTHCHECK, MAINTAINER and ONBUILD are returned
    /// unchanged.
    pub fn expand(
        &self,
        lex: &Lex,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Instruction, ShellError> {
        let word = |w: &str| lex.process_word(w, env);
        let opt = |w: &Option<String>| w.as_deref().map(|w| lex.process_word(w, env)).transpose();
        let pairs = |pairs: &[(String, String)]| {
            pairs
                .iter()
                .map(|(k, v)| Ok((word(k)?, word(v)?)))
                .collect::<Result<Vec<_>, ShellError>>()
        };
        Ok(match self {
            Instruction::Env(p) => Instruction::Env(pairs(p)?),
            Instruction::Label(p) => Instruction::Label(pairs(p)?),
            Instruction::Arg(args) => Instruction::Arg(
                args.iter()
                    .map(|a| {
                        Ok(ArgDecl {
                            name: word(&a.name)?,
                            default: opt(&a.default)?,
                        })
                    })
                    .collect::<Result<_, ShellError>>()?,
            ),
            Instruction::Copy(c) => Instruction::Copy(expand_copy(c, lex, env)?),
            Instruction::Add(c) => Instruction::Add(expand_copy(c, lex, env)?),
            Instruction::Expose(ports) => {
                let mut out = Vec::new();
                for p in ports {
                    out.extend(lex.process_words(p, env)?);
                }
                Instruction::Expose(out)
            }
            Instruction::Volume(v) => {
                Instruction::Volume(v.iter().map(|w| word(w)).collect::<Result<_, _>>()?)
            }
            Instruction::User(u) => Instruction::User(word(u)?),
            Instruction::Workdir(w) => Instruction::Workdir(word(w)?),
            Instruction::StopSignal(s) => Instruction::StopSignal(word(s)?),
            Instruction::Run(_)
            | Instruction::Cmd(_)
            | Instruction::Entrypoint(_)
            | Instruction::Shell(_)
            | Instruction::Healthcheck(_)
            | Instruction::Maintainer(_)
            | Instruction::Onbuild(_) => self.clone(),
        })
    }
}

/// COPY/ADD: the words through the lexer; the heredoc sources keep their names, and
/// the bodies of unquoted heredocs get their variables (BuildKit's `ExpandRaw`: the `\`
/// lexer with quotes as ordinary characters, so only `$…` and escapes change).
fn expand_copy(
    c: &Copy,
    lex: &Lex,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Copy, ShellError> {
    let word = |w: &str| lex.process_word(w, env);
    let opt = |w: &Option<String>| w.as_deref().map(|w| lex.process_word(w, env)).transpose();
    // Heredoc names appear among the sources in the heredocs' order; they are names,
    // not words to expand.
    let mut pending = c.heredocs.iter().peekable();
    let mut sources = Vec::with_capacity(c.sources.len());
    for src in &c.sources {
        if pending.peek().is_some_and(|h| &h.name == src) {
            pending.next();
            sources.push(src.clone());
        } else {
            sources.push(word(src)?);
        }
    }
    let body_lex = Lex::new('\\');
    let body_mode = LexMode {
        skip_quotes: true,
        ..LexMode::default()
    };
    let heredocs = c
        .heredocs
        .iter()
        .map(|h| {
            if !h.expand {
                return Ok(h.clone());
            }
            let (content, _) = body_lex.process_with(&h.content, env, body_mode)?;
            Ok(Heredoc {
                content,
                ..h.clone()
            })
        })
        .collect::<Result<_, ShellError>>()?;
    Ok(Copy {
        sources,
        dest: word(&c.dest)?,
        from: opt(&c.from)?,
        chown: opt(&c.chown)?,
        chmod: opt(&c.chmod)?,
        heredocs,
    })
}

#[cfg(test)]
mod tests;
