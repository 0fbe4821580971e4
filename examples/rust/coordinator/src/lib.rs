//! Coordinator: runs the host's protocols from inside an agent, through
//! the `protocols` interface of `caxton:agent@0.2.0` (no tool calls, no
//! JSON to assemble by hand). Each command answers JSON:
//!
//! - `broadcast CAPABILITY TEXT`: every agent of the capability, answers
//!   gathered for 2 s;
//! - `cfp CAPABILITY TASK`: a contract net, lowest bid wins (`cfp-high`:
//!   highest), bids gathered for 2 s, the winner given 5 s;
//! - `cfp-pick CAPABILITY AGENT TASK`: a contract net the coordinator
//!   awards itself, to AGENT, once it has seen the proposals;
//! - `publish TOPIC TEXT`, `subscribe TOPIC`, `unsubscribe TOPIC`, `topics`;
//! - `conversation`: what the host knows of this message's conversation;
//! - `news`: the last message that came on the `news` topic, which the
//!   coordinator subscribes to from its `describe`.

use caxton_guest_sdk::protocols::{self, Award, BroadcastRequest, CallForProposals};
use caxton_guest_sdk::{Agent, AgentInfo, Error, Message, Performative, Reply, export_agent, kv};
use serde_json::json;

struct Coordinator;

fn split_first(text: &str) -> (&str, &str) {
    let text = text.trim();
    match text.split_once(' ') {
        Some((head, rest)) => (head, rest.trim()),
        None => (text, ""),
    }
}

fn answer_status(status: protocols::AnswerStatus) -> &'static str {
    use protocols::AnswerStatus::*;
    match status {
        Replied => "replied",
        Refused => "refused",
        Failed => "failed",
        Timeout => "timeout",
        Unanswered => "unanswered",
    }
}

fn bid_status(status: protocols::BidStatus) -> &'static str {
    use protocols::BidStatus::*;
    match status {
        Proposed => "proposed",
        Refused => "refused",
        Failed => "failed",
        Timeout => "timeout",
        Unanswered => "unanswered",
        Invalid => "invalid",
    }
}

fn answers(answers: &[protocols::Answer]) -> Vec<serde_json::Value> {
    answers
        .iter()
        .map(|a| {
            json!({
                "agent": a.agent,
                "status": answer_status(a.status),
                "content": a.content,
                "error": a.error,
            })
        })
        .collect()
}

impl Coordinator {
    fn command(&self, msg: &Message) -> Result<serde_json::Value, Error> {
        let (command, rest) = split_first(&msg.content);
        Ok(match command {
            "broadcast" => {
                let (capability, text) = split_first(rest);
                let gathered = protocols::broadcast(
                    &BroadcastRequest::new(capability, text).deadline_ms(2_000),
                )?;
                json!({
                    "conversation_id": gathered.conversation_id,
                    "asked": gathered.asked,
                    "answered": gathered.answered,
                    "answers": answers(&gathered.answers),
                })
            }
            "cfp" | "cfp-high" => {
                let (capability, task) = split_first(rest);
                let award = if command == "cfp" {
                    Award::Lowest
                } else {
                    Award::Highest
                };
                let outcome = protocols::contract_net(
                    &CallForProposals::new(capability, task, award)
                        .bid_deadline_ms(2_000)
                        .result_deadline_ms(5_000),
                )?;
                json!({
                    "conversation_id": outcome.conversation_id,
                    "completed": outcome.completed,
                    "winner": outcome.winner,
                    "result": outcome.result,
                    "reason": outcome.reason,
                    "proposals": outcome.proposals.iter().map(|p| json!({
                        "agent": p.answer.agent,
                        "status": bid_status(p.status),
                        "bid": p.bid,
                    })).collect::<Vec<_>>(),
                    "attempts": outcome.attempts.iter().map(|a| a.answer.agent.clone()).collect::<Vec<_>>(),
                    "rejected": outcome.rejected,
                })
            }
            "cfp-pick" => {
                let (capability, rest) = split_first(rest);
                let (pick, task) = split_first(rest);
                let waiting = protocols::contract_net(
                    &CallForProposals::new(capability, task, Award::Initiator)
                        .bid_deadline_ms(2_000)
                        .result_deadline_ms(5_000)
                        .award_deadline_ms(10_000),
                )?;
                if !waiting.awaiting_award {
                    return Err(Error::internal("the proposals did not wait for the award"));
                }
                let offered: Vec<String> = waiting
                    .proposals
                    .iter()
                    .filter(|p| p.bid.is_some())
                    .map(|p| p.answer.agent.clone())
                    .collect();
                let outcome = protocols::award(&waiting.conversation_id, &[pick.to_string()])?;
                json!({
                    "offered": offered,
                    "winner": outcome.winner,
                    "result": outcome.result,
                    "rejected": outcome.rejected,
                })
            }
            "publish" => {
                let (topic, text) = split_first(rest);
                let published = protocols::publish(topic, text)?;
                json!({"conversation_id": published.conversation_id, "subscribers": published.subscribers})
            }
            "subscribe" => {
                protocols::subscribe(rest)?;
                json!({"topics": protocols::subscriptions()?})
            }
            "unsubscribe" => {
                let was = protocols::unsubscribe(rest)?;
                json!({"was_subscribed": was, "topics": protocols::subscriptions()?})
            }
            "topics" => json!({"topics": protocols::subscriptions()?}),
            "conversation" => {
                let c = protocols::current_conversation()?;
                json!({
                    "id": c.id,
                    "protocol": c.protocol,
                    "initiator": c.initiator,
                    "participants": c.participants,
                    "state": c.state,
                    "messages": c.messages,
                })
            }
            "news" => json!({"news": kv::get_string("news")?}),
            _ => {
                return Err(Error::invalid_input(
                    "expected broadcast, cfp, cfp-high, publish, subscribe, unsubscribe, topics, conversation or news",
                ));
            }
        })
    }
}

impl Agent for Coordinator {
    fn new(_config_json: &str) -> Result<Self, Error> {
        Ok(Coordinator)
    }

    fn describe() -> AgentInfo {
        AgentInfo::new(
            "Runs broadcasts, contract nets and topics through the host's protocols",
            &["coordination"],
        )
        .with_subscriptions(&["news"])
    }

    fn handle(&mut self, msg: Message) -> Result<Option<Reply>, Error> {
        // A publication on a subscribed topic: kept, not answered.
        if msg.performative == Performative::Inform {
            kv::set("news", &msg.content)?;
            return Ok(None);
        }
        match self.command(&msg) {
            Ok(value) => Ok(Some(
                Reply::inform(value.to_string()).with_content_type("application/json"),
            )),
            Err(e) => Ok(Some(Reply::failure(format!("{e:?}")))),
        }
    }
}

export_agent!(Coordinator);
