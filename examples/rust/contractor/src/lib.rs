//! Contractor: a participant in contract nets and broadcasts, its
//! behaviour set at deploy (`--config`):
//!
//! ```json
//! {"name": "acme", "bid": 7.5, "refuse": false, "fail": false, "stall_ms": 0}
//! ```
//!
//! - `cfp` (a call for proposals): `propose` with `bid`, or `refuse` when
//!   `refuse` is set;
//! - `accept-proposal`: `inform` with the work done, or `failure` when
//!   `fail` is set;
//! - `reject-proposal`: counted (a `request` saying `rejections` answers
//!   the count), no reply;
//! - any other message: `inform` with its quote.
//!
//! `stall_ms` makes it wait that long before answering a `cfp` or a
//! `request`: a bidder that misses the deadline.

use caxton_guest_sdk::{Agent, AgentInfo, Error, Message, Performative, Reply, export_agent, kv};

struct Contractor {
    name: String,
    bid: f64,
    refuse: bool,
    fail: bool,
    stall_ms: u64,
}

impl Contractor {
    fn stall(&self) {
        if self.stall_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(self.stall_ms));
        }
    }
}

impl Agent for Contractor {
    fn new(config_json: &str) -> Result<Self, Error> {
        let config: serde_json::Value = serde_json::from_str(config_json)
            .map_err(|e| Error::invalid_input(format!("config is not JSON: {e}")))?;
        Ok(Contractor {
            name: config["name"].as_str().unwrap_or("contractor").to_string(),
            bid: config["bid"].as_f64().unwrap_or(10.0),
            refuse: config["refuse"].as_bool().unwrap_or(false),
            fail: config["fail"].as_bool().unwrap_or(false),
            stall_ms: config["stall_ms"].as_u64().unwrap_or(0),
        })
    }

    fn describe() -> AgentInfo {
        AgentInfo::new(
            "Bids on calls for proposals and does the work it wins",
            &["quote"],
        )
    }

    fn handle(&mut self, msg: Message) -> Result<Option<Reply>, Error> {
        match msg.performative {
            Performative::Cfp => {
                self.stall();
                if self.refuse {
                    return Ok(Some(Reply::refuse(format!(
                        "{} is not taking work",
                        self.name
                    ))));
                }
                let text = format!("{} will do it for {}", self.name, self.bid);
                Ok(Some(Reply::propose(self.bid, &text)))
            }
            Performative::AcceptProposal => {
                if self.fail {
                    return Ok(Some(Reply::failure(format!(
                        "{} could not finish: {}",
                        self.name, msg.content
                    ))));
                }
                Ok(Some(Reply::inform(format!(
                    "{} did: {}",
                    self.name, msg.content
                ))))
            }
            Performative::RejectProposal => {
                let seen = kv::get_string("rejections")?
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
                kv::set("rejections", (seen + 1).to_string())?;
                Ok(None)
            }
            _ if msg.content == "rejections" => Ok(Some(Reply::inform(
                kv::get_string("rejections")?.unwrap_or_else(|| "0".into()),
            ))),
            _ => {
                self.stall();
                if self.refuse {
                    return Ok(Some(Reply::refuse(format!(
                        "{} is not taking work",
                        self.name
                    ))));
                }
                Ok(Some(Reply::inform(format!(
                    "{} quotes {}",
                    self.name, self.bid
                ))))
            }
        }
    }
}

export_agent!(Contractor);
