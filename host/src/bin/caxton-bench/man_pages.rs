//! A retrieval set built from real text on this machine: the manual pages.
//!
//! Each pair is a page's one-line summary (the part of its NAME line after
//! the dash, e.g. "list directory contents") as the query, and the page's
//! DESCRIPTION onwards, cut to about 1,500 characters, as the one document
//! that answers it. The query never contains the command's name, so a
//! match is found by what the text says, not by an identifier.
//!
//! Nobody tuned anything on these pages: they are whatever the installed
//! packages ship (Debian's man1 and man8 here), read in file-name order.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::bail;
use regex::Regex;

/// The section directories read.
const SECTIONS: [&str; 2] = ["/usr/share/man/man1", "/usr/share/man/man8"];
/// Documents shorter than this after cleaning are not "long".
const MIN_DOC_CHARS: usize = 1_200;
/// Documents are cut at the last word boundary before this.
const MAX_DOC_CHARS: usize = 1_500;

/// One query and the document that answers it.
pub struct Pair {
    /// `ls(1)`: the entity's name.
    pub name: String,
    pub query: String,
    pub document: String,
}

/// Up to `wanted` pairs, spread evenly over every usable page.
pub fn pairs(wanted: usize) -> anyhow::Result<Vec<Pair>> {
    let cleaner = Cleaner::new();
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in SECTIONS {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            // A symlink is another name for a page already read.
            if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    let mut all = Vec::new();
    let mut queries = HashSet::new();
    let mut documents = HashSet::new();
    for file in &files {
        let Some(pair) = read_page(file, &cleaner) else {
            continue;
        };
        // The same summary or text under two names (aliases, versioned
        // copies such as FileCheck-14) has no single right answer.
        if queries.insert(pair.query.to_lowercase()) && documents.insert(pair.document.clone()) {
            all.push(pair);
        }
    }
    if all.len() < wanted.min(100) {
        bail!(
            "only {} usable manual pages under {}; install some (apt-get install manpages) or ask for fewer",
            all.len(),
            SECTIONS.join(", ")
        );
    }
    let step = (all.len() as f64 / wanted as f64).max(1.0);
    let mut chosen = Vec::with_capacity(wanted);
    let mut at = 0.0;
    let mut pages = all.into_iter().enumerate().peekable();
    while chosen.len() < wanted {
        let target = at as usize;
        let Some((i, pair)) = pages.next() else { break };
        if i == target {
            chosen.push(pair);
            at += step;
        }
    }
    Ok(chosen)
}

fn read_page(path: &Path, cleaner: &Cleaner) -> Option<Pair> {
    let file = std::fs::File::open(path).ok()?;
    let mut source = String::new();
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::GzDecoder::new(file)
            .take(1 << 20)
            .read_to_string(&mut source)
            .ok()?;
    } else {
        file.take(1 << 20).read_to_string(&mut source).ok()?;
    }
    let name = page_name(path)?;
    let sections = cleaner.sections(&source);
    let summary = sections.iter().find(|(h, _)| h == "NAME")?.1.clone();
    let query = summary.rsplit(" - ").next()?.trim().to_string();
    if query.split_whitespace().count() < 3
        || query.len() == summary.len()
        || query.to_lowercase().contains("manual page for")
    {
        return None;
    }
    let start = sections.iter().position(|(h, _)| h == "DESCRIPTION")?;
    let mut document = String::new();
    for (heading, text) in &sections[start..] {
        if document.len() >= MAX_DOC_CHARS {
            break;
        }
        if heading != "DESCRIPTION" {
            document.push_str(&heading.to_lowercase());
            document.push_str(": ");
        }
        document.push_str(text);
        document.push(' ');
    }
    let document = cut(document.trim(), MAX_DOC_CHARS);
    if document.len() < MIN_DOC_CHARS {
        return None;
    }
    Some(Pair {
        name,
        query,
        document,
    })
}

