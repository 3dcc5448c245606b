//! Requests on a raw connection, for what a client library hides: which
//! local port a request came from, whether the gateway has read it yet
//! (the kernel's receive queue of the gateway's socket, from
//! `/proc/net/tcp`), which process holds the gateway's end, and a client
//! that goes away before its answer.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::http::Resp;

/// An HTTP/1.1 request written on a connection of its own, its answer
/// read later. The connection is kept alive after the answer (so the
/// gateway's end can still be looked at) and closed when this is dropped.
pub struct RawRequest {
    stream: TcpStream,
    method: String,
    server_port: u16,
    local_port: u16,
    /// What [`RawRequest::release`] still has to write.
    rest: Vec<u8>,
}

impl RawRequest {
    /// Connect to `127.0.0.1:port` and write the whole request.
    pub fn send(
        port: u16,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> RawRequest {
        let mut req = Self::send_held(port, method, path, headers, body);
        req.release();
        req
    }

    /// Like [`RawRequest::send`], less the empty line that ends the
    /// header section: the server accepts the connection and reads what
    /// came, and cannot answer before [`RawRequest::release`]. (Kong
    /// closes the connection right after a reply the filter makes, so a
    /// look at which worker holds it must come before the answer.) The
    /// body, if any, goes with the rest.
    pub fn send_held(
        port: u16,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> RawRequest {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("connect to :{port}: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap_or_else(|e| panic!("socket timeout: {e}"));
        let local_port = stream
            .local_addr()
            .unwrap_or_else(|e| panic!("local address: {e}"))
            .port();
        let mut head =
            format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(b) = body {
            head.push_str(&format!("content-length: {}\r\n", b.len()));
        }
        stream
            .write_all(head.as_bytes())
            .unwrap_or_else(|e| panic!("{method} {path} to :{port}: {e}"));
        RawRequest {
            stream,
            method: method.to_string(),
            server_port: port,
            local_port,
            rest: [b"\r\n".as_slice(), body.unwrap_or_default()].concat(),
        }
    }

    /// Write the rest of a request started with [`RawRequest::send_held`].
    pub fn release(&mut self) {
        let rest = std::mem::take(&mut self.rest);
        self.stream
            .write_all(&rest)
            .unwrap_or_else(|e| panic!("{} to :{}: {e}", self.method, self.server_port));
    }

    pub fn local_port(&self) -> u16 {
        self.local_port
    }

    /// The gateway's end of this connection as the kernel lists it.
    pub fn server_socket(&self) -> Option<TcpSocket> {
        tcp_sockets()
            .into_iter()
            .find(|s| s.local_port == self.server_port && s.remote_port == self.local_port)
    }

    /// Whether the gateway accepted the connection (a process has its
    /// socket) and read every byte sent so far (its receive queue is
    /// empty) while the connection is still open, i.e. it holds the
    /// request.
    pub fn read_by_server(&self) -> bool {
        self.server_socket()
            .is_some_and(|s| s.established() && s.rx_queue == 0 && s.inode != 0)
    }

    /// Whether the first bytes of the answer are here: the gateway read
    /// the request and answered it (and may have closed its end since,
    /// so the kernel no longer lists it as [`RawRequest::read_by_server`]
    /// looks for it).
    pub fn answer_arrived(&self) -> bool {
        let mut one = [0u8; 1];
        if self.stream.set_nonblocking(true).is_err() {
            return false;
        }
        let arrived = matches!(self.stream.peek(&mut one), Ok(n) if n > 0);
        let _ = self.stream.set_nonblocking(false);
        arrived
    }

    /// Wait until the gateway has read the request (see
    /// [`RawRequest::read_by_server`]), or already answered it: on a busy
    /// machine the answer can come before a look at the kernel's table
    /// finds the gateway holding the request.
    pub fn wait_read_by_server(&self) {
        crate::procs::wait_for(
            &format!(
                "the gateway on :{} to read the request from :{}",
                self.server_port, self.local_port
            ),
            Duration::from_secs(10),
            || (self.read_by_server() || self.answer_arrived()).then_some(()),
        );
    }

    /// Read the answer (its body by `content-length`, chunks, or up to
    /// the end of the connection).
    pub fn response(mut self) -> Resp {
        let mut raw = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            if let Some(r) = complete_response(&raw, &self.method) {
                return r;
            }
            let n = self
                .stream
                .read(&mut buf)
                .unwrap_or_else(|e| panic!("reading the answer on :{}: {e}", self.local_port));
            if n == 0 {
                return parse_response(&raw, &self.method);
            }
            raw.extend_from_slice(&buf[..n]);
        }
    }
}

/// A kept-alive connection carrying requests one after another, for what
/// a pooling client hides: whether the gateway takes a second request on
/// the connection that carried the first.
pub struct KeepAlive {
    stream: TcpStream,
    port: u16,
}

impl KeepAlive {
    /// Connect to `127.0.0.1:port`; each answer must come within `timeout`.
    pub fn connect(port: u16, timeout: Duration) -> KeepAlive {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("connect to :{port}: {e}"));
        stream
            .set_read_timeout(Some(timeout))
            .unwrap_or_else(|e| panic!("socket timeout: {e}"));
        KeepAlive { stream, port }
    }

    /// Write a GET of `path` on the connection.
    pub fn send_get(&mut self, path: &str, headers: &[(&str, &str)]) {
        let mut head = format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1:{}\r\n", self.port);
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        self.stream
            .write_all(head.as_bytes())
            .unwrap_or_else(|e| panic!("GET {path} to :{}: {e}", self.port));
    }

    /// Read the next answer to a GET; `Err` when none came in time or the
    /// connection closed first.
    pub fn answer(&mut self) -> Result<Resp, String> {
        let mut raw = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            if let Some(r) = complete_response(&raw, "GET") {
                return Ok(r);
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(format!("connection closed after {} bytes", raw.len())),
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                Err(e) => return Err(format!("no answer ({e}) after {} bytes", raw.len())),
            }
        }
    }
}

