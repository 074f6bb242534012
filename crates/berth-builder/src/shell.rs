//! Docker's shell-word lexer (moby `frontend/dockerfile/shell`): quotes, escapes and
//! `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR:+alt}` … in Dockerfile words.
//!
//! The behaviour follows BuildKit's `shell.Lex`:
//!
//! * single quotes are literal (nothing can be escaped inside them);
//! * double quotes allow `$` expansion, and the escape character escapes only `"`, `$`
//!   and itself inside them (elsewhere it stays literal);
//! * outside quotes the escape character escapes any character, and is dropped at the
//!   end of the word;
//! * `$name`, `${name}`, `${name:-word}`, `${name-word}`, `${name:+word}`,
//!   `${name+word}`, `${name:?msg}`, `${name?msg}`, `${name#pat}`, `${name##pat}`,
//!   `${name%pat}`, `${name%%pat}`, `${name/pat/repl}` and `${name//pat/repl}`;
//!   positional (`$1`) and special (`$@`, `$$`, …) parameters are never set;
//! * a `$` not followed by a name stays literal; unset variables expand to nothing.

/// A word that cannot be expanded (e.g. an unterminated quote or `${`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ShellError(pub String);

/// The lexer, for one escape character (`\` or the `# escape=` directive's).
#[derive(Debug, Clone, Copy)]
pub struct Lex {
    pub escape: char,
}

/// Crate-internal switches of the lexer (BuildKit's `RawQuotes`, `RawEscapes`,
/// `SkipProcessQuotes` and `SkipUnsetEnv`), used by the parser to find heredoc words and
/// by COPY's heredoc bodies.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LexMode {
    /// Keep quote characters in the result.
    pub raw_quotes: bool,
    /// Keep escape characters in the result.
    pub raw_escapes: bool,
    /// Quotes are ordinary characters.
    pub skip_quotes: bool,
    /// An unset variable stays as written (`$name`, `${name…}`).
    pub skip_unset: bool,
}

impl Lex {
    pub fn new(escape: char) -> Lex {
        Lex { escape }
    }

    /// Expands one word: variables substituted, quotes and escapes removed.
    pub fn process_word(
        &self,
        word: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, ShellError> {
        self.process_with(word, env, LexMode::default())
            .map(|(w, _)| w)
    }

    /// Expands and splits into words (unquoted whitespace separates), as for EXPOSE
    /// and the legacy `ENV k v` form.
    pub fn process_words(
        &self,
        word: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<String>, ShellError> {
        self.process_with(word, env, LexMode::default())
            .map(|(_, ws)| ws)
    }

    /// Both results of one pass (the word, and the word split on unquoted whitespace),
    /// with the given mode.
    pub(crate) fn process_with(
        &self,
        word: &str,
        env: &dyn Fn(&str) -> Option<String>,
        mode: LexMode,
    ) -> Result<(String, Vec<String>), ShellError> {
        let mut sw = ShellWord {
            chars: word.chars().collect(),
            pos: 0,
            escape: self.escape,
            mode,
            raw_escapes: mode.raw_escapes,
            env,
        };
        let raw = mode.raw_escapes;
        sw.process_stop_on(None, raw)
            .map_err(|e| ShellError(format!("failed to process {word:?}: {e}")))
    }
}

/// BuildKit's `wordsStruct`: the word split on whitespace that did not come from quotes
/// or escapes.
#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }

    fn add_raw_char(&mut self, ch: char) {
        self.buf.push(ch);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        for ch in s.chars() {
            self.add_char(ch);
        }
    }

    fn add_raw_string(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(std::mem::take(&mut self.buf));
        }
        self.words
    }
}

struct ShellWord<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    mode: LexMode,
    /// The current raw-escapes setting (patterns of `${…#…}` and `${…/…}` keep them).
    raw_escapes: bool,
    env: &'a dyn Fn(&str) -> Option<String>,
}

const MISSING_BRACE: &str = "syntax error: missing '}'";

