//! Read-only view of a request's headers, fetched in one host call.

use crate::header_list::HeaderList;

#[derive(Clone, Copy)]
pub struct Headers<'a> {
    all: &'a HeaderList,
}

impl<'a> Headers<'a> {
    pub fn new(all: &'a HeaderList) -> Self {
        Headers { all }
    }

    /// First value of `name` (ASCII case-insensitive).
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.all.get(name)
    }

    /// First value as UTF-8; a value that is not UTF-8 counts as absent.
    pub fn get_str(&self, name: &str) -> Option<&'a str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// A response of server-sent events (`content-type: text/event-stream`):
    /// a stream whose end may come long after its headers.
    pub fn is_event_stream(&self) -> bool {
        self.get("content-type").is_some_and(|t| {
            let t = t.trim_ascii_start();
            t.len() >= 17 && t[..17].eq_ignore_ascii_case(b"text/event-stream")
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> {
        self.all.iter()
    }
}
