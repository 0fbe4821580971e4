//! The seam between routing and the cluster: agents this node does not
//! run but another node does. The registry asks here only after its own
//! agents, so a node alone (no cluster configured) never reaches it, and a
//! local agent is always called locally.

use std::time::Duration;

use super::{AclMessage, Address, Delivered, DeliveryError};

/// Agents on the other nodes of this node's cluster.
#[async_trait::async_trait]
pub trait Elsewhere: Send + Sync {
    /// Whether another node says it runs an agent reachable at `to`.
    fn knows(&self, to: &Address) -> bool;

    /// The names of agents on other nodes declaring `capability`, in name
    /// order, none twice (an agent with replicas is one recipient).
    fn recipients(&self, capability: &str) -> Vec<String>;

    /// The names of agents on other nodes subscribed to `topic`, in name
    /// order, none twice.
    fn subscribers(&self, topic: &str) -> Vec<String>;

    /// Delivers `message` to the node that runs `to` and waits up to
    /// `timeout` for its reply; a node that does not take or answer it is
    /// [`DeliveryError::Unreachable`].
    async fn request(
        &self,
        from_agent: Option<&str>,
        to: &Address,
        message: AclMessage,
        timeout: Duration,
    ) -> Result<Delivered, DeliveryError>;
}
