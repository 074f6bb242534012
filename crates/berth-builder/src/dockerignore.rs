//! `.dockerignore`: Docker's pattern rules (moby `patternmatcher`), `!` exceptions.

/// The rules of one `.dockerignore` file.
#[derive(Debug, Clone, Default)]
pub struct Matcher {}

impl Matcher {
    /// Parses the file's text (comments, blank lines, leading `/` and `./` cleaned,
    /// `!` exceptions).
    pub fn parse(text: &str) -> Result<Matcher, String> {
        let _ = text;
        todo!("helper: implement")
    }

    /// Whether `path` (relative to the context, `/`-separated, no leading `./`) is
    /// excluded. A directory's own exclusion does not decide its children's when an
    /// exception could re-include them: see [`Matcher::may_include_under`].
    pub fn excludes(&self, path: &str) -> bool {
        let _ = path;
        todo!("helper: implement")
    }

    /// Whether some `!` exception could match a path under the excluded directory
    /// `dir`, so that a walker must still descend into it.
    pub fn may_include_under(&self, dir: &str) -> bool {
        let _ = dir;
        todo!("helper: implement")
    }
}
