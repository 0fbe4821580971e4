//! Delivers what the outbox holds: a schedule ordered by when each message
//! is due, at most `outbox.concurrency` deliveries at once, and what each
//! outcome means for the message (see [`outcome`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::Outbox;
use super::store::{Op, Queued};
use crate::conversations::now_ms;
use crate::messaging::{DeliveryError, MessageBus};

/// How long a busy receiver (full mailbox, restarting) is given before
/// the message is offered again; such tries are not counted.
const BUSY_WAIT_MS: u64 = 250;
/// How often a message for a suspended agent is offered again.
const SUSPENDED_WAIT_MS: u64 = 5_000;

/// What one delivery try means for its message.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Handled (or no longer wanted): forget it.
    Done,
    /// The receiver could not take it now; offer it again after this
    /// many ms without counting a try.
    Later(u64),
    /// The try failed and counts.
    Failed(String),
    /// It can never be delivered: straight to the dead letters.
    Hopeless(String),
}

/// Sorts a delivery's result (see [`Outcome`]).
pub fn outcome(result: &Result<(), DeliveryError>) -> Outcome {
    match result {
        Ok(()) => Outcome::Done,
        Err(DeliveryError::Cancelled(_)) => Outcome::Done,
        // An agent on a node that died is being moved: not its fault, and
        // not an attempt spent.
        Err(
            DeliveryError::MailboxFull { .. }
            | DeliveryError::Stopped(_)
            | DeliveryError::Unreachable { .. },
        ) => Outcome::Later(BUSY_WAIT_MS),
        Err(DeliveryError::Suspended(_)) => Outcome::Later(SUSPENDED_WAIT_MS),
        Err(e @ DeliveryError::SelfRequest(_)) => Outcome::Hopeless(e.to_string()),
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

/// Runs until the outbox's writer stops handing messages over or the bus
/// is gone (the server is stopping).
pub async fn run(
    outbox: Arc<Outbox>,
    bus: Weak<dyn MessageBus>,
    mut ready: mpsc::UnboundedReceiver<(u64, Queued)>,
) {
    let settings = outbox.settings().clone();
    let timeout = Duration::from_millis(settings.delivery_timeout_ms);
    let mut schedule: BTreeMap<(u64, u64), Queued> = BTreeMap::new();
    let mut running: JoinSet<(u64, Queued, Outcome)> = JoinSet::new();
    loop {
        let now = now_ms();
        while running.len() < settings.concurrency {
            let Some(entry) = schedule.first_entry() else {
                break;
            };
            if entry.key().0 > now {
                break;
            }
            let ((_, seq), queued) = entry.remove_entry();
            let Some(bus) = bus.upgrade() else {
                return;
            };
            running.spawn(async move {
                let result = bus
                    .request(
                        queued.from_agent.as_deref(),
                        queued.to.address(),
                        queued.message.clone(),
                        timeout,
                    )
                    .await
                    .map(|_| ());
                (seq, queued, outcome(&result))
            });
        }
        let due = schedule
            .first_key_value()
            .filter(|_| running.len() < settings.concurrency)
            .map(|((due, _), _)| *due);
        tokio::select! {
            item = ready.recv() => match item {
                Some((seq, queued)) => {
                    schedule.insert((queued.next_attempt_ms, seq), queued);
                }
                None => return,
            },
            Some(joined) = running.join_next(), if !running.is_empty() => {
                let Ok((seq, queued, outcome)) = joined else {
                    continue;
                };
                if let Some(again) = settle(&outbox, seq, queued, outcome) {
                    schedule.insert((again.next_attempt_ms, seq), again);
                }
            }
            () = sleep_until(due) => {}
        }
    }
}

async fn sleep_until(due: Option<u64>) {
    match due {
        Some(due) => tokio::time::sleep(Duration::from_millis(due.saturating_sub(now_ms()))).await,
        None => std::future::pending().await,
    }
}

/// Records an outcome; answers the message when it is to be tried again.
fn settle(outbox: &Outbox, seq: u64, mut queued: Queued, outcome: Outcome) -> Option<Queued> {
    let settings = outbox.settings();
    let op = match outcome {
        Outcome::Done => Op::Delivered(seq),
        Outcome::Later(wait) => {
            queued.next_attempt_ms = now_ms().saturating_add(wait);
            return Some(queued);
        }
        Outcome::Hopeless(why) => {
            queued.attempts += 1;
            queued.last_error = Some(why);
            Op::Dead(seq, Box::new(queued))
        }
        Outcome::Failed(why) => {
            queued.attempts += 1;
            queued.last_error = Some(why);
            if queued.attempts >= settings.max_attempts {
                tracing::warn!(message = %queued.message.id, attempts = queued.attempts,
                    error = queued.last_error.as_deref().unwrap_or(""),
                    "a fire-and-forget message failed every try; it is a dead letter now (`caxton dead-letters list`)");
                Op::Dead(seq, Box::new(queued))
            } else {
                queued.next_attempt_ms =
                    now_ms().saturating_add(settings.backoff_ms(queued.attempts));
                let again = queued.clone();
                if outbox.op(Op::Retry(seq, Box::new(queued))).is_err() {
                    return None;
                }
                return Some(again);
            }
        }
    };
    let _ = outbox.op(op);
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messaging::ExecutionFailure;

    #[test]
    fn busy_receivers_wait_failures_count_and_self_sends_are_hopeless() {
        assert_eq!(outcome(&Ok(())), Outcome::Done);
        let full = DeliveryError::MailboxFull {
            agent: "a".into(),
            capacity: 1,
        };
        assert_eq!(outcome(&Err(full)), Outcome::Later(BUSY_WAIT_MS));
        let trapped = DeliveryError::AgentFailed {
            agent: "a".into(),
            failure: ExecutionFailure::Trap("boom".into()),
        };
        assert!(matches!(outcome(&Err(trapped)), Outcome::Failed(_)));
        let own = DeliveryError::SelfRequest("a".into());
        assert!(matches!(outcome(&Err(own)), Outcome::Hopeless(_)));
        let cancelled = DeliveryError::Cancelled("c".into());
        assert_eq!(outcome(&Err(cancelled)), Outcome::Done);
    }
}
