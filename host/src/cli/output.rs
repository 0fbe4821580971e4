//! How commands print: text for people (tables with aligned columns), or,
//! with the global `--json`, the data as one JSON document for scripts.

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;

static JSON: AtomicBool = AtomicBool::new(false);

/// Set once from `--json` before the command runs.
pub fn set_json(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}

/// Whether `--json` was given.
pub fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// With `--json`, prints `value` (pretty) and answers true: the caller
/// prints no text. Without it, answers false.
pub fn emit_json<T: serde::Serialize + ?Sized>(value: &T) -> bool {
    if json() {
        match serde_json::to_string_pretty(value) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("error: cannot print the answer as JSON: {e}"),
        }
    }
    json()
}

/// A table whose columns are as wide as their widest cell (counted in
/// characters, so names with accents line up). The last column is not
/// padded; columns listed in `right` are right-aligned (numbers).
pub struct Table {
    headers: Vec<String>,
    right: Vec<usize>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            right: Vec::new(),
            rows: Vec::new(),
        }
    }

    /// Right-aligns the columns at these indexes.
    pub fn right(mut self, columns: &[usize]) -> Table {
        self.right = columns.to_vec();
        self
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let columns = self.headers.len();
        let width = |i: usize| {
            std::iter::once(&self.headers)
                .chain(&self.rows)
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..columns).map(width).collect();
        let mut out = String::new();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate().take(columns) {
                let pad = widths[i].saturating_sub(cell.chars().count());
                let last = i + 1 == columns;
                if i > 0 {
                    line.push_str("  ");
                }
                if self.right.contains(&i) {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    if !last {
                        line.push_str(&" ".repeat(pad));
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    pub fn print(&self) {
        print!("{}", self.render());
    }
}

/// A JSON value as a table cell: strings bare, null as `-`.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Awaits `work` (an upload the server compiles: seconds for a JavaScript
/// or Python component), saying on stderr what it waits for once it takes
/// more than a moment, and how long so far every few seconds. Stdout stays
/// the result alone, for scripts.
pub async fn with_progress<T>(
    what: &str,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    const FIRST: std::time::Duration = std::time::Duration::from_secs(2);
    const EVERY: std::time::Duration = std::time::Duration::from_secs(5);
    let started = std::time::Instant::now();
    tokio::pin!(work);
    let mut next = FIRST;
    loop {
        tokio::select! {
            done = &mut work => {
                if started.elapsed() >= FIRST {
                    eprintln!("{what}: done in {:.1} s", started.elapsed().as_secs_f64());
                }
                return done;
            }
            () = tokio::time::sleep(next.saturating_sub(started.elapsed())) => {
                if next == FIRST {
                    eprintln!(
                        "{what}: the server is compiling it (a JavaScript or Python component takes 10-20 s the first time; identical bytes are compiled once)…"
                    );
                } else {
                    eprintln!("{what}: still compiling, {} s", started.elapsed().as_secs());
                }
                next += EVERY;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_fit_their_widest_cell() {
        let mut table = Table::new(&["NAME", "COUNT", "NOTE"]).right(&[1]);
        table.row(vec![
            "a-very-long-agent-name".into(),
            "7".into(),
            "x".into(),
        ]);
        table.row(vec!["é".into(), "1234".into(), "".into()]);
        let text = table.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "NAME                    COUNT  NOTE");
        assert_eq!(lines[1], "a-very-long-agent-name      7  x");
        assert_eq!(lines[2], "é                        1234");
    }
}
