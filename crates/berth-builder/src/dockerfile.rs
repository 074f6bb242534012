//! The Dockerfile parser: directives, comments, continuations, heredocs, JSON (exec)
//! forms and flags, into [`crate::instructions::Dockerfile`].
//!
//! It follows BuildKit's `frontend/dockerfile/parser` (lines into instruction nodes) and
//! `frontend/dockerfile/instructions` (nodes into typed instructions), in two passes as
//! BuildKit does: the whole file is split into instructions first, so an unterminated
//! heredoc at the end is reported before an unknown instruction above it.
//!
//! Deviations, on purpose:
//! * flags that need BuildKit (`RUN --mount/--security/--device`, `COPY --exclude/--parents`,
//!   `ADD --checksum/--keep-git-dir/--unpack/--exclude`) are rejected with "the --mount
//!   option requires BuildKit, which berth does not implement" (Docker's legacy builder
//!   says the same of `--mount`); `COPY/ADD --link` is accepted and ignored;
//! * flag errors use the legacy builder's wording (`Unknown flag: foo`); every
//!   instruction rejects unknown flags (BuildKit ignores flags on STOPSIGNAL and on
//!   `HEALTHCHECK NONE`, and so does this parser for `HEALTHCHECK NONE`);
//! * a Dockerfile with only `ARG`s is "dockerfile contains no stages to build" (BuildKit's
//!   wording) and an empty one "file with no instructions".

use crate::instructions::{
    ArgDecl, Command, Copy, Dockerfile, Healthcheck, Heredoc, Instruction, Run, ShellOrExec, Stage,
};
use crate::shell::{Lex, LexMode};

/// A Dockerfile that cannot be parsed: Docker's wording, with the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dockerfile parse error line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// Parses a whole Dockerfile.
pub fn parse(src: &str) -> Result<Dockerfile, ParseError> {
    let mut reader = Reader::new(src);
    let nodes = reader.read_nodes()?;
    if nodes.is_empty() {
        return Err(ParseError {
            line: reader.lines.len().max(1),
            message: "file with no instructions".into(),
        });
    }
    let escape = reader.escape;
    let mut warnings = reader.warnings;
    if reader.empty_continuation {
        warnings.push("Empty continuation lines will become errors in a future release.".into());
    }
    let mut df = Dockerfile {
        escape,
        syntax: reader.syntax,
        warnings,
        meta_args: Vec::new(),
        stages: Vec::new(),
    };
    for node in &nodes {
        let fail = |message: String| ParseError {
            line: node.line,
            message,
        };
        let original = node.text.trim().to_string();
        match parse_node(node, escape).map_err(fail)? {
            Parsed::From {
                base,
                name,
                platform,
            } => {
                let index = df.stages.len();
                df.stages.push(Stage {
                    index,
                    name,
                    base,
                    platform,
                    line: node.line,
                    original,
                    commands: Vec::new(),
                });
            }
            Parsed::Instruction(Instruction::Arg(args)) if df.stages.is_empty() => {
                df.meta_args.extend(args)
            }
            Parsed::Instruction(instr) => match df.stages.last_mut() {
                Some(stage) => stage.commands.push(Command {
                    line: node.line,
                    original,
                    instr,
                }),
                None => return Err(fail("no build stage in current context".into())),
            },
        }
    }
    if df.stages.is_empty() {
        let line = nodes.last().map_or(1, |n| n.line);
        return Err(ParseError {
            line,
            message: "dockerfile contains no stages to build".into(),
        });
    }
    Ok(df)
}

/// One instruction's text: its first line, the lines joined (continuations removed),
/// and the heredocs read after it.
#[derive(Debug)]
struct Node {
    line: usize,
    text: String,
    heredocs: Vec<NodeHeredoc>,
}

#[derive(Debug, Clone)]
struct NodeHeredoc {
    name: String,
    /// As read, tabs not stripped yet.
    content: String,
    expand: bool,
    chomp: bool,
}

/// The first pass: directives, comments, continuations and heredoc bodies.
struct Reader<'a> {
    lines: Vec<&'a str>,
    next: usize,
    escape: char,
    syntax: Option<String>,
    warnings: Vec<String>,
    directives_done: bool,
    seen_directives: Vec<String>,
    empty_continuation: bool,
}

