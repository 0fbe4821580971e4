//! `caxton llm …`: the embedded local model — fetch it, check it, measure it.
//! These run without a server: the model cache is a local directory.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use caxton_models::llm::{GenerateParams, LocalLlm, Speaker, ToolDecl, Turn, parse_reply, render};
use clap::Subcommand;
use serde_json::json;

use super::memory::pull_with_progress;

#[derive(Subcommand)]
pub enum LlmCommand {
    /// Download the default local model (Qwen2.5-Coder-0.5B-Instruct,
    /// Q4_K_M, 491 MB) into the model cache, verified by sha256.
    Pull {
        /// Model cache (default $CAXTON_MODEL_CACHE or ~/.cache/caxton/models).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
    /// Whether the default local model is downloaded and verified.
    Status {
        /// Model cache (default $CAXTON_MODEL_CACHE or ~/.cache/caxton/models).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
    /// Measure the local model: load time, prompt and generation tokens/s,
    /// whether it picks a tool for a tool-shaped question, and whether it
    /// answers from a tool's result (exit code 1 when either fails).
    Bench {
        /// A GGUF file (default: the pulled default model).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Model cache (default $CAXTON_MODEL_CACHE or ~/.cache/caxton/models).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
        /// Runs of each prompt.
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
}

pub async fn run(command: LlmCommand) -> anyhow::Result<ExitCode> {
    match command {
        LlmCommand::Pull { cache_dir } => {
            let cache_dir = cache_dir.unwrap_or_else(caxton_models::default_cache_dir);
            let path =
                pull_with_progress(move |progress| caxton_models::pull_llm(&cache_dir, progress))
                    .await?;
            if !super::output::emit_json(&serde_json::json!({ "ready": true, "path": path })) {
                println!("Local model ready at {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        LlmCommand::Status { cache_dir } => {
            let cache_dir = cache_dir.unwrap_or_else(caxton_models::default_cache_dir);
            let status = caxton_models::llm_model_status(&cache_dir);
            let code = if status.verified {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
            if super::output::emit_json(&serde_json::json!({
                "ready": status.verified, "detail": status.detail,
            })) {
                return Ok(code);
            }
            println!(
                "LOCAL MODEL: {}    {}",
                if status.verified { "ready" } else { "missing" },
                status.detail
            );
            Ok(if status.verified {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        LlmCommand::Bench {
            model,
            cache_dir,
            runs,
        } => {
            let cache_dir = cache_dir.unwrap_or_else(caxton_models::default_cache_dir);
            let path = model.unwrap_or_else(|| caxton_models::llm_model_path(&cache_dir));
            tokio::task::spawn_blocking(move || bench(path, runs.max(1)))
                .await
                .context("the benchmark thread failed")??;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn turn(speaker: Speaker, content: &str) -> Turn {
    Turn {
        speaker,
        content: content.into(),
        tool_calls: Vec::new(),
    }
}

/// Prints load time and, per prompt, prefill and decode tokens/s (median of
/// `runs`), greedy decoding.
fn bench(path: PathBuf, runs: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut llm = LocalLlm::load(&path).with_context(|| {
        format!(
            "cannot load {} (run `caxton llm pull` for the default model)",
            path.display()
        )
    })?;
    println!(
        "model {} ({}), loaded in {:.2} s, threads {}, kernels {} (quantized) / {} (f32)",
        llm.name(),
        path.display(),
        started.elapsed().as_secs_f64(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        caxton_models::cpu::simd_kernels(),
        caxton_models::cpu::matrix_kernels()
    );
    let weather = ToolDecl {
        name: "get_weather".into(),
        description: "Current weather for a city".into(),
        parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    };
    // The conversation a config agent has after the model called the tool:
    // the next call offers no tools and must answer from the result.
    let after_tool = vec![
        turn(Speaker::System, "You are a helpful assistant."),
        turn(Speaker::User, "What is the weather in Paris?"),
        Turn {
            speaker: Speaker::Assistant,
            content: String::new(),
            tool_calls: vec![("get_weather".into(), json!({"city": "Paris"}))],
        },
        turn(
            Speaker::Tool,
            r#"{"city": "Paris", "temperature_c": 18, "sky": "sunny"}"#,
        ),
        turn(
            Speaker::User,
            "You have the tool results above. Answer the request now, in plain text, without calling any tool.",
        ),
    ];
    let cases: [BenchCase; 4] = [
        (
            "short chat",
            vec![
                turn(Speaker::System, "You are a friendly greeter who welcomes users."),
                turn(Speaker::User, "Hello! I just joined."),
            ],
            vec![],
            64,
            Expect::Text,
        ),
        (
            "long prompt",
            vec![
                turn(
                    Speaker::System,
                    &"You are a data analysis agent. You read CSV and JSON, compute statistics and explain trends in plain words. "
                        .repeat(8),
                ),
                turn(Speaker::User, "Summarise what you can do in two sentences."),
            ],
            vec![],
            64,
            Expect::Text,
        ),
        (
            "tool call",
            vec![
                turn(Speaker::System, "You are a helpful assistant."),
                turn(Speaker::User, "What is the weather in Paris?"),
            ],
            vec![weather],
            48,
            Expect::Call("get_weather"),
        ),
        ("tool result", after_tool, vec![], 48, Expect::Uses(&["18", "sunny"])),
    ];
    let mut failed = Vec::new();
    println!(
        "{:<12} {:>8} {:>8} {:>12} {:>12} {:>9}  result",
        "prompt", "p_tokens", "g_tokens", "prefill t/s", "decode t/s", "total s"
    );
    for (label, turns, tools, max_tokens, expect) in cases {
        let prompt = render(&turns, &tools);
        let mut samples = Vec::new();
        for _ in 0..runs {
            let generation = llm.generate(
                &prompt,
                GenerateParams {
                    max_tokens,
                    ..GenerateParams::default()
                },
                &mut |_| true,
            )?;
            samples.push(generation);
        }
        samples.sort_by_key(|g| g.prefill + g.decode);
        let median = &samples[samples.len() / 2];
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
        let parsed = parse_reply(&median.text, &names);
        let result = match parsed.tool_calls.first() {
            Some(call) => format!("tool call {}({})", call.name, call.arguments),
            None => format!("{:?}", median.text.chars().take(50).collect::<String>()),
        };
        // A tool call is looked for even where no tool was offered: a model
        // that calls one anyway has not answered.
        let checked = parse_reply(&median.text, &["get_weather"]);
        let verdict = expect.check(&checked.tool_calls, &checked.text);
        if let Err(why) = &verdict {
            failed.push(format!("{label}: {why}"));
        }
        let result = match verdict {
            Ok(()) => format!("✓ {result}"),
            Err(_) => format!("✗ {result}"),
        };
        println!(
            "{:<12} {:>8} {:>8} {:>12.1} {:>12.1} {:>9.2}  {}",
            label,
            median.prompt_tokens,
            median.completion_tokens,
            median.prefill_tokens_per_second(),
            median.decode_tokens_per_second(),
            (median.prefill + median.decode).as_secs_f64(),
            result
        );
    }
    if !failed.is_empty() {
        anyhow::bail!(
            "the model did not do what a config agent needs: {}",
            failed.join("; ")
        );
    }
    Ok(())
}

/// A prompt of the benchmark: label, conversation, tools offered, most
/// tokens, and what the answer must be.
type BenchCase = (&'static str, Vec<Turn>, Vec<ToolDecl>, usize, Expect);

/// What a case's answer must be for a config agent to work on the model.
enum Expect {
    /// Text, no tool call.
    Text,
    /// A call of this tool.
    Call(&'static str),
    /// Text (no tool call) that uses one of these facts of a tool result.
    Uses(&'static [&'static str]),
}

impl Expect {
    fn check(
        &self,
        calls: &[caxton_models::llm::ParsedToolCall],
        text: &str,
    ) -> Result<(), String> {
        match self {
            Expect::Text if calls.is_empty() && !text.trim().is_empty() => Ok(()),
            Expect::Text => Err("expected a text answer".into()),
            Expect::Call(name) if calls.iter().any(|c| c.name == *name) => Ok(()),
            Expect::Call(name) => Err(format!("expected a call of {name}")),
            Expect::Uses(facts) if calls.is_empty() && facts.iter().any(|f| text.contains(f)) => {
                Ok(())
            }
            Expect::Uses(facts) => Err(format!(
                "expected an answer without tools using the tool's result ({})",
                facts.join(" or ")
            )),
        }
    }
}
