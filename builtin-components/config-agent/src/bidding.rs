//! A config agent in a contract net: a `cfp` becomes a question to the
//! model (bid or refuse, as JSON), and its answer a `propose` or a
//! `refuse`. An `accept-proposal` is then handled like any request (its
//! content is the task); a `reject-proposal` needs no answer at all.

use caxton_guest_sdk::Reply;

/// What the model is asked, after the agent's own system prompt.
pub fn prompt(task: &str) -> String {
    format!(
        "You are asked for a proposal (a call for proposals). The task:\n\n{task}\n\n\
         If you will do it, answer with only a JSON object {{\"bid\": NUMBER, \"text\": \
         \"what you offer\"}}, where NUMBER is your price or estimate as a plain number. \
         If you will not, answer with only {{\"refuse\": \"why\"}}."
    )
}

/// The model's answer as a reply to the `cfp`: a `propose` when a bid can
/// be read from it, otherwise a `refuse` saying why.
pub fn reply_from(answer: &str) -> Reply {
    if let Some(object) = json_object(answer) {
        if let Some(bid) = object.get("bid").and_then(number) {
            let text = object.get("text").and_then(|t| t.as_str()).unwrap_or("");
            return Reply::propose(bid, text);
        }
        if let Some(why) = object.get("refuse").and_then(|w| w.as_str()) {
            return Reply::refuse(why.to_string());
        }
    }
    // A model that answers "12.5, by Friday" still bids.
    let leading = answer
        .split_whitespace()
        .next()
        .map(|w| w.trim_end_matches([',', ':', ';']))
        .and_then(|w| w.parse::<f64>().ok())
        .filter(|b| b.is_finite());
    match leading {
        Some(bid) => Reply::propose(bid, answer.trim()),
        None => Reply::refuse(format!(
            "no bid could be read from the model's answer: {}",
            answer.chars().take(200).collect::<String>()
        )),
    }
}

/// The first `{` to the last `}` of `text`, if that is a JSON object
/// (models wrap JSON in prose or code fences).
fn json_object(text: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    if end < start {
        return None;
    }
    match serde_json::from_str(&text[start..=end]) {
        Ok(serde_json::Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// A bid given as a number, or as a string holding one (`"12.5"`).
fn number(value: &serde_json::Value) -> Option<f64> {
    let n = match value {
        serde_json::Value::Number(n) => n.as_f64()?,
        serde_json::Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    n.is_finite().then_some(n)
}