impl<'a> Reader<'a> {
    fn new(src: &'a str) -> Reader<'a> {
        Reader {
            lines: src.split_inclusive('\n').collect(),
            next: 0,
            escape: '\\',
            syntax: None,
            warnings: Vec::new(),
            directives_done: false,
            seen_directives: Vec::new(),
            empty_continuation: false,
        }
    }

    fn next_line(&mut self) -> Option<&'a str> {
        let line = self.lines.get(self.next).copied()?;
        self.next += 1;
        Some(if self.next == 1 {
            line.strip_prefix('\u{feff}').unwrap_or(line)
        } else {
            line
        })
    }

    fn read_nodes(&mut self) -> Result<Vec<Node>, ParseError> {
        let mut nodes = Vec::new();
        while let Some(raw) = self.next_line() {
            let line = self.next;
            let token = trim_newline(raw).trim_start();
            if !self.directives_done {
                self.directive(token)
                    .map_err(|message| ParseError { line, message })?;
            }
            if token.starts_with('#') {
                continue;
            }
            let (first, mut end) = self.trim_continuation(token);
            if end && first.is_empty() {
                continue;
            }
            let mut text = first.to_string();
            let mut has_empty_line = false;
            while !end {
                let Some(raw) = self.next_line() else { break };
                if is_comment(raw) {
                    continue;
                }
                let token = trim_newline(raw);
                if token.trim_start().is_empty() {
                    has_empty_line = true;
                    continue;
                }
                let (part, e) = self.trim_continuation(token);
                text.push_str(part);
                end = e;
            }
            if has_empty_line {
                self.warnings
                    .push(format!("Empty continuation line found in: {text}"));
                self.empty_continuation = true;
            }
            let mut heredocs = Vec::new();
            if self.can_contain_heredoc(&text) {
                let fail = |message: String| ParseError { line, message };
                for spec in heredocs_from_line(&text).map_err(fail)? {
                    heredocs.push(
                        self.read_heredoc(spec)
                            .ok_or_else(|| fail("unterminated heredoc".into()))?,
                    );
                }
            }
            nodes.push(Node {
                line,
                text,
                heredocs,
            });
        }
        Ok(nodes)
    }

    /// A parser directive (`# escape=`, `# syntax=`, `# check=`) while they are allowed:
    /// only at the top, before any other line.
    fn directive(&mut self, token: &str) -> Result<(), String> {
        let Some((key, value)) = token
            .strip_prefix('#')
            .and_then(|rest| split_directive(rest.trim_start()))
        else {
            self.directives_done = true;
            return Ok(());
        };
        let key = key.to_ascii_lowercase();
        if !matches!(key.as_str(), "syntax" | "escape" | "check") {
            self.directives_done = true;
            return Ok(());
        }
        if self.seen_directives.contains(&key) {
            return Err(format!("only one {key} parser directive can be used"));
        }
        match key.as_str() {
            "escape" => match value {
                "\\" => self.escape = '\\',
                "`" => self.escape = '`',
                _ => {
                    return Err(format!(
                        "invalid escape token '{value}' does not match ` or \\"
                    ))
                }
            },
            "syntax" => {
                self.warnings.push(format!(
                    "the \"# syntax={value}\" directive is ignored: berth builds with its own Dockerfile frontend"
                ));
                self.syntax = Some(value.to_string());
            }
            _ => {}
        }
        self.seen_directives.push(key);
        Ok(())
    }

