//! Agent definition files (markdown with YAML frontmatter, or TOML), as an
//! author or an attacker with write access to the agents directory would
//! write them: parsing and every meaning check must answer problems, never
//! panic, and agree with each other.
#![no_main]

use caxton::config_agents::definition::{SourceFormat, parse_lenient, parse_source};
use caxton::config_agents::validate::{ValidationContext, validate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(source) = std::str::from_utf8(rest) else {
        return;
    };
    let (format, file) = if selector & 1 == 0 {
        (SourceFormat::Markdown, "fuzz.md")
    } else {
        (SourceFormat::Toml, "fuzz.toml")
    };
    let lenient = parse_lenient("fuzz", file, source, format);
    let strict = parse_source("fuzz", file, source, format);
    match (&lenient, &strict) {
        (Ok((_, problems)), Ok(_)) => {
            assert!(problems.is_empty(), "strict accepted what lenient faulted")
        }
        (Ok((_, problems)), Err(errors)) => {
            assert_eq!(problems, errors, "strict and lenient disagree")
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        (Err(_), Ok(_)) => panic!("strict parsed what lenient could not read"),
    }
    if let Ok((definition, problems)) = lenient {
        for problem in &problems {
            assert!(
                !problem.message.is_empty() && !problem.fix.is_empty(),
                "{problem:?}"
            );
        }
        let tools = ["memory_search".to_string(), "http_client".to_string()];
        let ctx = ValidationContext {
            known_tools: &tools,
            loaded: &[],
        };
        for problem in validate(&definition, file, source, &ctx) {
            assert!(!problem.message.is_empty(), "{problem:?}");
            if let Some(line) = problem.line {
                assert!(
                    line >= 1 && line <= source.lines().count().max(1) + 1,
                    "{problem:?}"
                );
            }
        }
    }
});
