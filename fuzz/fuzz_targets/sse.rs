//! The server-sent-events decoder reading a provider's streamed answer: any
//! bytes, cut into chunks anywhere, decode to the same events as the whole
//! body at once, and the decoder never panics.
#![no_main]

use caxton::llm::sse::SseDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, body)) = data.split_first() else {
        return;
    };
    let whole = SseDecoder::default().push(body);
    let mut chunked = SseDecoder::default();
    let mut events = Vec::new();
    let size = usize::from(cut % 16) + 1;
    for chunk in body.chunks(size) {
        events.extend(chunked.push(chunk));
    }
    assert_eq!(whole, events, "chunks of {size} decode differently");
});