    /// The line without its continuation (the escape character, then blanks, at the
    /// end, not itself escaped), and whether the instruction ends on it.
    fn trim_continuation<'l>(&self, line: &'l str) -> (&'l str, bool) {
        let trimmed = line.trim_end_matches([' ', '\t']);
        if let Some(before) = trimmed.strip_suffix(self.escape) {
            if !before.ends_with(self.escape) {
                return (before, false);
            }
        }
        (line, true)
    }

    /// RUN, COPY and ADD (also as ONBUILD triggers) in the shell/list form read heredocs.
    fn can_contain_heredoc(&self, text: &str) -> bool {
        if !text.contains("<<") {
            return false;
        }
        let (mut cmd, _, mut args) = split_command(text, self.escape);
        if cmd.eq_ignore_ascii_case("onbuild") {
            (cmd, _, args) = split_command(&args, self.escape);
        }
        let cmd = cmd.to_ascii_lowercase();
        matches!(cmd.as_str(), "run" | "copy" | "add") && !matches!(parse_json(&args), Ok(Some(_)))
    }

    /// The body lines up to the delimiter line; `None` if the file ends first.
    fn read_heredoc(&mut self, spec: HeredocSpec) -> Option<NodeHeredoc> {
        let mut content = String::new();
        loop {
            let raw = self.next_line()?;
            let mut candidate = trim_newline(raw);
            if spec.chomp {
                candidate = candidate.trim_start_matches('\t');
            }
            if candidate == spec.name {
                break;
            }
            content.push_str(raw);
        }
        Some(NodeHeredoc {
            name: spec.name,
            content,
            expand: spec.expand,
            chomp: spec.chomp,
        })
    }
}

fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// `key = value` of a directive (after the `#`): a name of ASCII letters and digits,
/// then a non-empty value (trailing blanks trimmed).
fn split_directive(s: &str) -> Option<(&str, &str)> {
    let key_end = s
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(s.len());
    let key = &s[..key_end];
    if !key.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let rest = s[key_end..]
        .trim_start_matches(is_regex_space)
        .strip_prefix('=')?;
    let value = rest
        .trim_start_matches(is_regex_space)
        .trim_end_matches(is_regex_space);
    (!value.is_empty()).then_some((key, value))
}

/// Go regexp's `\s`.
fn is_regex_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c')
}

/// The parser's `[\t\v\f\r ]` between instruction words.
fn is_word_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\x0b' | '\x0c' | '\r')
}

/// Whitespace-separated words (quotes mean nothing), as for FROM, EXPOSE, and the
/// list form of COPY, ADD and VOLUME.
fn split_whitespace(s: &str) -> Vec<String> {
    s.split(is_word_space)
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// The keyword, the leading `--flags` (quotes and escapes removed), and the rest.
fn split_command(line: &str, escape: char) -> (String, Vec<String>, String) {
    let line = line.trim();
    match line.find(is_word_space) {
        None => (line.to_string(), Vec::new(), String::new()),
        Some(i) => {
            let rest = line[i..].trim_start_matches(is_word_space);
            let (args, flags) = extract_flags(rest, escape);
            (line[..i].to_string(), flags, args.trim().to_string())
        }
    }
}

/// BuildKit's `extractBuilderFlags`: the words starting with `--` at the front (up to a
/// lone `--`), and what follows them.
fn extract_flags(line: &str, escape: char) -> (String, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = line.chars().collect();
    let rest_from = |pos: usize| chars[pos..].iter().collect::<String>();
    let mut flags = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    loop {
        let at_end = pos == chars.len();
        let mut ch = chars.get(pos).copied().unwrap_or_default();
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            if ch != '-' || chars.get(pos + 1) != Some(&'-') {
                return (rest_from(pos), flags);
            }
            phase = Phase::Word;
        }
        if at_end {
            if word != "--" && (blank_ok || !word.is_empty()) {
                flags.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if word == "--" {
                    return (rest_from(pos), flags);
                }
                if blank_ok || !word.is_empty() {
                    flags.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
            if ch == escape {
                if pos + 1 == chars.len() {
                    pos += 1;
                    continue;
                }
                pos += 1;
                ch = chars[pos];
            }
            word.push(ch);
            pos += 1;
            continue;
        }
        // In quotes.
        if ch == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        if ch == escape {
            if pos + 1 == chars.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            ch = chars[pos];
        }
        word.push(ch);
        pos += 1;
    }
    (String::new(), flags)
}

/// BuildKit's `parseWords` (ENV, LABEL, ARG): words split on unquoted whitespace, quotes
/// and escapes kept for the later expansion.
fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut word = String::new();
    let mut pos = 0;
    loop {
        let at_end = pos == chars.len();
        let mut ch = chars.get(pos).copied().unwrap_or_default();
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if at_end {
            if blank_ok || !word.is_empty() {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if pos + 1 == chars.len() {
                    pos += 1;
                    continue;
                }
                // An escaped character (even a quote) is kept with its escape.
                word.push(ch);
                pos += 1;
                ch = chars[pos];
            }
            word.push(ch);
            pos += 1;
            continue;
        }
        // In quotes: the escape character means something except in single quotes.
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            if pos + 1 == chars.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            word.push(ch);
            pos += 1;
            ch = chars[pos];
        }
        word.push(ch);
        pos += 1;
    }
    words
}

