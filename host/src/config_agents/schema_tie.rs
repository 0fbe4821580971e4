//! The definition schema exists three times: the host's structs
//! ([`AgentDefinition`]), the host's field tables (what the parser accepts
//! and checks), and the interpreter component's own structs, which read
//! the JSON the host hands to `init`. This test ties them together: a
//! definition that sets every field the tables know must parse, serialise
//! with every field, and reach the interpreter with every value it reads.

use serde_json::Value;

use super::definition::{self, FIELDS, SECTIONS, SourceFormat};

/// The interpreter's definition module, compiled natively for this test.
#[allow(dead_code)]
#[path = "../../../builtin-components/config-agent/src/definition.rs"]
mod guest;

/// Every field the tables know, set to a value that is not its default.
const EVERYTHING: &str = r#"name = "Everything"
version = "2.3.4"
description = "Sets every field."
capabilities = ["all"]
tools = ["json_processor"]
system_prompt = "You use {{parameters.tone}}."
user_prompt_template = "{{request}} {{memory_context}} {{conversation_history}}"
max_tool_steps = 7
documentation = "Docs."
budget = [{ per = "hour", tokens = 5000 }, { per = "month", cost = 20.0 }]

[parameters]
tone = "calm"

[llm]
provider = "scripted"
model = "m-1"
temperature = 0.5
max_tokens = 123

[memory]
enabled = true
scope = "workspace"
auto_store = true

[conversation]
max_turns = 9
"#;

#[test]
fn host_tables_host_structs_and_interpreter_agree() {
    let def = definition::parse_source(
        "everything",
        "everything.toml",
        EVERYTHING,
        SourceFormat::Toml,
    )
    .expect("a definition with every field parses");
    let json = serde_json::to_value(&def).expect("serialises");

    // Every key of the tables is a key of the serialised definition.
    for (key, _) in FIELDS {
        assert!(
            json.get(*key).is_some(),
            "table field `{key}` is missing from AgentDefinition"
        );
    }
    for (section, fields) in SECTIONS {
        for (key, _) in *fields {
            assert!(
                json[*section].get(*key).is_some_and(|v| !v.is_null()),
                "table field `{section}.{key}` is missing from AgentDefinition's `{section}`"
            );
        }
    }

    // The interpreter reads every value it knows, unchanged.
    let guest: guest::Definition =
        serde_json::from_value(json.clone()).expect("the interpreter reads the host's JSON");
    assert_eq!(guest.name, def.name);
    assert_eq!(guest.description, def.description);
    assert_eq!(guest.capabilities, def.capabilities);
    assert_eq!(guest.system_prompt, def.system_prompt);
    assert_eq!(guest.user_prompt_template, def.user_prompt_template);
    assert_eq!(guest.max_tool_steps, 7);
    assert_eq!(guest.parameters.get("tone"), Some(&Value::from("calm")));
    let llm = guest.llm.expect("llm section reaches the interpreter");
    assert_eq!(llm.model.as_deref(), Some("m-1"));
    assert_eq!(llm.temperature, Some(0.5));
    assert_eq!(llm.max_tokens, Some(123));
    assert!(guest.memory.enabled && guest.memory.auto_store);
    assert_eq!(guest.memory.scope.as_deref(), Some("workspace"));
    assert_eq!(guest.conversation.max_turns, 9);
}
