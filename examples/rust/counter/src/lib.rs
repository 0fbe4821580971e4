//! Counter: keeps a durable count in the host's key-value store, so the
//! count survives instance restarts, traps and server restarts.
//!
//! Messages: `increment` (or `inc N`), `get`, `reset`; and `record`, which
//! notes the message's id (`recorded` answers how many ids were noted):
//! an idempotent receiver, since a message delivered again (durable
//! fire-and-forget is at least once) carries the same id.

use caxton_guest_sdk::{Agent, AgentInfo, Error, Message, Reply, export_agent, kv, log};

const KEY: &str = "count";

struct Counter;

fn read() -> Result<i64, Error> {
    match kv::get_string(KEY)? {
        None => Ok(0),
        Some(text) => text
            .parse()
            .map_err(|_| Error::internal(format!("stored count `{text}` is not a number"))),
    }
}

fn write(value: i64) -> Result<(), Error> {
    kv::set(KEY, value.to_string())
}

impl Agent for Counter {
    fn new(_config_json: &str) -> Result<Self, Error> {
        Ok(Counter)
    }

    fn describe() -> AgentInfo {
        AgentInfo::new(
            "A durable counter: increment, inc N, get, reset, record (notes the message id), recorded",
            &["counting"],
        )
    }

    fn handle(&mut self, msg: Message) -> Result<Option<Reply>, Error> {
        let command = msg.content.trim();
        let value = match command.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["increment"] => read()? + 1,
            ["inc", n] => {
                let n: i64 = n
                    .parse()
                    .map_err(|_| Error::invalid_input(format!("`{n}` is not an integer")))?;
                read()? + n
            }
            ["get"] => return Ok(Some(Reply::inform(read()?.to_string()))),
            // One key per message id, written once: the count is how many
            // there are, so no crash between two writes can skew it.
            ["record"] => {
                kv::set(&format!("seen:{}", msg.id), "1")?;
                return Ok(Some(Reply::inform(
                    kv::list_keys("seen:")?.len().to_string(),
                )));
            }
            ["recorded"] => {
                return Ok(Some(Reply::inform(
                    kv::list_keys("seen:")?.len().to_string(),
                )));
            }
            ["reset"] => 0,
            _ => {
                return Ok(Some(Reply::not_understood(format!(
                    "unknown command `{command}`; try increment, inc N, get, reset, record or recorded"
                ))));
            }
        };
        write(value)?;
        log::info(&format!("count is now {value}"));
        Ok(Some(Reply::inform(value.to_string())))
    }
}

export_agent!(Counter);