const NOT_STRING_ARRAY: &str =
    "when using JSON array syntax, arrays must be comprised of strings only";

/// `Some(words)` if `rest` is a JSON array of strings, `None` if it is not JSON (the
/// shell form), an error for a JSON array of something else.
fn parse_json(rest: &str) -> Result<Option<Vec<String>>, String> {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Ok(None);
    }
    let Ok(values) = serde_json::from_str::<Vec<serde_json::Value>>(rest) else {
        return Ok(None);
    };
    values
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(NOT_STRING_ARRAY.to_string()),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// CMD, ENTRYPOINT, RUN, SHELL: the exec form if JSON, else the text for the shell.
fn parse_maybe_json(rest: &str) -> Result<ShellOrExec, String> {
    if rest.is_empty() {
        return Ok(ShellOrExec::Shell(String::new()));
    }
    Ok(match parse_json(rest)? {
        Some(words) => ShellOrExec::Exec(words),
        None => ShellOrExec::Shell(rest.to_string()),
    })
}

/// COPY, ADD, VOLUME: the JSON array, or whitespace-separated words.
fn parse_maybe_json_to_list(rest: &str) -> Result<Vec<String>, String> {
    Ok(parse_json(rest)?.unwrap_or_else(|| split_whitespace(rest)))
}

/// A heredoc named by a word of an instruction line.
#[derive(Debug, PartialEq)]
struct HeredocSpec {
    name: String,
    expand: bool,
    chomp: bool,
}

fn no_env(_: &str) -> Option<String> {
    None
}

/// BuildKit's `ParseHeredoc`: `[n]<<[-][ ]word`, where quoting any part of the word
/// turns expansion off. `Ok(None)` for a word that is not a heredoc.
fn parse_heredoc(word: &str) -> Result<Option<HeredocSpec>, String> {
    let after_fd = word.trim_start_matches(|c: char| c.is_ascii_digit());
    let Some(after) = after_fd.strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, after) = match after.strip_prefix('-') {
        Some(after) => (true, after),
        None => (false, after),
    };
    let rest = after.trim_start_matches(is_regex_space);
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let lex = Lex::new('\\');
    let mode = LexMode {
        skip_unset: true,
        ..LexMode::default()
    };
    let (_, words) = lex.process_with(rest, &no_env, mode).map_err(|e| e.0)?;
    if words.len() != 1 {
        return Ok(None);
    }
    let raw_mode = LexMode {
        raw_quotes: true,
        ..mode
    };
    let (_, raw_words) = lex.process_with(rest, &no_env, raw_mode).map_err(|e| e.0)?;
    if raw_words.len() != 1 {
        return Err(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        ));
    }
    let quotes = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    let expand = quotes(&words[0]) == quotes(&raw_words[0]);
    Ok(Some(HeredocSpec {
        name: words[0].clone(),
        expand,
        chomp,
    }))
}

/// The heredocs named on an instruction line, in order.
fn heredocs_from_line(line: &str) -> Result<Vec<HeredocSpec>, String> {
    let mode = LexMode {
        raw_quotes: true,
        raw_escapes: true,
        skip_unset: true,
        ..LexMode::default()
    };
    let words = match Lex::new('\\').process_with(line, &no_env, mode) {
        Ok((_, words)) => words,
        Err(_) => return Ok(Vec::new()),
    };
    let mut specs = Vec::new();
    for word in words {
        specs.extend(parse_heredoc(&word)?);
    }
    Ok(specs)
}

/// BuildKit's `ChompHeredocContent`: leading tabs off every line.
fn chomp(content: &str) -> String {
    content
        .split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}

fn heredoc_of(node: &NodeHeredoc, chomped: bool) -> Heredoc {
    let content = if chomped {
        chomp(&node.content)
    } else {
        node.content.clone()
    };
    Heredoc {
        name: node.name.clone(),
        content,
        expand: node.expand,
    }
}

