//! `.dockerignore`: Docker's pattern rules (moby `patternmatcher`), `!` exceptions.
//!
//! The file is read as moby's `ignorefile.ReadAll` does: a UTF-8 BOM is dropped, lines that
//! start with `#` are comments, every other line is trimmed, blank lines are skipped, a leading
//! `!` makes the rule an exception, and the pattern is cleaned like Go's `filepath.Clean` with
//! one leading `/` removed (`/a/./b/` is `a/b`).
//!
//! Each pattern then behaves like patternmatcher's: `*` is any run of characters but `/`, `?`
//! is one character but `/`, `[...]` a class (`[^...]` negated, ranges, `\` escapes), `\x` is
//! `x`, and `**` matches any number of directories (`**/x`, `a/**/b`, `a/**`). A pattern
//! matches a path when it matches the path itself or one of its parent directories, so an
//! excluded directory excludes everything under it. The last rule that matches decides:
//! exceptions re-include what earlier rules excluded. The quirks of patternmatcher's
//! pattern kinds are kept (`**foo` is any path ending in `foo`, `foo**` any path starting
//! with `foo`).
//!
//! Patterns are checked for syntax as Go's `filepath.Match` checks them (an unterminated `[`,
//! an empty class, a `-` or `]` out of place, a trailing `\`): a bad one is an error, where
//! Docker would fail only once a path reached it.

use std::fmt;

/// The rules of one `.dockerignore` file.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    rules: Vec<Rule>,
}

/// One rule: a cleaned pattern, whether it is an exception, and its compiled form.
#[derive(Debug, Clone)]
struct Rule {
    text: String,
    exception: bool,
    pattern: Pattern,
    /// The pattern split at `/`, each part compiled on its own (`None` for a part holding
    /// `**`, which can span any number of directories); for [`Matcher::may_include_under`].
    parts: Vec<Option<Pattern>>,
}

/// How a compiled pattern matches (patternmatcher's match types).
#[derive(Debug, Clone)]
enum Pattern {
    /// The path is the pattern.
    Exact(String),
    /// `foo**`, `foo/**`: the path starts with the text before the `**`.
    Prefix(String),
    /// `**foo`, `**/foo`: the path ends with the text after the `**` (and `**/foo` also
    /// matches `foo` itself).
    Suffix(String),
    /// Anything else: a glob matched over characters.
    Glob(Vec<Tok>),
}

/// One element of a glob (what patternmatcher's regular expression would hold).
#[derive(Debug, Clone)]
enum Tok {
    /// One character.
    Lit(char),
    /// `*`: `[^/]*`.
    Star,
    /// `?`: `[^/]`.
    One,
    /// `[...]`: one character in (or, negated, not in) the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// `**` (and `**/`) before more pattern: `(.*/)?`, any number of whole directories.
    Dirs,
    /// `**` at the end after a glob: `.*`.
    Rest,
}

/// A pattern that can't be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    /// The pattern as written (after cleaning).
    pub pattern: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "syntax error in pattern {:?}: {}",
            self.pattern, self.reason
        )
    }
}

impl std::error::Error for PatternError {}

/// Which rules match a directory or one of its parents: carried down a walk so that each
/// entry is matched against the rules once ([`Matcher::matches_in`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchState {
    hits: Vec<bool>,
    excluded: bool,
}

impl MatchState {
    /// Whether the path this state was computed for is excluded.
    pub fn excluded(&self) -> bool {
        self.excluded
    }
}

impl Matcher {
    /// Parses the file's text (comments, blank lines, leading `/` and `./` cleaned,
    /// `!` exceptions).
    pub fn parse(text: &str) -> Result<Matcher, String> {
        let mut m = Matcher::default();
        for (n, line) in text.lines().enumerate() {
            let line = if n == 0 {
                line.strip_prefix('\u{feff}').unwrap_or(line)
            } else {
                line
            };
            if line.starts_with('#') {
                continue;
            }
            m.push(line).map_err(|e| format!("line {}: {e}", n + 1))?;
        }
        Ok(m)
    }