impl ShellWord<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let ch = self.peek();
        if ch.is_some() {
            self.pos += 1;
        }
        ch
    }

    /// Processes up to `stop` (consumed) or the end of the input when `stop` is `None`.
    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), String> {
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let result = self.stop_on(stop);
        self.raw_escapes = saved;
        result
    }

    fn stop_on(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            match ch {
                '$' => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                    words.add_string(&value);
                }
                '<' => {
                    let value = self.process_possible_heredoc();
                    result.push_str(&value);
                    words.add_raw_string(&value);
                }
                '\'' if !self.mode.skip_quotes => {
                    let value = self.process_single_quote()?;
                    result.push_str(&value);
                    words.add_raw_string(&value);
                }
                '"' if !self.mode.skip_quotes => {
                    let value = self.process_double_quote()?;
                    result.push_str(&value);
                    words.add_raw_string(&value);
                }
                _ => {
                    self.next();
                    if ch == self.escape {
                        if self.raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        // The escape character escapes anything, and is dropped at the end.
                        let Some(escaped) = self.next() else { break };
                        words.add_raw_char(escaped);
                        result.push(escaped);
                    } else {
                        words.add_char(ch);
                        result.push(ch);
                    }
                }
            }
        }
        if let Some(stop) = stop {
            return Err(format!(
                "unexpected end of statement while looking for matching {stop}"
            ));
        }
        Ok((result, words.finish()))
    }

    fn process_single_quote(&mut self) -> Result<String, String> {
        let mut result = String::new();
        let open = self.next();
        if self.mode.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    )
                }
                Some('\'') => {
                    if self.mode.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(ch) => result.push(ch),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, String> {
        let mut result = String::new();
        let open = self.next();
        if self.mode.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    )
                }
                Some('"') => {
                    self.next();
                    if self.mode.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                }
                Some(_) => {
                    let mut ch = self.next().unwrap_or_default();
                    if ch == self.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            // An escape at the end: the missing quote is reported next.
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.escape => {
                                ch = c;
                                self.next();
                            }
                            // Anything else keeps the escape character as it is.
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn process_possible_heredoc(&mut self) -> String {
        self.next();
        if self.peek() != Some('<') {
            return "<".into();
        }
        self.next();
        // `<< EOF`: the blanks belong to the same word.
        let mut result = String::from("<<");
        while let Some(ch @ ('\t' | '\r' | ' ')) = self.peek() {
            result.push(ch);
            self.next();
        }
        result
    }

    fn get_env(&self, name: &str) -> Option<String> {
        (self.env)(name)
    }

    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_ascii_digit() {
                // Positional parameters: all the digits.
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && is_special_param(ch) {
                self.next();
                return ch.to_string();
            }
            if !ch.is_alphanumeric() && ch != '_' {
                break;
            }
            name.push(ch);
            self.next();
        }
        name
    }

    fn process_dollar(&mut self) -> Result<String, String> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.mode.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.next();
        match self.peek() {
            None => return Err(MISSING_BRACE.into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            Some(_) => {}
        }
        let name = self.process_name();
        let Some(first) = self.next() else {
            return Err(MISSING_BRACE.into());
        };
        match first {
            '}' => Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.mode.skip_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => self.process_modifier(name, first),
            '/' => self.process_replace(name),
            other => Err(format!("unsupported modifier ({other}) in substitution")),
        }
    }

    /// `${name[:]op word}` after the first modifier character.
    fn process_modifier(&mut self, name: String, first: char) -> Result<String, String> {
        let mut modifier = first.to_string();
        let null_is_unset = first == ':';
        let op = if null_is_unset {
            let Some(op) = self.next() else {
                return Err(MISSING_BRACE.into());
            };
            modifier.push(op);
            op
        } else {
            first
        };
        let pattern = op == '#' || op == '%';
        if null_is_unset && pattern {
            return Err(format!("unsupported modifier ({modifier}) in substitution"));
        }
        let word = match self.process_stop_on(Some('}'), pattern) {
            Ok((word, _)) => word,
            Err(_) if self.peek().is_none() => return Err(MISSING_BRACE.into()),
            Err(e) => return Err(e),
        };
        let value = self.get_env(&name);
        if value.is_none() && self.mode.skip_unset {
            return Ok(format!("${{{name}{modifier}{word}}}"));
        }
        let empty = value.as_deref().is_none_or(str::is_empty);
        let unset_or_null = value.is_none() || (null_is_unset && empty);
        match op {
            '-' => Ok(if unset_or_null {
                word
            } else {
                value.unwrap_or_default()
            }),
            '+' => Ok(if unset_or_null { String::new() } else { word }),
            '?' => {
                let Some(value) = value else {
                    let message = if word.is_empty() {
                        "is not allowed to be unset"
                    } else {
                        &word
                    };
                    return Err(format!("{name}: {message}"));
                };
                if null_is_unset && value.is_empty() {
                    let message = if word.is_empty() {
                        "is not allowed to be empty"
                    } else {
                        &word
                    };
                    return Err(format!("{name}: {message}"));
                }
                Ok(value)
            }
            '#' | '%' => {
                let value = value.unwrap_or_default();
                let (greedy, pat) = match word.strip_prefix(op) {
                    Some(rest) => (true, rest),
                    None => (false, word.as_str()),
                };
                let glob = Glob::compile(pat)?;
                let chars: Vec<char> = value.chars().collect();
                Ok(if op == '#' {
                    glob.trim_prefix(&chars, greedy)
                } else {
                    glob.trim_suffix(&chars, greedy)
                })
            }
            _ => Err(format!("unsupported modifier ({modifier}) in substitution")),
        }
    }

    /// `${name/pattern/replacement}` and `${name//pattern/replacement}`.
    fn process_replace(&mut self, name: String) -> Result<String, String> {
        let all = self.peek() == Some('/');
        if all {
            self.next();
        }
        let pattern = match self.process_stop_on(Some('/'), true) {
            Ok((word, _)) => word,
            Err(_) if self.peek().is_none() => {
                return Err("syntax error: missing '/' in ${}".into())
            }
            Err(e) => return Err(e),
        };
        let replacement = match self.process_stop_on(Some('}'), true) {
            Ok((word, _)) => word,
            Err(_) if self.peek().is_none() => return Err(MISSING_BRACE.into()),
            Err(e) => return Err(e),
        };
        let Some(value) = self.get_env(&name) else {
            if self.mode.skip_unset {
                return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
            }
            return Ok(String::new());
        };
        let glob = Glob::compile(&pattern)?;
        let chars: Vec<char> = value.chars().collect();
        Ok(glob.replace(&chars, &replacement, all))
    }
}