enum Parsed {
    From {
        base: String,
        name: Option<String>,
        platform: Option<String>,
    },
    Instruction(Instruction),
}

/// What a flag takes.
#[derive(Clone, Copy, PartialEq)]
enum FlagKind {
    String,
    Bool,
    /// Known to BuildKit, refused here.
    Unsupported,
}

/// The flags given, checked against `known`: name → value (`"true"`/`"false"` for
/// booleans). Docker's legacy-builder wording.
fn parse_flags(
    args: &[String],
    known: &[(&str, FlagKind)],
) -> Result<Vec<(String, String)>, String> {
    let mut used: Vec<(String, String)> = Vec::new();
    for arg in args {
        if arg == "--" {
            break;
        }
        let Some(flag) = arg.strip_prefix("--") else {
            return Err(format!("arg should start with -- : {arg}"));
        };
        let (name, value) = match flag.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (flag, None),
        };
        let Some(&(_, kind)) = known.iter().find(|(n, _)| *n == name) else {
            return Err(format!("Unknown flag: {name}"));
        };
        if used.iter().any(|(n, _)| n == name) {
            return Err(format!("Duplicate flag specified: {name}"));
        }
        let value = match kind {
            FlagKind::Unsupported => {
                return Err(format!(
                    "the --{name} option requires BuildKit, which berth does not implement"
                ));
            }
            FlagKind::String => value
                .ok_or_else(|| format!("Missing a value on flag: {name}"))?
                .to_string(),
            FlagKind::Bool => match value.map(str::to_ascii_lowercase).as_deref() {
                Some("") => return Err(format!("Missing a value on flag: {name}")),
                None | Some("true") => "true".to_string(),
                Some("false") => "false".to_string(),
                Some(_) => {
                    let value = value.unwrap_or_default();
                    return Err(format!(
                        "Expecting boolean value for flag {name}, not: {value}"
                    ));
                }
            },
        };
        used.push((name.to_string(), value));
    }
    Ok(used)
}

