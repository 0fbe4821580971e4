//! Misbehave: an agent that does what a hostile or buggy agent would, on
//! command, so the tests can check that the sandbox holds.
//!
//! `loop` spins forever, `hog` allocates without bound, `trap` panics,
//! `open-file PATH` reads a host file, `connect ADDR` opens a TCP socket,
//! `env` lists environment variables, anything else is echoed (so the agent
//! can prove it recovered). Deployed with the config `{"spin_in_init": true}`
//! it spins in `init` until its time limit stops it (a slow start).

use caxton_guest_sdk::{Agent, AgentInfo, Error, Message, Reply, export_agent};

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
        Ok(Misbehave { hoard: Vec::new() })
    }

    fn describe() -> AgentInfo {
        AgentInfo::new(
            "Misbehaves on command: loop, hog, trap, open-file, connect, env",
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
            _ => Ok(Some(Reply::inform(format!("still here: {content}")))),
        }
    }
}

export_agent!(Misbehave);
