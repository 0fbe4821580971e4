//! Credentials out of everything the server shows: health, traces, error
//! replies, logs and the debug dump.
//!
//! Operators put credentials where they are convenient, not where they are
//! safe: `https://user:pass@host`, `?api_key=…`, `--token …`, `API_KEY=…`
//! in an MCP server's command line. Every place that shows a URL, a command
//! line or an error that may quote one (reqwest's errors carry the URL)
//! passes it through here first, so there is one notion of "secret" to fix
//! when it is wrong.
//!
//! This module imports nothing from the rest of the crate, so every layer
//! may use it. It errs on the side of hiding: a parameter called
//! `design=` loses its value too, which costs a reader a little and leaks
//! nothing.

use std::borrow::Cow;
use std::ops::Range;

/// What a hidden value reads as.
pub const REDACTED: &str = "[redacted]";

/// Parts of names that mark a credential (matched case-insensitively,
/// anywhere in the name: `X-Api-Key`, `access_token`, `PGPASSWORD`,
/// `X-Amz-Signature`, OAuth's `code`, `sessionid`).
const SECRET_WORDS: &[&str] = &[
    "key",
    "token",
    "secret",
    "pass",
    "pwd",
    "auth",
    "sig",
    "credential",
    "session",
    "code",
    "cookie",
    "jwt",
    "bearer",
    "private",
];

/// Whether a parameter, flag, header or variable called `name` holds a
/// credential.
pub fn is_secret_name(name: &str) -> bool {
    // Compared in place, not on a lowercased copy: recordings ask this of
    // every key of every model request.
    let name = name.as_bytes();
    SECRET_WORDS.iter().any(|word| {
        name.windows(word.len())
            .any(|part| part.eq_ignore_ascii_case(word.as_bytes()))
    })
}

/// `url` with its userinfo (`scheme://user:pass@host` →
/// `scheme://[redacted]@host`) and the values of its secret-named query and
/// fragment parameters (`?api_key=…`, `#access_token=…`) hidden. Anything
/// that is not a URL comes back as it was.
pub fn url(url: &str) -> Cow<'_, str> {
    let mut cuts = Vec::new();
    url_cuts(url, 0, &mut cuts);
    apply(url, &cuts)
}

/// `text` with every URL in it (`scheme://…`, up to a space, a control
/// character such as a colour code, a quote, an angle bracket or `)`)
/// passed through [`url`]: for error messages and log lines that quote the
/// URL they failed on.
pub fn text(text: &str) -> Cow<'_, str> {
    let mut cuts = Vec::new();
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(found) = text[from..].find("://") {
        let separator = from + found;
        // The scheme: the ASCII letters, digits and `+-.` just before
        // `://`, starting with a letter. Every byte between `start` and
        // the separator is ASCII, so `start` is a char boundary.
        let mut start = bytes[..separator]
            .iter()
            .rposition(|b| !is_scheme_byte(*b))
            .map_or(0, |i| i + 1);
        while start < separator && !bytes[start].is_ascii_alphabetic() {
            start += 1;
        }
        let after = separator + 3;
        let end = text[after..]
            .find(|c: char| c.is_whitespace() || c.is_control() || "\"'<>`)\\".contains(c))
            .map_or(text.len(), |i| after + i);
        if start < separator {
            url_cuts(&text[start..end], start, &mut cuts);
        }
        from = end.max(after);
    }
    apply(text, &cuts)
}

/// A command line (an MCP server's `args`) with its credentials hidden:
/// the value of a secret-named flag (`--token X`, `--api-key=X`,
/// `-password X`), of a secret-named variable (`API_KEY=X`) or header
/// (`Authorization: Bearer X`), and the credentials of any URL.
///
/// One-letter flags are left alone: `-p` is a port as often as a
/// password, `-k` is curl's "insecure". A secret-named flag without `=`
/// takes the next argument as its value unless that one is itself a flag;
/// a boolean flag such as `--no-auth` therefore hides the argument after
/// it, which is the safe way to be wrong.
pub fn command_line(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut value_is_secret = false;
    for arg in args {
        if std::mem::take(&mut value_is_secret) && !arg.starts_with('-') {
            out.push(REDACTED.to_string());
            continue;
        }
        out.push(match flag_name(arg) {
            Some(flag) => match arg.split_once('=') {
                Some((name, _)) if is_secret_name(flag) => format!("{name}={REDACTED}"),
                Some((name, value)) => format!("{name}={}", text(value)),
                None => {
                    value_is_secret = is_secret_name(flag);
                    arg.clone()
                }
            },
            None => match assignment(arg) {
                Some((name, separator)) if is_secret_name(name) => {
                    format!("{name}{separator}{REDACTED}")
                }
                _ => text(arg).into_owned(),
            },
        });
    }
    out
}