fn flag(flags: &[(String, String)], name: &str) -> Option<String> {
    flags
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

fn exactly_one(keyword: &str, rest: &str) -> Result<String, String> {
    if rest.is_empty() {
        return Err(format!("{keyword} requires exactly one argument"));
    }
    Ok(rest.to_string())
}

fn parse_node(node: &Node, escape: char) -> Result<Parsed, String> {
    let (cmd, flags, rest) = split_command(&node.text, escape);
    let keyword = cmd.to_ascii_uppercase();
    let no_flags = |flags: &[String]| parse_flags(flags, &[]).map(|_| ());
    let instr = match keyword.as_str() {
        "FROM" => {
            let args = split_whitespace(&rest);
            let flags = parse_flags(&flags, &[("platform", FlagKind::String)])?;
            let name = match args.as_slice() {
                [_] => None,
                [_, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => {
                    let lower = name.to_lowercase();
                    if !valid_stage_name(&lower) {
                        return Err(format!(
                            "invalid name for build stage: {name:?}, name can't start with a number or contain symbols"
                        ));
                    }
                    Some(lower)
                }
                _ => return Err("FROM requires either one or three arguments".into()),
            };
            return Ok(Parsed::From {
                base: args[0].clone(),
                name,
                platform: flag(&flags, "platform"),
            });
        }
        "ENV" | "LABEL" => {
            let pairs = parse_name_val(&rest, &keyword, escape)?;
            no_flags(&flags)?;
            if keyword == "ENV" {
                Instruction::Env(pairs)
            } else {
                Instruction::Label(pairs)
            }
        }
        "MAINTAINER" => {
            let maintainer = exactly_one("MAINTAINER", &rest)?;
            no_flags(&flags)?;
            Instruction::Maintainer(maintainer)
        }
        "ADD" | "COPY" => parse_copy(node, &keyword, &flags, &rest)?,
        "ONBUILD" => {
            if rest.is_empty() {
                return Err("ONBUILD requires at least one argument".into());
            }
            no_flags(&flags)?;
            let trigger = rest
                .split(is_word_space)
                .next()
                .unwrap_or_default()
                .to_ascii_uppercase();
            match trigger.as_str() {
                "ONBUILD" => {
                    return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into())
                }
                "MAINTAINER" | "FROM" => {
                    return Err(format!("{trigger} isn't allowed as an ONBUILD trigger"))
                }
                _ => {}
            }
            let mut expression = strip_onbuild(&node.text).to_string();
            for heredoc in &node.heredocs {
                expression.push('\n');
                expression.push_str(&heredoc.content);
                expression.push_str(&heredoc.name);
            }
            Instruction::Onbuild(expression)
        }
        "WORKDIR" => {
            let path = exactly_one("WORKDIR", &rest)?;
            no_flags(&flags)?;
            Instruction::Workdir(path)
        }
        "USER" => {
            let user = exactly_one("USER", &rest)?;
            no_flags(&flags)?;
            Instruction::User(user)
        }
        "STOPSIGNAL" => {
            let signal = exactly_one("STOPSIGNAL", &rest)?;
            no_flags(&flags)?;
            Instruction::StopSignal(signal)
        }
        "RUN" => {
            let cmd = parse_maybe_json(&rest)?;
            let flags = parse_flags(
                &flags,
                &[
                    ("network", FlagKind::String),
                    ("mount", FlagKind::Unsupported),
                    ("security", FlagKind::Unsupported),
                    ("device", FlagKind::Unsupported),
                ],
            )?;
            let network = flag(&flags, "network");
            if let Some(mode) = &network {
                if !matches!(mode.as_str(), "default" | "none" | "host") {
                    return Err(format!("invalid network mode {mode:?}"));
                }
            }
            let heredocs = node
                .heredocs
                .iter()
                .map(|h| heredoc_of(h, h.chomp))
                .collect();
            Instruction::Run(Run {
                cmd,
                heredocs,
                network,
            })
        }
        "CMD" | "ENTRYPOINT" => {
            let cmd = parse_maybe_json(&rest)?;
            no_flags(&flags)?;
            if keyword == "CMD" {
                Instruction::Cmd(cmd)
            } else {
                Instruction::Entrypoint(cmd)
            }
        }
        "SHELL" => {
            let cmd = parse_maybe_json(&rest)?;
            no_flags(&flags)?;
            match cmd {
                ShellOrExec::Exec(words) if words.is_empty() => {
                    return Err("SHELL requires at least one argument".into())
                }
                ShellOrExec::Shell(s) if s.is_empty() => {
                    return Err("SHELL requires at least one argument".into())
                }
                ShellOrExec::Exec(words) => Instruction::Shell(words),
                ShellOrExec::Shell(_) => {
                    return Err("SHELL requires the arguments to be in JSON form".into())
                }
            }
        }
        "HEALTHCHECK" => Instruction::Healthcheck(parse_healthcheck(&flags, &rest)?),
        "EXPOSE" => {
            let ports = split_whitespace(&rest);
            if ports.is_empty() {
                return Err("EXPOSE requires at least one argument".into());
            }
            no_flags(&flags)?;
            Instruction::Expose(ports)
        }
        "VOLUME" => {
            let args = parse_maybe_json_to_list(&rest)?;
            if args.is_empty() {
                return Err("VOLUME requires at least one argument".into());
            }
            no_flags(&flags)?;
            let mut volumes = Vec::new();
            for v in args {
                let v = v.trim();
                if v.is_empty() {
                    return Err("VOLUME specified can not be an empty string".into());
                }
                volumes.push(v.to_string());
            }
            Instruction::Volume(volumes)
        }
        "ARG" => {
            let words = parse_words(&rest, escape);
            if words.is_empty() {
                return Err("ARG requires at least one argument".into());
            }
            no_flags(&flags)?;
            let mut args = Vec::new();
            for word in words {
                args.push(match word.split_once('=') {
                    Some(("", _)) => return Err("ARG names can not be blank".into()),
                    Some((name, default)) => ArgDecl {
                        name: name.into(),
                        default: Some(default.into()),
                    },
                    None => ArgDecl {
                        name: word,
                        default: None,
                    },
                });
            }
            Instruction::Arg(args)
        }
        _ => return Err(format!("unknown instruction: {cmd}")),
    };
    Ok(Parsed::Instruction(instr))
}

/// BuildKit's `^[a-z][a-z0-9-_.]*$` for stage names.
fn valid_stage_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

/// The trigger of an ONBUILD line: the text after `ONBUILD` and its blanks.
fn strip_onbuild(text: &str) -> &str {
    let t = text.trim_start();
    let t = if t.len() >= 7 && t.is_char_boundary(7) && t[..7].eq_ignore_ascii_case("onbuild") {
        &t[7..]
    } else {
        t
    };
    t.trim_start()
}

/// ENV and LABEL: `k=v …` (quotes and escapes kept) or the legacy `k v` (the value is
/// the rest of the line).
fn parse_name_val(
    rest: &str,
    keyword: &str,
    escape: char,
) -> Result<Vec<(String, String)>, String> {
    let words = parse_words(rest, escape);
    if words.is_empty() {
        return Err(format!("{keyword} requires at least one argument"));
    }
    let mut pairs = Vec::new();
    if !words[0].contains('=') {
        let Some(i) = rest.find(is_word_space) else {
            return Err(format!("{keyword} must have two arguments"));
        };
        let value = rest[i..].trim_start_matches(is_word_space);
        pairs.push((rest[..i].to_string(), value.to_string()));
    } else {
        for word in words {
            let Some((key, value)) = word.split_once('=') else {
                return Err(format!(
                    "Syntax error - can't find = in {word:?}. Must be of the form: name=value"
                ));
            };
            pairs.push((key.to_string(), value.to_string()));
        }
    }
    if pairs.iter().any(|(k, _)| k.is_empty()) {
        return Err(format!("{keyword} names can not be blank"));
    }
    Ok(pairs)
}

fn parse_copy(
    node: &Node,
    keyword: &str,
    flags: &[String],
    rest: &str,
) -> Result<Instruction, String> {
    let args = parse_maybe_json_to_list(rest)?;
    if args.len() < 2 {
        return Err(format!(
            "{keyword} requires at least two arguments, but only one was provided. Destination could not be determined"
        ));
    }
    let known: &[(&str, FlagKind)] = if keyword == "COPY" {
        &[
            ("chown", FlagKind::String),
            ("from", FlagKind::String),
            ("chmod", FlagKind::String),
            ("link", FlagKind::Bool),
            ("exclude", FlagKind::Unsupported),
            ("parents", FlagKind::Unsupported),
        ]
    } else {
        &[
            ("chown", FlagKind::String),
            ("chmod", FlagKind::String),
            ("link", FlagKind::Bool),
            ("keep-git-dir", FlagKind::Unsupported),
            ("checksum", FlagKind::Unsupported),
            ("unpack", FlagKind::Unsupported),
            ("exclude", FlagKind::Unsupported),
        ]
    };
    let flags = parse_flags(flags, known)?;
    let (dest, sources) = args.split_last().unwrap_or((&args[0], &[]));
    if matches!(parse_heredoc(dest), Ok(Some(_))) {
        return Err(format!(
            "{keyword} cannot accept a heredoc as a destination"
        ));
    }
    let mut copy = Copy {
        sources: Vec::new(),
        dest: dest.clone(),
        from: flag(&flags, "from"),
        chown: flag(&flags, "chown"),
        chmod: flag(&flags, "chmod"),
        heredocs: Vec::new(),
    };
    for src in sources {
        match parse_heredoc(src) {
            Ok(Some(spec)) => {
                let content = node
                    .heredocs
                    .iter()
                    .find(|h| h.name == spec.name)
                    .map(|h| h.content.as_str());
                let content = content.unwrap_or_default();
                let content = if spec.chomp {
                    chomp(content)
                } else {
                    content.to_string()
                };
                copy.sources.push(spec.name.clone());
                copy.heredocs.push(Heredoc {
                    name: spec.name,
                    content,
                    expand: spec.expand,
                });
            }
            _ => copy.sources.push(src.clone()),
        }
    }
    Ok(if keyword == "COPY" {
        Instruction::Copy(copy)
    } else {
        Instruction::Add(copy)
    })
}

fn parse_healthcheck(flags: &[String], rest: &str) -> Result<Healthcheck, String> {
    let sep = rest.find(char::is_whitespace).unwrap_or(rest.len());
    if sep == 0 {
        return Err("HEALTHCHECK requires at least one argument".into());
    }
    let typ = rest[..sep].to_ascii_uppercase();
    let cmd_text = rest[sep..].trim_start();
    let cmd = if cmd_text.is_empty() {
        None
    } else {
        Some(parse_maybe_json(cmd_text)?)
    };
    if typ == "NONE" {
        if cmd.is_some() {
            return Err("HEALTHCHECK NONE takes no arguments".into());
        }
        return Ok(Healthcheck::None);
    }
    let durations = ["interval", "timeout", "start-period", "start-interval"];
    let mut known: Vec<(&str, FlagKind)> =
        durations.iter().map(|d| (*d, FlagKind::String)).collect();
    known.push(("retries", FlagKind::String));
    let flags = parse_flags(flags, &known)?;
    if typ != "CMD" {
        return Err(format!("Unknown type {typ:?} in HEALTHCHECK (try CMD)"));
    }
    let test = match cmd {
        Some(ShellOrExec::Exec(args)) if !args.is_empty() => {
            [vec!["CMD".to_string()], args].concat()
        }
        Some(ShellOrExec::Shell(s)) if !s.is_empty() => vec!["CMD-SHELL".to_string(), s],
        _ => return Err("Missing command after HEALTHCHECK CMD".into()),
    };
    let mut values = [0i64; 4];
    for (value, name) in values.iter_mut().zip(durations) {
        *value = parse_interval(name, flag(&flags, name).as_deref().unwrap_or_default())?;
    }
    let retries = match flag(&flags, "retries").filter(|r| !r.is_empty()) {
        None => 0,
        Some(r) => {
            let n: i32 = r.parse().map_err(|e: std::num::ParseIntError| {
                let why = match e.kind() {
                    std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                        "value out of range"
                    }
                    _ => "invalid syntax",
                };
                format!("strconv.ParseInt: parsing {r:?}: {why}")
            })?;
            if n < 0 {
                return Err(format!("--retries cannot be negative ({n})"));
            }
            i64::from(n)
        }
    };
    let [interval, timeout, start_period, start_interval] = values;
    Ok(Healthcheck::Check {
        test,
        interval,
        timeout,
        start_period,
        start_interval,
        retries,
    })
}

