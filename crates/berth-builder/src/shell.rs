//! Docker's shell-word lexer (moby `frontend/dockerfile/shell`): quotes, escapes and
//! `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR:+alt}` … in Dockerfile words.

/// A word that cannot be expanded (e.g. an unterminated quote or `${`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ShellError(pub String);

/// The lexer, for one escape character (`\` or the `# escape=` directive's).
#[derive(Debug, Clone, Copy)]
pub struct Lex {
    pub escape: char,
}

impl Lex {
    pub fn new(escape: char) -> Lex {
        Lex { escape }
    }

    /// Expands one word: variables substituted, quotes and escapes removed.
    pub fn process_word(&self, word: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, ShellError> {
        let _ = (word, env);
        todo!("helper: implement")
    }

    /// Expands and splits into words (unquoted whitespace separates), as for EXPOSE
    /// and the legacy `ENV k v` form.
    pub fn process_words(&self, word: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<String>, ShellError> {
        let _ = (word, env);
        todo!("helper: implement")
    }
}