    /// Builds a matcher from patterns as `.dockerignore` lines would give them.
    pub fn from_patterns<S: AsRef<str>>(patterns: &[S]) -> Result<Matcher, PatternError> {
        let mut m = Matcher::default();
        for p in patterns {
            m.push(p.as_ref())?;
        }
        Ok(m)
    }

    /// Appends one rule, written as a `.dockerignore` line (`!` for an exception); blank
    /// lines add nothing.
    pub fn push(&mut self, line: &str) -> Result<(), PatternError> {
        let line = line.trim();
        if line.is_empty() {
            return Ok(());
        }
        let (exception, rest) = match line.strip_prefix('!') {
            Some(r) => (true, r.trim()),
            None => (false, line),
        };
        if exception && rest.is_empty() {
            return Err(PatternError {
                pattern: "!".into(),
                reason: "illegal exclusion pattern",
            });
        }
        let mut text = clean(rest);
        if text.len() > 1 && text.starts_with('/') {
            text.remove(0);
        }
        validate(&text)?;
        let pattern = compile(&text);
        let parts = text
            .split('/')
            .map(|part| (!part.contains("**")).then(|| compile(part)))
            .collect();
        self.rules.push(Rule {
            text,
            exception,
            pattern,
            parts,
        });
        Ok(())
    }

    /// Appends the exception `!path`, so that `path` (and what is under it) is kept whatever
    /// the earlier rules say; as docker does for the Dockerfile and `.dockerignore`.
    pub fn add_exception(&mut self, path: &str) -> Result<(), PatternError> {
        self.push(&format!("!{path}"))
    }

    /// The rules, as cleaned patterns with their `!`.
    pub fn patterns(&self) -> Vec<String> {
        self.rules
            .iter()
            .map(|r| {
                if r.exception {
                    format!("!{}", r.text)
                } else {
                    r.text.clone()
                }
            })
            .collect()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether some rule is an exception.
    pub fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|r| r.exception)
    }

    /// Whether `path` (relative to the context, `/`-separated, no leading `./`) is
    /// excluded. A directory's own exclusion does not decide its children's when an
    /// exception could re-include them: see [`Matcher::may_include_under`].
    pub fn excludes(&self, path: &str) -> bool {
        let path = path.trim_start_matches("./").trim_end_matches('/');
        if path.is_empty() || path == "." {
            return false;
        }
        let parents: Vec<&str> = path
            .match_indices('/')
            .map(|(i, _)| &path[..i])
            .filter(|p| !p.is_empty())
            .collect();
        let mut matched = false;
        for r in &self.rules {
            // As patternmatcher: a rule that can't change the outcome isn't evaluated.
            if r.exception != matched {
                continue;
            }
            if r.pattern.matches(path) || parents.iter().any(|p| r.pattern.matches(p)) {
                matched = !r.exception;
            }
        }
        matched
    }

    /// Matches `path` during a walk: `parent` is the state of its directory (or `None` to
    /// compute its parents' matches here). Same answer as [`Matcher::excludes`], with each
    /// rule tried once per entry.
    pub fn matches_in(&self, path: &str, parent: Option<&MatchState>) -> MatchState {
        let path = path.trim_start_matches("./").trim_end_matches('/');
        if path.is_empty() || path == "." {
            return MatchState {
                hits: vec![false; self.rules.len()],
                excluded: false,
            };
        }
        let owned;
        let parent = match parent {
            Some(p) if p.hits.len() == self.rules.len() => Some(p),
            _ => match path.rfind('/') {
                Some(i) => {
                    owned = self.matches_in(&path[..i], None);
                    Some(&owned)
                }
                None => None,
            },
        };
        let mut hits = Vec::with_capacity(self.rules.len());
        let mut excluded = false;
        for (i, r) in self.rules.iter().enumerate() {
            let hit = parent.is_some_and(|p| p.hits[i]) || r.pattern.matches(path);
            if hit {
                excluded = !r.exception;
            }
            hits.push(hit);
        }
        MatchState { hits, excluded }
    }

    /// Whether some `!` exception could match a path under the excluded directory
    /// `dir`, so that a walker must still descend into it.
    pub fn may_include_under(&self, dir: &str) -> bool {
        let dir = dir.trim_start_matches("./").trim_end_matches('/');
        if dir.is_empty() || dir == "." {
            return self.has_exceptions();
        }
        let comps: Vec<&str> = dir.split('/').collect();
        self.rules
            .iter()
            .filter(|r| r.exception)
            .any(|r| could_match_below(&r.parts, &comps))
    }
}

