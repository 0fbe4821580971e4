//! `caxton send`, `caxton dead-letters list|replay|discard` and
//! `caxton topics list|publish|subscribe|unsubscribe`: durable
//! fire-and-forget messages and topics.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::client::Client;
use super::output::{self, Table, cell};
use crate::server::percent_encode;

/// `caxton send AGENT TEXT`: queue a message without waiting for a reply.
#[derive(Args)]
pub struct SendArgs {
    /// The receiving agent (name or id); or `--capability`.
    #[arg(required_unless_present = "capability")]
    agent: Option<String>,
    /// The message's text.
    text: Option<String>,
    /// Route to an agent declaring this capability instead.
    #[arg(long, conflicts_with = "agent")]
    capability: Option<String>,
}

pub async fn send(client: &Client, args: SendArgs) -> anyhow::Result<ExitCode> {
    // With --capability the one positional is the text.
    let (mut body, text) = match (args.capability, args.agent, args.text) {
        (Some(capability), text, None) => (json!({ "capability": capability }), text),
        (None, Some(agent), text) => (json!({ "receiver": agent }), text),
        _ => anyhow::bail!("give an agent and a text, or --capability CAP and a text"),
    };
    body["message"] = json!(text.unwrap_or_default());
    let answer = client.post_json("/api/v1/send", &body).await?;
    if !output::emit_json(&answer) {
        let id = cell(&answer["messages"][0]["id"]);
        println!("Queued (message {id}); it is delivered even if the server restarts");
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
pub enum DeadLettersCommand {
    /// List messages that failed every try, oldest first.
    List {
        /// Only those after this id (the `next` a page printed).
        #[arg(long)]
        after: Option<u64>,
        /// At most this many (up to 500).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Put a dead letter back in the outbox, its tries counted from zero.
    Replay {
        /// The dead letter's id.
        id: u64,
    },
    /// Delete a dead letter.
    Discard {
        /// The dead letter's id.
        id: u64,
    },
}

pub async fn dead_letters(
    client: &Client,
    command: DeadLettersCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        DeadLettersCommand::List { after, limit } => {
            let mut path = format!("/api/v1/dead-letters?limit={limit}");
            if let Some(after) = after {
                path.push_str(&format!("&after={after}"));
            }
            let page = client.get(&path).await?;
            if output::emit_json(&page) {
                return Ok(ExitCode::SUCCESS);
            }
            let letters = page["dead_letters"].as_array().cloned().unwrap_or_default();
            println!(
                "{} messages waiting for delivery, {} dead letters",
                cell(&page["waiting"]),
                cell(&page["dead"])
            );
            if letters.is_empty() {
                return Ok(ExitCode::SUCCESS);
            }
            let mut table =
                Table::new(&["ID", "TO", "ATTEMPTS", "FAILED", "LAST ERROR"]).right(&[0, 2]);
            for letter in &letters {
                let to = &letter["to"];
                let to = to["agent"]
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| to["capability"].as_str().map(|c| format!("capability {c}")))
                    .unwrap_or_default();
                table.row(vec![
                    cell(&letter["id"]),
                    to,
                    cell(&letter["attempts"]),
                    cell(&letter["failed_at"]),
                    cell(&letter["last_error"]),
                ]);
            }
            table.print();
            if let Some(next) = page["next"].as_u64() {
                println!("More: caxton dead-letters list --after {next}");
            }
        }
        DeadLettersCommand::Replay { id } => {
            let answer = client
                .post_json(&format!("/api/v1/dead-letters/{id}/replay"), &json!({}))
                .await?;
            if !output::emit_json(&answer) {
                println!("Dead letter {id} is queued again");
            }
        }
        DeadLettersCommand::Discard { id } => {
            let answer = client.delete(&format!("/api/v1/dead-letters/{id}")).await?;
            if !output::emit_json(&answer) {
                println!("Dead letter {id} discarded");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
pub enum TopicsCommand {
    /// List topics and their subscribers.
    List,
    /// Publish a message to every subscriber of a topic.
    Publish {
        /// The topic, e.g. `orders.created`.
        topic: String,
        /// The message's text.
        text: String,
    },
    /// Subscribe an agent to a topic (kept across restarts).
    Subscribe {
        /// The topic, e.g. `orders.created`.
        topic: String,
        /// The agent (name or id).
        agent: String,
    },
    /// End an agent's subscription.
    Unsubscribe {
        /// The topic.
        topic: String,
        /// The agent (name or id).
        agent: String,
    },
}

/// The strings of a JSON array (nothing for anything else).
fn strings(list: &Value) -> Vec<&str> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

fn subscription_path(topic: &str, agent: &str) -> String {
    format!(
        "/api/v1/topics/{}/subscribers/{}",
        percent_encode(topic),
        percent_encode(agent)
    )
}

pub async fn topics(client: &Client, command: TopicsCommand) -> anyhow::Result<ExitCode> {
    let answer: Value = match command {
        TopicsCommand::List => {
            let page = client.get("/api/v1/topics").await?;
            if output::emit_json(&page) {
                return Ok(ExitCode::SUCCESS);
            }
            let topics = page["topics"].as_array().cloned().unwrap_or_default();
            if topics.is_empty() {
                println!("No topics: nobody subscribes to anything yet.");
                return Ok(ExitCode::SUCCESS);
            }
            let mut table = Table::new(&["TOPIC", "SUBSCRIBERS"]);
            for topic in &topics {
                let names = strings(&topic["subscribers"]);
                table.row(vec![cell(&topic["topic"]), names.join(",")]);
            }
            table.print();
            return Ok(ExitCode::SUCCESS);
        }
        TopicsCommand::Publish { topic, text } => {
            let answer = client
                .post_json(
                    &format!("/api/v1/topics/{}/publish", percent_encode(&topic)),
                    &json!({ "content": text }),
                )
                .await?;
            if !output::emit_json(&answer) {
                let names = strings(&answer["subscribers"]);
                println!(
                    "Published to {topic}: queued for {} subscribers ({})",
                    names.len(),
                    names.join(", ")
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        TopicsCommand::Subscribe { topic, agent } => {
            client
                .post_json(&subscription_path(&topic, &agent), &json!({}))
                .await?
        }
        TopicsCommand::Unsubscribe { topic, agent } => {
            client.delete(&subscription_path(&topic, &agent)).await?
        }
    };
    if !output::emit_json(&answer) {
        let topics = strings(&answer["topics"]);
        println!(
            "{} now subscribes to: {}",
            cell(&answer["agent"]),
            topics.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