/// The name of `-name` or `--name[=…]`, when it is at least two letters.
fn flag_name(arg: &str) -> Option<&str> {
    let body = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'))?;
    let name = body.split_once('=').map_or(body, |(name, _)| name);
    let is_name = name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    is_name.then_some(name)
}

/// `NAME=value` or `Name: value`: the name and the separator (with the
/// space after a colon, when there is one).
fn assignment(arg: &str) -> Option<(&str, &str)> {
    let at = arg.find(['=', ':'])?;
    let name = &arg[..at];
    let separator = if arg[at..].starts_with(": ") {
        &arg[at..at + 2]
    } else {
        &arg[at..at + 1]
    };
    let is_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        // `https://…` is a URL, not a header called `https`.
        && !arg[at..].starts_with("://");
    is_name.then_some((name, separator))
}

fn is_scheme_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')
}

fn is_scheme(scheme: &str) -> bool {
    scheme.starts_with(|c: char| c.is_ascii_alphabetic()) && scheme.bytes().all(is_scheme_byte)
}

/// Adds to `cuts` (offset by `base`) the byte ranges of `url` to hide.
fn url_cuts(url: &str, base: usize, cuts: &mut Vec<Range<usize>>) {
    let mut path_start = 0;
    if let Some(separator) = url.find("://")
        && is_scheme(&url[..separator])
    {
        let authority = separator + 3;
        let authority_end = url[authority..]
            .find(['/', '?', '#'])
            .map_or(url.len(), |i| authority + i);
        if let Some(at) = url[authority..authority_end].rfind('@')
            && at > 0
        {
            cuts.push(base + authority..base + authority + at);
        }
        path_start = authority_end;
    }
    let fragment = url[path_start..].find('#').map(|i| path_start + i);
    let query = url[path_start..fragment.unwrap_or(url.len())]
        .find('?')
        .map(|i| path_start + i);
    if let Some(query) = query {
        parameter_cuts(url, query + 1..fragment.unwrap_or(url.len()), base, cuts);
    }
    if let Some(fragment) = fragment {
        parameter_cuts(url, fragment + 1..url.len(), base, cuts);
    }
}

/// The values of the secret-named `name=value` pairs of `url[range]`
/// (separated by `&` or `;`).
fn parameter_cuts(url: &str, range: Range<usize>, base: usize, cuts: &mut Vec<Range<usize>>) {
    let mut at = range.start;
    for pair in url[range].split(['&', ';']) {
        if let Some((name, value)) = pair.split_once('=')
            && !value.is_empty()
            && is_secret_name(name)
        {
            let value_start = at + name.len() + 1;
            cuts.push(base + value_start..base + at + pair.len());
        }
        at += pair.len() + 1;
    }
}

