//! Misbehave: an agent that does what a hostile or buggy agent would, on
//! command, so the tests can check that the sandbox holds.
//!
//! `loop` spins forever, `hog` allocates without bound, `trap` panics,
//! `open-file PATH` reads a host file, `connect ADDR` opens a TCP socket,
//! `env` lists environment variables, `big N` replies with N bytes, `shout N`
//! logs one line of N bytes, anything else is echoed (so the agent can prove
//! it recovered). Deployed with the config `{"spin_in_init": true}` it spins
//! in `init` until its time limit stops it (a slow start); with
//! `{"huge_describe": true}` its `describe` answers a description and a
//! capability list far over the host's caps.

use std::sync::atomic::{AtomicBool, Ordering};

use caxton_guest_sdk::{Agent, AgentInfo, Error, Message, Reply, export_agent, log};

/// Set by `init` from the config: `describe` takes no arguments, so the
/// config reaches it through the instance's own memory.
static HUGE_DESCRIBE: AtomicBool = AtomicBool::new(false);

/// `N` as a byte count, at most 64 MiB (the agent's own memory bounds it
/// anyway).
fn byte_count(arg: &str) -> usize {
    arg.trim().parse::<usize>().unwrap_or(0).min(64 << 20)
}

struct Misbehave {
    hoard: Vec<Vec<u8>>,
}

impl Agent for Misbehave {
    fn new(config_json: &str) -> Result<Self, Error> {
        if config_json.contains("\"spin_in_init\":true") {
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        HUGE_DESCRIBE.store(
            config_json.contains("\"huge_describe\":true"),
            Ordering::Relaxed,
        );
        Ok(Misbehave { hoard: Vec::new() })
    }

    fn describe() -> AgentInfo {
        if HUGE_DESCRIBE.load(Ordering::Relaxed) {
            let capabilities: Vec<String> = (0..10_000).map(|i| format!("chaos-{i}")).collect();
            let capabilities: Vec<&str> = capabilities.iter().map(String::as_str).collect();
            return AgentInfo::new(&"x".repeat(1 << 20), &capabilities);
        }
        AgentInfo::new(
            "Misbehaves on command: loop, hog, trap, open-file, connect, env, big, shout",
            &["chaos"],
        )
    }

    fn handle(&mut self, msg: Message) -> Result<Option<Reply>, Error> {
        let content = msg.content.trim();
        let (command, arg) = content.split_once(' ').unwrap_or((content, ""));
        match command {
            "loop" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "hog" => loop {
                // 1 MiB at a time, touched so it is really committed.
                self.hoard.push(vec![7u8; 1 << 20]);
            },
            "trap" => panic!("misbehave was told to trap"),
            "open-file" => match std::fs::read_to_string(arg) {
                Ok(text) => Ok(Some(Reply::inform(format!("read {} bytes", text.len())))),
                Err(e) => Ok(Some(Reply::failure(format!("open-file denied: {e}")))),
            },
            "connect" => match std::net::TcpStream::connect(arg) {
                Ok(_) => Ok(Some(Reply::inform("connected"))),
                Err(e) => Ok(Some(Reply::failure(format!("connect denied: {e}")))),
            },
            "env" => {
                let vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
                Ok(Some(Reply::inform(format!(
                    "{} variables: {}",
                    vars.len(),
                    vars.join(",")
                ))))
            }
            "big" => Ok(Some(Reply::inform("x".repeat(byte_count(arg))))),
            "shout" => {
                log::info(&"x".repeat(byte_count(arg)));
                Ok(Some(Reply::inform("shouted")))
            }
            _ => Ok(Some(Reply::inform(format!("still here: {content}")))),
        }
    }
}

export_agent!(Misbehave);
