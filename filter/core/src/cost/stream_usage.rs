//! The price of a streamed answer (server-sent events, OpenAI's
//! `stream: true`), read as the stream passes: the filter never holds a
//! chunk back. The last `usage` seen (OpenAI sends it in a final chunk
//! when asked with `stream_options.include_usage`) is the price. A stream
//! without one (not asked for, or cut off before it) is priced from what
//! arrived: one completion token per content event, which is how OpenAI
//! streams tokens, plus the prompt tokens estimated from the request.
//!
//! Memory is bounded: a line longer than the bound is skipped, not kept.

use serde::Deserialize;

use crate::config::TokenPricing;

use super::model::tokens_price;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamUsage {
    /// The line being read (a chunk may end inside one).
    line: Vec<u8>,
    /// The current line passed the bound: skipped up to its end.
    skipping: bool,
    /// `data:` of the event being read.
    data: Vec<u8>,
    bound: usize,
    /// Events with data other than `[DONE]` and other than a usage chunk.
    pub content_events: u64,
    /// `data: [DONE]` arrived: the stream ended as it should.
    pub done: bool,
    usage: Option<Usage>,
    model: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

#[derive(Deserialize)]
struct UsageChunk {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<Usage>,
}

impl StreamUsage {
    /// A reader that keeps at most `bound` bytes of one event.
    pub fn new(bound: usize) -> Self {
        StreamUsage {
            line: Vec::new(),
            skipping: false,
            data: Vec::new(),
            bound,
            content_events: 0,
            done: false,
            usage: None,
            model: None,
        }
    }

    /// Read the next piece of the stream.
    pub fn feed(&mut self, mut chunk: &[u8]) {
        while let Some(end) = chunk.iter().position(|&b| b == b'\n') {
            if !self.skipping && self.line.len() + end <= self.bound {
                self.line.extend_from_slice(&chunk[..end]);
                let line = std::mem::take(&mut self.line);
                self.on_line(&line);
                self.line = line;
            }
            self.line.clear();
            self.skipping = false;
            chunk = &chunk[end + 1..];
        }
        if self.skipping || self.line.len() + chunk.len() > self.bound {
            self.line.clear();
            self.skipping = true;
        } else {
            self.line.extend_from_slice(chunk);
        }
    }

    /// The stream ended (or was cut): an event not closed by a blank line
    /// still counts.
    pub fn finish(&mut self) {
        if !self.skipping && !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.on_line(&line);
        }
        self.dispatch();
    }

    fn on_line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            self.dispatch();
        } else if let Some(value) = line.strip_prefix(b"data:") {
            let value = value.strip_prefix(b" ").unwrap_or(value);
            if self.data.len() + value.len() + 1 > self.bound {
                return;
            }
            if !self.data.is_empty() {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
        }
        // `event:`, `id:`, `retry:` and comments do not price anything.
    }

    fn dispatch(&mut self) {
        if self.data.is_empty() {
            return;
        }
        let data = std::mem::take(&mut self.data);
        if data.as_slice() == b"[DONE]" {
            self.done = true;
        } else if contains(&data, b"\"usage\"") {
            // Only a chunk naming `usage` is parsed: most are content.
            match serde_json::from_slice::<UsageChunk>(&data) {
                Ok(UsageChunk {
                    usage: Some(u),
                    model,
                }) => {
                    self.usage = Some(u);
                    self.model = model.or(self.model.take());
                }
                _ => self.content_events += 1,
            }
        } else {
            self.content_events += 1;
        }
        self.data = data;
        self.data.clear();
    }

    /// Whether a usage chunk arrived.
    pub fn has_usage(&self) -> bool {
        self.usage.is_some()
    }

    /// The stream's price: its usage at the model it names (or `model`,
    /// the request's, or the rule's default), else what arrived.
    pub fn price(
        &self,
        pricing: &TokenPricing,
        model: Option<&str>,
        prompt_tokens: u64,
    ) -> Option<u64> {
        let model = self.model.as_deref().or(model);
        match self.usage {
            Some(u) => tokens_price(pricing, model, u.prompt_tokens, u.completion_tokens),
            None => tokens_price(pricing, model, prompt_tokens, self.content_events),
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn pricing() -> TokenPricing {
        let mut models = BTreeMap::new();
        models.insert("big".to_string(), (1_000, 2_000));
        models.insert("small".to_string(), (100, 200));
        TokenPricing {
            max_body_bytes: 1024,
            models,
            default_model: Some("small".into()),
        }
    }

    fn chunk(i: u32) -> String {
        format!("data: {{\"object\":\"chat.completion.chunk\",\"model\":\"big\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{i} \"}}}}]}}\n\n")
    }

    const USAGE: &str = "data: {\"model\":\"big\",\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":3,\"total_tokens\":13}}\n\n";

    fn stream(with_usage: bool) -> String {
        let mut s: String = (0..3).map(chunk).collect();
        if with_usage {
            s.push_str(USAGE);
        }
        s.push_str("data: [DONE]\n\n");
        s
    }

    fn read_in_pieces(s: &str, piece: usize) -> StreamUsage {
        let mut r = StreamUsage::new(1024);
        for p in s.as_bytes().chunks(piece) {
            r.feed(p);
        }
        r.finish();
        r
    }

    #[test]
    fn the_usage_chunk_prices_the_stream_however_it_is_cut_into_pieces() {
        let s = stream(true);
        for piece in [1, 2, 7, 64, s.len()] {
            let r = read_in_pieces(&s, piece);
            assert!(r.done && r.has_usage(), "piece {piece}");
            assert_eq!(r.content_events, 3);
            // 10 × 1000 + 3 × 2000 = 16000 / 1000 = 16 micros.
            assert_eq!(r.price(&pricing(), None, 0), Some(16), "piece {piece}");
        }
    }

    #[test]
    fn a_stream_without_usage_is_priced_from_what_arrived() {
        let r = read_in_pieces(&stream(false), 5);
        assert!(r.done && !r.has_usage());
        // The request's model and prompt estimate: 4 × 1000 + 3 × 2000.
        assert_eq!(r.price(&pricing(), Some("big"), 4), Some(10));
        // Cut after two events, the second one half-way: it counts.
        let cut: String = chunk(0) + &chunk(1)[..30];
        let r = read_in_pieces(&cut, 9);
        assert!(!r.done);
        assert_eq!(r.content_events, 2);
        // No model named: the rule's default (small): 0 + 2 × 200 → 0.4.
        assert_eq!(r.price(&pricing(), None, 0), Some(1));
    }

    #[test]
    fn crlf_multi_line_data_and_other_fields() {
        let s = "event: x\r\nid: 1\r\n: comment\r\ndata: {\"usage\":\r\ndata: {\"prompt_tokens\":1,\"completion_tokens\":1}}\r\n\r\n";
        let r = read_in_pieces(s, 3);
        assert!(r.has_usage());
        assert_eq!(r.content_events, 0);
        assert_eq!(r.price(&pricing(), None, 0), Some(1)); // 300 / 1000 rounded up
    }

    #[test]
    fn long_lines_are_skipped_and_memory_stays_bounded() {
        let mut r = StreamUsage::new(64);
        r.feed(b"data: ");
        for _ in 0..1000 {
            r.feed(&[b'x'; 100]);
            assert!(r.line.len() <= 64 && r.data.len() <= 64);
        }
        r.feed(b"\n\n");
        r.feed(USAGE.replace("big", "b").as_bytes());
        r.finish();
        // The long event is gone; the usage chunk is over 64 bytes too.
        assert_eq!(r.content_events, 0);
        assert!(!r.has_usage());
        let mut r = StreamUsage::new(1024);
        r.feed(b"data: {\"usage\": not json}\n\n");
        r.finish();
        assert_eq!(r.content_events, 1);
        assert!(!r.has_usage());
    }
}
