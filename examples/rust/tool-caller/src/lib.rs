//! tool-caller: a WASM agent that uses tools. A message `TOOL {json}` calls
//! the tool `TOOL` with those arguments and answers its result; `tools`
//! lists the tools this agent was granted.
//!
//! Deploy it with the tools it may call:
//! `caxton agents deploy tool_caller.wasm --tool word_stats --tool csv_parser`.
//! A tool it was not granted is refused by the host at the call.

use caxton_guest_sdk::{Agent, AgentInfo, Error, Message, Reply, export_agent, tools};

struct ToolCaller;

impl Agent for ToolCaller {
    fn new(_config_json: &str) -> Result<Self, Error> {
        Ok(ToolCaller)
    }

    fn describe() -> AgentInfo {
        AgentInfo::new(
            "Calls the tool named in the message (`TOOL {json arguments}`) and answers its result",
            &["tool-calling"],
        )
    }

    fn handle(&mut self, msg: Message) -> Result<Option<Reply>, Error> {
        let request = msg.content.trim();
        if request == "tools" {
            let names: Vec<String> = tools::list_tools().into_iter().map(|t| t.name).collect();
            return Ok(Some(Reply::inform(names.join(","))));
        }
        let (name, arguments) = match request.split_once(char::is_whitespace) {
            Some((name, arguments)) => (name, arguments.trim()),
            None => (request, "{}"),
        };
        match tools::invoke(name, arguments) {
            Ok(result) => Ok(Some(Reply::inform(result))),
            Err(e) => Ok(Some(Reply::failure(format!("{e:?}")))),
        }
    }
}

export_agent!(ToolCaller);
