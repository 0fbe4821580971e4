//! What is wrong with a definition file, and where: the one shape every
//! check (syntax, shape, meaning) reports in, and what the API, the CLI and
//! the logs print.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One thing wrong with a definition file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The file as the caller named it (`agents/data-analyzer.md`).
    pub file: String,
    /// 1-based, in the whole file (frontmatter lines included).
    pub line: Option<usize>,
    /// 1-based, in characters.
    pub column: Option<usize>,
    /// The field concerned, dotted for nested ones (`llm.temperature`).
    pub field: Option<String>,
    pub message: String,
    pub fix: String,
}

/// `agents/x.md:3:1: field `tools`: unknown tool `foo` — fix: …`, the
/// `file:line:column` prefix editors and terminals make clickable.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": ")?;
        if let Some(field) = &self.field {
            write!(f, "field `{field}`: ")?;
        }
        write!(f, "{} — fix: {}", self.message, self.fix)
    }
}