/// The response in `raw` once all of it arrived (not for one whose body
/// runs to the end of the connection).
fn complete_response(raw: &[u8], method: &str) -> Option<Resp> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = parse_head(&raw[..end]);
    let rest = &raw[end + 4..];
    let complete = match body_framing(&head, method) {
        Framing::None => true,
        Framing::Length(n) => rest.len() >= n,
        Framing::Chunked => rest.ends_with(b"0\r\n\r\n"),
        Framing::ToEnd => false,
    };
    complete.then(|| parse_response(raw, method))
}

struct Head {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

enum Framing {
    None,
    Length(usize),
    Chunked,
    ToEnd,
}

fn parse_head(head: &[u8]) -> Head {
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Head { status, headers }
}

fn body_framing(head: &Head, method: &str) -> Framing {
    if method == "HEAD" || head.status < 200 || head.status == 204 || head.status == 304 {
        Framing::None
    } else if head
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        Framing::Chunked
    } else if let Some(n) = head.header("content-length").and_then(|v| v.parse().ok()) {
        Framing::Length(n)
    } else {
        Framing::ToEnd
    }
}

/// Parse a whole HTTP/1.1 response to `method`.
pub fn parse_response(raw: &[u8], method: &str) -> Resp {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {:?}", String::from_utf8_lossy(raw)));
    let head = parse_head(&raw[..end]);
    let rest = &raw[end + 4..];
    let body = match body_framing(&head, method) {
        Framing::None => Vec::new(),
        Framing::Chunked => dechunk(rest),
        Framing::Length(n) => rest[..n.min(rest.len())].to_vec(),
        Framing::ToEnd => rest.to_vec(),
    };
    Resp {
        status: head.status,
        headers: head.headers,
        body,
    }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return body;
        };
        let size_text = String::from_utf8_lossy(&rest[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size {size_text:?}"));
        rest = &rest[eol + 2..];
        if size == 0 || rest.len() < size {
            return body;
        }
        body.extend_from_slice(&rest[..size]);
        rest = rest.get(size + 2..).unwrap_or_default();
    }
}

/// One IPv4 TCP socket of this machine, from `/proc/net/tcp`.
#[derive(Debug, Clone)]
pub struct TcpSocket {
    pub local_port: u16,
    pub remote_port: u16,
    /// The kernel's state code (1 = established).
    pub state: u8,
    /// Bytes received and not yet read by the process.
    pub rx_queue: u64,
    pub inode: u64,
}

impl TcpSocket {
    pub fn established(&self) -> bool {
        self.state == 1
    }
}

/// Every IPv4 TCP socket on the machine.
pub fn tcp_sockets() -> Vec<TcpSocket> {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    text.lines().skip(1).filter_map(parse_tcp_line).collect()
}

/// `sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...`,
/// addresses as `HEXIP:HEXPORT`.
fn parse_tcp_line(line: &str) -> Option<TcpSocket> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let port = |addr: &str| u16::from_str_radix(addr.split(':').nth(1)?, 16).ok();
    let (_, rx) = f.get(4)?.split_once(':')?;
    Some(TcpSocket {
        local_port: port(f.get(1)?)?,
        remote_port: port(f.get(2)?)?,
        state: u8::from_str_radix(f.get(3)?, 16).ok()?,
        rx_queue: u64::from_str_radix(rx, 16).ok()?,
        inode: f.get(9)?.parse().ok()?,
    })
}

/// Whether process `pid` has the socket `inode` open.
pub fn process_holds_socket(pid: u32, inode: u64) -> bool {
    let want = format!("socket:[{inode}]");
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.flatten().any(|e| {
                std::fs::read_link(e.path())
                    .map(|l| l.to_string_lossy() == want)
                    .unwrap_or(false)
            })
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_proc_net_tcp_line() {
        let line = "   3: 0100007F:2B67 0100007F:A1B2 01 00000000:0000001A 00:00000000 00000000     0        0 123456 1 0000000000000000 20 4 30 10 -1";
        let s = parse_tcp_line(line).unwrap();
        assert_eq!((s.local_port, s.remote_port, s.state), (0x2B67, 0xA1B2, 1));
        assert_eq!((s.rx_queue, s.inode), (0x1A, 123456));
    }

    #[test]
    fn parses_content_length_chunked_and_close_delimited_answers() {
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\r\nhi",
            "GET",
        );
        assert_eq!(
            (r.status, r.body.as_slice(), r.header("x-a")),
            (200, &b"hi"[..], Some("b"))
        );
        let r = parse_response(
            b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            "POST",
        );
        assert_eq!((r.status, r.body.as_slice()), (201, &b"abcde"[..]));
        let r = parse_response(b"HTTP/1.1 503 x\r\n\r\nto the end", "GET");
        assert_eq!(r.body, b"to the end");
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n";
        assert!(complete_response(head, "HEAD").is_some_and(|r| r.body.is_empty()));
        assert!(complete_response(head, "GET").is_none());
    }
}
