//! A streaming HTTP/1.1 client for server-sent events: the body is read
//! as it arrives (chunked or sized), event by event, so a test can tell
//! when the first event reached it and whether the stream ended cleanly
//! or was cut off.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How a body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The last chunk (or the whole declared length) arrived.
    Clean,
    /// The connection ended before that.
    Cut,
}

pub struct SseStream {
    reader: BufReader<TcpStream>,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    chunked: bool,
    /// Body bytes left of a sized body.
    left: Option<usize>,
    /// Decoded body not yet handed out.
    pending: Vec<u8>,
    /// Everything handed out so far.
    pub received: Vec<u8>,
    pub end: Option<End>,
}

impl SseStream {
    /// POST `body` to `path` on 127.0.0.1:`port`.
    pub fn post(port: u16, path: &str, headers: &[(&str, &str)], body: &[u8]) -> SseStream {
        let mut s = TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-length: {}\r\nconnection: close\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut reader = BufReader::new(s);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let mut headers = Vec::new();
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let find = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let chunked = find("transfer-encoding").is_some_and(|v| v.contains("chunked"));
        let left = find("content-length").and_then(|v| v.parse().ok());
        SseStream {
            reader,
            status,
            headers,
            chunked,
            left,
            pending: Vec::new(),
            received: Vec::new(),
            end: None,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Read more of the body into `pending`; `false` once it has ended.
    fn fill(&mut self) -> bool {
        if self.end.is_some() {
            return false;
        }
        let got = if self.chunked {
            self.read_chunk()
        } else {
            self.read_sized()
        };
        match got {
            Some(true) => true,
            Some(false) => {
                self.end = Some(End::Clean);
                false
            }
            None => {
                self.end = Some(End::Cut);
                false
            }
        }
    }

    /// One chunk: `Some(true)` data, `Some(false)` the last chunk, `None`
    /// cut off.
    fn read_chunk(&mut self) -> Option<bool> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let size = usize::from_str_radix(line.trim().split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            let mut trailer = String::new();
            let _ = self.reader.read_line(&mut trailer);
            return Some(false);
        }
        let mut buf = vec![0; size + 2];
        self.reader.read_exact(&mut buf).ok()?;
        buf.truncate(size);
        self.pending.extend_from_slice(&buf);
        Some(true)
    }

    fn read_sized(&mut self) -> Option<bool> {
        let mut buf = [0u8; 4096];
        match self.left {
            Some(0) => Some(false),
            Some(n) => {
                let want = n.min(buf.len());
                let got = self.reader.read(&mut buf[..want]).ok()?;
                if got == 0 {
                    return None;
                }
                self.left = Some(n - got);
                self.pending.extend_from_slice(&buf[..got]);
                Some(true)
            }
            // No length, not chunked: until the connection closes.
            None => match self.reader.read(&mut buf).ok()? {
                0 => Some(false),
                got => {
                    self.pending.extend_from_slice(&buf[..got]);
                    Some(true)
                }
            },
        }
    }

    /// The next whole event (through its blank line), or `None` when the
    /// body ended first.
    pub fn next_event(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.pending.windows(2).position(|w| w == b"\n\n") {
                let event: Vec<u8> = self.pending.drain(..i + 2).collect();
                self.received.extend_from_slice(&event);
                return Some(String::from_utf8_lossy(&event).into_owned());
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// Read to the end: every event left, and how the body ended.
    pub fn finish(&mut self) -> End {
        while self.next_event().is_some() {}
        self.received.append(&mut self.pending);
        self.end.unwrap_or(End::Cut)
    }
}