/// POSIX special parameters (`$@`, `$*`, `$#`, `$?`, `$-`, `$$`, `$!`, `$0`).
fn is_special_param(ch: char) -> bool {
    matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0')
}

/// A shell pattern of `${…#…}`, `${…%…}` and `${…/…/…}`: `*`, `?`, literal characters,
/// and `\` escaping `*`, `?`, `\` (and `}` or `/`, whose escape is dropped).
#[derive(Debug)]
struct Glob(Vec<GlobToken>);

#[derive(Debug, Clone, Copy, PartialEq)]
enum GlobToken {
    Literal(char),
    Any,
    Star,
}

impl Glob {
    fn compile(pattern: &str) -> Result<Glob, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '*' => tokens.push(GlobToken::Star),
                '?' => tokens.push(GlobToken::Any),
                '\\' => match chars.get(i + 1) {
                    // Escaped so as not to end the `${}`; the next one is a literal.
                    Some('}' | '/') => {}
                    Some(&c @ ('*' | '?' | '\\')) => {
                        tokens.push(GlobToken::Literal(c));
                        i += 1;
                    }
                    other => {
                        let shown = other.map(|c| c.to_string()).unwrap_or_default();
                        return Err(format!("invalid pattern ({pattern}) in substitution: invalid escape '\\{shown}'"));
                    }
                },
                c => tokens.push(GlobToken::Literal(c)),
            }
            i += 1;
        }
        Ok(Glob(tokens))
    }

    /// Whether the whole of `s` matches.
    fn matches(&self, s: &[char]) -> bool {
        let p = &self.0;
        let (mut pi, mut si) = (0, 0);
        let mut backtrack: Option<(usize, usize)> = None;
        while si < s.len() {
            match p.get(pi) {
                Some(GlobToken::Star) => {
                    backtrack = Some((pi, si));
                    pi += 1;
                    continue;
                }
                Some(GlobToken::Any) => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                Some(GlobToken::Literal(c)) if *c == s[si] => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                _ => {}
            }
            match backtrack {
                Some((star, start)) => {
                    pi = star + 1;
                    si = start + 1;
                    backtrack = Some((star, start + 1));
                }
                None => return false,
            }
        }
        p[pi..].iter().all(|t| *t == GlobToken::Star)
    }

    /// `${v#pat}` (shortest) and `${v##pat}` (longest, `greedy`).
    fn trim_prefix(&self, value: &[char], greedy: bool) -> String {
        let n = value.len();
        let ends: Box<dyn Iterator<Item = usize>> = if greedy {
            Box::new((0..=n).rev())
        } else {
            Box::new(0..=n)
        };
        for end in ends {
            if self.matches(&value[..end]) {
                return value[end..].iter().collect();
            }
        }
        value.iter().collect()
    }

    /// `${v%pat}` (shortest) and `${v%%pat}` (longest, `greedy`).
    fn trim_suffix(&self, value: &[char], greedy: bool) -> String {
        let n = value.len();
        let starts: Box<dyn Iterator<Item = usize>> = if greedy {
            Box::new(0..=n)
        } else {
            Box::new((0..=n).rev())
        };
        for start in starts {
            if self.matches(&value[start..]) {
                return value[..start].iter().collect();
            }
        }
        value.iter().collect()
    }

    /// The leftmost match at or after `from`, longest at its start.
    fn find(&self, value: &[char], from: usize) -> Option<(usize, usize)> {
        (from..=value.len()).find_map(|start| {
            (start..=value.len())
                .rev()
                .find(|&end| self.matches(&value[start..end]))
                .map(|end| (start, end))
        })
    }

    /// `${v/pat/repl}` (first match) and `${v//pat/repl}` (every match, as Go's
    /// `Regexp.ReplaceAllString` walks them).
    fn replace(&self, value: &[char], replacement: &str, all: bool) -> String {
        if !all {
            return match self.find(value, 0) {
                Some((start, end)) => {
                    let mut out: String = value[..start].iter().collect();
                    out.push_str(replacement);
                    out.extend(&value[end..]);
                    out
                }
                None => value.iter().collect(),
            };
        }
        let mut out = String::new();
        let mut last_end = 0;
        let mut search = 0;
        while search <= value.len() {
            let Some((start, end)) = self.find(value, search) else {
                break;
            };
            out.extend(&value[last_end..start]);
            // No second replacement for an empty match right after a match.
            if end > last_end || start == 0 {
                out.push_str(replacement);
            }
            last_end = end;
            search = if search + 1 > end { search + 1 } else { end };
        }
        out.extend(&value[last_end.min(value.len())..]);
        out
    }
}

#[cfg(test)]
mod tests;
