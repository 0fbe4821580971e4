//! W3C Trace Context: the `traceparent` header that ties a request to the
//! trace its caller started (<https://www.w3.org/TR/trace-context/>).
//!
//! Only version `00` is written; a later version is read by its first four
//! fields, as the specification asks. Anything malformed is ignored (the
//! request starts a new trace) rather than refused: tracing must never
//! make a request fail.

/// The trace a span belongs to and the span that caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// 16 bytes, never zero.
    pub trace_id: u128,
    /// 8 bytes, never zero: the parent span, here or in the caller.
    pub span_id: u64,
    /// The caller's `sampled` flag; spans are recorded either way, it is
    /// passed on so downstream services decide as the caller did.
    pub sampled: bool,
}

impl TraceParent {
    /// Reads a `traceparent` header value; `None` when it is malformed.
    pub fn parse(header: &str) -> Option<TraceParent> {
        let header = header.trim();
        let mut fields = header.split('-');
        let version = fields.next()?;
        let trace_id = fields.next()?;
        let span_id = fields.next()?;
        let flags = fields.next()?;
        let rest = fields.next();
        if version.len() != 2 || trace_id.len() != 32 || span_id.len() != 16 || flags.len() != 2 {
            return None;
        }
        // Version ff is invalid; version 00 has exactly four fields.
        if version == "ff" || (version == "00" && rest.is_some()) {
            return None;
        }
        let hex = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if ![version, trace_id, span_id, flags].into_iter().all(hex) {
            return None;
        }
        let trace_id = u128::from_str_radix(trace_id, 16).ok()?;
        let span_id = u64::from_str_radix(span_id, 16).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        if trace_id == 0 || span_id == 0 {
            return None;
        }
        Some(TraceParent {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }

    /// The header value naming this span as the parent.
    pub fn header(&self) -> String {
        format!(
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }
}

/// A fresh random trace id.
pub fn new_trace_id() -> u128 {
    loop {
        let id = uuid::Uuid::new_v4().as_u128();
        if id != 0 {
            return id;
        }
    }
}

/// Trace ids go over the wire (JSON) as 32 lowercase hex digits.
pub mod hex_trace_id {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{id:032x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let text = String::deserialize(d)?;
        u128::from_str_radix(&text, 16).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_the_spec_example() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parent = TraceParent::parse(header).expect("valid");
        assert_eq!(parent.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(parent.span_id, 0x00f067aa0ba902b7);
        assert!(parent.sampled);
        assert_eq!(parent.header(), header);
    }

    #[test]
    fn refuses_what_the_spec_calls_invalid() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "0-4bf92f3577b34da6a3ce929d0e0e47366-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
        // A later version may add fields after the fourth.
        assert!(
            TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more")
                .is_some()
        );
    }
}
