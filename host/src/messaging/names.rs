//! The names senders go by, and the text people see.
//!
//! Tokens, agents and the local operator all send messages under a name,
//! and agents key what they remember (a config agent's conversation
//! history) by that name. The names therefore share one namespace: a token
//! called `user` would be the operator to every agent. The fixed senders
//! are reserved here, once, and every place that hands out a name (token
//! creation, agent deployment, config agent files) refuses them.
//!
//! Names and descriptions also end up in log lines, metrics labels and
//! terminal tables, so text a person reads is one line of printable text:
//! a newline would start a forged log line, a bidi override would make a
//! name read as another.

/// Sender names the server itself uses: the local operator (`user`), the
/// metrics scraper, and two an operator would take for the server's own.
/// Compared without regard to case, since `User` reads as `user`.
pub const RESERVED_SENDERS: &[&str] = &[super::acl::USER_SENDER, "operator", "system", "metrics"];

/// Longest display name (a config agent's `name`), in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 128;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1024;

/// The reserved sender `name` would pass for, if any.
pub fn reserved_sender(name: &str) -> Option<&'static str> {
    RESERVED_SENDERS
        .iter()
        .copied()
        .find(|reserved| reserved.eq_ignore_ascii_case(name.trim()))
}

/// Why `name` cannot be a token's or an agent's name, if it cannot: the
/// sentence ends with how to fix it.
pub fn reserved_reason(name: &str) -> Option<String> {
    reserved_sender(name).map(|reserved| {
        format!(
            "`{reserved}` is reserved (it is the name the server itself sends under, and agents would take you for it); choose another name"
        )
    })
}

/// Characters that change how a line reads rather than what it says:
/// every control character (tab, CR, LF, NEL, ESC…), the Unicode line and
/// paragraph separators, and the bidirectional marks and overrides.
fn is_deceptive(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// Checks text a person will read as one line (`what` says which, as in
/// "the display name"): at most `max_chars` characters, none of them a
/// control, line-separator or bidi character. The error says what is wrong
/// and how to fix it.
pub fn check_one_line(what: &str, text: &str, max_chars: usize) -> Result<(), String> {
    if let Some((at, c)) = text.chars().enumerate().find(|(_, c)| is_deceptive(*c)) {
        let kind = match c {
            '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}' => "a line break",
            '\t' => "a tab",
            c if c.is_control() => "a control character",
            _ => "a bidirectional-text control",
        };
        return Err(format!(
            "{what} contains {kind} (U+{:04X}) at character {}; write it as one line of printable text",
            u32::from(c),
            at + 1
        ));
    }
    let chars = text.chars().count();
    if chars > max_chars {
        return Err(format!(
            "{what} is {chars} characters long; the limit is {max_chars}, shorten it"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_names_are_found_whatever_their_case() {
        assert_eq!(reserved_sender("user"), Some("user"));
        assert_eq!(reserved_sender("User"), Some("user"));
        assert_eq!(reserved_sender("SYSTEM"), Some("system"));
        assert_eq!(reserved_sender("users"), None);
        assert!(
            reserved_reason("operator")
                .is_some_and(|r| r.contains("reserved") && r.contains("another name"))
        );
    }

    #[test]
    fn one_line_text_refuses_what_forges_lines_and_long_text() {
        assert!(check_one_line("the name", "Data Analyzer – ünïcode ok", 128).is_ok());
        for (bad, kind) in [
            ("a\nb", "a line break (U+000A) at character 2"),
            ("a\rb", "a line break (U+000D)"),
            ("a\u{85}b", "a line break (U+0085)"),
            ("a\u{2028}b", "a line break (U+2028)"),
            ("a\tb", "a tab (U+0009)"),
            ("a\u{1b}[31mb", "a control character (U+001B)"),
            ("a\u{202E}b", "a bidirectional-text control (U+202E)"),
            ("a\u{2067}b", "a bidirectional-text control (U+2067)"),
        ] {
            let why = check_one_line("the name", bad, 128).expect_err(bad);
            assert!(
                why.starts_with("the name contains") && why.contains(kind),
                "{why}"
            );
            assert!(why.contains("one line of printable text"), "{why}");
        }
        let long = "é".repeat(129);
        let why = check_one_line("the name", &long, 128).expect_err("too long");
        assert!(
            why.contains("129 characters") && why.contains("128"),
            "{why}"
        );
        assert!(check_one_line("the name", &"é".repeat(128), 128).is_ok());
    }
}