/// A HEALTHCHECK duration flag in nanoseconds: 0 if empty or zero, else at least 1ms.
fn parse_interval(name: &str, value: &str) -> Result<i64, String> {
    if value.is_empty() {
        return Ok(0);
    }
    let d = parse_go_duration(value)?;
    if d == 0 {
        return Ok(0);
    }
    if d < 1_000_000 {
        return Err(format!("Interval {name:?} cannot be less than 1ms"));
    }
    Ok(d)
}

/// Go's `time.ParseDuration`, in nanoseconds: `[-+]` then `<decimal><unit>`… with units
/// ns, us (µs, μs), ms, s, m, h.
fn parse_go_duration(orig: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {orig:?}");
    let (neg, mut s) = match orig.strip_prefix('-') {
        Some(s) => (true, s),
        None => (false, orig.strip_prefix('+').unwrap_or(orig)),
    };
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: i128 = 0;
    while !s.is_empty() {
        let int_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (int_part, after) = s.split_at(int_end);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(a) => {
                let end = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
                a.split_at(end)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_end = after
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration {orig:?}"));
        }
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(format!("time: unknown unit {unit:?} in duration {orig:?}")),
        };
        let int: i128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        let mut value = int.checked_mul(scale).ok_or_else(invalid)?;
        if !frac_part.is_empty() {
            let digits = &frac_part[..frac_part.len().min(20)];
            let frac: i128 = digits.parse().map_err(|_| invalid())?;
            value += frac * scale / 10i128.pow(digits.len() as u32);
        }
        total = total.checked_add(value).ok_or_else(invalid)?;
        if total > i128::from(i64::MAX) + 1 {
            return Err(invalid());
        }
        s = after;
    }
    let total = if neg { -total } else { total };
    i64::try_from(total).map_err(|_| invalid())
}

#[cfg(test)]
mod tests;