/// `ls.1.gz` → `ls(1)`.
fn page_name(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let file = file.strip_suffix(".gz").unwrap_or(file);
    let (name, section) = file.rsplit_once('.')?;
    Some(format!("{name}({section})"))
}

/// `text` cut at the last space before `max` bytes.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let head = &text[..end];
    head.rfind(' ')
        .map_or(head, |space| &head[..space])
        .to_string()
}

/// Turns roff source into plain text, section by section.
struct Cleaner {
    escapes: Regex,
    spaces: Regex,
}

impl Cleaner {
    fn new() -> Self {
        Cleaner {
            // Font changes, sizes, strings, named and bracketed glyphs, and
            // the one-character escapes; handled in `escape`.
            escapes: Regex::new(
                r"\\(f(\[[^\]]*\]|\(..|.)|s[+-]?\d|\*(\(..|\[[^\]]*\]|.)|\(..|\[[^\]]*\]|.)",
            )
            .expect("a valid pattern"),
            spaces: Regex::new(r"\s+").expect("a valid pattern"),
        }
    }

    /// (heading, text) for every `.SH`, headings in upper case.
    fn sections(&self, source: &str) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut in_table = false;
        for line in source.lines() {
            if line.starts_with(".\\\"") || line.starts_with("'\\\"") || line.starts_with("\\\"") {
                continue;
            }
            if line.starts_with(".TS") {
                in_table = true;
                continue;
            }
            if line.starts_with(".TE") {
                in_table = false;
                continue;
            }
            if in_table {
                continue;
            }
            let text = if let Some(control) = line.strip_prefix('.').or(line.strip_prefix('\'')) {
                let (request, args) = control
                    .trim_start()
                    .split_once(char::is_whitespace)
                    .unwrap_or((control.trim(), ""));
                let args = args.trim();
                match request {
                    "SH" => {
                        let heading = self.plain(args).trim_matches('"').trim().to_uppercase();
                        out.push((heading, String::new()));
                        continue;
                    }
                    "SS" | "B" | "I" | "SM" | "SB" | "IP" | "Nm" | "Nd" => args.replace('"', ""),
                    "BR" | "RB" | "BI" | "IB" | "IR" | "RI" => args.replace(['"', ' '], ""),
                    _ => String::new(),
                }
            } else {
                line.to_string()
            };
            if let Some((_, body)) = out.last_mut() {
                body.push_str(&self.plain(&text));
                body.push(' ');
            }
        }
        out.into_iter()
            .map(|(h, body)| (h, self.spaces.replace_all(body.trim(), " ").into_owned()))
            .collect()
    }

    fn plain(&self, text: &str) -> String {
        self.escapes
            .replace_all(text, |c: &regex::Captures<'_>| escape(&c[1]))
            .into_owned()
    }
}

/// What one escape (without its backslash) stands for in plain text.
fn escape(e: &str) -> &'static str {
    match e {
        "-" => "-",
        "e" | "\\" => "\\",
        " " | "~" | "0" => " ",
        "." => ".",
        "'" | "(aq" => "'",
        "(em" | "(en" => "-",
        "(dq" | "(lq" | "(rq" => "\"",
        "(bu" => "*",
        "(co" => "(c)",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_becomes_a_summary_and_plain_text() {
        let source = ".TH LS 1\n.SH NAME\nls \\- list directory contents\n.SH SYNOPSIS\n.B ls\n\
            .SH DESCRIPTION\n.\\\" a comment\n.PP\nList \\fBinformation\\fR about the FILEs.\n\
            .TP\n\\fB\\-a\\fR, \\fB\\-\\-all\\fR\ndo not ignore\n.SH SEE ALSO\n.BR dir (1)\n";
        let sections = Cleaner::new().sections(source);
        assert_eq!(
            sections[0],
            ("NAME".into(), "ls - list directory contents".into())
        );
        assert_eq!(
            sections[2].1,
            "List information about the FILEs. -a, --all do not ignore"
        );
        assert_eq!(sections[3], ("SEE ALSO".into(), "dir(1)".into()));
        assert_eq!(cut("one two three", 9), "one two");
    }
}