/// `text` with each of `cuts` (ascending, disjoint) replaced by
/// [`REDACTED`].
fn apply<'a>(text: &'a str, cuts: &[Range<usize>]) -> Cow<'a, str> {
    if cuts.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut kept = 0;
    for cut in cuts {
        out.push_str(&text[kept..cut.start]);
        out.push_str(REDACTED);
        kept = cut.end;
    }
    out.push_str(&text[kept..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn userinfo_is_hidden() {
        assert_eq!(
            url("https://me:hunter2@example.com/v1"),
            "https://[redacted]@example.com/v1"
        );
        assert_eq!(
            url("postgres://me@db:5432"),
            "postgres://[redacted]@db:5432"
        );
        // The last `@` of the authority ends the userinfo; one in the path
        // is not userinfo.
        assert_eq!(url("http://a@b:c@d@host/x@y"), "http://[redacted]@host/x@y");
        assert_eq!(url("http://@host/"), "http://@host/");
    }

    #[test]
    fn secret_parameters_are_hidden_and_others_kept() {
        assert_eq!(
            url("https://h/mcp?api_key=SECRET&limit=5&Access_Token=T#frag"),
            "https://h/mcp?api_key=[redacted]&limit=5&Access_Token=[redacted]#frag"
        );
        assert_eq!(
            url("https://h/cb#access_token=T;state=s"),
            "https://h/cb#access_token=[redacted];state=s"
        );
        assert_eq!(
            url("https://s3/x?X-Amz-Signature=abc&X-Amz-Credential=c"),
            "https://s3/x?X-Amz-Signature=[redacted]&X-Amz-Credential=[redacted]"
        );
        // A `?` inside the fragment does not start a query.
        assert_eq!(url("https://h/#a?key=1"), "https://h/#a?key=[redacted]");
        assert_eq!(url("/path?password=p"), "/path?password=[redacted]");
        assert_eq!(url("https://h/?key=&key"), "https://h/?key=&key");
    }

    #[test]
    fn nothing_to_hide_borrows() {
        for clean in ["https://example.com/v1?limit=5", "", "plain text", "a@b"] {
            assert!(matches!(url(clean), Cow::Borrowed(_)), "{clean}");
            assert!(matches!(text(clean), Cow::Borrowed(_)), "{clean}");
        }
    }

    #[test]
    fn urls_inside_text_are_found() {
        assert_eq!(
            text("error sending request for url (http://u:p@host:1/?key=x): refused"),
            "error sending request for url (http://[redacted]@host:1/?key=[redacted]): refused"
        );
        assert_eq!(
            text("a \"https://h/?token=t\" and 'ws://u:p@h' and http://ok/"),
            "a \"https://h/?token=[redacted]\" and 'ws://[redacted]@h' and http://ok/"
        );
        assert_eq!(
            text("é→http://u:p@h/ 1http://u:p@h"),
            "é→http://[redacted]@h/ 1http://[redacted]@h"
        );
        // A colour code after a URL is not part of it.
        assert_eq!(
            text("url=http://h/?key=k\u{1b}[0m next"),
            "url=http://h/?key=[redacted]\u{1b}[0m next"
        );
    }

    #[test]
    fn command_lines_lose_their_secrets() {
        let shown = command_line(&args(&[
            "-y",
            "mcp-remote",
            "https://u:p@h/sse?api_key=K",
            "--token",
            "T1",
            "--api-key=T2",
            "-password",
            "T3",
            "--header",
            "Authorization: Bearer T4",
            "GITHUB_TOKEN=T5",
            "--verbose",
            "-p",
            "8080",
            "--port=9000",
            "--url=https://h/?sig=T6",
        ]));
        assert_eq!(
            shown,
            args(&[
                "-y",
                "mcp-remote",
                "https://[redacted]@h/sse?api_key=[redacted]",
                "--token",
                "[redacted]",
                "--api-key=[redacted]",
                "-password",
                "[redacted]",
                "--header",
                "Authorization: [redacted]",
                "GITHUB_TOKEN=[redacted]",
                "--verbose",
                "-p",
                "8080",
                "--port=9000",
                "--url=https://h/?sig=[redacted]",
            ])
        );
        // A secret-named flag followed by another flag hides nothing.
        assert_eq!(
            command_line(&args(&["--auth", "--port", "1"])),
            args(&["--auth", "--port", "1"])
        );
        assert!(command_line(&[]).is_empty());
    }

    #[test]
    fn garbage_never_panics() {
        let samples = [
            "://",
            ":///",
            "://@",
            "a://@@@",
            "http://",
            "http://?",
            "http://#",
            "http://u@",
            "?&&==;;#=&",
            "@@@@://@@@@?@#@",
            "ß://ü:ö@ä/?key=é#token=ñ",
            "日本://ユーザー:パス@ホスト?パスワード=秘密",
            "http://[::1]:8080/?key=\u{0}\u{ffff}",
            "--=",
            "-",
            "--",
            "=",
            ":",
            ": ",
            "key:",
            "\u{1F600}://\u{1F600}@\u{1F600}?\u{1F600}=\u{1F600}",
        ];
        for sample in samples {
            let _ = url(sample);
            let _ = text(sample);
            let _ = command_line(&[sample.to_string(), sample.to_string()]);
        }
        // Every split of a tricky string, at every char boundary.
        let tricky = "x http://u:p@h:1/a?key=v&b=c#token=t;y=z é ftp://a@b ";
        for (i, _) in tricky.char_indices() {
            for (j, _) in tricky[i..].char_indices() {
                let piece = &tricky[i..i + j];
                let _ = url(piece);
                let _ = text(piece);
                let _ = command_line(&[piece.to_string()]);
            }
        }
    }

    #[test]
    fn secrets_never_survive_text() {
        let secret = "S3CR3T";
        for template in [
            "http://user:{}@h",
            "http://{}@h/",
            "https://h/?api_key={}",
            "https://h/?a=1&Token={}#x",
            "https://h/#access_token={}",
            "GET http://h/x?password={} failed",
            "(http://u:{}@h:9/?sig={})",
        ] {
            let shown = text(&template.replace("{}", secret)).into_owned();
            assert!(!shown.contains(secret), "{template} → {shown}");
        }
    }
}
