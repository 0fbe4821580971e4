//! `caxton conversations list|show|cancel`, `caxton broadcast` and
//! `caxton contract-net`: the server's conversations, and the protocols
//! that start them.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::client::Client;
use super::output::{self, Table, cell};
use crate::server::percent_encode;

#[derive(Subcommand)]
pub enum ConversationsCommand {
    /// List conversations, newest first (yours; every one with an admin
    /// token).
    List {
        /// Only those this agent (or principal) took part in.
        #[arg(long)]
        agent: Option<String>,
        /// Only this protocol: request, broadcast, contract-net, publish, a2a.
        #[arg(long)]
        protocol: Option<String>,
        /// Only this state: active, completed, failed, cancelled, expired.
        #[arg(long)]
        state: Option<String>,
        /// Conversations per page (at most 500).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// The cursor the previous page printed, for the next page.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Write a conversation's recording (messages, model calls, tool
    /// calls, replies, timings) as one JSON document.
    Export {
        /// The conversation's id.
        id: String,
        /// Where to write it (default: standard output).
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
    /// Show a conversation and its messages.
    Show {
        /// The conversation's id.
        id: String,
    },
    /// Cancel an active conversation: its waiting requests are answered
    /// at once, queued messages skipped.
    Cancel {
        /// The conversation's id.
        id: String,
    },
}

pub async fn run(client: &Client, command: ConversationsCommand) -> anyhow::Result<ExitCode> {
    match command {
        ConversationsCommand::List {
            agent,
            protocol,
            state,
            limit,
            cursor,
        } => {
            let mut query = vec![format!("limit={limit}")];
            for (key, value) in [
                ("agent", agent),
                ("protocol", protocol),
                ("state", state),
                ("cursor", cursor),
            ] {
                if let Some(value) = value {
                    query.push(format!("{key}={}", percent_encode(&value)));
                }
            }
            let page = client
                .get(&format!("/api/v1/conversations?{}", query.join("&")))
                .await?;
            if output::emit_json(&page) {
                return Ok(ExitCode::SUCCESS);
            }
            let conversations = page["conversations"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if conversations.is_empty() {
                println!("No conversations.");
                return Ok(ExitCode::SUCCESS);
            }
            let mut table = Table::new(&[
                "CONVERSATION",
                "PROTOCOL",
                "STATE",
                "INITIATOR",
                "MESSAGES",
                "UPDATED",
                "PARTICIPANTS",
            ])
            .right(&[4]);
            for c in &conversations {
                let participants: Vec<&str> = c["participants"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                table.row(vec![
                    cell(&c["id"]),
                    cell(&c["protocol"]),
                    cell(&c["state"]),
                    cell(&c["initiator"]),
                    cell(&c["messages"]),
                    cell(&c["updated_at"]),
                    participants.join(","),
                ]);
            }
            table.print();
            if let Some(next) = page["next_cursor"].as_str() {
                println!("More: caxton conversations list --cursor {next}");
            }
        }
        ConversationsCommand::Export { id, output } => {
            let recording = client
                .get(&format!(
                    "/api/v1/conversations/{}/recording",
                    percent_encode(&id)
                ))
                .await?;
            let text = serde_json::to_string_pretty(&recording)?;
            match output {
                Some(path) => {
                    std::fs::write(&path, text + "\n")?;
                    eprintln!(
                        "{} events written to {}",
                        recording["events"].as_array().map_or(0, Vec::len),
                        path.display()
                    );
                }
                None => println!("{text}"),
            }
        }
        ConversationsCommand::Show { id } => {
            let c = client
                .get(&format!("/api/v1/conversations/{}", percent_encode(&id)))
                .await?;
            if output::emit_json(&c) {
                return Ok(ExitCode::SUCCESS);
            }
            print_conversation(&c);
        }
        ConversationsCommand::Cancel { id } => {
            let c = client
                .post_json(
                    &format!("/api/v1/conversations/{}/cancel", percent_encode(&id)),
                    &json!({}),
                )
                .await?;
            if !output::emit_json(&c) {
                println!("Conversation {id} cancelled");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_conversation(c: &Value) {
    println!("Conversation {}", cell(&c["id"]));
    println!(
        "  protocol {}   state {}   initiator {} ({})",
        cell(&c["protocol"]),
        cell(&c["state"]),
        cell(&c["initiator"]),
        cell(&c["initiator_kind"])
    );
    println!(
        "  created {}   updated {}   deadline {}",
        cell(&c["created_at"]),
        cell(&c["updated_at"]),
        cell(&c["deadline"])
    );
    if let Some(outcome) = c["outcome"].as_str() {
        println!("  outcome: {outcome}");
    }
    let dropped = c["dropped"].as_u64().unwrap_or(0);
    println!(
        "  {} message(s){}",
        cell(&c["messages"]),
        if dropped > 0 {
            format!(", the oldest {dropped} no longer kept")
        } else {
            String::new()
        }
    );
    let started = c["history"][0]["at_ms"].as_u64().unwrap_or(0);
    for entry in c["history"].as_array().into_iter().flatten() {
        let offset = entry["at_ms"]
            .as_u64()
            .unwrap_or(started)
            .saturating_sub(started);
        println!(
            "  +{offset:>6} ms  {} → {}  {}  {}",
            cell(&entry["sender"]),
            cell(&entry["receiver"]),
            cell(&entry["performative"]),
            one_line(entry["content"].as_str().unwrap_or_default(), 100)
        );
    }
}

/// `text` on one line, cut to `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match flat.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &flat[..end]),
        None => flat,
    }
}

#[derive(Args)]
pub struct BroadcastArgs {
    /// Every running agent declaring this capability gets the message.
    capability: String,
    /// The message content.
    text: String,
    /// Seconds answers are gathered (default 10, at most 600).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=600))]
    timeout: Option<u64>,
    /// Stop once this many agents have replied.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max_answers: Option<u64>,
    /// The performative (default `request`).
    #[arg(long)]
    performative: Option<String>,
}

/// `caxton broadcast`: exit code 1 when no agent answered.
pub async fn broadcast(client: &Client, args: BroadcastArgs) -> anyhow::Result<ExitCode> {
    let mut body = json!({ "capability": args.capability, "content": args.text });
    if let Some(seconds) = args.timeout {
        body["timeout_ms"] = json!(seconds * 1000);
    }
    if let Some(n) = args.max_answers {
        body["max_answers"] = json!(n);
    }
    if let Some(p) = args.performative {
        body["performative"] = json!(p);
    }
    let gathered = client.post_json("/api/v1/broadcast", &body).await?;
    let code = if gathered["answered"].as_u64().unwrap_or(0) == 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    };
    if output::emit_json(&gathered) {
        return Ok(code);
    }
    println!(
        "{} of {} answered in {} ms (conversation {})",
        cell(&gathered["answered"]),
        cell(&gathered["asked"]),
        cell(&gathered["elapsed_ms"]),
        cell(&gathered["conversation_id"])
    );
    let mut table = Table::new(&["AGENT", "STATUS", "MS", "ANSWER"]).right(&[2]);
    for a in gathered["answers"].as_array().into_iter().flatten() {
        table.row(vec![
            cell(&a["agent"]),
            cell(&a["status"]),
            cell(&a["elapsed_ms"]),
            answer_text(a),
        ]);
    }
    table.print();
    Ok(code)
}

/// A participant's answer in one line: `[performative] content`, or why none came.
fn answer_text(a: &Value) -> String {
    match (
        a["performative"].as_str(),
        a["content"].as_str(),
        a["error"].as_str(),
    ) {
        (Some(p), content, _) => one_line(&format!("[{p}] {}", content.unwrap_or("")), 80),
        (None, _, Some(error)) => one_line(error, 80),
        _ => "(no reply)".to_string(),
    }
}

#[derive(Args)]
pub struct ContractNetArgs {
    /// Every running agent declaring this capability is asked for a bid.
    capability: String,
    /// The task: the call for proposals' content.
    task: String,
    /// Which bid wins: lowest or highest (ties: the name that sorts
    /// first); initiator: print the proposals and let you choose with
    /// `caxton award`.
    #[arg(long, default_value = "lowest", value_parser = ["lowest", "highest", "initiator"])]
    award: String,
    /// With --award initiator: seconds you have to choose (default 60, at most 600).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=600))]
    award_timeout: Option<u64>,
    /// Seconds proposals are gathered (default 10, at most 600).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=600))]
    timeout: Option<u64>,
    /// Seconds the winner has for its result (default 60, at most 600).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=600))]
    result_timeout: Option<u64>,
    /// Do not accept the next-best proposal when the winner fails.
    #[arg(long)]
    no_fallback: bool,
}

/// `caxton contract-net`: exit code 1 when no result came.
pub async fn contract_net(client: &Client, args: ContractNetArgs) -> anyhow::Result<ExitCode> {
    let mut body = json!({
        "capability": args.capability,
        "task": args.task,
        "award": args.award,
        "fallback": !args.no_fallback,
    });
    if let Some(seconds) = args.timeout {
        body["timeout_ms"] = json!(seconds * 1000);
    }
    if let Some(seconds) = args.result_timeout {
        body["result_timeout_ms"] = json!(seconds * 1000);
    }
    if let Some(seconds) = args.award_timeout {
        body["award_timeout_ms"] = json!(seconds * 1000);
    }
    let outcome = client.post_json("/api/v1/contract-net", &body).await?;
    print_outcome(&outcome)
}

#[derive(Args)]
pub struct AwardArgs {
    /// The contract net's conversation id (printed by `caxton contract-net
    /// --award initiator`).
    conversation_id: String,
    /// The proposers to accept, best first: the next is accepted if one fails.
    #[arg(required = true)]
    agents: Vec<String>,
}

/// `caxton award`: exit code 1 when no result came.
pub async fn award(client: &Client, args: AwardArgs) -> anyhow::Result<ExitCode> {
    let path = format!(
        "/api/v1/contract-net/{}/award",
        percent_encode(&args.conversation_id)
    );
    let outcome = client
        .post_json(&path, &json!({"agents": args.agents}))
        .await?;
    print_outcome(&outcome)
}

/// Prints a contract net's outcome: exit code 0 when a result came, or
/// when the proposals wait for the caller's award.
fn print_outcome(outcome: &Value) -> anyhow::Result<ExitCode> {
    let code = if outcome["state"] == "completed" || outcome["state"] == "awaiting-award" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    if output::emit_json(&outcome) {
        return Ok(code);
    }
    let mut table = Table::new(&["AGENT", "PROPOSAL", "BID", "MS", "ANSWER"]).right(&[2, 3]);
    for p in outcome["proposals"].as_array().into_iter().flatten() {
        table.row(vec![
            cell(&p["agent"]),
            cell(&p["status"]),
            cell(&p["bid"]),
            cell(&p["elapsed_ms"]),
            answer_text(p),
        ]);
    }
    table.print();
    for a in outcome["attempts"].as_array().into_iter().flatten() {
        println!(
            "accepted {} (bid {}): {}",
            cell(&a["agent"]),
            cell(&a["bid"]),
            answer_text(a)
        );
    }
    match outcome["winner"].as_str() {
        Some(winner) => println!(
            "Winner: {winner}: {}",
            outcome["result"].as_str().unwrap_or_default()
        ),
        None if outcome["state"] == "awaiting-award" => println!(
            "Awaiting your award within {} s: caxton award {} AGENT [AGENT...]",
            outcome["award_within_ms"].as_u64().unwrap_or(0) / 1000,
            cell(&outcome["conversation_id"])
        ),
        None => println!("No result: {}", cell(&outcome["reason"])),
    }
    println!("(conversation {})", cell(&outcome["conversation_id"]));
    Ok(code)
}

#[derive(Args)]
pub struct ReplayArgs {
    /// The recorded conversation's id (`caxton conversations list`).
    conversation_id: String,
    /// Call the model for real from the first divergence on (spends
    /// budget); otherwise every model call is served from the recording.
    #[arg(long)]
    live_llm: bool,
    /// Replay against another version of the (config) agent: a definition
    /// file (`.md` or `.toml`), run beside the deployed one for the replay
    /// only.
    #[arg(long, value_name = "FILE")]
    agent_version: Option<std::path::PathBuf>,
}

/// `caxton replay`: exit code 1 when the new run diverged.
pub async fn replay(client: &Client, args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let path = format!(
        "/api/v1/conversations/{}/replay",
        percent_encode(&args.conversation_id)
    );
    let mut body = serde_json::json!({ "live_llm": args.live_llm });
    if let Some(file) = &args.agent_version {
        let source = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the agent version {}", file.display()))?;
        body["agent_version"] = serde_json::Value::String(source);
    }
    let outcome = client.post_json(&path, &body).await?;
    let identical = outcome["identical"].as_bool().unwrap_or(false);
    if output::emit_json(&outcome) {
        return Ok(if identical {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let against = match &args.agent_version {
        Some(file) => format!("the version in {}", file.display()),
        None => "as it is now".into(),
    };
    println!(
        "replayed {} against {} {against}: {} model call(s) from the recording, {} live",
        cell(&outcome["conversation_id"]),
        cell(&outcome["agent"]),
        cell(&outcome["model_calls_from_recording"]),
        cell(&outcome["live_model_calls"]),
    );
    if identical {
        println!("identical: same model requests, tool calls and replies");
        return Ok(ExitCode::SUCCESS);
    }
    let first = &outcome["first_divergence"];
    println!(
        "diverges at step {} ({}):\n{}",
        cell(&first["step"]),
        cell(&first["kind"]),
        first["diff"].as_str().unwrap_or_default()
    );
    let more = outcome["divergences"].as_array().map_or(0, Vec::len);
    if more > 1 {
        println!("({} more divergence(s): --json shows them all)", more - 1);
    }
    Ok(ExitCode::FAILURE)
}

#[derive(Args)]
pub struct ForkArgs {
    /// The recorded conversation's id.
    conversation_id: String,
    /// The message (1-based) to replace: those before it are replayed
    /// from the recording.
    #[arg(long)]
    at: usize,
    /// What is said instead, answered live.
    message: String,
}

/// `caxton fork`: a new conversation from a recorded one's history.
pub async fn fork(client: &Client, args: ForkArgs) -> anyhow::Result<ExitCode> {
    let path = format!(
        "/api/v1/conversations/{}/fork",
        percent_encode(&args.conversation_id)
    );
    let outcome = client
        .post_json(
            &path,
            &serde_json::json!({ "at": args.at, "message": args.message }),
        )
        .await?;
    if !output::emit_json(&outcome) {
        println!(
            "new conversation {} (history replayed: {} model call(s) from the recording)",
            cell(&outcome["fork_conversation_id"]),
            cell(&outcome["model_calls_from_recording"])
        );
        println!("{}", outcome["reply"].as_str().unwrap_or_default());
    }
    Ok(ExitCode::SUCCESS)
}
