//! Glue used by [`crate::export_agent!`]; not part of the public API.

use std::any::Any;
use std::cell::RefCell;

use crate::{Agent, Error, Message, Reply};

thread_local! {
    // A component instance is single-threaded; this holds the one agent value.
    static AGENT: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// Creates the agent value for this instance.
pub fn init<A: Agent>(config_json: &str) -> Result<(), Error> {
    let agent = A::new(config_json)?;
    AGENT.with(|slot| *slot.borrow_mut() = Some(Box::new(agent)));
    Ok(())
}

/// Hands one message to the agent value, creating it with `{}` if the host
/// did not call `init` first.
pub fn handle<A: Agent>(msg: Message) -> Result<Option<Reply>, Error> {
    let missing = AGENT.with(|slot| slot.borrow().is_none());
    if missing {
        init::<A>("{}")?;
    }
    AGENT.with(|slot| {
        let mut slot = slot.borrow_mut();
        let agent = slot
            .as_mut()
            .and_then(|boxed| boxed.downcast_mut::<A>())
            .ok_or_else(|| Error::Internal("agent state has an unexpected type".into()))?;
        agent.handle(msg)
    })
}
