//! A tiny blocking HTTP/1.1 client: one connection per request, JSON in and out. Enough for
//! the harness, and it keeps the package's build small.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

pub const ADMIN: &str = "powercut-admin-token";

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Value,
}

impl Response {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// What a request's outcome tells about the change it asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: the change is acknowledged, so it must survive.
    Acked,
    /// 4xx: refused, nothing changed (the API promises it).
    Refused,
    /// 5xx or no answer: it may or may not have happened.
    Unknown,
}

pub fn outcome(result: &io::Result<Response>) -> Outcome {
    match result {
        Ok(r) if r.ok() => Outcome::Acked,
        Ok(r) if (400..500).contains(&r.status) => Outcome::Refused,
        _ => Outcome::Unknown,
    }
}

#[derive(Clone)]
pub struct Client {
    pub addr: SocketAddr,
}

impl Client {
    pub fn get(&self, path: &str, token: Option<&str>) -> io::Result<Response> {
        self.call("GET", path, token, None)
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: &Value) -> io::Result<Response> {
        self.call("POST", path, token, Some(body))
    }

    pub fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> io::Result<Response> {
        let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_write_timeout(Some(Duration::from_secs(30)))?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        if let Some(token) = token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        stream.write_all(body.as_bytes())?;
        read_response(BufReader::new(stream))
    }
}

fn read_response(mut reader: impl BufRead) -> io::Result<Response> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
    let mut chunked = false;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("transfer-encoding") && value.trim().eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
        }
    }
    let raw = if chunked { read_chunked(&mut reader)? } else { read_all(&mut reader)? };
    // A reply cut short by the kill is no answer at all.
    let body = if raw.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&raw).map_err(|e| io::Error::other(format!("reply body is not JSON: {e}")))?
    };
    Ok(Response { status, body })
}

fn read_all(reader: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    reader.read_to_end(&mut raw)?;
    Ok(raw)
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
            .map_err(|_| io::Error::other(format!("bad chunk size {line:?}")))?;
        if size == 0 {
            return Ok(raw);
        }
        let start = raw.len();
        raw.resize(start + size, 0);
        reader.read_exact(&mut raw[start..])?;
        line.clear();
        reader.read_line(&mut line)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_and_chunked_bodies() {
        let plain = "HTTP/1.1 201 Created\r\ncontent-length: 8\r\n\r\n{\"a\":1}\n";
        let r = read_response(plain.as_bytes()).unwrap();
        assert_eq!((r.status, r.body["a"].as_i64()), (201, Some(1)));
        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"b\"\r\n3\r\n:2}\r\n0\r\n\r\n";
        let r = read_response(chunked.as_bytes()).unwrap();
        assert_eq!((r.status, r.body["b"].as_i64()), (200, Some(2)));
    }

    #[test]
    fn a_reply_cut_short_is_an_error() {
        assert!(read_response("HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n{\"a\":".as_bytes()).is_err());
    }
}
