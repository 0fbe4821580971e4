//! Fan-outs: one sender waiting on many deliveries at once (a broadcast, a
//! call for proposals). A delivery may run its message on the caller's own
//! task when the agent is idle (see `agents::registry`); inside a fan-out
//! that would run every recipient's call one after another on that one
//! task, so deliveries made within [`fan_out`] go to the agents' own
//! tasks and run in parallel.

use std::future::Future;

tokio::task_local! {
    static FAN_OUT: ();
}

/// Runs `work`, marking the deliveries it makes as parts of a fan-out.
pub async fn fan_out<F: Future>(work: F) -> F::Output {
    FAN_OUT.scope((), work).await
}

/// Whether the current task is inside [`fan_out`].
pub fn in_fan_out() -> bool {
    FAN_OUT.try_with(|_| ()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_work_inside_is_marked() {
        assert!(!in_fan_out());
        assert!(fan_out(async { in_fan_out() }).await);
        assert!(!in_fan_out());
    }
}