/// Whether a pattern (split at `/`) could match something under the directory `dir`: each
/// of its leading parts matches the directory's part in the same place, until a `**` (which
/// can reach anywhere) or until either runs out (a pattern that ends at `dir` or above it
/// matches a parent of everything below).
fn could_match_below(parts: &[Option<Pattern>], dir: &[&str]) -> bool {
    for (i, d) in dir.iter().enumerate() {
        match parts.get(i) {
            None => return true,
            Some(None) => return true,
            Some(Some(p)) if !p.matches(d) => return false,
            Some(Some(_)) => {}
        }
    }
    true
}

/// Go's `filepath.Clean` for `/`-separated paths.
pub fn clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => match out.last() {
                Some(&last) if last != ".." => {
                    out.pop();
                }
                _ if rooted => {}
                _ => out.push(".."),
            },
            c => out.push(c),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Checks a pattern as Go's `filepath.Match` does.
fn validate(p: &str) -> Result<(), PatternError> {
    let err = |reason| PatternError {
        pattern: p.to_string(),
        reason,
    };
    let c: Vec<char> = p.chars().collect();
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '\\' => {
                if i + 1 >= c.len() {
                    return Err(err("trailing backslash"));
                }
                i += 2;
            }
            '[' => {
                i += 1;
                if c.get(i) == Some(&'^') {
                    i += 1;
                }
                let mut nrange = 0;
                loop {
                    if c.get(i) == Some(&']') && nrange > 0 {
                        i += 1;
                        break;
                    }
                    let lo = class_char(&c, &mut i).map_err(err)?;
                    if c.get(i) == Some(&'-') {
                        i += 1;
                        let hi = class_char(&c, &mut i).map_err(err)?;
                        if lo > hi {
                            return Err(err("character class range out of order"));
                        }
                    }
                    nrange += 1;
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// One character of a class (Go's `getEsc`): not a bare `-` or `]`, `\` escapes, and the
/// class must go on after it.
fn class_char(c: &[char], i: &mut usize) -> Result<char, &'static str> {
    let ch = match c.get(*i) {
        None => return Err("unterminated character class"),
        Some('-') => return Err("'-' out of place in character class"),
        Some(']') => return Err("empty character class or ']' out of place"),
        Some('\\') => {
            *i += 1;
            *c.get(*i).ok_or("unterminated character class")?
        }
        Some(&ch) => ch,
    };
    *i += 1;
    if *i >= c.len() {
        return Err("unterminated character class");
    }
    Ok(ch)
}

/// Go's `filepath.Match(pattern, name)` for one path component (a COPY source's glob):
/// `*` and `?` never cross `/`, and `**` is two stars, not patternmatcher's "any depth".
pub fn match_name(pattern: &str, name: &str) -> Result<bool, PatternError> {
    validate(pattern)?;
    Ok(compile_with(pattern, false).matches(name))
}

/// Compiles a validated pattern (patternmatcher's `compile`).
fn compile(p: &str) -> Pattern {
    compile_with(p, true)
}

/// `double_star`: `**` matches any number of directories (patternmatcher's rule).
fn compile_with(p: &str, double_star: bool) -> Pattern {
    #[derive(PartialEq)]
    enum Kind {
        Exact,
        Prefix,
        Suffix,
        Glob,
    }
    let c: Vec<char> = p.chars().collect();
    let mut toks = Vec::new();
    let mut kind = Kind::Exact;
    let mut i = 0;
    let mut first = true;
    while i < c.len() {
        let ch = c[i];
        i += 1;
        match ch {
            '*' if double_star && c.get(i) == Some(&'*') => {
                i += 1;
                if c.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= c.len() {
                    if kind == Kind::Exact {
                        kind = Kind::Prefix;
                    } else {
                        toks.push(Tok::Rest);
                        kind = Kind::Glob;
                    }
                } else {
                    toks.push(Tok::Dirs);
                    kind = Kind::Glob;
                }
                if first {
                    kind = Kind::Suffix;
                }
            }
            '*' => {
                toks.push(Tok::Star);
                kind = Kind::Glob;
            }
            '?' => {
                toks.push(Tok::One);
                kind = Kind::Glob;
            }
            '\\' => {
                if let Some(&next) = c.get(i) {
                    i += 1;
                    toks.push(Tok::Lit(next));
                    kind = Kind::Glob;
                } else {
                    toks.push(Tok::Lit('\\'));
                }
            }
            '[' => {
                let mut negated = false;
                if c.get(i) == Some(&'^') {
                    negated = true;
                    i += 1;
                }
                let mut ranges = Vec::new();
                while i < c.len() && (c[i] != ']' || ranges.is_empty()) {
                    let lo = take_class_char(&c, &mut i);
                    let hi = if c.get(i) == Some(&'-') && c.get(i + 1).is_some_and(|&n| n != ']') {
                        i += 1;
                        take_class_char(&c, &mut i)
                    } else {
                        lo
                    };
                    ranges.push((lo, hi));
                }
                i += 1; // the closing ']'
                toks.push(Tok::Class { negated, ranges });
                kind = Kind::Glob;
            }
            ']' => {
                toks.push(Tok::Lit(']'));
                kind = Kind::Glob;
            }
            ch => toks.push(Tok::Lit(ch)),
        }
        first = false;
    }
    match kind {
        Kind::Exact => Pattern::Exact(p.to_string()),
        Kind::Prefix => Pattern::Prefix(p[..p.len() - 2].to_string()),
        Kind::Suffix => Pattern::Suffix(p[2..].to_string()),
        Kind::Glob => Pattern::Glob(toks),
    }
}

fn take_class_char(c: &[char], i: &mut usize) -> char {
    if c[*i] == '\\' && *i + 1 < c.len() {
        *i += 1;
    }
    let ch = c[*i];
    *i += 1;
    ch
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        match self {
            Pattern::Exact(s) => path == s,
            Pattern::Prefix(s) => path.starts_with(s.as_str()),
            Pattern::Suffix(s) => {
                path.ends_with(s.as_str()) || s.strip_prefix('/').is_some_and(|rest| path == rest)
            }
            Pattern::Glob(toks) => glob_match(toks, path),
        }
    }
}

/// Matches a glob against the whole of `path`: the set of positions reachable after each
/// token (no backtracking blow-up).
fn glob_match(toks: &[Tok], path: &str) -> bool {
    let p: Vec<char> = path.chars().collect();
    let n = p.len();
    let mut cur = vec![false; n + 1];
    cur[0] = true;
    let mut next = vec![false; n + 1];
    for t in toks {
        next.iter_mut().for_each(|x| *x = false);
        match t {
            Tok::Lit(c) => {
                for j in 0..n {
                    next[j + 1] = cur[j] && p[j] == *c;
                }
            }
            Tok::One => {
                for j in 0..n {
                    next[j + 1] = cur[j] && p[j] != '/';
                }
            }
            Tok::Class { negated, ranges } => {
                for j in 0..n {
                    let inside = ranges.iter().any(|&(lo, hi)| lo <= p[j] && p[j] <= hi);
                    next[j + 1] = cur[j] && inside != *negated;
                }
            }
            Tok::Star => {
                next[0] = cur[0];
                for j in 1..=n {
                    next[j] = cur[j] || (next[j - 1] && p[j - 1] != '/');
                }
            }
            Tok::Rest => {
                // Go's `.` doesn't match a newline.
                next[0] = cur[0];
                for j in 1..=n {
                    next[j] = cur[j] || (next[j - 1] && p[j - 1] != '\n');
                }
            }
            Tok::Dirs => {
                // Nothing, or anything (no newline) that ends with a `/`.
                let mut alive = false;
                for j in 0..n {
                    next[j] |= cur[j];
                    alive |= cur[j];
                    if alive && p[j] == '/' {
                        next[j + 1] = true;
                    }
                    if p[j] == '\n' {
                        alive = false;
                    }
                }
                next[n] |= cur[n];
            }
        }
        std::mem::swap(&mut cur, &mut next);
        if !cur.iter().any(|&x| x) {
            return false;
        }
    }
    cur[n]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// patternmatcher's `MatchesOrParentMatches` for one list of patterns.
    fn m(patterns: &[&str], path: &str) -> bool {
        let pm = Matcher::from_patterns(patterns).unwrap();
        let a = pm.excludes(path);
        // The walk's incremental form agrees.
        let mut state: Option<MatchState> = None;
        let mut prefix = String::new();
        for part in path.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            state = Some(pm.matches_in(&prefix, state.as_ref()));
        }
        assert_eq!(
            state.unwrap().excluded(),
            a,
            "matches_in disagrees: {patterns:?} {path}"
        );
        assert_eq!(pm.matches_in(path, None).excluded(), a);
        a
    }

    #[test]
    fn patternmatcher_cases() {
        // (pattern, path, matches): moby/patternmatcher's TestMatches table.
        let cases: &[(&str, &str, bool)] = &[
            ("**", "file", true),
            ("**", "file/", true),
            ("**/", "file", true),
            ("**/", "file/", true),
            ("**", "dir/file", true),
            ("**/", "dir/file", true),
            ("**", "dir/file/", true),
            ("**/", "dir/file/", true),
            ("**/**", "dir/file", true),
            ("**/**", "dir/file/", true),
            ("dir/**", "dir/file", true),
            ("dir/**", "dir/file/", true),
            ("dir/**", "dir/dir2/file", true),
            ("dir/**", "dir/dir2/file/", true),
            ("**/dir", "dir", true),
            ("**/dir", "dir/file", true),
            ("**/dir2/*", "dir/dir2/file", true),
            ("**/dir2/*", "dir/dir2/file/", true),
            ("**/dir2/**", "dir/dir2/dir3/file", true),
            ("**/dir2/**", "dir/dir2/dir3/file/", true),
            ("**file", "file", true),
            ("**file", "dir/file", true),
            ("**/file", "dir/file", true),
            ("**file", "dir/dir/file", true),
            ("**/file", "dir/dir/file", true),
            ("**/file*", "dir/dir/file", true),
            ("**/file*", "dir/dir/file.txt", true),
            ("**/file*txt", "dir/dir/file.txt", true),
            ("**/file*.txt", "dir/dir/file.txt", true),
            ("**/file*.txt*", "dir/dir/file.txt", true),
            ("**/**/*.txt", "dir/dir/file.txt", true),
            ("**/**/*.txt2", "dir/dir/file.txt", false),
            ("**/*.txt", "file.txt", true),
            ("**/**/*.txt", "file.txt", true),
            ("a**/*.txt", "a/file.txt", true),
            ("a**/*.txt", "a/dir/file.txt", true),
            ("a**/*.txt", "a/dir/dir/file.txt", true),
            ("a/*.txt", "a/dir/file.txt", false),
            ("a/*.txt", "a/file.txt", true),
            ("a/*.txt**", "a/file.txt", true),
            ("a[b-d]e", "ae", false),
            ("a[b-d]e", "ace", true),
            ("a[b-d]e", "aae", false),
            ("a[^b-d]e", "aze", true),
            (".*", ".foo", true),
            (".*", "foo", false),
            ("abc.def", "abcdef", false),
            ("abc.def", "abc.def", true),
            ("abc.def", "abcZdef", false),
            ("abc?def", "abcZdef", true),
            ("abc?def", "abcdef", false),
            ("a\\\\", "a\\", true),
            ("**/foo/bar", "foo/bar", true),
            ("**/foo/bar", "dir/foo/bar", true),
            ("**/foo/bar", "dir/dir2/foo/bar", true),
            ("abc/**", "abc", false),
            ("abc/**", "abc/def", true),
            ("abc/**", "abc/def/ghi", true),
            ("**/.foo", ".foo", true),
            ("**/.foo", "bar.foo", false),
            ("a(b)c/def", "a(b)c/def", true),
            ("a(b)c/def", "a(b)c/xyz", false),
            ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
            (
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                true,
            ),
            (
                "dist/*.whl",
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                true,
            ),
            ("a\\*b", "a*b", true),
        ];
        for &(pat, path, want) in cases {
            let pm = Matcher::from_patterns(&[pat]).unwrap();
            assert_eq!(pm.excludes(path), want, "pattern {pat:?} path {path:?}");
        }
    }

    #[test]
    fn filepath_match_cases() {
        // Go's filepath.Match table as patternmatcher runs it (whole path, parents too).
        let cases: &[(&str, &str, bool)] = &[
            ("abc", "abc", true),
            ("*", "abc", true),
            ("*c", "abc", true),
            ("a*", "a", true),
            ("a*", "abc", true),
            ("a*", "ab/c", true),
            ("a*/b", "abc/b", true),
            ("a*/b", "a/c/b", false),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", false),
            ("a*b?c*x", "abxbbxdbxebxczzx", true),
            ("a*b?c*x", "abxbbxdbxebxczzy", false),
            ("ab[c]", "abc", true),
            ("ab[b-d]", "abc", true),
            ("ab[e-g]", "abc", false),
            ("ab[^c]", "abc", false),
            ("ab[^b-d]", "abc", false),
            ("ab[^e-g]", "abc", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "ab", false),
            ("a?b", "a☺b", true),
            ("a[^a]b", "a☺b", true),
            ("a???b", "a☺b", false),
            ("a[^a][^a][^a]b", "a☺b", false),
            ("[a-ζ]*", "α", true),
            ("*[a-ζ]", "A", false),
            ("a?b", "a/b", false),
            ("a*b", "a/b", false),
            ("[\\]a]", "]", true),
            ("[\\-]", "-", true),
            ("[x\\-]", "x", true),
            ("[x\\-]", "-", true),
            ("[x\\-]", "z", false),
            ("[\\-x]", "x", true),
            ("[\\-x]", "-", true),
            ("[\\-x]", "a", false),
            ("*x", "xxx", true),
        ];
        for &(pat, path, want) in cases {
            assert_eq!(m(&[pat], path), want, "pattern {pat:?} path {path:?}");
        }
    }

    #[test]
    fn bad_patterns() {
        for pat in [
            "[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[", "[^", "[^bc", "a[", "[z-a]",
            "foo\\",
        ] {
            let e = Matcher::from_patterns(&[pat]).unwrap_err();
            assert!(e.to_string().starts_with("syntax error in pattern"), "{e}");
        }
        let e = Matcher::parse("ok\n[abc\n").unwrap_err();
        assert_eq!(
            e,
            "line 2: syntax error in pattern \"[abc\": unterminated character class"
        );
        let e = Matcher::parse("!\n").unwrap_err();
        assert!(e.contains("illegal exclusion pattern"), "{e}");
        assert!(Matcher::parse("! ").is_err());
    }

    #[test]
    fn several_rules() {
        // patternmatcher's multi-pattern cases and its single-function tests.
        assert!(!m(&["**", "!util/docker/web"], "util/docker/web/foo"));
        assert!(m(
            &["**", "!util/docker/web", "util/docker/web/foo"],
            "util/docker/web/foo"
        ));
        assert!(!m(
            &[
                "**",
                "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl"
            ],
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl"
        ));
        assert!(!m(
            &["**", "!dist/*.whl"],
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl"
        ));
        assert!(m(&["*"], "fileutils.go"));
        assert!(m(&["*.go"], "fileutils.go"));
        assert!(m(&["!fileutils.go", "*.go"], "fileutils.go"));
        assert!(!m(&["docs", "!docs/README.md"], "docs/README.md"));
        assert!(!m(&["docs/", "!docs/README.md"], "docs/README.md"));
        assert!(!m(&["docs/*", "!docs/README.md"], "docs/README.md"));
        assert!(m(&["docs/*", "!docs/README.md"], "docs/other.md"));
        assert!(!m(&["*.go", "!fileutils.go"], "fileutils.go"));
        assert!(!m(&[], "any/path/there"));
        // A directory excludes what is under it; a pattern doesn't reach its siblings.
        assert!(m(&["node_modules"], "node_modules/a/b/c.js"));
        assert!(!m(&["node_modules"], "src/node_modules"));
        assert!(m(&["**/node_modules"], "src/node_modules/x"));
        assert!(m(&["*/temp*"], "somedir/temporary.txt"));
        assert!(m(&["*/*/temp*"], "a/b/temp"));
        assert!(!m(&["*/*/temp*"], "temp"));
        assert!(m(&["temp?"], "temp1"));
        // The last matching rule wins, exceptions re-include, later rules exclude again.
        assert!(m(
            &["*.md", "!README*.md", "README-secret.md"],
            "README-secret.md"
        ));
        assert!(!m(
            &["*.md", "!README*.md", "README-secret.md"],
            "README.md"
        ));
        assert!(m(
            &["*.md", "!README*.md", "README-secret.md"],
            "CHANGES.md"
        ));
        // An exception on a directory re-includes its contents.
        assert!(!m(&["*", "!keep"], "keep/sub/file"));
        assert!(m(&["*", "!keep"], "other/file"));
        // An exception can't beat a later exclusion of a parent directory.
        assert!(m(&["!a/b", "a"], "a/b/c"));
    }

    #[test]
    fn reading_the_file() {
        let text = "\u{feff}# comment\n  \n/test2\n/a/file/here\n./x/../y/\nlastfile\n! /inverted/abs/path\n  # not a comment\n\r\nwin\r\n";
        let pm = Matcher::parse(text).unwrap();
        assert_eq!(
            pm.patterns(),
            vec![
                "test2",
                "a/file/here",
                "y",
                "lastfile",
                "!inverted/abs/path",
                "# not a comment",
                "win"
            ]
        );
        assert!(pm.excludes("test2"));
        assert!(pm.excludes("a/file/here/too"));
        assert!(pm.excludes("y/z"));
        assert!(pm.excludes("win"));
        assert!(!pm.excludes("a/file"));
        assert!(!pm.excludes("."));
        assert!(!pm.excludes(""));
        assert!(pm.has_exceptions());
        assert!(Matcher::parse("").unwrap().is_empty());
        assert!(Matcher::parse("# only\n\n").unwrap().is_empty());
        // A comment marker only counts at the start of the line, as in Docker.
        let pm = Matcher::parse("#foo\n \t#bar").unwrap();
        assert!(!pm.excludes("foo"));
        assert!(pm.excludes("#bar"));
    }

    #[test]
    fn cleaning() {
        assert_eq!(clean(""), ".");
        assert_eq!(clean("a//b/./c/"), "a/b/c");
        assert_eq!(clean("a/../../b"), "../b");
        assert_eq!(clean("/../a"), "/a");
        assert_eq!(clean("/"), "/");
        assert_eq!(clean("./"), ".");
        assert_eq!(clean("a/b/.."), "a");
        // A lone "/" stays (and matches nothing); "/." is "/".
        let pm = Matcher::from_patterns(&["/"]).unwrap();
        assert!(!pm.excludes("a"));
    }

    #[test]
    fn descending_for_exceptions() {
        let pm = Matcher::from_patterns(&["docs", "!docs/README.md"]).unwrap();
        assert!(pm.excludes("docs"));
        assert!(pm.may_include_under("docs"));
        assert!(!pm.excludes("docs/README.md"));
        assert!(!pm.may_include_under("other"));

        let pm = Matcher::from_patterns(&["*", "!*/keep"]).unwrap();
        assert!(pm.may_include_under("foo"));
        assert!(!pm.may_include_under("foo/bar"));
        assert!(!pm.excludes("foo/keep"));

        let pm = Matcher::from_patterns(&["**", "!**/*.go"]).unwrap();
        assert!(pm.may_include_under("a/b/c"));

        let pm = Matcher::from_patterns(&["vendor", "!vendor/a/b/c.txt"]).unwrap();
        assert!(pm.may_include_under("vendor"));
        assert!(pm.may_include_under("vendor/a"));
        assert!(pm.may_include_under("vendor/a/b"));
        assert!(!pm.may_include_under("vendor/x"));
        assert!(!pm.may_include_under("vendorx"));

        // No exceptions: never descend.
        let pm = Matcher::from_patterns(&["a", "b/*"]).unwrap();
        assert!(!pm.may_include_under("a"));
        assert!(!pm.may_include_under("b/c"));

        // Exceptions naming a parent of the directory reach it (and the walk decides).
        let pm = Matcher::from_patterns(&["!a", "a/b"]).unwrap();
        assert!(pm.may_include_under("a/b"));
        assert!(pm.excludes("a/b/c"));

        // The Dockerfile kept inside an ignored directory.
        let mut pm = Matcher::from_patterns(&["build"]).unwrap();
        pm.add_exception("build/Dockerfile").unwrap();
        assert!(pm.excludes("build"));
        assert!(pm.may_include_under("build"));
        assert!(!pm.excludes("build/Dockerfile"));
        assert!(pm.excludes("build/other"));
    }

    #[test]
    fn pattern_kinds() {
        // patternmatcher's compile table: which kind each pattern gets.
        let kind = |p: &str| match compile(p) {
            Pattern::Exact(_) => "exact",
            Pattern::Prefix(_) => "prefix",
            Pattern::Suffix(_) => "suffix",
            Pattern::Glob(_) => "glob",
        };
        for (p, k) in [
            ("*", "glob"),
            ("file*", "glob"),
            ("a*/b", "glob"),
            ("**", "suffix"),
            ("**/**", "glob"),
            ("dir/**", "prefix"),
            ("**/dir", "suffix"),
            ("**/dir2/*", "glob"),
            ("**/dir2/**", "glob"),
            ("**file", "suffix"),
            ("**/file*txt", "glob"),
            ("a[b-d]e", "glob"),
            (".*", "glob"),
            ("abc.def", "exact"),
            ("abc?def", "glob"),
            ("**/foo/bar", "suffix"),
            ("a(b)c/def", "exact"),
        ] {
            assert_eq!(kind(p), k, "{p}");
        }
        // The quirks that follow from the kinds.
        assert!(m(&["foo**"], "foobar/baz"));
        assert!(m(&["**foo"], "xfoo"));
        assert!(m(&["a**b"], "ax/b"));
        assert!(!m(&["a**b"], "axb"));
        assert!(m(&["a/**/b"], "a/b"));
        assert!(m(&["a/**/b"], "a/x/y/b"));
    }

    #[test]
    fn many_stars_stay_fast() {
        let pm = Matcher::from_patterns(&["*a*a*a*a*a*a*a*a*a*b"]).unwrap();
        let path = "a".repeat(4000);
        assert!(!pm.excludes(&path));
    }
}
